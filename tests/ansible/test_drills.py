"""Recovery drills and the watch, for real on the shared sandbox host: each fault of the catalogue is
injected, detected by direct probes, and recovered automatically (or escalated when it must be); the watch
reports a failure and the recovery as JSON lines and stops cleanly on Ctrl-C; drills refuse hosts that are
not sandboxes."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import FAULTS, SandboxHost, run_drill, run_fleet_drill
from notification_emergency.errors import BadInput
from notification_emergency.inventory import Target
from tests.ansible.conftest import SandboxHost as SharedHost
from tests.ansible.drill_checks import DRILL_GROUPS, check_drill
from tests.ansible.sandbox import ROOT
from tests.conftest import VENV_BIN, invoke_cli


@pytest.fixture
def toolkit(tmp_path: Path, sandbox_host: SharedHost) -> Iterator[EmergencyToolkit]:
    home = tmp_path / "state"
    yield EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")


@pytest.mark.parametrize("fault", DRILL_GROUPS["processes"])
def test_each_process_drill_recovers_as_expected(
    fault: str, toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    check_drill(fault, toolkit, sandbox_host)


def test_a_backed_up_queue_is_escalated_then_drained_into_flash_without_losing_one(
    toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    """The engine may not move notifications (that touches data): it escalates a backlog. The on-call's step,
    drain-backlog, moves every waiting delivery into the flash store, once; a second drain changes nothing."""
    before = sandbox_host.stats()
    journal = run_drill(toolkit, sandbox_host.name, "queue_backed_up", interval=0.25)
    assert journal["as_expected"] and journal["outcome"] == "escalated", journal
    assert "drain_backlog_to_flash: skipped" in journal["actions"], journal
    after = sandbox_host.stats()
    piled = 1000 + 1 + 10  # the drill's count: one more than the default limit, and a margin
    assert after["pending"]["websocket"] == 0, after
    assert after["pending"]["flash"] - before["pending"]["flash"] >= piled, (before, after)
    assert after["notifications"] - before["notifications"] == piled, "each notification stored once"
    actions = [entry["action"] for entry in toolkit.store.audit_trail()]
    assert "drain-backlog started" in actions and "drain-backlog successful" in actions, actions
    again = toolkit.drain_backlog(limit=sandbox_host.name)
    assert again.ok and again.run is not None and again.run.changed[sandbox_host.name] == 0, again


def test_the_fleet_drill_shares_one_recovery_run_and_times_each_host(
    toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    """The shared sandbox has one host, so this proves the fleet path (one watch, the hosts confirmed in one
    round handed to one auto-recover, figures per host); bench/bench_drills.py runs it on 10 hosts."""
    fleet = run_fleet_drill(toolkit, [sandbox_host.name], "websocket_stopped")
    assert fleet["errors"] == [] and fleet["recovered"] == 1 and fleet["recovery_runs"] == 1, fleet
    assert 0 < fleet["mttd_median_s"] < fleet["mttr_max_s"] < 120, fleet
    [incident] = toolkit.store.incidents()
    assert incident["status"] == "resolved" and incident["actions"][0]["action"] == "restart_websocket"
    assert sandbox_host.health()["status"] == "healthy"


def test_drills_refuse_a_host_that_is_not_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for target in (
        Target("prod-1", "http://127.0.0.1:9", None, sandbox=False, root=str(tmp_path)),
        Target("marked-in-inventory-only", "http://127.0.0.1:9", None, sandbox=True, root=str(tmp_path)),
    ):
        with pytest.raises(BadInput, match="is not a sandbox host"):
            SandboxHost(target)


def _until(stream: IO[str], deadline: float, wanted: set[str]) -> list[dict[str, Any]]:
    """Read the watch's JSON lines until every event in ``wanted`` has been seen (in any order)."""
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not wanted <= {event["event"] for event in seen}:
        line = stream.readline()
        if not line:
            break
        seen.append(json.loads(line))
    assert wanted <= {event["event"] for event in seen}, seen
    return seen


def test_watch_reports_a_failure_and_the_recovery_and_stops_on_ctrl_c(tmp_path: Path, sandbox_host: SharedHost) -> None:
    env = {
        **os.environ,
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path / "state"),
        "NOTIFICATION_EMERGENCY_INVENTORY": str(sandbox_host.box.inventory),
    }
    watch = subprocess.Popen(
        [
            str(VENV_BIN / "notification-emergency"),
            "watch",
            "--interval",
            "0.2",
            "--json",
            "--limit",
            sandbox_host.name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert watch.stdout is not None
        time.sleep(2)
        sandbox_host.supervisorctl("stop", "notification-websocket")
        events = _until(watch.stdout, time.monotonic() + 120, {"failed", "auto-recover", "recovered", "healthy"})
        by_kind = {event["event"]: event for event in events}
        assert by_kind["failed"]["host"] == sandbox_host.name and by_kind["failed"]["problems"], events
        assert "recovered by restart websocket" in by_kind["recovered"]["message"], events
        assert [e["event"] for e in events].index("failed") < [e["event"] for e in events].index("recovered")
        watch.send_signal(signal.SIGINT)
        rc = watch.wait(timeout=30)
        stderr = watch.stderr.read() if watch.stderr else ""
        assert rc == 0 and "watch stopped" in stderr and "Traceback" not in stderr, stderr
    finally:
        if watch.poll() is None:
            watch.kill()
    assert sandbox_host.health()["status"] == "healthy"


def test_the_systemd_unit_runs_an_existing_command_with_options_the_cli_has() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "systemd" / "notification-emergency-watch.service")
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[0].endswith("/bin/notification-emergency") and command[1] == "watch"
    help_text = subprocess.run(
        [str(VENV_BIN / "notification-emergency"), "watch", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (arg for arg in command[2:] if arg.startswith("--")):
        assert option in help_text, option
    assert unit["Service"]["KillSignal"] == "SIGTERM" and unit["Install"]["WantedBy"] == "multi-user.target"


def test_test_recovery_without_a_fault_runs_the_drill_set_and_refuses_a_non_sandbox_host_before_any(
    tmp_path: Path, sandbox_host: SharedHost
) -> None:
    """The seed's ``test-recovery`` with no argument means the whole drill set (it was refused). In a fleet with
    one host that is not a sandbox, it refuses before any drill: the sandbox host is not touched either."""
    inventory = tmp_path / "inventory"
    shutil.copytree(sandbox_host.box.inventory, inventory)
    (inventory / "production.yml").write_text(
        "notification_hosts:\n  hosts:\n    prod-web-1:\n      ansible_host: 127.0.0.1\n"
        "      notification_service_web_port: 9\n"
    )
    state = tmp_path / "state"
    env = {"NOTIFICATION_EMERGENCY_STATE_DIR": str(state), "NOTIFICATION_EMERGENCY_INVENTORY": str(inventory)}
    refused = invoke_cli(["test-recovery"], env=env)
    assert refused.exit_code == 2, refused.output
    assert "prod-web-1 is not a sandbox host" in refused.output
    assert not (state / "drills").exists(), "no drill ran, not even on the sandbox host"
    listed = invoke_cli(["test-recovery", "--list"], env=env)
    assert listed.exit_code == 0 and all(name in listed.output for name in FAULTS)
    both = invoke_cli(["test-recovery", "--all", "--fault", "websocket_killed"], env=env)
    assert both.exit_code == 2 and "not both" in both.output
