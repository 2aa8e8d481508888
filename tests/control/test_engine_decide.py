"""The recovery engine's decision, unit-tested without a sandbox: :func:`engine.decide` is pure given a host's
health row, its recent automatic actions (the store's history) and the policy. The sandbox tests
(tests/ansible/test_engine.py) prove the same decisions end to end; these pin every branch of the rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notification_emergency import catalogue
from notification_emergency.engine import Policy, decide
from notification_emergency.results import HostRow
from notification_emergency.timeutil import UTC, iso

NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
POLICY = Policy(throttle_s=300, breaker_max=3, breaker_window_s=3600)
WEBSOCKET_PLAN = catalogue.CATALOGUE["websocket_service_down"]["plan"]


def row(status: str = "failed", primary: str | None = "websocket_service_down", **extra: Any) -> HostRow:
    base: HostRow = {"status": status, "primary": primary, "summary": f"{primary} on web-01"}
    if primary:
        base.update(
            failures=[primary],
            level=int(catalogue.CATALOGUE[primary]["base_level"]),
            plan=catalogue.CATALOGUE[primary]["plan"],
        )
    base.update(extra)  # type: ignore[typeddict-item]
    return base


def acted(incident_id: int, failure_type: str, ago_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One (incident, automatic action) pair of the history, the action started ``ago_s`` before NOW."""
    started = NOW - timedelta(seconds=ago_s)
    return (
        {"id": incident_id, "failure_type": failure_type},
        {"started_at": iso(started), "details": {"automatic": True}},
    )


def test_a_healthy_host_needs_nothing() -> None:
    decision = decide("web-01", {"status": "healthy"}, [], POLICY, NOW)
    assert decision.steps == [] and decision.escalation is None and decision.runnable == []


def test_a_fresh_failure_runs_the_automatic_steps_and_escalates_if_they_do_not_help() -> None:
    decision = decide("web-01", row(incident=7), [], POLICY, NOW)
    assert [step.step for step in decision.steps] == [s for s in WEBSOCKET_PLAN if s != "escalate"]
    assert [step.step for step in decision.runnable] == ["restart_websocket", "enable_flash_fallback"]
    fallback = decision.steps[1]
    assert fallback.playbook == "rollback_to_legacy.yml", "the fallback is the verified, exactly-once rollback"
    restart = decision.steps[0]
    assert restart.playbook == "restart_services.yml"
    assert restart.extra_vars == {
        "components": ["websocket"],
        "restart_health_timeout": POLICY.restart_health_timeout_s,
    }
    assert decision.throttled is None and decision.breaker is None
    escalation = decision.escalation
    assert escalation is not None
    assert escalation["when"] == "if no step restores health"
    assert (escalation["level"], escalation["level_name"], escalation["priority"]) == (1, "critical", "critical")
    assert escalation["title"] == "[CRITICAL] websocket_service_down on web-01"


def test_the_same_failure_acted_on_within_the_throttle_window_is_left_alone() -> None:
    history = [acted(3, "websocket_service_down", ago_s=120)]
    decision = decide("web-01", row(incident=7), history, POLICY, NOW)
    assert decision.throttled is not None and "within the 300 s window" in decision.throttled
    assert decision.runnable == [] and decision.steps[0].reason == decision.throttled
    assert decision.escalation is None, "already acted on (and escalated if it had to be): no flapping"


def test_an_older_action_or_another_failure_type_does_not_throttle() -> None:
    history = [acted(3, "websocket_service_down", ago_s=301), acted(4, "redis_unavailable", ago_s=10)]
    decision = decide("web-01", row(incident=7), history, POLICY, NOW)
    assert decision.throttled is None and decision.breaker is None
    assert [step.step for step in decision.runnable] == ["restart_websocket", "enable_flash_fallback"]


def test_the_circuit_breaker_opens_after_breaker_max_incidents_in_the_window() -> None:
    history = [acted(n, "redis_unavailable", ago_s=600 + n) for n in (1, 2, 3)]
    decision = decide("web-01", row(incident=7), history, POLICY, NOW)
    assert decision.breaker is not None and decision.breaker.startswith("circuit breaker open: 3 automatic")
    assert decision.runnable == []
    assert decision.escalation is not None and decision.escalation["when"] == "now"
    assert decision.escalation["reason"] == decision.breaker


