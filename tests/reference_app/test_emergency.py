"""The emergency banner comes from emergency.json alone; a broken file never breaks the page."""

from __future__ import annotations

import json

from .harness import Stack


def test_emergency_banner_follows_the_file(service: Stack) -> None:
    browser = service.login("emergency-user")
    path = service.emergency_path
    try:
        path.write_text(
            json.dumps(
                {
                    "active": True,
                    "level": 2,
                    "reason": "Redis is down <maintenance>",
                    "triggered_by": "notification-emergency",
                    "since": "2026-01-01T00:00:00Z",
                }
            )
        )
        page = service.page(browser)
        assert page.banner is not None
        assert "Redis is down <maintenance>" in page.banner
        assert "level 2" in page.banner
        assert "<maintenance>" not in page.html  # escaped
        _, health = service.health()
        assert health["emergency"]["active"] is True
        assert health["emergency"]["state"] == "active"
        assert health["emergency"]["reason"] == "Redis is down <maintenance>"

        path.unlink()
        assert service.page(browser).banner is None
        _, health = service.health()
        assert health["emergency"]["state"] == "inactive"

        path.write_text("{not json")
        page = service.page(browser)
        assert page.banner is None
        assert page.mode == "websocket"
        status, health = service.health()
        assert status == 200
        assert health["emergency"]["state"] == "unreadable"
        assert "error" in health["emergency"]
        assert health["status"] == "degraded"

        path.write_text(json.dumps({"active": False, "reason": "over"}))
        assert service.page(browser).banner is None
    finally:
        path.unlink(missing_ok=True)
    status, health = service.health()
    assert health["status"] == "healthy"
