"""The event store's records against SQLite and PostgreSQL: runs (and runs whose process died), incidents
and their actions, emergency mode, notifications and their delivery attempts, the append-only audit trail."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from notification_emergency.process import current_owner, owner_alive
from notification_emergency.store import EventStore

from .store_support import at, iso

# -- runs --------------------------------------------------------------------------------------------------


def test_runs_round_trip_newest_first(store: EventStore) -> None:
    store.start_run(
        "run-a",
        action="restart",
        playbook="restart_services.yml",
        actor="alice",
        inputs={"service": "worker", "vault_password": "hunter2"},
        limit="web1",
        check=False,
        started_at=at(0),
    )
    store.start_run(
        "run-b", action="status", playbook=None, actor="bob", inputs={}, limit=None, check=True, started_at=at(5)
    )
    running = store.run("run-a")
    assert running is not None
    assert running["status"] == "running" and running["ok"] is None and running["finished_at"] is None
    assert running["inputs"] == {"service": "worker", "vault_password": "***"}

    hosts = {"web1": {"ok": 5, "changed": 1, "failed": 0, "unreachable": 0}}
    store.finish_run("run-a", status="successful", rc=0, hosts=hosts, report={"summary": "ok"}, finished_at=at(42.5))
    store.finish_run("run-b", status="failed", rc=2, hosts={}, finished_at=at(6))

    assert store.run("run-a") == {
        "run_id": "run-a",
        "action": "restart",
        "playbook": "restart_services.yml",
        "actor": "alice",
        "inputs": {"service": "worker", "vault_password": "***"},
        "limit": "web1",
        "check": False,
        "incident_id": None,
        "started_at": iso(0),
        "finished_at": "2025-03-01T12:00:42.500000Z",
        "duration_s": 42.5,
        "status": "successful",
        "rc": 0,
        "ok": True,
        "hosts": hosts,
        "report": {"summary": "ok"},
        "owner": None,
    }
    assert [r["run_id"] for r in store.runs()] == ["run-b", "run-a"]
    assert [r["run_id"] for r in store.runs(since=at(1))] == ["run-b"]
    assert [r["run_id"] for r in store.runs(limit=1)] == ["run-b"]
    assert store.run("run-b")["check"] is True  # type: ignore[index]
    assert store.run("run-b")["ok"] is False  # type: ignore[index]
    assert store.run("missing") is None

    with pytest.raises(ValueError, match="already recorded"):
        store.start_run("run-a", action="x", playbook=None, actor="a", inputs={}, limit=None, check=False)
    with pytest.raises(ValueError, match="never started"):
        store.finish_run("nope", status="failed", rc=1, hosts={})


def test_times_are_utc_with_z(store: EventStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    audit_id = store.audit(actor="a", action="b", target="c", at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two))
    naive = store.audit(actor="a", action="b", target="d", at=datetime(2025, 3, 1, 13, 0))  # naive = UTC
    now_id = store.audit(actor="a", action="b", target="e")
    trail = {row["id"]: row["at"] for row in store.audit_trail()}
    assert trail[audit_id] == "2025-03-01T12:00:00Z"
    assert trail[naive] == "2025-03-01T13:00:00Z"
    recorded = datetime.fromisoformat(trail[now_id])
    assert trail[now_id].endswith("Z") and abs((datetime.now(UTC) - recorded).total_seconds()) < 60
    assert [row["target"] for row in store.audit_trail(since=datetime(2025, 3, 1, 12, 30, tzinfo=UTC))] == ["e", "d"]


# -- incidents ---------------------------------------------------------------------------------------------


def test_incident_deduplication_and_host_merge(store: EventStore) -> None:
    first = store.open_incident(
        failure_type="redis_down", level=3, hosts=["web1"], summary="redis refused", detected_at=at(10)
    )
    same = store.open_incident(
        failure_type="redis_down", level=2, hosts=["web1", "web2"], summary="again", detected_at=at(20)
    )
    assert same == first
    incident = store.incident(first)
    assert incident is not None
    assert incident["hosts"] == ["web1", "web2"]
    assert incident["level"] == 2  # the more severe of 3 and 2
    assert incident["summary"] == "redis refused" and incident["detected_at"] == iso(10)

    # a less severe repeat keeps level 2; a host shared through the merge still matches
    assert store.open_incident(failure_type="redis_down", level=4, hosts=["web2"], summary="x") == first
    assert store.incident(first)["level"] == 2  # type: ignore[index]

    other_hosts = store.open_incident(failure_type="redis_down", level=3, hosts=["web9"], summary="elsewhere")
    other_type = store.open_incident(failure_type="worker_down", level=3, hosts=["web1"], summary="worker")
    assert len({first, other_hosts, other_type}) == 3

    store.update_incident(first, resolved_at=at(100), resolution="restarted redis")
    after = store.open_incident(failure_type="redis_down", level=3, hosts=["web1"], summary="back again")
    assert after not in (first, other_hosts, other_type)
    assert store.incident(first)["status"] == "resolved"  # type: ignore[index]

    # neither names a host: the same incident
    no_host = store.open_incident(failure_type="dns", level=2, hosts=[], summary="dns")
    assert store.open_incident(failure_type="dns", level=1, hosts=[], summary="dns") == no_host
    assert store.incident(no_host)["level"] == 1  # type: ignore[index]


def test_incident_lifecycle_and_actions(store: EventStore) -> None:
    incident_id = store.open_incident(
        failure_type="websocket_down",
        level=2,
        hosts=["web1"],
        summary="websocket probe failed",
        started_at=at(0),
        detected_at=at(12),
        classified_at=at(13),
        source="drill",
    )
    store.start_run(
        "r1",
        action="restart",
        playbook="restart_services.yml",
        actor="bot",
        inputs={},
        limit="web1",
        check=False,
        incident_id=incident_id,
        started_at=at(14),
    )
    second = store.add_incident_action(incident_id, action="verify", started_at=at(40))
    first = store.add_incident_action(
        incident_id, action="restart", run_id="r1", started_at=at(14), details={"service": "websocket"}
    )
    store.finish_incident_action(first, outcome="successful", finished_at=at(30), details={"token": "abc", "n": 1})
    store.finish_incident_action(second, outcome="failed", finished_at=at(41))
    store.update_incident(incident_id, level=1, escalated_at=at(35), notified_at=at(36))
    assert store.incident(incident_id)["status"] == "open"  # type: ignore[index]
    store.update_incident(incident_id, verified_at=at(50), resolved_at=at(72), resolution="restarted websocket")

    incident = store.incident(incident_id)
    assert incident is not None
    assert {k: incident[k] for k in incident if k != "actions"} == {
        "id": incident_id,
        "failure_type": "websocket_down",
        "level": 1,
        "status": "resolved",
        "hosts": ["web1"],
        "summary": "websocket probe failed",
        "source": "drill",
        "started_at": iso(0),
        "detected_at": iso(12),
        "classified_at": iso(13),
        "escalated_at": iso(35),
        "notified_at": iso(36),
        "verified_at": iso(50),
        "resolved_at": iso(72),
        "resolution": "restarted websocket",
        "detection_seconds": 12.0,
        "recovery_seconds": 60.0,
    }
    assert [(a["id"], a["action"], a["outcome"], a["ok"]) for a in incident["actions"]] == [
        (first, "restart", "successful", True),
        (second, "verify", "failed", False),
    ]
    restart = incident["actions"][0]
    assert restart["run_id"] == "r1" and restart["duration_s"] == 16.0
    assert restart["details"] == {"service": "websocket", "token": "***", "n": 1}
    assert store.run("r1")["incident_id"] == incident_id  # type: ignore[index]

    with pytest.raises(ValueError, match="no incident 999"):
        store.add_incident_action(999, action="x")
    with pytest.raises(ValueError, match="no incident action 999"):
        store.finish_incident_action(999, outcome="failed")
    with pytest.raises(ValueError, match="no incident 999"):
        store.update_incident(999, level=1)


def test_incident_listing_filters(store: EventStore) -> None:
    a = store.open_incident(failure_type="redis_down", level=2, hosts=["web1"], summary="a", detected_at=at(0))
    b = store.open_incident(failure_type="worker_down", level=3, hosts=["web2"], summary="b", detected_at=at(100))
    c = store.open_incident(failure_type="db_down", level=1, hosts=["web1", "db1"], summary="c", detected_at=at(200))
    store.add_incident_action(c, action="failover", started_at=at(210))
    store.update_incident(b, resolved_at=at(150))

    assert [i["id"] for i in store.incidents()] == [c, b, a]
    assert store.incidents()[0]["actions"][0]["action"] == "failover"
    assert [i["id"] for i in store.incidents(open_only=True)] == [c, a]
    assert [i["id"] for i in store.incidents(host="web1")] == [c, a]
    assert [i["id"] for i in store.incidents(host="nowhere")] == []
    assert [i["id"] for i in store.incidents(since=at(100))] == [c, b]
    assert [i["id"] for i in store.incidents(since=at(0), until=at(200))] == [b, a]
    assert store.incident(12345) is None


# -- emergency mode, notifications, audit ------------------------------------------------------------------


def test_emergencies(store: EventStore) -> None:
    on = store.record_emergency(
        action="activated", hosts=["web1", "web2"], actor="alice", reason="redis down", level=2, run_id="r9", at=at(0)
    )
    off = store.record_emergency(action="deactivated", hosts=["web1", "web2"], actor="alice", at=at(600))
    assert store.emergencies() == [
        {
            "id": off,
            "action": "deactivated",
            "hosts": ["web1", "web2"],
            "actor": "alice",
            "reason": None,
            "level": None,
            "run_id": None,
            "at": iso(600),
        },
        {
            "id": on,
            "action": "activated",
            "hosts": ["web1", "web2"],
            "actor": "alice",
            "reason": "redis down",
            "level": 2,
            "run_id": "r9",
            "at": iso(0),
        },
    ]
    assert [e["id"] for e in store.emergencies(since=at(1))] == [off]
    assert [e["id"] for e in store.emergencies(limit=1)] == [off]
    with pytest.raises(ValueError, match="activated"):
        store.record_emergency(action="toggled", hosts=[], actor="x")


def test_notifications_with_attempts(store: EventStore) -> None:
    incident = store.open_incident(failure_type="redis_down", level=2, hosts=["web1"], summary="x")
    store.record_notification(
        "n-1", title="Redis down", message="web1", priority="high", actor="bot", incident_id=incident, at=at(0)
    )
    store.record_notification("n-1", title="changed", message="changed", priority="low", actor="x", at=at(99))
    store.record_notification("n-2", title="Worker down", message="web2", priority="normal", actor="bot", at=at(10))
    store.record_notification("n-3", title="Recovered", message="all good", priority="low", actor="bot", at=at(20))
    store.record_delivery_attempt("n-1", channel="slack", outcome="failed", error="HTTP 500", at=at(1))
    store.record_delivery_attempt("n-1", channel="email", outcome="delivered", at=at(2))
    store.record_delivery_attempt("n-2", channel="slack", outcome="failed", error="timeout", at=at(11))
    store.record_delivery_attempt("n-2", channel="email", outcome="failed", error="refused", at=at(12))

    notes = store.notifications()
    assert [n["notification_id"] for n in notes] == ["n-3", "n-2", "n-1"]
    n1, n2, n3 = notes[2], notes[1], notes[0]
    assert n1["title"] == "Redis down" and n1["priority"] == "high" and n1["at"] == iso(0)  # idempotent
    assert n1["incident_id"] == incident
    assert n1["delivered_by"] == "email" and n1["status"] == "delivered"
    assert [(a["channel"], a["outcome"], a["error"], a["at"]) for a in n1["attempts"]] == [
        ("slack", "failed", "HTTP 500", iso(1)),
        ("email", "delivered", None, iso(2)),
    ]
    assert n2["delivered_by"] is None and n2["status"] == "failed" and len(n2["attempts"]) == 2
    assert n3["delivered_by"] is None and n3["status"] == "pending" and n3["attempts"] == []
    assert [n["notification_id"] for n in store.notifications(since=at(10), limit=1)] == ["n-3"]

    with pytest.raises(ValueError, match="delivered"):
        store.record_delivery_attempt("n-1", channel="slack", outcome="maybe")
    with pytest.raises(ValueError, match="record_notification first"):
        store.record_delivery_attempt("n-404", channel="slack", outcome="failed")


def test_audit_trail_is_append_only(store: EventStore) -> None:
    first = store.audit(actor="alice", action="activate", target="web1", details={"level": 2}, at=at(0))
    second = store.audit(actor="bob", action="deactivate", target="web1", at=at(5))
    assert [(r["id"], r["actor"], r["details"]) for r in store.audit_trail()] == [
        (second, "bob", None),
        (first, "alice", {"level": 2}),
    ]
    assert [r["id"] for r in store.audit_trail(limit=1)] == [second]

    engine = sa.create_engine(store.url)
    statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    try:
        for statement in statements:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert [(r["id"], r["actor"]) for r in store.audit_trail()] == [(second, "bob"), (first, "alice")]


# -- runs whose process died --------------------------------------------------------------------------------


def test_a_run_whose_process_died_shows_abandoned_and_is_reconciled(store: EventStore) -> None:
    """A CLI killed with SIGKILL never finishes its run: the record must not say ``running`` forever. A real
    process is started and killed here; its identity (pid and start time) is what the store records."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        node = current_owner().rsplit(":", 2)[0]
        ticks = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        dead_owner = f"{node}:{child.pid}:{ticks}"
        assert owner_alive(dead_owner) is True
        store.start_run(
            "alive",
            action="rollback",
            playbook="x.yml",
            actor="a",
            inputs={},
            limit=None,
            check=False,
            owner=current_owner(),
        )
        store.start_run(
            "killed",
            action="rollback",
            playbook="x.yml",
            actor="a",
            inputs={},
            limit=None,
            check=False,
            owner=dead_owner,
        )
        store.start_run(
            "elsewhere",
            action="rollback",
            playbook="x.yml",
            actor="a",
            inputs={},
            limit=None,
            check=False,
            owner="another-node:1:1",
        )
        assert store.run("killed")["status"] == "running"
    finally:
        child.kill()
        child.wait()
    assert owner_alive(dead_owner) is False
    # read-only readers see it at once, without writing
    seen = store.run("killed")
    assert seen is not None and seen["status"] == "abandoned" and seen["ok"] is False
    assert store.statistics()["runs"]["running"] == 3  # not reconciled yet: nothing was written
    assert store.reconcile_runs() == ["killed"]
    assert store.statistics()["runs"]["running"] == 2  # this process's run and the other node's
    assert store.run("alive")["status"] == "running"
    assert store.run("elsewhere")["status"] == "running"  # cannot be checked from here: left alone
    assert store.reconcile_runs() == []


def test_a_reused_pid_does_not_pass_for_the_owner() -> None:
    node, pid, ticks = current_owner().rsplit(":", 2)
    assert owner_alive(f"{node}:{pid}:{ticks}") is True
    assert owner_alive(f"{node}:{pid}:{int(ticks) + 1}") is False  # same pid, another process
    assert owner_alive(None) is None and owner_alive("garbage") is None
