"""The alerting rules shipped in deploy/prometheus/: `promtool check rules` accepts them, their unit tests
(`promtool test rules`, the test file beside them) pass, and every metric they use is one /metrics gives."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from notification_emergency.dashboard import Dashboard
from notification_emergency.dashboard.metrics import read_store, render
from tests.conftest import ROOT
from tests.dashboard.test_metrics import PROMTOOL

RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "notification-emergency.rules.yml"
RULES_TEST = RULES_DIR / "notification-emergency.rules.test.yml"
ALERTS = {
    "NotificationHostFailing",
    "NotificationWebSocketDown",
    "NotificationEmergencyActive",
    "NotificationRecoveryFailed",
    "NotificationCircuitBreakerOpen",
}


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is missing: scripts/bootstrap.sh installs it (apt-get install prometheus)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules_file() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_the_rules_unit_tests_pass_and_test_every_alert() -> None:
    tested = promtool("test", "rules", RULES_TEST.name)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    firing = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert {rule["alert"] for rule in rules()} == ALERTS == firing, "every alert is shipped and seen firing"


def test_a_rule_that_does_not_fire_as_tested_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: with the WebSocket alert's component names wrong, nothing fires."""
    (tmp_path / RULES.name).write_text(
        RULES.read_text().replace('component=~"websocket|websocket process"', 'component="ws"')
    )
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    tested = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert tested.returncode != 0 and "NotificationWebSocketDown" in tested.stdout + tested.stderr


def test_every_metric_the_rules_use_is_one_the_dashboard_gives(
    make_dashboard: Callable[..., Dashboard], offline_inventory: Path
) -> None:
    dashboard = make_dashboard(offline_inventory)
    text = render(dashboard.live(), read_store(dashboard.store))
    given = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    used = {name for rule in rules() for name in re.findall(r"notification_emergency_[a-z_]+", str(rule["expr"]))}
    assert used and used <= given, used - given


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule["alert"]))
def test_each_alert_says_what_the_eda_rulebook_does_with_it(rule: dict[str, object]) -> None:
    """service=notification (the service itself: the rulebook recovers the host) or notification-emergency (the
    toolkit's own state: the rulebook only checks), a severity, and a summary."""
    labels = rule["labels"]
    assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning")
    recover = {"NotificationHostFailing", "NotificationWebSocketDown"}
    assert labels["service"] == ("notification" if rule["alert"] in recover else "notification-emergency")
    annotations = rule["annotations"]
    assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"]
