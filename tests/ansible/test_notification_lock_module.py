"""notification_lock: acquire, release, query; stale and forced takeovers; concurrent runs; check mode."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ansible.module_utils._internal
import ansible.module_utils.common.warnings
import pytest

from tests.conftest import ROOT

MODULE = "notification_lock"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ACQUIRE: dict[str, Any] = {
    "state": "acquired",
    "run_id": "run-1",
    "owner": "alice",
    "playbook": "rollback_to_legacy.yml",
    "controller": "awx-1",
    "controller_pid": 4242,
}


@pytest.fixture(autouse=True)
def module_side_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Return module.warn() in the result, as on a managed host (see the emergency state module's tests)."""
    monkeypatch.setattr(ansible.module_utils._internal, "is_controller", False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.yml").write_text("mode: websocket\n")
    (tmp_path / "state").mkdir()
    return tmp_path


def lock_file(root: Path) -> Path:
    return root / "state" / "toolkit.lock"


def audit_lines(root: Path) -> list[dict[str, Any]]:
    path = root / "state" / "lock-audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(module_runner: Any, root: Path, check_mode: bool = False, **args: Any) -> tuple[dict[str, Any], bool]:
    # Warnings are kept process-wide until the process ends, as on a managed host where it ends after one run.
    ansible.module_utils.common.warnings._global_warnings.clear()
    result: tuple[dict[str, Any], bool] = module_runner(MODULE, {"root": str(root), **args}, check_mode=check_mode)
    return result


def ok(module_runner: Any, root: Path, check_mode: bool = False, **args: Any) -> dict[str, Any]:
    result, failed = run(module_runner, root, check_mode=check_mode, **args)
    assert not failed, result.get("msg")
    return result


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_lock(root: Path, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    holder = {
        "run_id": "run-old",
        "owner": "bob",
        "playbook": "restore.yml",
        "controller": "awx-2",
        "controller_pid": 999,
        "acquired_at": iso(now - timedelta(minutes=5)),
        "expires_at": iso(now + timedelta(minutes=25)),
        **fields,
    }
    lock_file(root).write_text(json.dumps(holder))
    return holder


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "state").iterdir()}


def warnings_of(result: dict[str, Any]) -> str:
    return json.dumps(result.get("warnings", []))


# -- acquire, release, query -----------------------------------------------------------------------------


