"""health_check.yml on a real sandbox host: healthy, WebSocket down, Redis down, escalation, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from notification_emergency.catalogue import CATALOGUE
from notification_emergency.runner import RunResult, run_playbook
from tests.ansible.conftest import SandboxHost


def health_check(host: SandboxHost, tmp_path: Any, **extra: Any) -> RunResult:
    return run_playbook(
        "health_check.yml",
        inventory=host.box.inventory,
        extra_vars=extra,
        artifacts_root=tmp_path / "artifacts",
        timeout=300,
    )


def plan_ids(failure_type: str) -> list[str]:
    return list(CATALOGUE[failure_type]["plan"])


def test_a_healthy_host_reports_no_level_and_exits_0(sandbox_host: SandboxHost, tmp_path: Any) -> None:
    result = health_check(sandbox_host, tmp_path)
    assert result.rc == 0, (result.artifact_dir / "stdout").read_text()[-3000:]
    report = result.stats["notification_health"]["sandbox-01"]
    assert report["overall"] == "healthy"
    assert report["mode"] == "websocket" and report["emergency"]["active"] is False, report
    assert report["level"] is None and report["level_name"] == "none"
    assert report["failures"] == [] and report["plan"] == []
    assert {check["status"] for check in report["checks"].values()} == {"healthy"}
    stdout = (result.artifact_dir / "stdout").read_text()
    assert "sandbox-01     healthy" in stdout


def test_websocket_down_is_level_2_with_the_catalogue_plan(sandbox_host: SandboxHost, tmp_path: Any) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    result = health_check(sandbox_host, tmp_path)
    assert result.rc != 0 and result.failed_hosts == ["sandbox-01"]
    report = result.stats["notification_health"]["sandbox-01"]
    assert report["primary"] == "websocket_service_down"
    assert report["level"] == 2 and report["level_name"] == "high"
    assert report["response"] == "within 15 minutes"
    assert report["plan"] == plan_ids("websocket_service_down")
    assert "websocket" in report["failed_checks"]
    assert report["checks"]["web"]["status"] in ("healthy", "degraded")


def test_redis_down_is_redis_unavailable(sandbox_host: SandboxHost, tmp_path: Any) -> None:
    sandbox_host.supervisorctl("stop", "redis")
    result = health_check(sandbox_host, tmp_path)
    assert result.rc != 0
    report = result.stats["notification_health"]["sandbox-01"]
    assert report["primary"] == "redis_unavailable", report["summary"]
    assert report["level"] == 2
    assert report["plan"][0] == plan_ids("redis_unavailable")[0]


@pytest.mark.parametrize("affected", [150, [f"user-{i % 120}" for i in range(300)]])
def test_affected_users_raise_the_level(sandbox_host: SandboxHost, tmp_path: Any, affected: Any) -> None:
    sandbox_host.supervisorctl("stop", "notification-websocket")
    result = health_check(sandbox_host, tmp_path, affected_users=affected)
    report = result.stats["notification_health"]["sandbox-01"]
    assert report["primary"] == "websocket_service_down"
    assert report["level"] == 1 and report["level_name"] == "critical"


def test_bad_affected_users_is_refused_with_its_name(sandbox_host: SandboxHost, tmp_path: Any) -> None:
    result = health_check(sandbox_host, tmp_path, affected_users=-3)
    assert result.rc != 0
    assert "affected_users" in (result.artifact_dir / "stdout").read_text()
