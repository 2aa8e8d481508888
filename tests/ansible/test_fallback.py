"""Graceful degradation for real on the shared sandbox host: when the WebSocket service cannot be brought back
(another program holds its port), auto-recover puts the host on flash messages on its own (the verified
rollback: notifications waiting for WebSocket carried into the flash store, each once), tells the on-call,
and once the port is free again the fallback tender starts the WebSocket process alone, waits for a sustained
healthy streak, rolls the host forward to WebSocket and resolves the incident. No notification is lost or
stored twice on the way (counted in the service's own database)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills.faults import hold_port
from notification_emergency.engine import Policy
from notification_emergency.fallback import websocket_healthy
from tests.ansible.conftest import SandboxHost

# The sandbox's figures, shorter than production's (60 s streak, 30 s between starts) so the test is quick.
POLICY = Policy(throttle_s=0.0, rollforward_after_s=3.0, canary_every_s=1.0, restart_health_timeout_s=5)


@pytest.fixture
def toolkit(tmp_path: Path, sandbox_host: SandboxHost) -> Iterator[EmergencyToolkit]:
    home = tmp_path / "state"
    kit = EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")
    yield kit
    if sandbox_host.health().get("mode") != "websocket":  # whatever happened, leave the host as it was
        assert kit.restore(limit=sandbox_host.name).ok
    if sandbox_host.health()["emergency"]["active"]:
        assert kit.deactivate_emergency("pytest", limit=sandbox_host.name).ok


def test_a_websocket_that_cannot_come_back_goes_to_flash_and_rolls_forward_by_itself(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    engine = toolkit.recovery_engine(POLICY)
    target = toolkit.fleet.target(sandbox_host.name)
    port = int(sandbox_host.vars["notification_service_websocket_port"])
    before = sandbox_host.stats()
    tag = uuid.uuid4().hex[:8]
    sandbox_host.supervisorctl("stop", "notification-websocket")
    release = hold_port(port)
    try:
        token = sandbox_host.box.api_token(sandbox_host.name)
        for number in range(5):  # written while real-time delivery is down: they wait for WebSocket
            requests.post(
                f"{sandbox_host.web_url}/api/notifications",
                json={"user": "fallback-user", "title": f"outage {tag} #{number}", "priority": "high"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).raise_for_status()

        result = engine.auto_recover(sandbox_host.name)
        row = result.hosts[sandbox_host.name]
        assert row["status"] == "fallback" and result.exit_code == 3, row
        steps = [(action["step"], action["outcome"]) for action in row["actions"]]
        assert steps[0][0] == "restart_websocket" and steps[0][1] != "recovered", steps
        assert steps[-1] == ("enable_flash_fallback", "on flash messages"), steps
        assert sandbox_host.health()["mode"] == "legacy", "users get flash messages"
        on_flash = sandbox_host.stats()
        assert on_flash["pending"]["websocket"] == 0, "every waiting notification was carried into flash"
        assert on_flash["pending"]["flash"] - before["pending"]["flash"] == 5, on_flash
        [notice] = toolkit.store.notifications()
        assert "on flash messages" in notice["title"] and notice["priority"] == "high", notice
        [incident] = toolkit.store.incidents()
        assert incident["status"] == "open", "the incident stays open while the host is on flash messages"
        # The user, in a browser session: the next page shows each notification once, the one after none.
        user = requests.Session()
        login = user.get(
            f"{sandbox_host.web_url}/login", params={"user": "fallback-user"}, allow_redirects=False, timeout=10
        )
        assert login.status_code == 302, login.text
        first_page = user.get(f"{sandbox_host.web_url}/", timeout=10).text
        shown = [n for n in range(5) if f"outage {tag} #{n}" in first_page]
        assert shown == list(range(5)) and all(first_page.count(f"outage {tag} #{n}") == 1 for n in shown)
        assert f"outage {tag}" not in user.get(f"{sandbox_host.web_url}/", timeout=10).text

        # Still held: the tender's start of the WebSocket process fails, and nothing rolls forward.
        time.sleep(POLICY.canary_every_s)
        assert "start failed" in engine.tender.tend(sandbox_host.name)[sandbox_host.name]
        assert sandbox_host.health()["mode"] == "legacy"
    finally:
        release()

    # Free again: the next passes start it alone, see it healthy long enough, and roll the host forward.
    deadline = time.monotonic() + 120
    lines: list[str] = []
    while sandbox_host.health().get("mode") != "websocket" and time.monotonic() < deadline:
        lines.append(engine.tender.tend(sandbox_host.name).get(sandbox_host.name, "not on fallback"))
        time.sleep(1.0)
    assert sandbox_host.health()["mode"] == "websocket", lines
    assert lines[-1] == "rolled forward to WebSocket: incident resolved", lines
    assert websocket_healthy(target)
    [incident] = toolkit.store.incidents()
    assert incident["status"] == "resolved" and "rolled forward to WebSocket" in incident["resolution"]
    actions = [(a["action"], a["outcome"]) for a in incident["actions"]]
    assert ("websocket_canary", "healthy") in actions and actions[-1] == ("roll_forward", "recovered"), actions
    deliveries = requests.get(
        f"{sandbox_host.web_url}/api/notifications",
        params={"user": "fallback-user"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["deliveries"]
    ours = [d for d in deliveries if d["title"].startswith(f"outage {tag} #")]
    assert sorted(d["title"] for d in ours) == [f"outage {tag} #{n}" for n in range(5)], "none lost, none twice"
    assert {(d["state"], d["channel"]) for d in ours} == {("delivered", "flash")}, ours
    assert sandbox_host.stats()["pending"]["websocket"] == 0
    # Each switch is a step of the incident in the report (and so in the dashboard's timeline).
    (toolkit.home / "report").mkdir()
    report = toolkit.generate_report(toolkit.home / "report", include_status=False)
    assert report.ok, report.message
    markdown = "\n".join(p.read_text() for p in (toolkit.home / "report").glob("*.md"))
    assert "on flash messages" in markdown and "recovered" in markdown, markdown[-2000:]
    assert engine.tender.tend(sandbox_host.name) == {}, "nothing on fallback any more"


def test_a_host_that_turns_the_fallback_off_is_escalated_instead(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = toolkit.recovery_engine(POLICY)
    hostvars = dict(toolkit.fleet.hostvars(sandbox_host.name), notification_auto_fallback=False)
    monkeypatch.setattr(engine.fleet, "hostvars", lambda host: hostvars)
    port = int(sandbox_host.vars["notification_service_websocket_port"])
    sandbox_host.supervisorctl("stop", "notification-websocket")
    release = hold_port(port)
    try:
        row = engine.auto_recover(sandbox_host.name).hosts[sandbox_host.name]
    finally:
        release()
        sandbox_host.supervisorctl("start", "notification-websocket")
    assert row["status"] == "escalated", row
    skipped = {action["step"]: action.get("reason") for action in row["actions"] if action["outcome"] == "skipped"}
    assert "notification_auto_fallback" in (skipped.get("enable_flash_fallback") or ""), row["actions"]
    assert sandbox_host.health()["mode"] == "websocket", "the host stayed in WebSocket mode"


def test_a_step_that_would_outlast_the_budget_is_stopped_and_the_host_escalated(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    """auto-recover never runs past its budget: the restart's health gate would wait 20 s for a WebSocket that
    cannot start, the budget leaves it a few seconds, so ansible-runner stops the playbook; the step is
    recorded as timed out, nothing else runs, the host is escalated saying why, and the host lock is free."""
    engine = toolkit.recovery_engine(Policy(throttle_s=0.0, budget_s=12.0, restart_health_timeout_s=20))
    port = int(sandbox_host.vars["notification_service_websocket_port"])
    sandbox_host.supervisorctl("stop", "notification-websocket")
    release = hold_port(port)
    started = time.monotonic()
    try:
        result = engine.auto_recover(sandbox_host.name)
    finally:
        release()
    took = time.monotonic() - started
    row = result.hosts[sandbox_host.name]
    assert result.exit_code == 3 and row["status"] == "escalated", row
    outcomes = {action["step"]: action["outcome"] for action in row["actions"]}
    assert outcomes["restart_websocket"].startswith("timed out"), outcomes
    assert outcomes["enable_flash_fallback"] == "skipped", "nothing runs past the budget"
    assert "budget (12 s) ran out" in row["line"], row["line"]
    assert took < 12 + 30, f"auto-recover took {took:.0f} s"  # the budget, plus the escalation's own playbook
    assert sandbox_host.health()["mode"] == "websocket"
    assert toolkit.restart(["websocket"], limit=sandbox_host.name).ok, "the stopped run left no lock behind"


def test_past_the_fallback_budget_users_go_on_flash_messages_first(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    """Detected long enough ago (here: a budget of 0 s), the engine does not try the restart first: the host
    goes on flash messages at once, the skipped step saying why."""
    engine = toolkit.recovery_engine(Policy(throttle_s=0.0, fallback_budget_s=0.0))
    sandbox_host.supervisorctl("stop", "notification-websocket")
    row = engine.auto_recover(sandbox_host.name).hosts[sandbox_host.name]
    assert row["status"] == "fallback", row
    assert [(a["step"], a["outcome"]) for a in row["actions"]] == [
        ("restart_websocket", "skipped"),
        ("enable_flash_fallback", "on flash messages"),
    ]
    assert "fallback budget (0 s from detection) ran out" in row["actions"][0]["reason"]
    assert sandbox_host.health()["mode"] == "legacy"
