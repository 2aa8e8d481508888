"""Hung processes, as the health check reports them on a real host (a SIGSTOPped WebSocket process, Redis or
web server: the port check passes, the check that waits for an answer fails with reason hung, the web's
/health says which dependency hangs), classify as the hung component's own type: a web symptom never hides a
WebSocket or Redis cause."""

from __future__ import annotations

from typing import Any

from notification_emergency.catalogue import classify
from tests.ansible.test_catalogue import check, health_result, plan_ids, types_of


def web_reports(**components: dict[str, Any]) -> dict[str, Any]:
    """The web check's evidence when the web answered /health 200 degraded, with these components."""
    parts = {name: {"status": "healthy", "reason": None, "latency_ms": 1.0} for name in ("web", "database")}
    parts.update(components)
    body = {"status": "degraded", "components": parts}
    return {"url": "http://127.0.0.1:8000/health", "status_code": 200, "json": body}


HUNG_WEBSOCKET = check(
    "websocket",
    "failed",
    "hung",
    error="timeout after 2.0s while waiting for the WebSocket upgrade",
    evidence={"url": "http://127.0.0.1:8001", "upgrade_status": None, "namespace_connected": False},
)
WEB_SAYS_WEBSOCKET_HUNG = check(
    "web",
    "degraded",
    "bad_answer",
    error="JSON status is 'degraded', expected 'healthy'",
    evidence=web_reports(
        redis={"status": "healthy", "reason": None},
        websocket={"status": "failed", "reason": "hung", "error": "no answer within 1s (check abandoned)"},
    ),
)


def test_a_hung_websocket_process_is_websocket_service_down() -> None:
    result = classify(health_result(HUNG_WEBSOCKET, WEB_SAYS_WEBSOCKET_HUNG), host="sandbox-01")
    assert result["primary"] == "websocket_service_down", result["summary"]
    assert types_of(result) == ["websocket_service_down"] and types_of(result, "suppressed") == []
    assert plan_ids(result)[0] == "restart_websocket"
    failure = result["failures"][0]
    assert {"websocket_check_failed", "web_reports_websocket_failed"} <= set(failure["evidence"]["signals"])


def test_a_hung_websocket_is_not_explained_by_a_web_outage_at_the_same_time() -> None:
    """Even when the web check fails too (its /health took too long), the hung WebSocket stays a failure of its
    own with its restart in the plan, never suppressed under web_service_down."""
    web_timeout = check("web", "failed", "hung", error="timeout after 2.0s while waiting for the HTTP response")
    result = classify(health_result(HUNG_WEBSOCKET, web_timeout))
    assert "websocket_service_down" in types_of(result)
    assert "websocket_service_down" not in types_of(result, "suppressed")
    assert "restart_websocket" in plan_ids(result)


def test_a_whole_service_outage_still_explains_the_websocket_under_the_web() -> None:
    result = classify(
        health_result(
            check("web", "failed", "refused"),
            check("web_port", "failed", "refused"),
            check("websocket", "failed", "refused"),
            check("websocket_port", "failed", "refused"),
        )
    )
    assert (types_of(result), types_of(result, "suppressed")) == (["web_service_down"], ["websocket_service_down"])


def test_a_hung_redis_is_redis_unavailable_not_the_web_or_the_websocket() -> None:
    result = classify(
        health_result(
            check("redis", "failed", "hung", error="timeout after 2.0s while waiting for PING"),
            check(
                "web",
                "degraded",
                "bad_answer",
                evidence=web_reports(
                    redis={"status": "failed", "reason": "hung", "error": "no answer within 1s (check abandoned)"},
                    websocket={"status": "degraded", "reason": "error", "error": "websocket process reports degraded"},
                ),
            ),
        )
    )
    assert result["primary"] == "redis_unavailable", result["summary"]
    assert types_of(result) == ["redis_unavailable"]
    assert plan_ids(result)[0] == "restart_redis"


def test_a_hung_web_process_is_web_service_down() -> None:
    result = classify(
        health_result(
            check("web", "failed", "hung", error="timeout after 2.0s while waiting for the HTTP response"),
            check("page", "failed", "hung", component="templates", kind="http", error="timeout after 2.0s"),
        )
    )
    assert result["primary"] == "web_service_down", result["summary"]
    assert result["failures"][0]["evidence"]["checks"] == ["web"]
    assert plan_ids(result)[0] == "restart_web"
