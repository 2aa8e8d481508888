"""The probe command: a real Socket.IO round trip, and a clean failure when the websocket process is down."""

from __future__ import annotations

import json
import time

from .harness import Stack


def test_probe_succeeds_against_the_running_service(service: Stack) -> None:
    result = service.cli("probe", "--user", "probe-user", "--timeout", "10", timeout=20)
    assert result.returncode == 0, (result.stdout, result.stderr)
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    assert isinstance(answer["notification_id"], int)
    assert answer["latency_ms"] >= 0
    row = service.deliveries("probe-user")[answer["notification_id"]]
    assert (row["state"], row["channel"]) == ("delivered", "websocket")


def test_probe_fails_cleanly_when_the_websocket_process_is_stopped(service: Stack) -> None:
    service.stop_process("websocket")
    try:
        started = time.monotonic()
        result = service.cli("probe", "--user", "probe-user", "--timeout", "5", timeout=20)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, (result.stdout, result.stderr)
        answer = json.loads(result.stdout)
        assert answer["ok"] is False
        assert answer["error"]
        assert "Traceback" not in result.stderr
        assert elapsed < 8

        status, health = service.health()
        assert status == 200
        assert health["status"] == "degraded"
        assert health["components"]["websocket"]["status"] == "failed"
    finally:
        service.start_process("websocket")
        service.wait_ready("websocket")
    assert service.health()[1]["status"] == "healthy"


def test_probe_in_legacy_mode_sees_the_flash_message_once(switch_stack: Stack) -> None:
    switch_stack.set_mode("legacy")
    try:
        result = switch_stack.cli("probe", "--user", "flash-probe", "--timeout", "10", timeout=20)
        assert result.returncode == 0, (result.stdout, result.stderr)
        answer = json.loads(result.stdout)
        assert answer["ok"] is True and answer["channel"] == "flash"
        row = switch_stack.deliveries("flash-probe")[answer["notification_id"]]
        assert (row["state"], row["channel"]) == ("delivered", "flash")
    finally:
        switch_stack.set_mode("websocket")
