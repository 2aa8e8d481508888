"""notification_emergency_state: activate, update, deactivate, query; check and diff mode; the audit log."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import ansible.module_utils._internal
import pytest

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ACTIVATE: dict[str, Any] = {
    "state": "active",
    "level": 2,
    "reason": "WebSocket down, notifications are delayed",
    "triggered_by": "engine",
}


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    return {"file": state_dir / "emergency.json", "audit": state_dir / "emergency-audit.log"}


def run(
    module_runner: Any, paths: dict[str, Path], check_mode: bool = False, **args: Any
) -> tuple[dict[str, Any], bool]:
    result: tuple[dict[str, Any], bool] = module_runner(
        "notification_emergency_state", {"path": str(paths["file"]), **args}, check_mode=check_mode
    )
    return result


def audit_lines(paths: dict[str, Path]) -> list[dict[str, Any]]:
    if not paths["audit"].exists():
        return []
    return [json.loads(line) for line in paths["audit"].read_text().splitlines()]


def snapshot(paths: dict[str, Path]) -> tuple[bytes | None, bytes | None]:
    return tuple(p.read_bytes() if p.exists() else None for p in (paths["file"], paths["audit"]))  # type: ignore[return-value]


def test_activate_writes_the_state_and_one_audit_line(module_runner: Any, paths: dict[str, Path]) -> None:
    result, failed = run(module_runner, paths, **ACTIVATE)
    assert not failed and result["changed"] and result["action"] == "activate"
    state = json.loads(paths["file"].read_text())
    assert state == result["state"]
    assert state["active"] is True and state["level"] == 2 and state["triggered_by"] == "engine"
    assert state["reason"] == ACTIVATE["reason"] and ISO_UTC.match(state["since"])
    assert stat.S_IMODE(paths["file"].stat().st_mode) == 0o644
    assert result["emergency_file"] == str(paths["file"]) and result["audit_log"] == str(paths["audit"])
    assert result["before"] == {"active": False, "level": None, "reason": "", "triggered_by": "", "since": None}
    [line] = audit_lines(paths)
    assert line["action"] == "activate" and line["by"] == "engine" and line["before"] is None
    assert line["after"] == state and ISO_UTC.match(line["timestamp"])
    assert not list(paths["file"].parent.glob(".emergency.*")), "no temporary file left behind"


def test_activating_again_changes_nothing(module_runner: Any, paths: dict[str, Path]) -> None:
    run(module_runner, paths, **ACTIVATE)
    before = snapshot(paths)
    again, failed = run(module_runner, paths, **ACTIVATE)
    assert not failed and not again["changed"] and again["action"] is None
    assert snapshot(paths) == before


def test_a_new_level_or_reason_updates_and_keeps_since(module_runner: Any, paths: dict[str, Path]) -> None:
    first, _ = run(module_runner, paths, **ACTIVATE)
    since = first["state"]["since"]
    raised, failed = run(module_runner, paths, **{**ACTIVATE, "level": 1})
    assert not failed and raised["changed"] and raised["action"] == "update"
    assert raised["state"]["level"] == 1 and raised["state"]["since"] == since
    reworded, _ = run(module_runner, paths, **{**ACTIVATE, "level": 1, "reason": "Redis is down"})
    assert reworded["changed"] and reworded["state"]["reason"] == "Redis is down"
    assert json.loads(paths["file"].read_text())["since"] == since
    assert [line["action"] for line in audit_lines(paths)] == ["activate", "update", "update"]
    assert audit_lines(paths)[1]["before"]["level"] == 2 and audit_lines(paths)[1]["after"]["level"] == 1


def test_deactivate_then_deactivate_again(module_runner: Any, paths: dict[str, Path]) -> None:
    run(module_runner, paths, **ACTIVATE)
    resolved, failed = run(module_runner, paths, state="inactive", resolved_by="alice")
    assert not failed and resolved["changed"] and resolved["action"] == "deactivate"
    state = json.loads(paths["file"].read_text())
    assert state["active"] is False and state["level"] is None and state["since"] is None
    assert state["resolved_by"] == "alice" and ISO_UTC.match(state["resolved_at"])
    assert state["reason"] == ACTIVATE["reason"], "what was resolved stays readable"
    before = snapshot(paths)
    again, failed = run(module_runner, paths, state="inactive", resolved_by="bob")
    assert not failed and not again["changed"]
    assert snapshot(paths) == before
    lines = audit_lines(paths)
    assert [line["action"] for line in lines] == ["activate", "deactivate"]
    assert lines[1]["by"] == "alice" and lines[1]["before"]["active"] is True
    reactivated, _ = run(module_runner, paths, **ACTIVATE)
    assert reactivated["action"] == "activate" and "resolved_by" not in reactivated["state"]


def test_deactivating_without_a_file_creates_nothing(module_runner: Any, paths: dict[str, Path]) -> None:
    result, failed = run(module_runner, paths, state="inactive", resolved_by="alice")
    assert not failed and not result["changed"]
    assert snapshot(paths) == (None, None)


def test_query(module_runner: Any, paths: dict[str, Path]) -> None:
    absent, failed = run(module_runner, paths)
    assert not failed and not absent["changed"]
    assert absent["exists"] is False and absent["readable"] is True and absent["state"]["active"] is False
    assert snapshot(paths) == (None, None)
    run(module_runner, paths, **ACTIVATE)
    present, _ = run(module_runner, paths, state="query")
    assert present["exists"] and present["state"]["active"] and present["state"]["level"] == 2


@pytest.mark.parametrize(
    ("setup", "args"),
    [
        (None, ACTIVATE),
        (ACTIVATE, {**ACTIVATE, "level": 1}),
        (ACTIVATE, {"state": "inactive", "resolved_by": "alice"}),
    ],
    ids=["activate", "update", "deactivate"],
)
def test_check_mode_writes_nothing(
    module_runner: Any, paths: dict[str, Path], setup: dict[str, Any] | None, args: dict[str, Any]
) -> None:
    if setup:
        run(module_runner, paths, **setup)
    before = snapshot(paths)
    predicted, failed = run(module_runner, paths, check_mode=True, **args)
    assert not failed and predicted["changed"]
    assert snapshot(paths) == before, "neither emergency.json nor the audit log changed"
    applied, _ = run(module_runner, paths, **args)
    assert applied["changed"] and applied["action"] == predicted["action"]
    assert {k: v for k, v in applied["state"].items() if k not in ("since", "resolved_at")} == {
        k: v for k, v in predicted["state"].items() if k not in ("since", "resolved_at")
    }


def test_diff_mode_returns_the_json_before_and_after(module_runner: Any, paths: dict[str, Path]) -> None:
    plain, _ = run(module_runner, paths, **ACTIVATE)
    assert "diff" not in plain
    result, failed = run(module_runner, paths, _ansible_diff=True, **{**ACTIVATE, "level": 3})
    assert not failed and result["changed"]
    assert json.loads(result["diff"]["before"])["level"] == 2
    assert json.loads(result["diff"]["after"]) == result["state"] == json.loads(paths["file"].read_text())
    assert result["diff"]["after_header"] == str(paths["file"])


def test_an_existing_file_mode_is_reset_to_0644(module_runner: Any, paths: dict[str, Path]) -> None:
    paths["file"].write_text('{"active": false}\n')
    paths["file"].chmod(0o600)
    run(module_runner, paths, **ACTIVATE)
    assert stat.S_IMODE(paths["file"].stat().st_mode) == 0o644


@pytest.fixture
def module_side_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Return module.warn() in the result, as on a managed host.

    Once controller code is imported into the pytest process (the filter tests import ansible.errors),
    ansible-core 2.19 sends in-process module warnings to the controller's Display instead.
    """
    monkeypatch.setattr(ansible.module_utils._internal, "is_controller", False)


