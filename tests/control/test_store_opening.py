"""Opening the event store: where it lives, locations and URLs it refuses (passwords masked), schema
migrations, concurrent writers in several processes, and the CLI that loads without it."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from notification_emergency.api import EmergencyToolkit
from notification_emergency.errors import EXIT_BAD_INPUT
from notification_emergency.store import (
    MIGRATIONS,
    EventStore,
    StoreError,
    default_store_url,
    migrations,
    state_dir,
    store_url,
)

from .store_support import T0

LATEST = max(version for version, _, _ in MIGRATIONS)


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


@pytest.mark.parametrize(
    "url, shown",
    [
        # a port that is not a number was a ValueError traceback
        ("postgresql://ops:hunter2@db.example:fivefourthree/events", "postgresql+psycopg://***"),
        # a password with an @ showed its part after the @
        ("my-db://ops:hun@ter2@db.example/events", "my-db://ops:***@db.example/events"),
    ],
)
def test_a_url_that_cannot_be_parsed_is_refused_with_password_masked(url: str, shown: str) -> None:
    with pytest.raises(StoreError) as caught:
        EventStore(url)
    message = str(caught.value)
    assert f"event store URL {shown!r} is not a URL or a path" in message
    assert "hunter2" not in message and "hun@ter2" not in message and "ter2" not in message
    assert caught.value.exit_code == EXIT_BAD_INPUT


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

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, (LATEST + 1, "test: add a column", add_column)])
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
# postgres_url is asked for at run time, out of the collection hook's sight: the PostgreSQL case is marked here.
@pytest.mark.parametrize("backend, workers", [("sqlite", 8), pytest.param("postgresql", 4, marks=pytest.mark.postgres)])
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
