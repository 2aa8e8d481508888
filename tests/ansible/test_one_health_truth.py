"""One health truth: on a host whose config.yml drifted from the inventory (the web port changed and the
web program restarted on it), the direct probe (``status --quick``, the watch, the dashboard), the health
module (through health_check.yml, with the inventory's desired state) and the engine's classification
(``explain``) say the same: failed, and why: configuration_drift, re-applied from the deploy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
import yaml

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import SandboxHost
from notification_emergency.drills.config_faults import config_drift
from notification_emergency.probes import probe
from notification_emergency.runner import run_playbook
from tests.ansible.conftest import SandboxHost as SharedHost


def _health_report(host: SharedHost, tmp_path: Path, name: str) -> dict[str, Any]:
    result = run_playbook(
        "health_check.yml",
        inventory=host.box.inventory,
        extra_vars={"health_check_fail_on_failure": False},
        artifacts_root=tmp_path / name,
        timeout=300,
    )
    assert result.rc == 0, (result.artifact_dir / "stdout").read_text()[-3000:]
    return dict(result.stats["notification_health"][host.name])


def _answer(url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(requests.get(url, timeout=5).json())
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_probe_the_health_module_and_the_classification_agree_on_a_drifted_host(
    sandbox_host: SharedHost, tmp_path: Path
) -> None:
    home = tmp_path / "state"
    toolkit = EmergencyToolkit(
        inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest"
    )
    target = toolkit.fleet.target(sandbox_host.name)
    deployed_port = int(sandbox_host.vars["notification_service_web_port"])
    assert target.web_url.endswith(f":{deployed_port}")

    before = _health_report(sandbox_host, tmp_path, "before")
    assert probe(target, timeout=2.0).ok and before["overall"] == "healthy"
    drift_check = before["checks"]["drift"]
    assert drift_check["status"] == "healthy" and drift_check["evidence"]["drift"] == {}
    assert drift_check["evidence"]["desired"]["web.port"] == deployed_port

    undo = config_drift(SandboxHost(target, toolkit.fleet.hostvars(sandbox_host.name)))
    try:
        drifted_port = yaml.safe_load((sandbox_host.root / "etc" / "config.yml").read_text())["web"]["port"]
        assert drifted_port != deployed_port
        # The service itself is fine, where config.yml put it (once the restarted web process listens) ...
        assert _answer(f"http://127.0.0.1:{drifted_port}/health")["status"] == "healthy"

        # ... and all three say failed: the probe (status --quick) ...
        quick = toolkit.quick_status(sandbox_host.name).hosts[sandbox_host.name]
        assert quick["status"] == "unreachable", quick
        # ... the health module, looking where the inventory says, with the drift as a check of its own ...
        report = _health_report(sandbox_host, tmp_path, "drifted")
        assert report["overall"] == "failed"
        drift = report["checks"]["drift"]
        assert (drift["status"], drift["reason"], drift["component"]) == ("failed", "drift", "config")
        assert drift["evidence"]["drift"] == {"web.port": {"config": drifted_port, "desired": deployed_port}}
        assert report["checks"]["web"]["reason"] == "refused"
        assert report["checks"]["web"]["evidence"]["url"] == f"{target.web_url}/health"
        assert report["primary"] == "configuration_drift" and report["failures"] == ["configuration_drift"]
        # ... and the engine's classification, with the plan that re-applies the deploy.
        explained = toolkit.explain(sandbox_host.name).hosts[sandbox_host.name]
        assert explained["primary"] == "configuration_drift", explained
        assert report["plan"][0] == "restore_config"
    finally:
        undo()
    sandbox_host.wait_healthy()
    after = _health_report(sandbox_host, tmp_path, "after")
    assert probe(target, timeout=2.0).ok and after["overall"] == "healthy"
    assert after["checks"]["drift"]["evidence"]["drift"] == {}
