"""The same service on PostgreSQL (a fresh database on the shared server, dropped afterwards)."""

from __future__ import annotations

import json

from .harness import Stack


def test_postgres_send_receive_and_claim(pg_stack: Stack) -> None:
    status, health = pg_stack.health()
    assert (status, health["status"]) == (200, "healthy")
    offline = pg_stack.notify("pg-user", "before connect")
    client = pg_stack.client("pg-user", auto_ack=False)
    try:
        client.wait_for_event(offline["id"])
        created = pg_stack.notify("pg-user", "on postgres", priority="high")
        event = client.wait_for_event(created["id"])
        assert event["title"] == "on postgres"
        assert client.ack(created["id"]) == {"claimed": True}
        assert client.ack(created["id"]) == {"claimed": False}
    finally:
        client.close()
    rows = pg_stack.deliveries("pg-user")
    assert (rows[created["id"]]["state"], rows[created["id"]]["channel"]) == ("delivered", "websocket")
    assert rows[offline["id"]]["state"] == "pending"

    carried = pg_stack.cli("carry-pending")
    assert json.loads(carried.stdout) == {"carried": 1}
    stats = json.loads(pg_stack.cli("stats").stdout)
    assert stats["pending"] == {"websocket": 0, "flash": 1}
    assert stats["delivered"]["websocket"] == 1
    assert stats["notifications"] == 2 and stats["users"] == 1
