"""Crash loops and a dead process manager, as the health check reports them on a real host, classify as
their own types (crash_loop, process_manager_down) and not as the restartable outage they look like."""

from __future__ import annotations

from typing import Any

from notification_emergency.catalogue import classify
from tests.ansible.test_catalogue import check, health_result, plan_ids, types_of

WEB_SAYS_WEBSOCKET_FAILED = {
    "status_code": 200,
    "json": {"status": "degraded", "components": {"websocket": {"status": "failed"}}},
}


def _types(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    return types_of(result), types_of(result, "suppressed")


def test_a_websocket_supervisord_gave_up_on_is_a_crash_loop_repaired_before_a_restart() -> None:
    result = classify(
        health_result(
            check("websocket", "failed", "refused"),
            check("websocket_port", "failed", "refused"),
            check(
                "websocket_process",
                "failed",
                "crash_loop",
                evidence={"state": "FATAL", "detail": "Exited too quickly (process log may have details)"},
            ),
            check("web", "degraded", "bad_answer", evidence=WEB_SAYS_WEBSOCKET_FAILED),
        ),
        host="sandbox-01",
    )
    assert _types(result) == (["crash_loop"], ["websocket_service_down"])
    assert result["level"] == 2 and plan_ids(result) == ["repair_programs", "enable_flash_fallback", "escalate"]


def test_a_web_in_a_crash_loop_keeps_the_web_outage_level() -> None:
    result = classify(
        health_result(
            check("web", "failed", "refused"),
            check("web_port", "failed", "refused"),
            check("web_process", "failed", "crash_loop", evidence={"state": "BACKOFF"}),
        )
    )
    assert _types(result) == (["crash_loop"], ["web_service_down"])
    assert result["level"] == 1, "takes the level of the outage it explains"
    assert plan_ids(result) == ["repair_programs", "enable_flash_fallback", "escalate"]


def test_a_stopped_program_is_still_a_restartable_outage() -> None:
    result = classify(
        health_result(check("websocket", "failed", "refused"), check("websocket_process", "failed", "not_running"))
    )
    assert _types(result) == (["websocket_service_down"], [])


def test_a_dead_supervisord_whose_programs_still_serve_is_the_process_manager() -> None:
    """Orphans still answer, so only the process checks fail; it is not a web outage to restart."""
    result = classify(
        health_result(
            check("web_process", "failed", "manager_down", evidence={"state": "MANAGER_DOWN"}),
            check("websocket_process", "failed", "manager_down", evidence={"state": "MANAGER_DOWN"}),
        )
    )
    assert types_of(result) == ["process_manager_down"]
    assert set(types_of(result, "suppressed")) == {"web_service_down", "websocket_service_down"}
    assert plan_ids(result) == ["restore_process_manager", "escalate"]


def test_a_dead_supervisord_with_its_programs_gone_explains_every_outage() -> None:
    result = classify(
        health_result(
            check("web", "failed", "refused"),
            check("web_port", "failed", "refused"),
            check("websocket", "failed", "refused"),
            check("redis", "failed", "refused"),
            check("web_process", "failed", "manager_down"),
            check("websocket_process", "failed", "manager_down"),
        )
    )
    assert types_of(result) == ["process_manager_down"] and result["level"] == 1
    assert plan_ids(result) == ["restore_process_manager", "escalate"]


def test_a_web_error_beside_a_dead_supervisord_is_not_hidden() -> None:
    result = classify(
        health_result(
            check("web", "failed", "bad_status"),
            check("web_process", "failed", "manager_down"),
            check("websocket_process", "failed", "manager_down"),
        )
    )
    assert {"process_manager_down", "web_service_down"} <= set(types_of(result))


def test_supervisord_messages_name_the_type() -> None:
    gave_up = "INFO gave up: notification-websocket entered FATAL state, too many start retries too quickly"
    assert types_of(classify(health_result(), messages=[gave_up])) == ["crash_loop"]
    down = "unix:///srv/sandbox-01/run/supervisor.sock no such file"
    assert types_of(classify(health_result(), messages=[down])) == ["process_manager_down"]
