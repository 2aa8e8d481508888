"""Outages: Redis stopped (degraded, nothing lost) and the database unreachable (failed, page renders)."""

from __future__ import annotations

import json
from collections.abc import Callable

from .harness import Stack, free_port


def test_redis_stopped_degrades_health_and_loses_nothing(outage_stack: Stack) -> None:
    stack = outage_stack
    status, health = stack.health()
    assert (status, health["status"]) == (200, "healthy")

    stack.redis.stop()
    status, health = stack.health()
    assert status == 200
    assert health["status"] == "degraded"
    assert health["components"]["redis"]["status"] == "failed"
    assert health["components"]["redis"]["error"]
    assert health["components"]["database"]["status"] == "healthy"
    assert health["components"]["websocket"]["status"] == "degraded"

    created = stack.notify("outage-user", "sent while Redis is down")
    assert created["channel"] == "websocket"
    assert created["recipients"] == 1
    assert stack.deliveries("outage-user")[created["id"]]["state"] == "pending"
    assert "stays pending" in stack.log("web")

    client = stack.client("outage-user")  # replay from the database needs no Redis
    try:
        client.wait_for_claim(created["id"])
    finally:
        client.close()
    assert stack.deliveries("outage-user")[created["id"]]["state"] == "delivered"


def test_database_unreachable_fails_health_but_the_page_still_renders(new_stack: Callable[..., Stack]) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    stack = new_stack(database_url=unreachable, web_workers=1)
    try:
        stack.start_process("web")
        stack.wait_ready("web", statuses=(200, 503))
        status, health = stack.health()
        assert status == 503
        assert health["status"] == "failed"
        assert health["components"]["database"]["status"] == "failed"
        assert health["pending"] is None

        stack.emergency_path.write_text(json.dumps({"active": True, "level": 3, "reason": "database lost"}))
        browser = stack.login("nodb-user")
        page = stack.page(browser)
        assert page.banner is not None and "database lost" in page.banner
        assert "temporarily unavailable" in page.html

        response = stack.api("POST", "/api/notifications", json={"user": "nodb-user", "title": "t"})
        assert response.status_code == 503
        assert "database" in response.json()["error"]
        assert "Traceback" not in stack.log("web")
    finally:
        stack.stop()