def test_acquire_writes_the_lock_and_reports_no_change(module_runner: Any, root: Path) -> None:
    result = ok(module_runner, root, **ACQUIRE)
    assert not result["changed"], "the lock is bookkeeping, not a change"
    assert result["action"] == "acquired" and result["held"] and result["locked"] and not result["took_over"]
    holder = json.loads(lock_file(root).read_text())
    assert list(holder) == ["run_id", "owner", "playbook", "controller", "controller_pid", "acquired_at", "expires_at"]
    assert holder == result["holder"]
    assert {k: holder[k] for k in ACQUIRE if k != "state"} == {k: v for k, v in ACQUIRE.items() if k != "state"}
    assert ISO_UTC.match(holder["acquired_at"]) and ISO_UTC.match(holder["expires_at"])
    since = datetime.strptime(holder["acquired_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert datetime.strptime(holder["expires_at"], "%Y-%m-%dT%H:%M:%SZ") - since == timedelta(seconds=1800)
    assert stat.S_IMODE(lock_file(root).stat().st_mode) == 0o644
    assert result["lock_path"] == str(lock_file(root)) and result["audit_log"] == str(root / "state" / "lock-audit.log")
    assert sorted(p.name for p in (root / "state").iterdir()) == ["toolkit.lock"], "no temporary file, no audit line"


def test_the_same_run_acquiring_again_keeps_the_lock(module_runner: Any, root: Path) -> None:
    ok(module_runner, root, **ACQUIRE)
    before = lock_file(root).read_bytes()
    again = ok(module_runner, root, **{**ACQUIRE, "ttl": 60})
    assert again["action"] == "kept" and again["held"] and not again["changed"]
    assert lock_file(root).read_bytes() == before


def test_another_run_is_refused_with_the_holder_and_what_to_do(module_runner: Any, root: Path) -> None:
    first = ok(module_runner, root, **ACQUIRE)["holder"]
    before = lock_file(root).read_bytes()
    result, failed = run(module_runner, root, **{**ACQUIRE, "run_id": "run-2", "owner": "bob"})
    assert failed
    assert result["msg"] == (
        f"host locked by alice (run run-1, playbook rollback_to_legacy.yml) since {first['acquired_at']}, "
        f"expires {first['expires_at']}; wait for it to finish, or if that run is dead take the lock over "
        "with -e notification_lock_force=true"
    )
    assert result["holder"] == first
    assert lock_file(root).read_bytes() == before and not audit_lines(root)


def test_release(module_runner: Any, root: Path) -> None:
    ok(module_runner, root, **ACQUIRE)
    other = ok(module_runner, root, state="released", run_id="run-2")
    assert other["action"] is None and other["locked"] and other["holder"]["run_id"] == "run-1"
    assert "held by alice (run run-1" in warnings_of(other) and "left in place" in warnings_of(other)
    assert lock_file(root).exists()
    released = ok(module_runner, root, state="released", run_id="run-1")
    assert released["action"] == "released" and not released["locked"] and not released["changed"]
    assert released["previous_holder"]["run_id"] == "run-1" and not lock_file(root).exists()
    again = ok(module_runner, root, state="released", run_id="run-1")
    assert again["action"] is None and not again.get("warnings")


def test_query(module_runner: Any, root: Path) -> None:
    free = ok(module_runner, root, state="query")
    assert not free["locked"] and free["holder"] is None and free["stale"] is None
    ok(module_runner, root, **ACQUIRE)
    held = ok(module_runner, root, state="query", run_id="run-1")
    assert held["locked"] and held["held"] and held["holder"]["owner"] == "alice" and held["stale"] is None
    assert not ok(module_runner, root, state="query", run_id="run-2")["held"]
    write_lock(root, expires_at=iso(datetime.now(UTC) - timedelta(seconds=1)))
    stale = ok(module_runner, root, state="query")
    assert stale["locked"] and stale["stale"].startswith("it expired at ")


# -- stale and forced takeovers --------------------------------------------------------------------------


def test_an_expired_lock_is_taken_over_with_a_warning_and_an_audit_line(module_runner: Any, root: Path) -> None:
    old = write_lock(root, expires_at=iso(datetime.now(UTC) - timedelta(minutes=1)))
    result = ok(module_runner, root, **ACQUIRE)
    assert result["action"] == "took_over" and result["took_over"] and result["held"]
    assert result["previous_holder"] == old and result["stale"] == f"it expired at {old['expires_at']}"
    assert f"took over the lock of bob (run run-old, playbook restore.yml) since {old['acquired_at']}" in warnings_of(
        result
    )
    assert json.loads(lock_file(root).read_text())["run_id"] == "run-1"
    [line] = audit_lines(root)
    assert line["action"] == "took_over" and line["previous"] == old and line["new"]["run_id"] == "run-1"
    assert line["reason"] == result["stale"] and ISO_UTC.match(line["timestamp"])


def test_a_lock_whose_controller_process_is_gone_is_taken_over(module_runner: Any, root: Path) -> None:
    pid = dead_pid()
    write_lock(root, controller=socket.gethostname(), controller_pid=pid)
    result = ok(module_runner, root, **ACQUIRE)
    assert result["action"] == "took_over"
    assert result["stale"] == f"its controller process {pid} on {socket.gethostname()} is not running"
    assert len(audit_lines(root)) == 1


def test_a_lock_whose_controller_process_lives_is_held(module_runner: Any, root: Path) -> None:
    write_lock(root, controller=socket.gethostname(), controller_pid=os.getpid())
    result, failed = run(module_runner, root, **ACQUIRE)
    assert failed and result["msg"].startswith("host locked by bob (run run-old, playbook restore.yml)")
    # On another controller the same pid means nothing: only the expiry counts there.
    write_lock(root, controller="elsewhere", controller_pid=dead_pid())
    result, failed = run(module_runner, root, **ACQUIRE)
    assert failed and "host locked by bob" in result["msg"]


def test_force_takes_over_a_live_lock(module_runner: Any, root: Path) -> None:
    old = write_lock(root)
    result = ok(module_runner, root, **ACQUIRE, force=True)
    assert result["action"] == "forced" and result["took_over"] and result["stale"] is None
    assert result["previous_holder"] == old and "with force, while it was live" in warnings_of(result)
    [line] = audit_lines(root)
    assert line["action"] == "forced" and line["reason"] == "force: true" and line["previous"]["run_id"] == "run-old"
    assert ok(module_runner, root, **ACQUIRE, force=True)["action"] == "kept", "force on one's own lock: nothing"
    assert len(audit_lines(root)) == 1


def test_an_unreadable_lock_is_held_while_fresh_and_stale_once_old(module_runner: Any, root: Path) -> None:
    lock_file(root).write_text("{not json")
    result, failed = run(module_runner, root, **ACQUIRE)
    assert failed and "host locked by an unreadable lock file" in result["msg"]
    old = time.time() - 60
    os.utime(lock_file(root), (old, old))
    taken = ok(module_runner, root, **ACQUIRE)
    assert taken["action"] == "took_over" and "not valid JSON" in taken["stale"]
    assert audit_lines(root)[0]["previous"]["content"] == "{not json"


# -- concurrency -----------------------------------------------------------------------------------------

CONTENDER = """
import importlib.util, json, os, sys, time
import ansible.module_utils
from ansible.module_utils.testing import patch_module_args
root, args, ready, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
ansible.module_utils.__path__.append(os.path.join(root, "module_utils"))
spec = importlib.util.spec_from_file_location("lock", os.path.join(root, "library", "notification_lock.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.0005)
with patch_module_args(args):
    try:
        module.main()
    except SystemExit:
        pass
"""


def contend(root: Path, tmp_path: Path, count: int = 8) -> list[dict[str, Any]]:
    """``count`` processes run the module to acquire the lock at the same instant, each with its own run id."""
    go = tmp_path / "go"
    processes = []
    for index in range(count):
        args = {"root": str(root), **ACQUIRE, "run_id": f"run-{index}", "owner": f"user-{index}"}
        ready = tmp_path / f"ready-{index}"
        command = [sys.executable, "-c", CONTENDER, str(ROOT), json.dumps(args), str(ready), str(go)]
        processes.append((subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), ready))
    deadline = time.monotonic() + 30
    while not all(ready.exists() for _process, ready in processes):
        assert time.monotonic() < deadline, "the contenders did not start"
        time.sleep(0.01)
    go.touch()
    results = []
    for process, _ready in processes:
        out, err = process.communicate(timeout=30)
        assert out.strip(), err
        results.append(json.loads(out))
    return results


def test_of_runs_acquiring_a_free_lock_at_once_exactly_one_wins(root: Path, tmp_path: Path) -> None:
    results = contend(root, tmp_path)
    winners = [r for r in results if not r.get("failed")]
    assert len(winners) == 1 and winners[0]["action"] == "acquired"
    assert all(r["msg"].startswith("host locked by ") for r in results if r.get("failed"))
    assert json.loads(lock_file(root).read_text())["run_id"] == winners[0]["holder"]["run_id"]
    assert sorted(p.name for p in (root / "state").iterdir()) == ["toolkit.lock"]


def test_of_runs_taking_over_a_stale_lock_at_once_exactly_one_wins(root: Path, tmp_path: Path) -> None:
    write_lock(root, expires_at=iso(datetime.now(UTC) - timedelta(minutes=1)))
    results = contend(root, tmp_path)
    winners = [r for r in results if not r.get("failed")]
    assert len(winners) == 1 and winners[0]["action"] == "took_over"
    assert all("host locked by user-" in r["msg"] for r in results if r.get("failed")), "the losers see the winner"
    assert json.loads(lock_file(root).read_text())["run_id"] == winners[0]["holder"]["run_id"]
    [line] = audit_lines(root)
    assert line["previous"]["run_id"] == "run-old" and line["new"]["run_id"] == winners[0]["holder"]["run_id"]


# -- check mode ------------------------------------------------------------------------------------------


def test_check_mode_writes_nothing(module_runner: Any, root: Path) -> None:
    free = ok(module_runner, root, check_mode=True, **ACQUIRE)
    assert free["action"] == "acquired" and free["held"] and not lock_file(root).exists()

    write_lock(root, expires_at=iso(datetime.now(UTC) - timedelta(minutes=1)))
    before = snapshot(root)
    stale = ok(module_runner, root, check_mode=True, **ACQUIRE)
    assert stale["action"] == "took_over" and "would take over (check mode)" in warnings_of(stale)
    assert snapshot(root) == before, "neither the lock nor the audit log changed"

    write_lock(root)
    before = snapshot(root)
    held, failed = run(module_runner, root, check_mode=True, **ACQUIRE)
    assert failed and held["msg"].startswith("host locked by bob")
    forced = ok(module_runner, root, check_mode=True, **ACQUIRE, force=True)
    assert forced["action"] == "forced"
    released = ok(module_runner, root, check_mode=True, state="released", run_id="run-old")
    assert released["action"] == "released"
    assert snapshot(root) == before


# -- paths and bad arguments -----------------------------------------------------------------------------


def test_path_and_audit_log_instead_of_root(module_runner: Any, tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "host.lock"
    lock.parent.mkdir()
    audit = tmp_path / "audit.jsonl"
    args = {**ACQUIRE, "lock_path": str(lock), "audit_log": str(audit)}
    result, failed = module_runner(MODULE, args)
    assert not failed and result["lock_path"] == str(lock) and lock.exists()
    lock.write_text(json.dumps({**json.loads(lock.read_text()), "expires_at": "2000-01-01T00:00:00Z"}))
    result, failed = module_runner(MODULE, {**args, "run_id": "run-2"})
    assert not failed and result["took_over"] and json.loads(audit.read_text())["action"] == "took_over"


def test_the_state_directory_is_created_under_root(module_runner: Any, root: Path) -> None:
    (root / "state").rmdir()
    assert not ok(module_runner, root, check_mode=True, **ACQUIRE)["changed"]
    assert not (root / "state").exists(), "not in check mode"
    ok(module_runner, root, **ACQUIRE)
    assert lock_file(root).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "query"}, "one of the following is required: root, path"),
        ({"root": "{tmp}/nowhere", "state": "query"}, "root {tmp}/nowhere does not exist; set root to the directory"),
        ({"root": "{tmp}/state", "state": "query"}, "is not a notification service root: {tmp}/state/etc/config.yml"),
        ({"root": "{tmp}", "state": "acquired"}, "run_id is required to acquire the lock"),
        ({"root": "{tmp}", "state": "acquired", "run_id": "  "}, "run_id is required to acquire the lock"),
        ({"root": "{tmp}", "state": "released"}, "run_id is required to release the lock"),
        ({"root": "{tmp}", "run_id": "r", "ttl": 0}, "ttl must be a positive number of seconds, got 0"),
        ({"root": "{tmp}", "run_id": "r", "controller_pid": -1}, "controller_pid must be a process id above 0"),
        ({"path": "{tmp}/state", "run_id": "r"}, "path {tmp}/state is a directory"),
        ({"path": "{tmp}/no/such/dir/x.lock", "run_id": "r"}, "path: directory {tmp}/no/such/dir does not exist"),
        ({"root": "{tmp}", "state": "taken"}, "state"),
    ],
)
def test_bad_arguments_name_the_parameter(module_runner: Any, root: Path, args: dict[str, Any], message: str) -> None:
    args = {key: value.format(tmp=root) if isinstance(value, str) else value for key, value in args.items()}
    result, failed = module_runner(MODULE, args)
    assert failed and message.format(tmp=root) in result["msg"], result["msg"]
    assert list((root / "state").iterdir()) == []
