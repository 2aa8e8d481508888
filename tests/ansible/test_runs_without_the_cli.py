"""A playbook launched without the CLI (an AWX job template, EDA, a plain ansible-playbook) lands in the same
records as the CLI's runs when a store is configured: the run with its hosts and report, and the audit trail
with who ran it (AWX's user and job); a CLI run is recorded once, not twice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from notification_emergency.api import EmergencyToolkit
from notification_emergency.store import EventStore
from tests.ansible.conftest import SandboxHost
from tests.ansible.recovery_helpers import run_playbook
from tests.conftest import VENV_BIN


def test_an_awx_style_run_is_recorded_with_its_user_and_job(
    tmp_path: Path, sandbox_host: SandboxHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_file = tmp_path / "events.db"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(store_file))
    reports = tmp_path / "reports"
    # AWX passes these extra vars to every job.
    run = run_playbook(
        sandbox_host,
        "backup.yml",
        extra={"awx_user_name": "jdoe", "awx_job_id": 42, "notification_reports_dir": str(reports)},
    )
    assert run.rc == 0, run.output[-3000:]
    [report_file] = reports.glob("backup-*.json")
    report = json.loads(report_file.read_text())
    store = EventStore(str(store_file))
    recorded = store.run(report["run_id"])
    assert recorded is not None and recorded["status"] == "successful", recorded
    assert recorded["actor"] == "jdoe (AWX job 42)" and recorded["playbook"] == "backup.yml"
    assert recorded["report"]["hosts"][0]["host"] == sandbox_host.name
    audit = [(entry["actor"], entry["action"]) for entry in store.audit_trail()]
    assert ("jdoe (AWX job 42)", "backup started") in audit and ("jdoe (AWX job 42)", "backup successful") in audit

    again = subprocess.run(
        [str(VENV_BIN / "notification-emergency"), "record-run", str(report_file), "--store", str(store_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0 and "recorded already" in again.stdout, again.stdout + again.stderr
    assert len(store.runs()) == 1

    bad = subprocess.run(
        [str(VENV_BIN / "notification-emergency"), "record-run", str(tmp_path), "--store", str(store_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "not a run report" in bad.stderr and "Traceback" not in bad.stderr


def test_a_cli_run_is_recorded_once(tmp_path: Path, sandbox_host: SandboxHost, monkeypatch: pytest.MonkeyPatch) -> None:
    store_file = tmp_path / "events.db"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(store_file))  # the playbook sees it too
    toolkit = EmergencyToolkit(
        inventory=sandbox_host.box.inventory, store=store_file, home=tmp_path / "state", actor="pytest"
    )
    result = toolkit.backup(limit=sandbox_host.name)
    assert result.ok, result.message
    [run] = toolkit.store.runs()
    assert run["actor"] == "pytest" and run["action"] == "backup"
