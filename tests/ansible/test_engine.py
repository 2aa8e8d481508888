"""The recovery engine for real on the shared sandbox host: explain matches what auto-recover does, a
stopped WebSocket service and a stopped Redis are recovered and the incident closed with its actions, the
same failure again within the throttle window is not acted on, and the circuit breaker escalates (level
raised, emergency mode on, operators notified) instead of acting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from notification_emergency.api import EmergencyToolkit
from notification_emergency.catalogue import CATALOGUE
from notification_emergency.engine import Policy
from tests.ansible.conftest import SandboxHost


@pytest.fixture
def toolkit(tmp_path: Path, sandbox_host: SandboxHost) -> Iterator[EmergencyToolkit]:
    home = tmp_path / "state"
    kit = EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")
    yield kit
    if sandbox_host.health()["emergency"]["active"]:
        assert kit.deactivate_emergency("pytest", limit=sandbox_host.name).ok


def automatic_actions(toolkit: EmergencyToolkit) -> list[tuple[str, str | None]]:
    return [
        (action["action"], action["outcome"])
        for incident in reversed(toolkit.store.incidents())
        for action in incident["actions"]
        if (action.get("details") or {}).get("automatic")
    ]


def test_explain_then_auto_recover_a_stopped_websocket(toolkit: EmergencyToolkit, sandbox_host: SandboxHost) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    explained = toolkit.explain(sandbox_host.name)
    decision = explained.data["decisions"][sandbox_host.name]
    assert decision["primary"] == "websocket_service_down" and decision["level"] == 2
    assert [step["step"] for step in decision["steps"]] == [
        s for s in CATALOGUE["websocket_service_down"]["plan"] if s != "escalate"
    ]
    assert decision["runnable"] == ["restart_websocket", "enable_flash_fallback"]
    assert decision["escalation"]["when"] == "if no step restores health"
    assert toolkit.store.incidents() == [], "explain records no incident"
    assert "RUNNING" not in sandbox_host.supervisorctl("status", "notification-websocket"), "explain changed nothing"

    result = toolkit.auto_recover(sandbox_host.name)
    assert result.ok and result.exit_code == 0, result.message
    row = result.hosts[sandbox_host.name]
    assert row["status"] == "recovered"
    ran = [action["step"] for action in row["actions"] if action["outcome"] != "skipped"]
    assert ran == decision["runnable"][:1], "auto-recover ran what explain said, up to the step that helped"
    assert sandbox_host.health()["status"] == "healthy"
    [incident] = toolkit.store.incidents()
    assert incident["failure_type"] == "websocket_service_down" and incident["status"] == "resolved"
    assert incident["verified_at"] and incident["resolved_at"] and incident["recovery_seconds"] is not None
    assert [(a["action"], a["outcome"]) for a in incident["actions"]] == [("restart_websocket", "recovered")]


def test_the_same_failure_within_the_throttle_window_is_not_acted_on_again(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    assert toolkit.auto_recover(sandbox_host.name).ok
    sandbox_host.supervisorctl("stop", "notification-websocket")
    again = toolkit.auto_recover(sandbox_host.name)
    assert not again.ok and again.exit_code == 3
    row = again.hosts[sandbox_host.name]
    assert row["status"] == "throttled" and "within the 300 s window" in row["line"]
    assert automatic_actions(toolkit) == [("restart_websocket", "recovered")], "no second recovery"
    assert "RUNNING" not in sandbox_host.supervisorctl("status", "notification-websocket")
    assert not sandbox_host.health()["emergency"]["active"], "a throttled failure is not escalated again"


def test_the_circuit_breaker_escalates_instead_of_acting(toolkit: EmergencyToolkit, sandbox_host: SandboxHost) -> None:
    engine = toolkit.recovery_engine(Policy(throttle_s=0, breaker_max=1, breaker_window_s=3600))
    sandbox_host.supervisorctl("stop", "notification-websocket")
    assert engine.auto_recover(sandbox_host.name).ok
    sandbox_host.supervisorctl("stop", "notification-websocket")
    decision = engine.explain(sandbox_host.name).data["decisions"][sandbox_host.name]
    assert decision["runnable"] == [] and decision["breaker"].startswith("circuit breaker open: 1 automatic")
    assert decision["escalation"]["when"] == "now" and decision["escalation"]["level"] == 1

    result = engine.auto_recover(sandbox_host.name)
    row = result.hosts[sandbox_host.name]
    assert not result.ok and row["status"] == "escalated", result.message
    assert row["escalation"]["level"] == 1 and "circuit breaker open" in row["escalation"]["message"]
    assert automatic_actions(toolkit) == [("restart_websocket", "recovered")], "the breaker stopped the second one"
    emergency = sandbox_host.health()["emergency"]
    assert emergency["active"] and emergency["level"] == 1
    open_incident = toolkit.store.incidents(open_only=True)[0]
    assert open_incident["level"] == 1 and open_incident["escalated_at"] and open_incident["notified_at"]
    [note] = toolkit.store.notifications()
    assert note["priority"] == "critical" and note["delivered_by"] == "file"
    logged = [json.loads(line) for line in (toolkit.home / "notifications.log").read_text().splitlines()]
    assert [line["id"] for line in logged] == [note["notification_id"]] and "circuit breaker open" in logged[0][
        "message"
    ]
    repeat = engine.auto_recover(sandbox_host.name).hosts[sandbox_host.name]
    assert repeat["status"] == "escalated" and repeat["line"].startswith("already escalated at")
    assert len(toolkit.store.notifications()) == 1, "escalated once per incident"


def test_a_stopped_redis_is_restarted(toolkit: EmergencyToolkit, sandbox_host: SandboxHost) -> None:
    sandbox_host.supervisorctl("stop", "redis")
    result = toolkit.auto_recover(sandbox_host.name)
    assert result.ok, result.message
    [incident] = toolkit.store.incidents()
    assert incident["failure_type"] == "redis_unavailable"
    assert [(a["action"], a["outcome"]) for a in incident["actions"]] == [("restart_redis", "recovered")]
    assert sandbox_host.health()["status"] == "healthy"


def test_the_auto_recover_playbook_for_awx_uses_the_same_engine_and_is_idempotent(
    tmp_path: Path, sandbox_host: SandboxHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "awx-state"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STATE_DIR", str(home))
    sandbox_host.supervisorctl("stop", "notification-websocket")
    explained = sandbox_host.box.playbook("auto_recover.yml", "--check", f"-erecover_limit={sandbox_host.name}")
    assert explained.rc == 0 and explained.changed() == {"localhost": 0}, explained.output[-3000:]
    assert "would run: restart websocket" in explained.stdout
    assert "RUNNING" not in sandbox_host.supervisorctl("status", "notification-websocket"), "--check changed nothing"
    first = sandbox_host.box.playbook("auto_recover.yml", f"-erecover_limit={sandbox_host.name}")
    assert first.rc == 0 and first.changed() == {"localhost": 1}, first.output[-3000:]
    assert "recovered by restart websocket" in first.stdout
    second = sandbox_host.box.playbook("auto_recover.yml", f"-erecover_limit={sandbox_host.name}")
    assert second.rc == 0 and second.changed() == {"localhost": 0}, second.output[-3000:]
    store = EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home).store
    [incident] = store.incidents()
    assert incident["status"] == "resolved" and incident["actions"][0]["action"] == "restart_websocket"


def test_an_unknown_failure_is_escalated_cleanly(toolkit: EmergencyToolkit, sandbox_host: SandboxHost) -> None:
    """A corrupt emergency.json: the service says degraded and no failure type claims it. auto-recover has
    nothing automatic to try, so it escalates: exit 3 (unhealthy), an incident, emergency mode on, operators
    notified with the evidence. It used to end in exit 2 (bad input, "nothing ran") after it had run things."""
    state = sandbox_host.root / "state" / "emergency.json"
    original = state.read_bytes() if state.exists() else None
    state.write_text("{ this is not json")
    try:
        result = toolkit.auto_recover(sandbox_host.name)
        assert result.exit_code == 3 and not result.ok, result.message
        row = result.hosts[sandbox_host.name]
        assert row["primary"] == "unknown" and row["status"] == "escalated", row
        [incident] = toolkit.store.incidents()
        assert incident["failure_type"] == "unknown" and incident["escalated_at"]
        assert [a["action"] for a in incident["actions"]][-1] == "escalate"
        [notification] = toolkit.store.notifications()
        assert notification["delivered_by"] and "unknown" in notification["title"], notification
        assert sandbox_host.health()["emergency"]["active"], "escalation turned emergency mode on"
    finally:
        if sandbox_host.health()["emergency"]["active"]:
            toolkit.deactivate_emergency("pytest", limit=sandbox_host.name)
        if original is not None and state.read_text().startswith("{ this"):
            state.write_bytes(original)
