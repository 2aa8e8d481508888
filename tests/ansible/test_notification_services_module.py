"""notification_services against a real private supervisord running real processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.health_servers import CRASHER, SLEEPER, program, write_conf
from tests.conftest import VENV_BIN


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
