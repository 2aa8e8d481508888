"""/metrics for real: a served Dashboard whose host is down, its event store a SQLite file filled through the
store's own API the way the recovery engine fills it. Every scrape passes Debian's `promtool check metrics`;
states that end are gauges and go down, counters only grow; MTTD/MTTR are histograms; the circuit breaker and
the mode per host are gauges; a store that breaks gives store_up 0, not an error."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from notification_emergency.dashboard import Dashboard, create_app
from notification_emergency.dashboard.metrics import RECOVERY_OUTCOMES, recovery_outcome
from notification_emergency.engine import Policy
from notification_emergency.fallback import ON_FLASH
from notification_emergency.process import current_owner
from notification_emergency.store import EventStore
from tests.dashboard.conftest import PASSWORDS

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PREFIX = "notification_emergency_"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})? (?P<value>\S+)$")

Samples = dict[tuple[str, str], float]


def promtool_check_metrics(text: str) -> None:
    """`promtool check metrics` (Debian's prometheus package) finds nothing wrong in a scrape."""
    assert Path(PROMTOOL).exists(), "promtool is missing: scripts/bootstrap.sh installs it (apt-get install prometheus)"
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr


def samples(text: str) -> Samples:
    """``{(name, labels text): value}`` of a scrape's sample lines."""
    found: Samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, line
            found[(match["name"], match["labels"] or "")] = float(match["value"])
    return found


def types(text: str) -> dict[str, str]:
    return {line.split(" ")[2]: line.split(" ")[3] for line in text.splitlines() if line.startswith("# TYPE ")}


def counter_samples(text: str) -> Samples:
    """The samples of the counter and histogram families (what must never go down)."""
    kinds = types(text)
    return {
        key: value
        for key, value in samples(text).items()
        if kinds.get(re.sub(r"_(bucket|sum|count)$", "", key[0])) in ("counter", "histogram")
        or kinds.get(key[0]) == "counter"
    }


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in pairs.items()) + "}" if pairs else ""


@pytest.fixture
def dashboard(make_dashboard: Callable[..., Dashboard], offline_inventory: Path) -> Dashboard:
    return make_dashboard(offline_inventory)


@pytest.fixture
def scrape(dashboard: Dashboard) -> Callable[[], str]:
    """GET /metrics with a viewer's Basic credentials, as Prometheus does; every scrape is linted by promtool."""
    client: FlaskClient = create_app(dashboard).test_client()
    token = base64.b64encode(f"bob:{PASSWORDS['bob']}".encode()).decode()

    def get() -> str:
        answer = client.get("/metrics", headers={"Authorization": f"Basic {token}"})
        assert answer.status_code == 200, answer.text
        promtool_check_metrics(answer.text)
        return answer.text

    return get


def engine_history(store: EventStore, host: str) -> None:
    """What the recovery engine and the fallback tender record: three incidents acted on automatically within
    the hour (the circuit breaker's default limit), with each kind of outcome, one of them escalated."""
    now = datetime.now(UTC)
    first = store.open_incident(
        failure_type="websocket_service_down",
        level=2,
        hosts=[host],
        summary="websocket down",
        started_at=now - timedelta(minutes=30, seconds=4),
        detected_at=now - timedelta(minutes=30),
    )
    step = store.add_incident_action(first, action="restart_websocket", details={"automatic": True})
    store.finish_incident_action(step, outcome="recovered")
    store.update_incident(first, resolved_at=now - timedelta(minutes=30) + timedelta(seconds=45))
    second = store.open_incident(failure_type="redis_unavailable", level=2, hosts=[host], summary="redis down")
    for action, outcome in (("restart_redis", "failed (failed)"), ("restart_redis", "no effect")):
        step = store.add_incident_action(second, action=action, details={"automatic": True})
        store.finish_incident_action(step, outcome=outcome)
    store.add_incident_action(second, action="escalate", outcome="notified", details={"automatic": False})
    store.update_incident(second, resolved_at=now + timedelta(minutes=50))  # a human, 50 min later
    third = store.open_incident(failure_type="websocket_service_down", level=2, hosts=[host], summary="again")
    step = store.add_incident_action(third, action="enable_flash_fallback", details={"automatic": True})
    store.finish_incident_action(step, outcome=ON_FLASH)
    step = store.add_incident_action(third, action="restart_websocket", details={"automatic": True})
    store.finish_incident_action(step, outcome="timed out: stopped after 12 s, the rest of the auto-recover budget")
    store.add_incident_action(third, action="drain_backlog", outcome="skipped: touches data: never automatic")