@pytest.mark.usefixtures("module_side_warnings")
def test_invalid_json_is_reported_and_overwritten_by_activation(module_runner: Any, paths: dict[str, Path]) -> None:
    paths["file"].write_text('{"active": tru')
    queried, failed = run(module_runner, paths)
    assert not failed and not queried["changed"]
    assert queried["readable"] is False and queried["state"] is None
    assert "is not valid JSON" in queried["error"]
    assert "not valid JSON" in json.dumps(queried["warnings"]), "warned (2.19 warnings are structured)"
    assert paths["file"].read_text() == '{"active": tru'
    activated, failed = run(module_runner, paths, _ansible_diff=True, **ACTIVATE)
    assert not failed and activated["changed"] and activated["action"] == "activate"
    assert "overwritten" in json.dumps(activated["warnings"])
    assert activated["diff"]["before"] == '{"active": tru'
    assert json.loads(paths["file"].read_text())["active"] is True
    [line] = audit_lines(paths)
    assert line["before"]["readable"] is False and line["before"]["content"] == '{"active": tru'
    assert "not valid JSON" in line["before"]["error"]


@pytest.mark.parametrize("content", ['["active"]', '{"active": "yes"}', '{"active": true, "level": 9}'])
def test_a_json_file_that_is_no_state_is_unreadable_and_deactivation_repairs_it(
    module_runner: Any, paths: dict[str, Path], content: str
) -> None:
    paths["file"].write_text(content)
    queried, _ = run(module_runner, paths)
    assert queried["readable"] is False
    repaired, failed = run(module_runner, paths, state="inactive", resolved_by="alice")
    assert not failed and repaired["changed"] and repaired["action"] == "deactivate"
    assert json.loads(paths["file"].read_text())["active"] is False
    assert audit_lines(paths)[0]["before"]["content"] == content


