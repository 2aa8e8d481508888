"""The event store's read models against SQLite and PostgreSQL: the merged timeline of events, and
statistics checked against hand-computed numbers."""

from __future__ import annotations

import pytest

from notification_emergency.store import EventStore, duration_summary

from .store_support import at, iso

# -- timeline and statistics -------------------------------------------------------------------------------


def test_events_timeline(store: EventStore) -> None:
    store.audit(actor="alice", action="login", target="dashboard", at=at(0))
    store.start_run(
        "r1",
        action="restart",
        playbook="restart_services.yml",
        actor="alice",
        inputs={},
        limit="web1",
        check=False,
        started_at=at(10),
    )
    store.finish_run("r1", status="successful", rc=0, hosts={}, finished_at=at(40))
    incident = store.open_incident(
        failure_type="redis_down", level=2, hosts=["web1"], summary="redis refused", detected_at=at(20)
    )
    store.add_incident_action(incident, action="restart", run_id="r1", started_at=at(30), outcome="failed")
    store.record_emergency(action="activated", hosts=["web1"], actor="alice", reason="redis", level=2, at=at(50))
    store.record_notification("n1", title="Redis down", message="m", priority="high", actor="bot", at=at(60))
    store.record_delivery_attempt("n1", channel="email", outcome="delivered", at=at(61))
    store.start_run(
        "r2", action="status", playbook=None, actor="bob", inputs={}, limit=None, check=True, started_at=at(70)
    )

    events = store.events()
    assert [(e["kind"], e["at"]) for e in events] == [
        ("run", iso(70)),
        ("notification", iso(60)),
        ("emergency", iso(50)),
        ("action", iso(30)),
        ("incident", iso(20)),
        ("run", iso(10)),
        ("audit", iso(0)),
    ]
    assert [e["ok"] for e in events] == [None, True, None, False, False, True, None]
    assert [e["ref"] for e in events][:2] == ["r2", "n1"]
    assert events[4]["ref"] == incident
    assert events[0]["summary"] == "run status (check mode) by bob: running"
    assert events[1]["summary"] == "notification [high] Redis down: delivered via email"
    assert events[2]["summary"] == "emergency mode activated on web1 by alice (level 2): redis"
    assert events[3]["summary"] == f"incident #{incident} action restart: failed"
    assert events[4]["summary"] == f"incident #{incident} level 2 redis_down on web1: redis refused [open]"
    assert events[5]["summary"] == "run restart on web1 by alice: successful (rc=0)"
    assert events[6]["summary"] == "alice login dashboard"

    assert [e["kind"] for e in store.events(limit=3)] == ["run", "notification", "emergency"]
    assert [e["at"] for e in store.events(since=at(30))] == [iso(70), iso(60), iso(50), iso(30)]
    assert [e["ref"] for e in store.events(kinds={"run"})] == ["r2", "r1"]
    assert [e["kind"] for e in store.events(kinds={"audit", "incident"})] == ["incident", "audit"]
    with pytest.raises(ValueError, match="unknown event kinds"):
        store.events(kinds={"run", "weather"})

    store.update_incident(incident, resolved_at=at(80))
    resolved = store.events(kinds={"incident"})[0]
    assert resolved["ok"] is True and resolved["summary"].endswith("[resolved in 60s]")