def test_every_scrape_passes_promtool_with_the_right_types(dashboard: Dashboard, scrape: Callable[[], str]) -> None:
    empty = scrape()  # a fresh store
    assert samples(empty)[(PREFIX + "escalations_total", labels(failure_type="websocket_service_down"))] == 0, (
        "each failure type at 0 before its first escalation, so increase() sees the first"
    )
    engine_history(dashboard.store, "offline-01")
    text = scrape()  # a failing host (nothing answers on its ports) and a store with a history
    kinds, found = types(text), samples(text)

    def value(name: str, **pairs: str) -> float:
        return found[(PREFIX + name, labels(**pairs))]

    for name in ("runs", "notifications", "incidents_open", "circuit_breaker_open", "notification_mode"):
        assert kinds[PREFIX + name] == "gauge", name
    for name in ("runs_finished_total", "incidents_total", "recovery_actions_total", "escalations_total"):
        assert kinds[PREFIX + name] == "counter", name
    assert kinds[PREFIX + "detection_seconds"] == kinds[PREFIX + "recovery_seconds"] == "histogram"
    assert not [name for name, kind in kinds.items() if kind == "counter" and not name.endswith("_total")]
    assert not [name for name, kind in kinds.items() if kind != "counter" and name.endswith("_total")]

    assert value("host_healthy", host="offline-01") == 0
    assert value("notification_mode", host="offline-01", mode="websocket") == 0
    assert value("notification_mode", host="offline-01", mode="legacy") == 0, "mode unknown: 0 for both"
    assert value("circuit_breaker_open", host="offline-01") == 1, f"{Policy().breaker_max} incidents acted on"
    assert value("incidents_total") == 3 and value("incidents_resolved_total") == 2 and value("incidents_open") == 1
    actions = {
        (match["type"], match["action"], match["outcome"]): count
        for (name, pairs), count in found.items()
        if name == PREFIX + "recovery_actions_total"
        and (
            match := re.match(
                r'\{failure_type="(?P<type>.*)",action="(?P<action>.*)",outcome="(?P<outcome>.*)"\}', pairs
            )
        )
    }
    assert actions == {
        ("websocket_service_down", "restart_websocket", "recovered"): 1,
        ("redis_unavailable", "restart_redis", "failed"): 1,
        ("redis_unavailable", "restart_redis", "no_effect"): 1,
        ("redis_unavailable", "escalate", "escalated"): 1,
        ("websocket_service_down", "enable_flash_fallback", "fallback"): 1,
        ("websocket_service_down", "restart_websocket", "timed_out"): 1,
        ("websocket_service_down", "drain_backlog", "skipped"): 1,
    }
    assert value("escalations_total", failure_type="redis_unavailable") == 1
    assert value("escalations_total", failure_type="websocket_service_down") == 0
    # MTTD: 4 s (one incident with a known start); MTTR: 45 s and 50 min: cumulative buckets up to one hour.
    assert value("detection_seconds_bucket", le="2.5") == 0 and value("detection_seconds_bucket", le="5.0") == 1
    assert value("detection_seconds_count") == 1 and value("detection_seconds_sum") == pytest.approx(4.0)
    assert value("recovery_seconds_bucket", le="30.0") == 0 and value("recovery_seconds_bucket", le="60.0") == 1
    assert value("recovery_seconds_bucket", le="1800.0") == 1 and value("recovery_seconds_bucket", le="3600.0") == 2
    assert value("recovery_seconds_bucket", le="+Inf") == value("recovery_seconds_count") == 2


def test_states_that_end_go_down_while_counters_only_grow(dashboard: Dashboard, scrape: Callable[[], str]) -> None:
    store: EventStore = dashboard.store
    store.start_run(
        "r1", action="restart", playbook="restart_services.yml", actor="t", inputs={}, limit=None, check=False,
        owner=current_owner(),  # this process: alive, so running
    )  # fmt: skip
    store.record_notification("n1", title="t", message="m", priority="high", actor="t")
    before = scrape()
    got = samples(before)
    assert got[(PREFIX + "runs", labels(status="running"))] == 1
    assert got[(PREFIX + "notifications", labels(state="pending"))] == 1
    assert got[(PREFIX + "runs_finished_total", labels(status="successful"))] == 0

    store.finish_run("r1", status="successful", rc=0, hosts={})
    store.record_delivery_attempt("n1", channel="file", outcome="delivered")
    after = scrape()
    got = samples(after)
    assert got[(PREFIX + "runs", labels(status="running"))] == 0, "the gauge goes down when the run ends"
    assert got[(PREFIX + "notifications", labels(state="pending"))] == 0
    assert got[(PREFIX + "notifications", labels(state="delivered"))] == 1
    assert got[(PREFIX + "runs_finished_total", labels(status="successful"))] == 1, "the counter counts the event"
    assert got[(PREFIX + "delivery_attempts_total", labels(outcome="delivered"))] == 1
    assert got[(PREFIX + "notifications_created_total", "")] == 1
    old, new = counter_samples(before), counter_samples(after)
    assert old and set(old) <= set(new), "no counter series disappears"
    assert {key: (value, new[key]) for key, value in old.items() if new[key] < value} == {}, "no counter goes down"


def test_a_store_that_breaks_gives_store_up_0_and_still_valid_text(
    dashboard: Dashboard, scrape: Callable[[], str], state: Path
) -> None:
    assert samples(scrape())[(PREFIX + "store_up", "")] == 1
    for name in ("events.db", "events.db-wal", "events.db-shm"):  # overwritten in place, under the open store
        part = state / name
        part.write_bytes(b"not a database any more " * (part.stat().st_size // 24 + 1))
    broken = samples(scrape())
    assert broken[(PREFIX + "store_up", "")] == 0
    assert (PREFIX + "host_healthy", labels(host="offline-01")) in broken, "the probes' part still shows"
    assert not [key for key in broken if key[0].endswith("_total")], "no counter is made up while the store is down"


@pytest.mark.parametrize(
    ("action", "outcome", "label"),
    [
        ("restart_websocket", "recovered", "recovered"),
        ("enable_flash_fallback", ON_FLASH, "fallback"),
        ("restart_web", "no effect", "no_effect"),
        ("restart_web", "failed (failed)", "failed"),
        ("restart_web", "timed out: stopped after 3 s, the rest of the auto-recover budget", "timed_out"),
        ("restart_web", "skipped: circuit breaker open: 3 automatic recoveries of h in the last 60 min", "skipped"),
        ("escalate", "notification failed", "escalated"),
        ("websocket_canary", "healthy", "other"),
    ],
)
def test_each_recorded_outcome_has_its_label(action: str, outcome: str, label: str) -> None:
    assert recovery_outcome(action, outcome) == label and label in RECOVERY_OUTCOMES
