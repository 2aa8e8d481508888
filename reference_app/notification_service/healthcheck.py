"""Bounded dependency checks for the ``/health`` endpoints of the web and websocket processes.

Each check runs in a daemon thread of its own with its own deadline; ``/health`` waits for them together
(never for their sum) and abandons a check still running at its deadline: a dependency that accepts the
connection but never answers (a SIGSTOPped Redis or websocket process) cannot hold ``/health`` past the
deadline. Every component result says why it is not healthy (``reason``):

- ``down``: the connection was refused (nothing listens);
- ``timeout``: the connection could not even be opened within the client's connect timeout;
- ``hung``: no answer within the deadline (the check was abandoned), or the server accepted the connection
  and then did not answer in time (a read timeout);
- ``error``: any other failure (an error reply, a failed query, a bad answer);
- ``slow``: answered correctly but over the latency threshold (the status stays ``healthy``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

DOWN, HUNG, TIMEOUT, SLOW, ERROR = "down", "hung", "timeout", "slow", "error"

CheckFn = Callable[[], "dict[str, Any] | None"]


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    # requests wraps urllib3 errors in its args, not in the cause chain
    for item in list(found):
        for arg in getattr(item, "args", ()):
            if isinstance(arg, BaseException) and arg not in found:
                found.append(arg)
                inner = getattr(arg, "reason", None)
                if isinstance(inner, BaseException) and inner not in found:
                    found.append(inner)
    return found


def failure_reason(exc: BaseException) -> str:
    """down, timeout, hung or error for an exception raised by a dependency check."""
    chain = _chain(exc)
    text = " ".join(f"{type(item).__name__} {item}" for item in chain).lower()
    if any(isinstance(item, ConnectionRefusedError) for item in chain) or "refused" in text:
        return DOWN
    if "connecttimeout" in text or "timeout connecting" in text or "connect timeout" in text:
        return TIMEOUT
    if any(isinstance(item, TimeoutError) for item in chain) or "timeout" in text or "timed out" in text:
        return HUNG
    return ERROR


def describe(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]


def run_checks(checks: dict[str, CheckFn], deadline_s: float, slow_ms: float) -> dict[str, dict[str, Any]]:
    """Run every check concurrently; each result is its dict (default ``{"status": "healthy"}``) with
    ``latency_ms`` and ``reason`` (None when healthy and fast). Returns within about ``deadline_s``."""
    results: dict[str, dict[str, Any]] = {}
    done = {name: threading.Event() for name in checks}
    started = time.perf_counter()

    def run(name: str, check: CheckFn) -> None:
        try:
            result = check() or {"status": "healthy"}
            result.setdefault("reason", None if result.get("status") in ("healthy", "disabled") else ERROR)
        except Exception as exc:
            result = {"status": "failed", "reason": failure_reason(exc), "error": describe(exc)}
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = result
        done[name].set()

    for name, check in checks.items():
        threading.Thread(target=run, args=(name, check), name=f"health-{name}", daemon=True).start()
    end = started + deadline_s
    answer: dict[str, dict[str, Any]] = {}
    for name in checks:
        if done[name].wait(max(0.0, end - time.perf_counter())):
            result = dict(results[name])
            if result["status"] == "healthy" and result["latency_ms"] > slow_ms:
                result["reason"] = SLOW
        else:
            result = {
                "status": "failed",
                "reason": HUNG,
                "error": f"no answer within {deadline_s:g}s (check abandoned)",
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        answer[name] = result
    return answer