def test_missing_directory_is_an_error(module_runner: Any, tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "emergency.json"
    result, failed = module_runner("notification_emergency_state", {"path": str(target), **ACTIVATE})
    assert failed
    assert "path" in result["msg"] and "does not exist" in result["msg"] and str(tmp_path / "nowhere") in result["msg"]
    assert not target.parent.exists()


def test_custom_audit_log_and_its_missing_directory(module_runner: Any, paths: dict[str, Path], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    result, failed = run(module_runner, paths, audit_log=str(audit), **ACTIVATE)
    assert not failed and result["audit_log"] == str(audit)
    assert json.loads(audit.read_text())["action"] == "activate"
    bad, failed = run(module_runner, paths, audit_log=str(tmp_path / "no" / "audit.log"), **{**ACTIVATE, "level": 1})
    assert failed and "audit_log" in bad["msg"]
    assert json.loads(paths["file"].read_text())["level"] == 2, "no state change without its audit line"


def test_the_path_comes_from_config(module_runner: Any, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "state").mkdir()
    config = etc / "config.yml"
    config.write_text("mode: websocket\nemergency_file: ../state/emergency.json\n")
    result, failed = module_runner("notification_emergency_state", {"config": str(config), **ACTIVATE})
    assert not failed and result["changed"]
    assert result["emergency_file"] == str(tmp_path / "state" / "emergency.json")
    assert (tmp_path / "state" / "emergency-audit.log").exists()
    config.write_text("mode: websocket\n")
    missing, failed = module_runner("notification_emergency_state", {"config": str(config)})
    assert failed and "emergency_file" in missing["msg"]
    gone, failed = module_runner("notification_emergency_state", {"config": str(etc / "nope.yml")})
    assert failed and "config" in gone["msg"] and "does not exist" in gone["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "query"}, "one of the following is required: path, config"),
        ({"path": "/x/e.json", "config": "/x/c.yml"}, "mutually exclusive"),
        ({"path": "{file}", "state": "active", "reason": "r", "triggered_by": "t"}, "level"),
        ({"path": "{file}", "state": "active", "level": 2, "triggered_by": "t"}, "reason"),
        ({"path": "{file}", "state": "active", "level": 2, "reason": "r"}, "triggered_by"),
        ({"path": "{file}", "state": "active", "level": 5, "reason": "r", "triggered_by": "t"}, "level"),
        ({"path": "{file}", "state": "active", "level": 2, "reason": "  ", "triggered_by": "t"}, "reason must be"),
        ({"path": "{file}", "state": "active", "level": 2, "reason": "x" * 501, "triggered_by": "t"}, "reason is 501"),
        ({"path": "{file}", "state": "active", "level": 2, "reason": "r", "triggered_by": ""}, "triggered_by"),
        ({"path": "{file}", "state": "inactive"}, "resolved_by"),
        ({"path": "{file}", "state": "paused"}, "state"),
    ],
)
def test_bad_arguments_name_the_parameter(
    module_runner: Any, paths: dict[str, Path], args: dict[str, Any], message: str
) -> None:
    args = {key: value.format(file=paths["file"]) if isinstance(value, str) else value for key, value in args.items()}
    result, failed = module_runner("notification_emergency_state", args)
    assert failed and message in result["msg"], result["msg"]
    assert snapshot(paths) == (None, None)


def test_reason_of_500_characters_is_accepted(module_runner: Any, paths: dict[str, Path]) -> None:
    result, failed = run(module_runner, paths, **{**ACTIVATE, "reason": "x" * 500})
    assert not failed and result["changed"]