def test_duration_summary_linear_interpolation() -> None:
    assert duration_summary([]) == {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    assert duration_summary([7]) == {"count": 1, "mean": 7, "p50": 7, "p90": 7, "p95": 7, "max": 7}
    assert duration_summary([30, 10]) == pytest.approx(
        {"count": 2, "mean": 20, "p50": 20, "p90": 28, "p95": 29, "max": 30}
    )
    assert duration_summary(range(1, 11)) == pytest.approx(
        {"count": 10, "mean": 5.5, "p50": 5.5, "p90": 9.1, "p95": 9.55, "max": 10}
    )


def test_statistics_against_hand_computed_values(store: EventStore) -> None:
    # redis_down: detection 10 s and 30 s, recovery 60 s and 120 s, both resolved
    a = store.open_incident(
        failure_type="redis_down", level=2, hosts=["web1"], summary="a", started_at=at(0), detected_at=at(10)
    )
    store.update_incident(a, resolved_at=at(70))
    b = store.open_incident(
        failure_type="redis_down", level=2, hosts=["web2"], summary="b", started_at=at(100), detected_at=at(130)
    )
    store.update_incident(b, resolved_at=at(250))
    # worker_down: start unknown; one recovered in 30 s, one still open
    c = store.open_incident(failure_type="worker_down", level=3, hosts=["web1"], summary="c", detected_at=at(300))
    store.update_incident(c, resolved_at=at(330))
    store.open_incident(failure_type="worker_down", level=3, hosts=["web3"], summary="d", detected_at=at(400))

    for run_id, status, rc, start in [("s", "successful", 0, 1), ("f", "failed", 2, 2), ("t", "timeout", 124, 3)]:
        store.start_run(
            run_id, action="restart", playbook=None, actor="a", inputs={}, limit=None, check=False, started_at=at(start)
        )
        store.finish_run(run_id, status=status, rc=rc, hosts={}, finished_at=at(start + 1))
    store.start_run(
        "r", action="status", playbook=None, actor="a", inputs={}, limit=None, check=False, started_at=at(4)
    )
    store.record_emergency(action="activated", hosts=["web1"], actor="a", at=at(5))
    store.record_emergency(action="activated", hosts=["web2"], actor="a", at=at(6))
    store.record_emergency(action="deactivated", hosts=["web1"], actor="a", at=at(7))
    for nid, outcomes in [("n1", ["failed", "delivered"]), ("n2", ["failed"]), ("n3", [])]:
        store.record_notification(nid, title=nid, message="m", priority="high", actor="a", at=at(8))
        for outcome in outcomes:
            store.record_delivery_attempt(nid, channel="email", outcome=outcome, at=at(9))

    stats = store.statistics()
    assert stats["incidents"] == 4 and stats["open"] == 1 and stats["resolved"] == 3
    assert stats["recovery_rate"] == pytest.approx(0.75)
    assert stats["runs"] == {"total": 4, "successful": 1, "failed": 2, "running": 1}
    assert stats["emergencies"] == {"activated": 2, "deactivated": 1}
    assert stats["notifications"] == {"total": 3, "delivered": 1, "failed": 1, "pending": 1}
    # detection [10, 30]: mean 20, p50 20, p90 10 + 0.9 * 20 = 28, p95 29
    assert stats["detection_seconds"] == pytest.approx(
        {"count": 2, "mean": 20.0, "p50": 20.0, "p90": 28.0, "p95": 29.0, "max": 30.0}
    )
    # recovery [30, 60, 120]: mean 70, p50 60, p90 at rank 1.8 = 60 + 0.8 * 60 = 108, p95 at rank 1.9 = 114
    assert stats["recovery_seconds"] == pytest.approx(
        {"count": 3, "mean": 70.0, "p50": 60.0, "p90": 108.0, "p95": 114.0, "max": 120.0}
    )
    redis, worker = stats["by_type"]["redis_down"], stats["by_type"]["worker_down"]
    assert set(stats["by_type"]) == {"redis_down", "worker_down"}
    assert (redis["incidents"], redis["resolved"], redis["recovery_rate"]) == (2, 2, 1.0)
    assert redis["detection_seconds"]["mean"] == pytest.approx(20.0)
    assert redis["recovery_seconds"] == pytest.approx(
        {"count": 2, "mean": 90.0, "p50": 90.0, "p90": 114.0, "p95": 117.0, "max": 120.0}
    )
    assert (worker["incidents"], worker["resolved"], worker["open"], worker["recovery_rate"]) == (2, 1, 1, 0.5)
    assert worker["detection_seconds"] == {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    assert worker["recovery_seconds"]["mean"] == pytest.approx(30.0)

    window = store.statistics(since=at(100), until=at(400))  # b and c; runs etc. all before 100
    assert (window["incidents"], window["resolved"], window["recovery_rate"]) == (2, 2, 1.0)
    assert window["recovery_seconds"]["mean"] == pytest.approx(75.0)  # (120 + 30) / 2
    assert window["runs"]["total"] == 0 and window["notifications"]["total"] == 0
    early = store.statistics(until=at(5))
    assert early["runs"]["total"] == 4 and early["emergencies"] == {"activated": 0, "deactivated": 0}


def test_statistics_of_an_empty_store(store: EventStore) -> None:
    empty = {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    assert store.statistics() == {
        "incidents": 0,
        "open": 0,
        "resolved": 0,
        "recovery_rate": None,
        "detection_seconds": empty,
        "recovery_seconds": empty,
        "runs": {"total": 0, "successful": 0, "failed": 0, "running": 0},
        "emergencies": {"activated": 0, "deactivated": 0},
        "notifications": {"total": 0, "delivered": 0, "failed": 0, "pending": 0},
        "by_type": {},
    }


def test_totals_for_metrics_against_hand_computed_values(store: EventStore) -> None:
    """The all-time totals behind /metrics: finished runs apart from running ones, incident durations, finished
    actions grouped by failure type, step and outcome, the incidents acted on automatically per host."""
    empty = store.totals(acted_since=at(0))
    assert empty["incidents"] == 0 and empty["actions"] == [] and empty["acted"] == {}
    assert empty["notifications"] == {"delivered": 0, "failed": 0, "pending": 0}
    for run_id, status in (("a", "successful"), ("b", "failed"), ("c", None)):
        store.start_run(run_id, action="x", playbook="x.yml", actor="t", inputs={}, limit=None, check=False)
        if status:
            store.finish_run(run_id, status=status, rc=0 if status == "successful" else 2, hosts={})
    first = store.open_incident(
        failure_type="redis_unavailable", level=2, hosts=["h1", "h2"], summary="s", started_at=at(0), detected_at=at(3)
    )
    store.update_incident(first, resolved_at=at(63))
    second = store.open_incident(
        failure_type="redis_unavailable", level=2, hosts=["h3"], summary="s", detected_at=at(5)
    )
    for incident, outcome in ((first, "no effect"), (first, "recovered"), (second, "no effect")):
        step = store.add_incident_action(
            incident, action="restart_redis", started_at=at(10), details={"automatic": True}
        )
        store.finish_incident_action(step, outcome=outcome, finished_at=at(20))
    store.add_incident_action(second, action="escalate", started_at=at(30), outcome="notified", finished_at=at(30))
    store.add_incident_action(second, action="restart_redis", started_at=at(40), details={"automatic": True})
    store.record_notification("n1", title="t", message="m", priority="high", actor="t", at=at(30))
    store.record_notification("n2", title="t", message="m", priority="high", actor="t", at=at(31))
    store.record_delivery_attempt("n1", channel="email", outcome="failed", at=at(31))
    store.record_delivery_attempt("n1", channel="file", outcome="delivered", at=at(32))
    store.record_emergency(action="activated", hosts=["h3"], actor="t", level=1, at=at(30))

    totals = store.totals(acted_since=at(15))
    assert totals["runs_finished"] == {"successful": 1, "failed": 1} and totals["runs_running"] == 1
    assert (totals["incidents"], totals["incidents_resolved"], totals["incidents_open"]) == (2, 1, 1)
    assert totals["incidents_by_type"] == {"redis_unavailable": 2}
    assert totals["detection_seconds"] == [3.0] and totals["recovery_seconds"] == [60.0]
    assert sorted((a["action"], a["outcome"], a["count"]) for a in totals["actions"]) == [
        ("escalate", "notified", 1),
        ("restart_redis", "no effect", 2),
        ("restart_redis", "recovered", 1),
    ], "the unfinished action is not counted yet"
    assert totals["acted"] == {"h3": [second]}, "only automatic actions started since acted_since"
    assert store.totals(acted_since=at(0))["acted"] == {"h1": [first], "h2": [first], "h3": [second]}
    assert totals["notifications"] == {"delivered": 1, "failed": 0, "pending": 1}
    assert totals["notifications_created"] == 2 and totals["delivery_attempts"] == {"delivered": 1, "failed": 1}
    assert totals["emergencies"] == {"activated": 1, "deactivated": 0}


def test_a_hosts_timeline(store: EventStore) -> None:
    """``events(host=)``: what concerns one host, never a host whose name contains it (web1 vs web10), names
    with LIKE's wildcards and non-ASCII letters taken literally."""

    def run(run_id: str, limit: str | None, recap: dict[str, dict[str, int]], minute: int) -> None:
        store.start_run(
            run_id, action="x", playbook="x.yml", actor="a", inputs={}, limit=limit, check=False, started_at=at(minute)
        )
        store.finish_run(run_id, status="successful", rc=0, hosts=recap, finished_at=at(minute + 1))

    run("alone", "web1", {"web1": {"ok": 1}}, 0)
    run("listed", "web0,web1,web2", {}, 2)
    run("first", "web1,web2", {}, 4)
    run("last", "web2,web1", {}, 6)
    run("recap", None, {"web1": {"ok": 1}, "web2": {"ok": 1}}, 8)
    run("other", "web10", {"web10": {"ok": 1}}, 10)
    run("wild", "w_b1", {"w_b1": {"ok": 1}}, 12)
    run("unicode", "wéb1", {"wéb1": {"ok": 1}}, 14)
    mine = store.open_incident(failure_type="redis_down", level=2, hosts=["web1"], summary="s", detected_at=at(20))
    store.open_incident(failure_type="web_service_down", level=1, hosts=["web10"], summary="s", detected_at=at(21))
    store.add_incident_action(mine, action="restart", started_at=at(22), outcome="recovered")
    store.record_emergency(action="activated", hosts=["web2", "web1"], actor="a", level=2, at=at(30))
    store.record_emergency(action="activated", hosts=["%web1%"], actor="a", level=2, at=at(31))
    store.audit(actor="a", action="login", target="web1", at=at(40))

    events = store.events(host="web1")
    assert [(e["kind"], e["ref"]) for e in events] == [
        ("emergency", 1),
        ("action", 1),
        ("incident", mine),
        ("run", "recap"),
        ("run", "last"),
        ("run", "first"),
        ("run", "listed"),
        ("run", "alone"),
    ]
    assert [e["ref"] for e in store.events(host="w_b1")] == ["wild"], "_ is no wildcard"
    assert [e["ref"] for e in store.events(host="wéb1")] == ["unicode"]
    assert [e["ref"] for e in store.events(host="%web1%")] == [2]
    assert store.events(host="nowhere") == []
    assert len(store.events(host="web1", limit=2)) <= 2 * 4  # (the limit is per kind, as without a host)
