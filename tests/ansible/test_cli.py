"""The notification-emergency CLI and API for real: the console script as a user runs it, against the shared
sandbox host, with ansible-runner driving the real playbooks (nothing mocked), each run read back from the
event store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from notification_emergency.api import EmergencyToolkit
from notification_emergency.store import EventStore
from tests.ansible.conftest import SandboxHost
from tests.conftest import VENV_BIN

CLI = str(VENV_BIN / "notification-emergency")
COMMANDS = [
    "status",
    "health-check",
    "activate-emergency",
    "deactivate-emergency",
    "backup",
    "rollback",
    "restore",
    "restart",
    "verify",
    "events",
    "stats",
    "generate-report",
    "auto-recover",
    "explain",
]


@pytest.fixture
def home(tmp_path: Path, sandbox_host: SandboxHost) -> Iterator[Path]:
    """A private state directory (store, reports, artifacts) per test; the host healthy before and after."""
    sandbox_host.wait_healthy()
    yield tmp_path / "state"
    sandbox_host.mend()


SECRET = "s3cret-in-the-environment"


def cli(home: Path, host: SandboxHost, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SMTP_PASSWORD": SECRET,  # what an operator's shell may hold: it must not reach the artifacts
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(home),
        "NOTIFICATION_EMERGENCY_INVENTORY": str(host.box.inventory),
        "NOTIFICATION_EMERGENCY_ACTOR": "pytest-operator",
        "NO_COLOR": "1",
    }
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"not JSON (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        ) from None
    return data


def store_of(home: Path) -> EventStore:
    return EventStore(home / "events.db")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself_with_an_example(command: str) -> None:
    proc = subprocess.run([CLI, command, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Example:" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    if command not in ("events", "stats"):
        assert "--inventory" in proc.stdout and "--json" in proc.stdout


def test_status_json_on_a_healthy_host_is_recorded(home: Path, sandbox_host: SandboxHost) -> None:
    proc = cli(home, sandbox_host, "status", "--json", "--limit", sandbox_host.name)
    data = as_json(proc)
    assert proc.returncode == 0, proc.stderr
    assert data["ok"] is True and data["exit_code"] == 0 and data["action"] == "status"
    row = data["hosts"][sandbox_host.name]
    assert row["status"] == "healthy" and row["mode"] == "websocket" and row["level"] is None
    assert row["emergency"]["active"] is False
    assert {check["status"] for check in row["checks"].values()} == {"healthy"}
    assert data["run"]["status"] == "successful" and data["open_incidents"] == []
    runs = store_of(home).runs()
    assert [(r["run_id"], r["action"], r["actor"], r["status"]) for r in runs] == [
        (data["run"]["run_id"], "status", "pytest-operator", "successful")
    ]
    artifacts = [p for p in (home / "artifacts").rglob("*") if p.is_file()]
    assert artifacts and not [p for p in artifacts if SECRET in p.read_text(errors="replace")]
    assert not (home / "artifacts" / data["run"]["run_id"] / "env").exists(), "no env files"
    human = cli(home, sandbox_host, "status")
    assert human.returncode == 0 and sandbox_host.name in human.stdout and "healthy" in human.stdout


def test_status_quick_probes_directly_without_a_playbook(home: Path, sandbox_host: SandboxHost) -> None:
    """status --quick: every host probed from here (no playbook, no run in the store), and a stopped WebSocket
    service seen as failed with exit 3."""
    proc = cli(home, sandbox_host, "status", "--quick", "--json", "--limit", sandbox_host.name)
    data = as_json(proc)
    assert proc.returncode == 0, proc.stderr
    row = data["hosts"][sandbox_host.name]
    assert (row["status"], row["mode"], row["problems"]) == ("healthy", "websocket", [])
    assert row["latency_ms"] > 0 and data["run"] is None
    assert store_of(home).runs() == [], "no playbook ran"
    sandbox_host.supervisorctl("stop", "notification-websocket")
    down = cli(home, sandbox_host, "status", "--quick")
    assert down.returncode == 3, down.stdout + down.stderr
    assert sandbox_host.name in down.stdout and "websocket" in down.stdout and "not healthy" in down.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "--limit", "no-such-host"], "'no-such-host' matches no host or group of inventory"),
        # a limit that matches nothing never means every host: the rollback touches nothing
        (["rollback", "--limit", "zzz*"], "'zzz*' matches no host or group of inventory"),
        (["rollback", "--limit", "snadbox-0*"], "did you mean sandbox-01"),
        (["rollback", "--limit", ""], "--limit '' names no host: leave --limit out"),
        (["rollback", "--limit", " "], "--limit ' ' names no host"),
        (["rollback", "--limit", ","], "--limit ',' names no host"),
        (["rollback", "--limit", "~web-01"], "'~web-01' matches no host or group"),
        (["activate-emergency", "--triggered-by", "pytest"], "Missing option '--reason'"),
        (["activate-emergency", "--reason", "  ", "--triggered-by", "pytest"], "--reason is required"),
        (["restart", "-c", "database"], "Invalid value for '--component'"),
        (["status", "-i", "/nonexistent/inventory"], "inventory /nonexistent/inventory does not exist"),
        (["status", "--store", "/proc/version/events.db"], "/proc/version/events.db"),
        (["events", "--since", "yesterday-ish"], "--since 'yesterday-ish' is neither a duration"),
    ],
)
def test_bad_input_is_refused_before_any_playbook_runs(
    home: Path, sandbox_host: SandboxHost, args: list[str], expected: str
) -> None:
    proc = cli(home, sandbox_host, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert expected in " ".join((proc.stdout + proc.stderr).split()), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (home / "artifacts").exists(), "no playbook ran"
    assert sandbox_host.health()["mode"] == "websocket"


def test_emergency_on_and_off_through_the_cli_is_recorded(home: Path, sandbox_host: SandboxHost) -> None:
    on = cli(
        home,
        sandbox_host,
        "activate-emergency",
        "--reason",
        "CLI test",
        "--triggered-by",
        "alice",
        "--level",
        "1",
        "--json",
    )
    data = as_json(on)
    assert on.returncode == 0, on.stderr
    assert data["hosts"][sandbox_host.name]["status"] == "ok"
    health = sandbox_host.health()
    assert health["emergency"]["active"] and health["emergency"]["reason"] == "CLI test"
    assert health["emergency"]["level"] == 1
    off = cli(home, sandbox_host, "deactivate-emergency", "--resolved-by", "bob", "--json")
    assert off.returncode == 0, off.stderr
    assert sandbox_host.health()["emergency"]["active"] is False
    store = store_of(home)
    emergencies = store.emergencies()
    assert [(e["action"], e["actor"], e["hosts"]) for e in emergencies] == [
        ("deactivated", "bob", [sandbox_host.name]),
        ("activated", "alice", [sandbox_host.name]),
    ]
    assert emergencies[1]["reason"] == "CLI test" and emergencies[1]["level"] == 1
    actions = [entry["action"] for entry in store.audit_trail()]
    assert actions[:4] == [
        "deactivate-emergency successful",
        "deactivate-emergency started",
        "activate-emergency successful",
        "activate-emergency started",
    ]
    kinds = {event["kind"] for event in as_json(cli(home, sandbox_host, "events", "--json"))["events"]}
    assert {"run", "emergency", "audit"} <= kinds


def test_a_stopped_websocket_is_unhealthy_exit_3_and_opens_an_incident(home: Path, sandbox_host: SandboxHost) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    proc = cli(home, sandbox_host, "health-check", "--json")
    data = as_json(proc)
    assert proc.returncode == 3, proc.stderr
    row = data["hosts"][sandbox_host.name]
    assert row["primary"] == "websocket_service_down" and row["level"] == 2
    assert row["plan"][0] == "restart_websocket"
    [incident] = store_of(home).incidents()
    assert incident["id"] == data["incidents"][0]
    assert (incident["failure_type"], incident["level"], incident["hosts"]) == (
        "websocket_service_down",
        2,
        [sandbox_host.name],
    )
    again = as_json(cli(home, sandbox_host, "health-check", "--json"))
    assert again["incidents"] == data["incidents"], "the same failure joins the open incident"
    (home / "out").mkdir()  # a report never creates its directory
    report = cli(home, sandbox_host, "generate-report", "--output", str(home / "out" / "incident.md"), "--json")
    assert report.returncode == 0, report.stderr
    written = json.loads((home / "out" / "incident.json").read_text())
    assert written["hosts"][sandbox_host.name]["primary"] == "websocket_service_down"
    assert written["incidents"][0]["failure_type"] == "websocket_service_down"
    markdown = (home / "out" / "incident.md").read_text()
    assert "websocket_service_down" in markdown and "| websocket |" in markdown


def test_backup_rollback_and_restore_through_the_api_are_recorded(home: Path, sandbox_host: SandboxHost) -> None:
    toolkit = EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="api")
    backup = toolkit.backup(label="api-test", limit=sandbox_host.name)
    assert backup.ok, backup.message
    assert "api-test" in (backup.hosts[sandbox_host.name].get("backup") or "")
    rollback = toolkit.rollback(limit=sandbox_host.name)
    assert rollback.ok, rollback.message
    assert sandbox_host.health()["mode"] == "legacy"
    assert rollback.report is not None and rollback.report["hosts"][0]["mode"] == "legacy"
    verify = toolkit.verify(sandbox_host.name, expected_mode="websocket")
    assert not verify.ok and verify.exit_code == 3, "a legacy host is not in WebSocket mode"
    restore = toolkit.restore(limit=sandbox_host.name)
    assert restore.ok, restore.message
    assert sandbox_host.health()["mode"] == "websocket"
    runs = {run["run_id"]: run for run in toolkit.store.runs()}
    for result, action in ((backup, "backup"), (rollback, "rollback"), (restore, "restore")):
        assert result.run is not None
        recorded = runs[result.run.run_id]
        assert (recorded["action"], recorded["status"], recorded["actor"]) == (action, "successful", "api")
        assert recorded["report"]["run_id"] == result.run.run_id
    assert runs[verify.run.run_id if verify.run else ""]["status"] == "failed"


@contextmanager
def frozen(host: SandboxHost, program: str) -> Iterator[None]:
    """SIGSTOP a program's processes (its main process and every descendant), SIGCONT them afterwards."""
    match = re.search(r"pid (\d+)", host.supervisorctl("status", program))
    assert match, f"{program} is not running"
    pids = [int(match.group(1))]
    for pid in pids:  # grows while it runs: the descendants, breadth first
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids.extend(int(child) for child in children.read_text().split())
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextmanager
def rollback_holding_the_lock(home: Path, host: SandboxHost, actor: str) -> Iterator[subprocess.Popen[str]]:
    """A `rollback --json` started by ``actor`` that holds the host lock while the test acts: with the web
    processes frozen (SIGSTOP) its verification waits for them to answer. Killed at the end if still running."""
    env = {
        **os.environ,
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(home),
        "NOTIFICATION_EMERGENCY_INVENTORY": str(host.box.inventory),
        "NOTIFICATION_EMERGENCY_ACTOR": actor,
    }
    lock = host.root / "state" / "toolkit.lock"
    with frozen(host, "notification-web"):
        rollback = subprocess.Popen(
            [CLI, "rollback", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while not lock.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert lock.exists(), "the rollback took the lock"
            yield rollback
        finally:
            if rollback.poll() is None:
                rollback.kill()


def test_a_second_mutating_command_stops_on_the_lock_and_ctrl_c_cancels(home: Path, sandbox_host: SandboxHost) -> None:
    """A rollback holds the host lock; a backup started meanwhile exits 4 naming the holder. Then Ctrl-C
    cancels the rollback (exit 130), and the next run takes the dead run's lock over and ends verified."""
    lock = sandbox_host.root / "state" / "toolkit.lock"
    with rollback_holding_the_lock(home, sandbox_host, "first-operator") as first:
        second = cli(home, sandbox_host, "backup", "--json")
        data = as_json(second)
        assert second.returncode == 4, (second.stdout, second.stderr)
        assert "locked by another run" in data["message"] and "first-operator" in data["message"], data["message"]
        assert lock.exists(), "the refused run left the holder's lock alone"
        assert first.poll() is None, "the rollback is still running"
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 130, (first.returncode, out[-2000:], err[-2000:])
        assert "Traceback" not in err
    runs = {run["action"]: run for run in store_of(home).runs()}
    assert runs["rollback"]["status"] == "canceled" and runs["backup"]["status"] == "failed"
    again = cli(home, sandbox_host, "rollback", "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert sandbox_host.health()["mode"] == "legacy"
    assert not lock.exists()
    back = cli(home, sandbox_host, "restore", "--json")
    assert back.returncode == 0, back.stdout[-3000:]
    assert sandbox_host.health()["mode"] == "websocket"


def test_explain_and_a_dry_run_say_what_auto_recover_would_do_and_change_nothing(
    home: Path, sandbox_host: SandboxHost
) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    explained = cli(home, sandbox_host, "explain", "--json")
    data = as_json(explained)
    assert explained.returncode == 3, explained.stderr
    decision = data["decisions"][sandbox_host.name]
    assert decision["primary"] == "websocket_service_down"
    assert decision["runnable"] == ["restart_websocket", "enable_flash_fallback"]
    dry = as_json(cli(home, sandbox_host, "auto-recover", "--dry-run", "--json"))
    assert dry["decisions"][sandbox_host.name]["runnable"] == decision["runnable"]
    human = cli(home, sandbox_host, "explain")
    assert "run  restart websocket" in human.stdout and "run  fall back to flash messages" in human.stdout
    assert "RUNNING" not in sandbox_host.supervisorctl("status", "notification-websocket"), "nothing changed"
    assert store_of(home).incidents() == [], "explain opens no incident"


def _processes_started_by(pid: int) -> list[int]:
    """The processes (ansible-playbook, its workers) whose environment names ``pid`` as the CLI that started
    them: the runner sets NOTIFICATION_EMERGENCY_PARENT_PID for the notification_guard callback."""
    found = []
    marker = f"NOTIFICATION_EMERGENCY_PARENT_PID={pid}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError):
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
    return found


def _wait_gone(pid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _processes_started_by(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_a_killed_cli_leaves_no_playbook_running_and_no_run_running(
    home: Path, sandbox_host: SandboxHost, signum: signal.Signals
) -> None:
    """`timeout`, systemd, CI cancels and closed terminals send SIGTERM or SIGHUP: the CLI stops its playbook
    like Ctrl-C and records the run canceled (exit 130). SIGKILL cannot be caught: ansible-playbook stops by
    itself (the notification_guard callback), and the run shows abandoned, then is recorded so by the next
    command, which names it in `status`."""
    with rollback_holding_the_lock(home, sandbox_host, "pytest-operator") as first:
        assert _processes_started_by(first.pid), "ansible-playbook runs, marked with the CLI's pid"
        first.send_signal(signum)
        out, err = first.communicate(timeout=120)
        left = _wait_gone(first.pid, 30)
        assert not left, f"ansible-playbook outlived the CLI killed by {signum.name}: {left}"
    run = next(run for run in store_of(home).runs() if run["action"] == "rollback")
    if signum == signal.SIGKILL:
        assert first.returncode == -signal.SIGKILL
        assert run["status"] == "abandoned" and run["ok"] is False, run  # seen so by a read-only reader
        status = cli(home, sandbox_host, "status")
        assert f"abandoned run {run['run_id']}" in status.stdout, status.stdout[-2000:]
        assert store_of(home).statistics()["runs"]["running"] == 0
    else:
        assert first.returncode == 130, (first.returncode, out[-2000:], err[-2000:])
        assert "Traceback" not in err and "cancelling" in err
        assert run["status"] == "canceled"
    back = cli(home, sandbox_host, "restore", "--json")  # the next run takes the dead run's lock over
    assert back.returncode == 0, back.stdout[-3000:]
    assert sandbox_host.health()["mode"] == "websocket"