def test_the_current_incident_and_actions_outside_the_window_do_not_count_for_the_breaker() -> None:
    history = [acted(7, "redis_unavailable", ago_s=600), acted(1, "redis_unavailable", ago_s=4000)]
    history += [acted(2, "redis_unavailable", ago_s=900), acted(3, "redis_unavailable", ago_s=950)]
    decision = decide("web-01", row(incident=7), history, POLICY, NOW)
    assert decision.breaker is None, "incident 7 is this one, incident 1 is older than the window: 2 < 3"


def test_an_unhealthy_host_nothing_classified_is_the_unknown_type_and_escalates_now() -> None:
    decision = decide("web-01", {"status": "failed", "primary": None}, [], POLICY, NOW)
    unknown = catalogue.CATALOGUE[catalogue.UNKNOWN]
    assert decision.primary == catalogue.UNKNOWN and decision.failures == [catalogue.UNKNOWN]
    assert decision.level == int(unknown["base_level"])
    assert decision.steps == [] and decision.escalation is not None and decision.escalation["when"] == "now"
    assert decision.summary == "web-01 is failed and no failure type explains it"


@pytest.mark.parametrize("level,raised", [(1, 1), (2, 1), (3, 2), (4, 3)])
def test_escalation_raises_the_level_by_one_never_above_critical(level: int, raised: int) -> None:
    decision = decide("web-01", row(level=level), [], POLICY, NOW)
    assert decision.escalation is not None and decision.escalation["level"] == raised


def test_a_step_whose_playbook_this_version_lacks_is_skipped(tmp_path: Path) -> None:
    decision = decide("web-01", row(), [], POLICY, NOW, playbooks=tmp_path)
    assert decision.runnable == []
    assert decision.steps[0].reason == "no playbook restart_services.yml in this version of the toolkit"
    assert (
        decision.escalation is not None and decision.escalation["reason"] == "no step of the plan may run automatically"
    )


def test_the_fallback_to_flash_messages_is_automatic_unless_the_host_turns_it_off() -> None:
    """The one step that touches data and may still run on its own: the rollback to flash messages, under
    the policy switch auto_fallback, which a host turns off with notification_auto_fallback: false."""
    on = decide("web-01", row(incident=7), [], POLICY, NOW)
    assert "enable_flash_fallback" in [step.step for step in on.runnable]
    for value in (False, "false", "no", "off", 0):
        off = decide("web-01", row(incident=7), [], POLICY.for_host({"notification_auto_fallback": value}), NOW)
        [step] = [step for step in off.steps if step.step == "enable_flash_fallback"]
        assert not step.run and step.reason is not None and "notification_auto_fallback" in step.reason
    assert POLICY.for_host({"notification_auto_fallback": True}).auto_fallback
    assert POLICY.for_host({}) is POLICY
    # Every other step that touches data stays a human's, whatever the policy.
    backlog = decide("web-01", row(primary="delivery_backlog", incident=8), [], POLICY, NOW)
    [drain] = [step for step in backlog.steps if step.step == "drain_backlog_to_flash"]
    assert not drain.run and drain.reason == "touches data: never automatic, a human runs it"


def test_the_fallback_waits_for_the_circuit_breaker_and_the_throttle_like_any_step() -> None:
    history = [acted(n, "redis_unavailable", ago_s=600 + n) for n in (1, 2, 3)]
    decision = decide("web-01", row(incident=7), history, POLICY, NOW)
    assert decision.runnable == [] and decision.breaker is not None


def test_a_failure_only_a_deep_check_sees_is_verified_by_one() -> None:
    """A drill marked deep injects a fault the direct probes cannot see (a backlog, a full disk, a drifted
    config, a dead supervisord whose orphans still answer): the engine must verify its recovery with a health
    check too, or it would call the recovery done whatever the playbook did."""
    from notification_emergency.drills import FAULTS
    from notification_emergency.probes import DEEP_ONLY_TYPES

    deep = {fault.expects for fault in FAULTS.values() if fault.deep}
    assert deep and deep <= DEEP_ONLY_TYPES, deep - DEEP_ONLY_TYPES
