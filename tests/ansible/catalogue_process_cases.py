"""The catalogue cases of crash_loop and process_manager_down for tests/ansible/test_catalogue.py's CASES (kept
here so that file stays under the line limit): one health result per type, a process check of the host with
the reason each type claims. (type -> changed checks, messages, level, plan ids)."""

from __future__ import annotations

from typing import Any


def _process_check(reason: str) -> dict[str, Any]:
    return {
        "name": "worker_process",
        "component": "host",
        "kind": "process",
        "critical": True,
        "status": "failed",
        "latency_ms": 2.0,
        "error": reason,
        "reason": reason,
        "evidence": {},
    }


PROCESS_CASES: dict[str, tuple[list[dict[str, Any]], list[str], int, list[str]]] = {
    "process_manager_down": ([_process_check("manager_down")], [], 2, ["restore_process_manager", "escalate"]),
    "crash_loop": ([_process_check("crash_loop")], [], 2, ["repair_programs", "enable_flash_fallback", "escalate"]),
}
