"""The event store against SQLite and PostgreSQL: schema migrations, every record type, the timeline,
statistics checked against hand-computed numbers, the append-only audit trail, refused locations and
concurrent writers in several processes."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from notification_emergency import store as store_module
from notification_emergency.api import EmergencyToolkit
from notification_emergency.errors import EXIT_BAD_INPUT
from notification_emergency.store import (
    MIGRATIONS,
    EventStore,
    StoreError,
    default_store_url,
    duration_summary,
    state_dir,
    store_url,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
LATEST = max(version for version, _, _ in MIGRATIONS)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, not yet created store: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return store_url(tmp_path / "state" / "events.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(target_url: str) -> Iterator[EventStore]:
    with EventStore(target_url) as opened:
        yield opened


def migration_rows(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text("SELECT * FROM schema_migrations ORDER BY version"))]
    finally:
        engine.dispose()


# -- locations ---------------------------------------------------------------------------------------------


def test_state_dir_and_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFICATION_EMERGENCY_STATE_DIR", raising=False)
    monkeypatch.delenv("NOTIFICATION_EMERGENCY_STORE", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "notification-emergency"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "notification-emergency"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STATE_DIR", str(tmp_path / "mine"))
    assert state_dir() == tmp_path / "mine"
    assert default_store_url() == f"sqlite:///{tmp_path}/mine/events.db"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(tmp_path / "other.db"))
    assert default_store_url() == f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", "postgresql+psycopg://ops@db.example/events")
    assert default_store_url() == "postgresql+psycopg://ops@db.example/events"


def test_store_url_normalisation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(tmp_path / "env.db"))
    assert store_url(None) == f"sqlite:///{tmp_path}/env.db"
    assert store_url("events.db") == f"sqlite:///{tmp_path}/events.db"
    assert store_url(tmp_path / "x.db") == f"sqlite:///{tmp_path}/x.db"
    assert store_url("sqlite:////var/lib/x.db") == "sqlite:////var/lib/x.db"
    assert store_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def test_sqlite_store_file_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "events.db"
    with EventStore(path) as opened:
        assert opened.url == f"sqlite:///{path}"
        assert opened.display_url == opened.url
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_mode & 0o777 == 0o600
        with opened._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


@pytest.mark.parametrize("kind", ["under-a-file", "under-a-file-deeper", "proc-dir", "proc-file", "a-directory"])
def test_unwritable_sqlite_path_is_refused(kind: str, tmp_path: Path) -> None:
    blocker = tmp_path / "regular-file"
    blocker.write_text("not a directory\n")
    path = {
        "under-a-file": blocker / "events.db",
        "under-a-file-deeper": blocker / "sub" / "events.db",
        "proc-dir": Path("/proc/notification-emergency-test/events.db"),
        "proc-file": Path("/proc/events.db"),
        "a-directory": tmp_path,
    }[kind]
    with pytest.raises(StoreError) as caught:
        EventStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "--store or NOTIFICATION_EMERGENCY_STORE" in message
    assert caught.value.exit_code == EXIT_BAD_INPUT
    # no chained SQLAlchemy or OS traceback
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_store_from_environment_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(tmp_path / "f" / "events.db"))
    with pytest.raises(StoreError, match=str(tmp_path / "f")):
        EventStore()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the events you are looking for\n" * 100)
    with pytest.raises(StoreError, match=f"{path}.*not a database.*--store"):
        EventStore(path)
    assert path.read_text().startswith("these are not")


@pytest.mark.parametrize(
    "url",
    ["mysql://ops:hunter2@db.example/events", "http://ops:hunter2@db.example/", "sqlite+nodriver://ops:hunter2@/x.db"],
)
def test_unsupported_url_is_refused_with_password_masked(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        EventStore(url)
    message = str(caught.value)
    assert "hunter2" not in message
    assert "ops:***@" in message
    assert "postgresql+psycopg://" in message


def test_unreachable_postgresql_is_refused_with_password_masked() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        EventStore("postgresql://alice:s3cr3t-pw@127.0.0.1:1/events")
    message = str(caught.value)
    assert "s3cr3t-pw" not in message
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/events" in message
    assert "reachable" in message and "--store" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert time.monotonic() - started < 10


def test_a_store_lost_after_opening_gives_store_error(
    postgres_url: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    with EventStore(postgres_url) as opened:
        opened.audit(actor="a", action="b", target="c")
        pg_admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        with pytest.raises(StoreError, match=r"cannot use the event store at postgresql\+psycopg://.*does not exist"):
            opened.audit(actor="a", action="b", target="c")


# -- migrations --------------------------------------------------------------------------------------------


def test_migrations_applied_once_and_idempotent_on_reopen(target_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with EventStore(target_url) as first:
        assert first.schema_version == LATEST
    rows = migration_rows(target_url)
    assert [(row[0], row[1]) for row in rows] == [(version, description) for version, description, _ in MIGRATIONS]

    with EventStore(target_url) as again:
        assert again.schema_version == LATEST
    assert migration_rows(target_url) == rows  # nothing re-applied, applied_at unchanged

    applied: list[int] = []

    def add_column(conn: sa.Connection) -> None:
        applied.append(1)
        conn.execute(sa.text("ALTER TABLE audit_log ADD COLUMN test_extra INTEGER"))

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, (LATEST + 1, "test: add a column", add_column)])
    with EventStore(target_url) as upgraded:
        assert upgraded.schema_version == LATEST + 1
        upgraded.audit(actor="t", action="a", target="x")
    with EventStore(target_url) as reopened:
        assert reopened.schema_version == LATEST + 1
    assert applied == [1]
    assert [row[0] for row in migration_rows(target_url)] == [*range(1, LATEST + 2)]


def test_newer_schema_is_refused(target_url: str) -> None:
    EventStore(target_url).close()
    engine = sa.create_engine(target_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO schema_migrations (version, description, applied_at) VALUES (:v, 'future', :t)"),
            {"v": LATEST + 5, "t": T0.replace(tzinfo=None)},
        )
    engine.dispose()
    with pytest.raises(StoreError, match=rf"schema version {LATEST + 5}.*upgrade the package"):
        EventStore(target_url)


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


# -- concurrent writers ------------------------------------------------------------------------------------

AUDITS_PER_WORKER = 100
RUNS_PER_WORKER = 25


def _concurrent_writer(url: str, worker: int, barrier: Any) -> None:
    """One process: open the (fresh) store when every worker is ready, then write audits and runs."""
    barrier.wait(timeout=120)
    with EventStore(url) as opened:
        for i in range(AUDITS_PER_WORKER):
            opened.audit(actor=f"worker-{worker}", action="write", target=f"record-{i}")
            if i % (AUDITS_PER_WORKER // RUNS_PER_WORKER) == 0:
                run_id = f"w{worker}-r{i}"
                opened.start_run(
                    run_id,
                    action="status",
                    playbook=None,
                    actor=f"worker-{worker}",
                    inputs={"i": i},
                    limit=None,
                    check=True,
                )
                opened.finish_run(run_id, status="successful", rc=0, hosts={})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend, workers", [("sqlite", 8), ("postgresql", 4)])
def test_concurrent_writers_lose_nothing(backend: str, workers: int, request: pytest.FixtureRequest) -> None:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    url = store_url(tmp_path / "events.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_concurrent_writer, args=(url, n, barrier)) for n in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=100)
    assert [p.exitcode for p in processes] == [0] * workers

    assert [row[0] for row in migration_rows(url)] == [version for version, _, _ in MIGRATIONS]
    with EventStore(url) as opened:
        trail = opened.audit_trail(limit=100_000)
        runs = opened.runs(limit=100_000)
        stats = opened.statistics()
    assert len(trail) == workers * AUDITS_PER_WORKER
    assert len({row["id"] for row in trail}) == len(trail)
    for worker in range(workers):
        targets = sorted(int(r["target"].split("-")[1]) for r in trail if r["actor"] == f"worker-{worker}")
        assert targets == list(range(AUDITS_PER_WORKER))
    assert len(runs) == workers * RUNS_PER_WORKER
    assert stats["runs"] == {
        "total": workers * RUNS_PER_WORKER,
        "successful": workers * RUNS_PER_WORKER,
        "failed": 0,
        "running": 0,
    }


def test_the_cli_loads_without_the_event_store_and_the_toolkit_opens_it_on_first_use(tmp_path: Path) -> None:
    """``status --quick`` and the watch's probes need no store: the CLI, the API and the watch import without
    SQLAlchemy (about 0.3 s of a 2-3 s fleet status). The toolkit opens its store on first use, and a bad one
    is refused then with the store's own message."""
    code = (
        "import sys, notification_emergency.cli, notification_emergency.api, notification_emergency.watch; "
        "print(sorted(m for m in ('sqlalchemy', 'notification_emergency.store') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded

    toolkit = EmergencyToolkit(store=tmp_path / "events.db")
    assert not (tmp_path / "events.db").exists(), "nothing is opened before it is needed"
    assert isinstance(toolkit.store, EventStore) and toolkit.store is toolkit.store
    assert (tmp_path / "events.db").exists()

    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match=f"{notes}.*not a database.*--store"):
        EmergencyToolkit(store=notes).store.close()


def test_a_run_whose_process_died_shows_abandoned_and_is_reconciled(store: EventStore) -> None:
    """A CLI killed with SIGKILL never finishes its run: the record must not say ``running`` forever. A real
    process is started and killed here; its identity (pid and start time) is what the store records."""
    import subprocess
    import sys

    from notification_emergency.process import current_owner, owner_alive

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
    from notification_emergency.process import current_owner, owner_alive

    node, pid, ticks = current_owner().rsplit(":", 2)
    assert owner_alive(f"{node}:{pid}:{ticks}") is True
    assert owner_alive(f"{node}:{pid}:{int(ticks) + 1}") is False  # same pid, another process
    assert owner_alive(None) is None and owner_alive("garbage") is None
