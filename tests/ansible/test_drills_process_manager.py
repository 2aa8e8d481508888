"""A killed supervisord on the shared sandbox host, recovered by auto-recover itself (not by the drill's undo):
afterwards no process of the host runs outside the new supervisord (read from /proc: the host's root in a
command line, a listener on one of its ports), the old orphans are gone, and every program is RUNNING."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.module_utils.notification_orphans import port_holders, processes

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import DRILL_POLICY, FAULTS, SandboxHost
from notification_emergency.drills.process_faults import alive, descendants, supervisord_pid
from notification_emergency.probes import probe
from tests.ansible.conftest import SandboxHost as SharedHost
from tests.ansible.sandbox import processes_under


@pytest.fixture
def toolkit(tmp_path: Path, sandbox_host: SharedHost) -> Iterator[EmergencyToolkit]:
    home = tmp_path / "state"
    yield EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")


def _ports(host: SharedHost) -> list[int]:
    return [int(host.vars[key]) for key in host.vars if key.endswith("_port")]


def _statuses(host: SharedHost) -> dict[str, str]:
    lines = host.supervisorctl("status").splitlines()
    return {parts[0]: parts[1] for parts in (line.split() for line in lines) if len(parts) >= 2}


def test_a_killed_supervisord_is_brought_back_with_every_program_under_it(
    toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    name = sandbox_host.name
    target = toolkit.fleet.target(name)
    host = SandboxHost(target, toolkit.fleet.hostvars(name))
    ports = _ports(sandbox_host)
    old_manager = supervisord_pid(host)
    assert old_manager is not None
    old_programs = descendants(old_manager)
    undo = FAULTS["supervisord_killed"].inject(host)
    try:
        assert old_programs and all(alive(pid) for pid in old_programs), "the programs outlive supervisord"
        assert probe(target, timeout=2.0).ok, "the orphans still serve: only a deep check sees this"
        result = toolkit.auto_recover(name, policy=DRILL_POLICY)
        row = result.hosts[name]
        assert (row["primary"], row["status"]) == ("process_manager_down", "recovered"), row
        assert row["actions"][0]["step"] == "restore_process_manager", row["actions"]
        assert row["actions"][0]["outcome"] == "recovered", row["actions"]

        manager = supervisord_pid(host)
        assert manager is not None and manager != old_manager
        assert not [pid for pid in old_programs if alive(pid)], "every orphan was stopped"
        managed = {manager, *descendants(manager)}
        table = processes()
        of_the_host = {pid for pid, _command in processes_under(sandbox_host.root) if pid in table}
        of_the_host |= set(port_holders(ports, table))
        outside = {pid: table[pid].command for pid in of_the_host - managed if table[pid].state != "Z"}
        assert outside == {}, "no process of the host runs outside its supervisord"
        assert set(port_holders(ports, table)) <= managed and len(port_holders(ports, table)) >= 3
        statuses = _statuses(sandbox_host)
        assert statuses and set(statuses.values()) == {"RUNNING"}, statuses
        assert probe(target, timeout=2.0).ok
    finally:
        undo()
    assert supervisord_pid(host) is not None and set(_statuses(sandbox_host).values()) == {"RUNNING"}


def test_the_playbooks_change_nothing_on_a_healthy_host_and_check_mode_only_shows_the_orphans(
    toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    """Idempotent: on a host whose supervisord runs every program, both playbooks change nothing. A systemd
    that does not answer is refused (a human repairs the host). With supervisord killed, --check --diff lists
    the orphans (the diff) and stops none of them."""
    box, name = sandbox_host.box, sandbox_host.name
    for playbook in ("restore_process_manager.yml", "repair_programs.yml"):
        run = box.playbook(playbook, "--limit", name)
        assert run.rc == 0 and run.changed() == {name: 0}, run.output[-3000:]
    systemd = box.playbook("restore_process_manager.yml", "--limit", name, "-e", "notification_service_manager=systemd")
    assert systemd.rc != 0 and "is not restarted from a playbook" in systemd.output, systemd.output[-3000:]
    host = SandboxHost(toolkit.fleet.target(name), toolkit.fleet.hostvars(name))
    old_manager = supervisord_pid(host)
    assert old_manager is not None
    orphans = descendants(old_manager)
    undo = FAULTS["supervisord_killed"].inject(host)
    try:
        checked = box.playbook("restore_process_manager.yml", "--limit", name, "--check", "--diff")
        assert checked.rc == 0, checked.output[-3000:]
        assert f"processes of {sandbox_host.root} outside a manager" in checked.output, checked.output[-3000:]
        assert all(str(pid) in checked.output for pid in orphans if alive(pid))
        assert all(alive(pid) for pid in orphans) and supervisord_pid(host) is None, "check mode stops nothing"
    finally:
        undo()
    assert not [pid for pid in orphans if alive(pid)] and supervisord_pid(host) is not None, "the undo mends it"


@pytest.mark.parametrize("fault", ["websocket_crash_loop", "log_dir_removed", "supervisord_killed"])
def test_the_undo_alone_restores_the_host_when_no_recovery_ran(
    fault: str, toolkit: EmergencyToolkit, sandbox_host: SharedHost
) -> None:
    """As if the recovery had failed: the fault takes effect, nothing recovers it, the undo runs. The host is
    then as before: the program definition byte for byte, every log file with its old lines, supervisord
    running every program, no process of the host outside it."""
    name, root = sandbox_host.name, sandbox_host.root
    host = SandboxHost(toolkit.fleet.target(name), toolkit.fleet.hostvars(name))
    definitions = {path.name: path.read_bytes() for path in (root / "etc" / "supervisor.d").glob("*.conf")}
    logs = {path.name: path.read_bytes() for path in (root / "log").iterdir() if path.is_file()}
    old_manager = supervisord_pid(host)
    assert old_manager is not None
    old_programs = descendants(old_manager)
    undo = FAULTS[fault].inject(host)
    deadline = time.monotonic() + 30
    while fault != "supervisord_killed" and _statuses(sandbox_host).get("notification-websocket") != "FATAL":
        assert time.monotonic() < deadline, _statuses(sandbox_host)
        time.sleep(0.2)
    undo()
    assert {path.name: path.read_bytes() for path in (root / "etc" / "supervisor.d").glob("*.conf")} == definitions
    for log, content in logs.items():
        assert (root / "log" / log).read_bytes().startswith(content), f"{log} kept its lines"
    assert not (root / ".log-removed-by-drill").exists()
    manager = supervisord_pid(host)
    assert manager is not None and set(_statuses(sandbox_host).values()) == {"RUNNING"}
    managed = {manager, *descendants(manager)}
    assert not [pid for pid in old_programs if alive(pid) and pid not in managed], "no orphan"
    table = processes()
    outside = [pid for pid, _command in processes_under(root) if pid in table and pid not in managed]
    assert outside == [] and set(port_holders(_ports(sandbox_host), table)) <= managed
    sandbox_host.wait_healthy()
