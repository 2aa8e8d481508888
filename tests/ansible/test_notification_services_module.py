"""notification_services against a real private supervisord running real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.health_servers import CRASHER, SLEEPER, program, write_conf
from tests.conftest import VENV_BIN, free_port_block


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[dict[str, Any]]:
    conf = write_conf(tmp_path)
    (tmp_path / "conf.d" / "alpha.conf").write_text(program("alpha", SLEEPER))
    (tmp_path / "conf.d" / "beta.conf").write_text(program("beta", SLEEPER))
    (tmp_path / "conf.d" / "crasher.conf").write_text(program("crasher", CRASHER))
    yield {"manager": "supervisord", "supervisor_config": str(conf), "bin_dir": str(VENV_BIN), "timeout": 10}
    subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, check=False)


def test_refuses_to_start_supervisord_unless_asked(module_runner: Any, supervisor: dict[str, Any]) -> None:
    result, failed = module_runner("notification_services", {**supervisor, "services": ["alpha"]})
    assert failed
    assert "supervisord is not running" in result["msg"] and "supervisord_start" in result["msg"]


def test_start_is_idempotent_and_reports_pids(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["alpha", "beta"], "supervisord_start": True}
    result, failed = module_runner("notification_services", args)
    assert not failed and result["changed"]
    assert "started supervisord" in result["manager_actions"]
    for name in ("alpha", "beta"):
        assert result["services"][name]["state"] == "RUNNING"
        assert result["services"][name]["pid"] > 0
        assert result["services"][name]["actions"] == ["start"]
    again, failed = module_runner("notification_services", args)
    assert not failed and not again["changed"]
    assert again["services"]["alpha"]["pid"] == result["services"]["alpha"]["pid"]


def test_check_mode_changes_nothing(module_runner: Any, supervisor: dict[str, Any]) -> None:
    start = {**supervisor, "services": ["alpha"], "supervisord_start": True}
    module_runner("notification_services", start)
    result, failed = module_runner("notification_services", {**start, "state": "stopped"}, check_mode=True)
    assert not failed and result["changed"]
    assert result["services"]["alpha"]["actions"] == ["stop"]
    status, _ = module_runner("notification_services", start)
    assert status["services"]["alpha"]["state"] == "RUNNING" and not status["changed"]


def test_check_mode_does_not_start_supervisord(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["alpha"], "supervisord_start": True}
    result, failed = module_runner("notification_services", args, check_mode=True)
    assert not failed and result["changed"]
    assert not Path(supervisor["supervisor_config"]).with_name("supervisord.pid").exists()


def test_stop_and_restart(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["alpha"], "supervisord_start": True}
    first, _ = module_runner("notification_services", args)
    restarted, failed = module_runner("notification_services", {**args, "state": "restarted"})
    assert not failed and restarted["changed"]
    assert restarted["services"]["alpha"]["pid"] != first["services"]["alpha"]["pid"]
    stopped, failed = module_runner("notification_services", {**args, "state": "stopped"})
    assert not failed and stopped["changed"] and stopped["services"]["alpha"]["state"] == "STOPPED"
    again, failed = module_runner("notification_services", {**args, "state": "stopped"})
    assert not failed and not again["changed"]


def test_stopped_when_supervisord_is_down_is_a_no_op(module_runner: Any, supervisor: dict[str, Any]) -> None:
    result, failed = module_runner("notification_services", {**supervisor, "services": ["alpha"], "state": "stopped"})
    assert not failed and not result["changed"]


def test_a_service_that_does_not_come_up_fails_with_its_log(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["crasher"], "supervisord_start": True}
    result, failed = module_runner("notification_services", args)
    assert failed
    assert "crasher" in result["msg"]
    assert "boom: cannot bind" in result["msg"] or "FATAL" in result["msg"] or "BACKOFF" in result["msg"]


def test_unknown_service_is_named(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["nope"], "supervisord_start": True}
    result, failed = module_runner("notification_services", args)
    assert failed and "nope" in result["msg"] and "not defined" in result["msg"]


def test_changed_program_file_is_applied(module_runner: Any, supervisor: dict[str, Any]) -> None:
    args = {**supervisor, "services": ["alpha"], "supervisord_start": True}
    first, _ = module_runner("notification_services", args)
    conf_d = Path(supervisor["supervisor_config"]).parent / "conf.d"
    (conf_d / "alpha.conf").write_text(program("alpha", SLEEPER + " ", autostart=True, stopwaitsecs=6))
    predicted, _ = module_runner("notification_services", args, check_mode=True)
    assert predicted["changed"] and any("alpha" in action for action in predicted["manager_actions"])
    applied, failed = module_runner("notification_services", args)
    assert not failed and applied["changed"]
    assert applied["services"]["alpha"]["state"] == "RUNNING"
    assert applied["services"]["alpha"]["pid"] != first["services"]["alpha"]["pid"]
    steady, _ = module_runner("notification_services", args)
    assert not steady["changed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"manager": "supervisord", "services": ["a"]}, "supervisor_config"),
        ({"manager": "runit", "services": ["a"]}, "manager"),
        ({"manager": "systemd", "services": []}, "services is empty"),
        ({"manager": "systemd", "services": ["a"], "timeout": 0}, "timeout must be a positive"),
        ({"manager": "systemd", "services": ["a"], "state": "paused"}, "state"),
    ],
)
def test_bad_arguments_name_the_parameter(module_runner: Any, args: dict[str, Any], message: str) -> None:
    result, failed = module_runner("notification_services", args)
    assert failed and message in result["msg"]


LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(100000)"
)


def _listener(port: int, *args: str) -> str:
    """A supervisord command that listens on ``port`` (its further arguments only name things)."""
    return f'{VENV_BIN / "python"} -c "{LISTEN}" {port} {" ".join(args)}'


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_a_dead_supervisord_is_brought_back_without_orphans(module_runner: Any, tmp_path: Path) -> None:
    """supervisord is killed (SIGKILL): its programs go on as orphans holding their ports. orphans=stop finds
    them (command line naming the root, a port of the host), and a squatter on a host port, shows them in
    check mode (and the diff) without touching them, stops them (SIGTERM), starts supervisord and waits until
    every program runs again; a bystander naming another root is left alone, and a second run changes nothing."""
    port = free_port_block(2, start=23000)
    squat_port = port + 1
    conf = write_conf(tmp_path)
    (tmp_path / "conf.d" / "alpha.conf").write_text(program("alpha", _listener(port, str(tmp_path / "etc")), True))
    (tmp_path / "conf.d" / "beta.conf").write_text(program("beta", f"{SLEEPER} {tmp_path}/beta", True))
    base = {"manager": "supervisord", "supervisor_config": str(conf), "bin_dir": str(VENV_BIN), "timeout": 15}
    args = {
        **base,
        "services": ["alpha", "beta"],
        "supervisord_start": True,
        "orphans": "stop",
        "root": str(tmp_path),
        "ports": [port, squat_port],
        "pid_files": [str(tmp_path / "supervisord.pid")],
        "orphan_grace": 5,
        "verify_all": True,
    }
    squatter = subprocess.Popen([str(VENV_BIN / "python"), "-c", LISTEN, str(squat_port)])
    sleep = "import time; time.sleep(100000)"
    bystander = subprocess.Popen([str(VENV_BIN / "python"), "-c", sleep, f"{tmp_path}-other/etc"])
    try:
        first, failed = module_runner("notification_services", {**args, "orphans": "ignore"})
        assert not failed and first["programs"] == {"alpha": "RUNNING", "beta": "RUNNING"}, first
        old = {name: first["services"][name]["pid"] for name in ("alpha", "beta")}
        alive, failed = module_runner("notification_services", args, check_mode=True)
        assert not failed and [o["pid"] for o in alive["orphans"]] == [squatter.pid], "what supervisord runs is owned"
        assert alive["orphans"][0]["why"] == [f"listens on port {squat_port}"]

        supervisord = int((tmp_path / "supervisord.pid").read_text())
        os.kill(supervisord, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(supervisord) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_gone(pid) for pid in old.values()), "the programs outlive their supervisord"

        seen, failed = module_runner("notification_services", args, check_mode=True)
        assert not failed and seen["changed"], seen
        assert sorted(o["pid"] for o in seen["orphans"]) == sorted([*old.values(), squatter.pid]), seen["orphans"]
        assert {o["outcome"] for o in seen["orphans"]} == {"would stop"}
        assert str(old["alpha"]) in seen["diff"]["before"] and seen["diff"]["after"] == ""
        assert not any(_gone(pid) for pid in old.values()) and squatter.poll() is None, "check mode stops nothing"

        done, failed = module_runner("notification_services", args)
        assert not failed, done.get("msg")
        assert {o["pid"]: o["outcome"] for o in done["orphans"]} == {
            pid: "terminated" for pid in [*old.values(), squatter.pid]
        }
        assert "started supervisord" in done["manager_actions"]
        assert done["programs"] == {"alpha": "RUNNING", "beta": "RUNNING"}
        assert all(_gone(pid) for pid in old.values()) and squatter.wait(timeout=5) is not None
        assert bystander.poll() is None, "a process naming another root is not the host's"
        new = {name: done["services"][name]["pid"] for name in ("alpha", "beta")}
        assert not set(new.values()) & set(old.values())

        again, failed = module_runner("notification_services", args)
        assert not failed and not again["changed"] and again["orphans"] == [], again
    finally:
        subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, check=False)
        for process in (squatter, bystander):
            process.kill()
            process.wait()


def test_logs_whose_directory_was_re_created_are_reopened(module_runner: Any, tmp_path: Path) -> None:
    """A removed and re-created log directory: the running program's log file is gone and supervisord writes
    into the deleted file; reopen_logs has it reopen its logs (the file is back), once."""
    conf = write_conf(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    text = program("alpha", SLEEPER, True).replace("%(here)s/alpha.log", f"{logs}/alpha.log")
    (tmp_path / "conf.d" / "alpha.conf").write_text(text)
    args = {
        "manager": "supervisord",
        "supervisor_config": str(conf),
        "bin_dir": str(VENV_BIN),
        "timeout": 10,
        "services": ["alpha"],
        "supervisord_start": True,
        "reopen_logs": True,
    }
    try:
        first, failed = module_runner("notification_services", args)
        assert not failed and (logs / "alpha.log").exists(), first
        shutil.rmtree(logs)
        logs.mkdir()
        checked, failed = module_runner("notification_services", args, check_mode=True)
        assert not failed and checked["changed"] and not (logs / "alpha.log").exists()
        done, failed = module_runner("notification_services", args)
        assert not failed and done["changed"], done
        assert done["manager_actions"] == [f"reopened the logs (missing: {logs}/alpha.log)"]
        deadline = time.monotonic() + 5
        while not (logs / "alpha.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (logs / "alpha.log").exists()
        again, failed = module_runner("notification_services", args)
        assert not failed and not again["changed"], again
    finally:
        subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, check=False)


def test_verify_all_starts_what_supervisord_gave_up_on_or_was_stopped(module_runner: Any, tmp_path: Path) -> None:
    """supervisord never retries a FATAL program by itself: verify_all starts it (and an autostart program
    someone stopped), then every program must be RUNNING; check mode only says so."""
    conf = write_conf(tmp_path)
    mark = tmp_path / "failed-once"
    once = f"/bin/sh -c 'test -e {mark} || {{ touch {mark}; exit 1; }}; exec sleep 100000'"
    (tmp_path / "conf.d" / "once.conf").write_text(program("once", once, True))
    (tmp_path / "conf.d" / "beta.conf").write_text(program("beta", SLEEPER, True))
    base = {"manager": "supervisord", "supervisor_config": str(conf), "bin_dir": str(VENV_BIN), "timeout": 10}
    args = {**base, "services": ["beta"], "verify_all": True}
    try:
        first, failed = module_runner(
            "notification_services", {**base, "services": ["beta"], "supervisord_start": True}
        )
        assert not failed and mark.exists(), first
        subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "stop", "beta"], capture_output=True, check=True)
        deadline = time.monotonic() + 10
        while (
            "FATAL"
            not in subprocess.run(
                [VENV_BIN / "supervisorctl", "-c", conf, "status", "once"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        checked, failed = module_runner("notification_services", args, check_mode=True)
        assert not failed and "started once" in checked["manager_actions"], checked
        done, failed = module_runner("notification_services", args)
        assert not failed and done["changed"], done.get("msg")
        assert "started once" in done["manager_actions"] and "started beta" not in done["manager_actions"]
        assert done["services"]["beta"]["actions"] == ["start"]
        assert done["programs"] == {"beta": "RUNNING", "once": "RUNNING"}
        again, failed = module_runner("notification_services", args)
        assert not failed and not again["changed"], again
    finally:
        subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, check=False)
