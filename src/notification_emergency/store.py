"""The event store: what happened during incidents, kept in SQLite (default) or PostgreSQL (shared).

It records every playbook run (who, what, when, inputs, outcome), incidents with the moments needed to
compute detection and recovery times (started, detected, classified, verified, resolved), the recovery
actions taken for each incident, emergency-mode activations and deactivations, notifications with each
delivery attempt, and an append-only audit trail.

Where it lives: :func:`default_store_url` (``NOTIFICATION_EMERGENCY_STORE``, a URL or a plain path to a
SQLite file; else ``events.db`` in :func:`state_dir`). Several control nodes share one store by pointing at
the same ``postgresql+psycopg://`` URL.

Conventions:

* Times are stored in UTC. Methods take ``datetime | None`` (``None`` means now); a naive datetime is taken
  as UTC. Every returned dict gives times as ISO-8601 UTC strings ending in ``Z`` (or ``None``).
* Time filters: ``since`` is inclusive, ``until`` exclusive.
* Values under keys that look like secrets (``password``, ``token``, ``secret``...) in run inputs, action
  details and audit details are stored as ``"***"``: the audit trail cannot be edited afterwards.
* Schema changes are the ordered, versioned :data:`MIGRATIONS`; opening a store applies the missing ones,
  one transaction each, under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``).
* Concurrent writers: every write is its own short transaction. On SQLite the file is in WAL mode, write
  transactions start with ``BEGIN IMMEDIATE`` and wait up to 30 s for the lock (busy timeout).
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

from .errors import BadInput
from .paths import state_dir
from .process import owner_alive
from .text import shown

__all__ = [
    "EVENT_KINDS",
    "MIGRATIONS",
    "EventStore",
    "StoreError",
    "default_store_url",
    "duration_summary",
    "state_dir",
    "store_url",
]

STORE_ENV = "NOTIFICATION_EMERGENCY_STORE"
BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10
FIX_HINT = "choose a writable directory with --store or NOTIFICATION_EMERGENCY_STORE"
NOT_A_STORE_HINT = "choose the event store with --store or NOTIFICATION_EMERGENCY_STORE"
EVENT_KINDS = frozenset({"run", "incident", "action", "emergency", "notification", "audit"})
EMERGENCY_ACTIONS = frozenset({"activated", "deactivated"})
# kept: written to the local notifications.log as the last resort because no channel delivered it (nobody
# was reached, so the notification is not delivered).
DELIVERY_OUTCOMES = frozenset({"delivered", "failed", "kept"})
# Outcomes of runs and incident actions read as success / failure in the timeline; others are neither.
OK_OUTCOMES = frozenset({"ok", "success", "successful", "succeeded", "recovered", "verified", "resolved", "done"})
FAILED_OUTCOMES = frozenset({"failed", "failure", "error", "timeout", "timed_out", "canceled", "cancelled"})
_SECRET_KEY = re.compile(
    r"(^|[_-])pass$|passw(or)?d|passphrase|secret|token|api[_-]?key|private[_-]?key|credential", re.I
)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# pg_advisory_xact_lock keys: a constant for migrations, one per failure type for incident de-duplication.
_PG_MIGRATION_LOCK = 0x6E655F6D6967  # "ne_mig"
_PG_INCIDENT_LOCK_BASE = 0x6E655F696E00


class StoreError(BadInput):
    """The event store cannot be opened or used; the message names the store (password masked) and the fix."""


class UnknownKind(BadInput, ValueError):
    """An event kind that is not one of :data:`EVENT_KINDS` (bad input: exit 2)."""


# --------------------------------------------------------------------------------------------------------
# Where the store lives


def default_store_url() -> str:
    """``NOTIFICATION_EMERGENCY_STORE`` (a URL or a SQLite file path), else SQLite ``state_dir()/events.db``."""
    configured = os.environ.get(STORE_ENV)
    if configured:
        return store_url(configured)
    return store_url(state_dir() / "events.db")


def store_url(value: str | Path | None) -> str:
    """Normalise a store location to a SQLAlchemy URL.

    ``None`` -> :func:`default_store_url`; a filesystem path -> ``sqlite:////absolute/path``; a URL is kept
    as given, except that ``postgresql://`` and ``postgres://`` get the psycopg (3) driver the package uses.
    """
    if value is None:
        return default_store_url()
    text = str(value)
    if isinstance(value, str) and _URL_SCHEME.match(text):
        for prefix in ("postgresql://", "postgres://"):
            if text.startswith(prefix):
                return "postgresql+psycopg://" + text[len(prefix) :]
        return text
    return "sqlite:///" + str(Path(text).expanduser().absolute())


def _display(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------------------------
# Schema


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A UTC timestamp: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite; always aware UTC in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

METADATA = sa.MetaData()

SCHEMA_MIGRATIONS = sa.Table(
    "schema_migrations",
    METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

RUNS = sa.Table(
    "runs",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("playbook", sa.String(255)),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("inputs", JSONType, nullable=False),
    sa.Column("host_limit", sa.Text),
    sa.Column("check_mode", sa.Boolean, nullable=False),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("rc", sa.Integer),
    sa.Column("hosts", JSONType),
    sa.Column("report", JSONType),
    # node:pid:start of the process that started it (notification_emergency.process), from schema version 3
    sa.Column("owner", sa.Text),
    sa.Index("ix_runs_started_at", "started_at"),
)

INCIDENTS = sa.Table(
    "incidents",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("failure_type", sa.String(100), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("hosts", JSONType, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("detected_at", UTCDateTime, nullable=False),
    sa.Column("classified_at", UTCDateTime),
    sa.Column("escalated_at", UTCDateTime),
    sa.Column("notified_at", UTCDateTime),
    sa.Column("verified_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("resolution", sa.Text),
    sa.Index("ix_incidents_detected_at", "detected_at"),
    sa.Index("ix_incidents_open", "status", "failure_type"),
)

INCIDENT_ACTIONS = sa.Table(
    "incident_actions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("outcome", sa.String(64)),
    sa.Column("details", JSONType),
    sa.Index("ix_incident_actions_incident", "incident_id", "started_at"),
    sa.Index("ix_incident_actions_started_at", "started_at"),
)

EMERGENCIES = sa.Table(
    "emergencies",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("hosts", JSONType, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("level", sa.Integer),
    sa.Column("run_id", sa.String(64)),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_emergencies_at", "at"),
)

NOTIFICATIONS = sa.Table(
    "notifications",
    METADATA,
    sa.Column("notification_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("priority", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_notifications_created_at", "created_at"),
)

DELIVERY_ATTEMPTS = sa.Table(
    "delivery_attempts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.String(64), sa.ForeignKey("notifications.notification_id"), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_delivery_attempts_notification", "notification_id", "at"),
)

AUDIT_LOG = sa.Table(
    "audit_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("details", JSONType),
    sa.Index("ix_audit_log_at", "at"),
)


def _migration_1(conn: Connection) -> None:
    """Create the event tables."""
    tables = [INCIDENTS, RUNS, INCIDENT_ACTIONS, EMERGENCIES, NOTIFICATIONS, DELIVERY_ATTEMPTS, AUDIT_LOG]
    METADATA.create_all(conn, tables=tables)


def _migration_2(conn: Connection) -> None:
    """Make ``audit_log`` append-only: UPDATE and DELETE (and TRUNCATE on PostgreSQL) fail."""
    if conn.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    else:
        conn.exec_driver_sql(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$fn$ BEGIN RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only (' || TG_OP || ' refused)'; END $fn$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def _migration_3(conn: Connection) -> None:
    """Record which process owns each run, so a run whose process died shows as ``abandoned``."""
    if "owner" not in {column["name"] for column in sa.inspect(conn).get_columns("runs")}:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN owner TEXT")


Migration = tuple[int, str, Callable[[Connection], None]]

#: The schema history, oldest first: (version, description, function applied inside its own transaction).
#: A released migration is never edited; a schema change is a new entry with explicit DDL. (Migration 1
#: builds the tables from the definitions above: if a later migration alters a table, freeze the version-1
#: definition of that table inside ``_migration_1`` first.)
MIGRATIONS: list[Migration] = [
    (1, "create the event tables", _migration_1),
    (2, "make the audit trail append-only", _migration_2),
    (3, "record the process that owns each run", _migration_3),
]


# --------------------------------------------------------------------------------------------------------
# Helpers


def _utc(value: datetime | None) -> datetime:
    """``value`` as an aware UTC datetime; ``None`` is now, a naive datetime is taken as UTC."""
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _utc(value).isoformat().replace("+00:00", "Z")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def parse_time(value: str | None) -> datetime | None:
    """A time the store gave out (ISO 8601, ``Z`` for UTC) as an aware datetime; None stays None."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


_DURATION = re.compile(r"^(\d{1,15})\s*([smhdw])$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest "since" a query takes: ten years (a longer one is a typo, and 99999999d overflows datetime).
MAX_SINCE = timedelta(days=3650)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def parse_since(value: str | None, *, name: str = "--since") -> datetime | None:
    """A user's "since" (``24h``, ``7d``, ``30m`` ago, or an ISO 8601 time) for the store's queries; None for
    everything. ``name`` is the option or parameter named in the error (the CLI's, the dashboard's).

    A duration is at most :data:`MAX_SINCE` (ten years); an ISO time is after 1970 and has at most the
    precision of a second's fraction. Anything else is :class:`BadInput` naming ``name`` and the value."""
    if value is None or value == "":
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds > MAX_SINCE.total_seconds():
            raise BadInput(
                f"{name} {shown(value)} is longer than 10 years; give at most 3650d (or 520w, 87600h), "
                "or an ISO time (2026-11-27T10:00:00Z)"
            )
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadInput(
            f"{name} {shown(value)} is neither a duration (30m, 24h, 7d) nor an ISO time (2026-11-27T10:00:00Z)"
        )
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError:  # an offset that moves the time out of datetime's range (year 1 or 9999)
        in_utc = None
    if in_utc is None or in_utc < _EARLIEST:
        raise BadInput(f"{name} {shown(value)} is out of range; give an ISO time after 1970 or a duration (7d)")
    return moment


def _redact(value: Any) -> Any:
    """A copy of ``value`` with the values under secret-looking keys replaced by ``"***"``."""
    if isinstance(value, Mapping):
        return {
            str(k): "***" if _SECRET_KEY.search(str(k)) and v not in (None, "") else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _ok(outcome: str | None) -> bool | None:
    if outcome is None:
        return None
    if outcome.lower() in OK_OUTCOMES:
        return True
    if outcome.lower() in FAILED_OUTCOMES:
        return False
    return None


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0-100) of sorted values by linear interpolation between closest ranks.

    The rank is ``(n - 1) * q / 100`` (NumPy's default, Excel's PERCENTILE.INC).
    """
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def duration_summary(values: Iterable[float]) -> dict[str, Any]:
    """``{"count", "mean", "p50", "p90", "p95", "max"}`` of durations in seconds (linear-interpolation
    percentiles, see :func:`_percentile`); with no values, count 0 and every other value ``None``."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    return {
        "count": len(ordered),
        "mean": math.fsum(ordered) / len(ordered),
        "p50": _percentile(ordered, 50),
        "p90": _percentile(ordered, 90),
        "p95": _percentile(ordered, 95),
        "max": ordered[-1],
    }


def _hosts_overlap(existing: Sequence[str], new: Sequence[str]) -> bool:
    if not existing and not new:
        return True
    return bool(set(existing) & set(new))


def _set_wal(cursor: sqlite3.Cursor) -> None:
    """Switch to WAL mode, retrying while another connection holds the lock.

    SQLite answers SQLITE_BUSY at once, without waiting for the busy timeout, when several processes switch a
    fresh file to WAL at the same moment; the switch is retried for up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _counts(rows: Iterable[Any]) -> dict[str, int]:
    """``{key: count}`` from ``(key, count)`` rows."""
    return {str(key): int(count) for key, count in rows}


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


# --------------------------------------------------------------------------------------------------------
# The store


class EventStore:
    """The event store at ``url`` (see :func:`store_url`); opening it migrates it to the latest schema.

    With ``read_only`` (the commands that only read: ``events``, ``stats``, ``notifications``, a report
    without a status check) nothing is ever created, migrated or written: the store must exist and be at the
    latest schema, else :class:`StoreError` says why (no store at that path, a file or database that is not
    an event store, a store that needs a migration). SQLite files are then opened with ``mode=ro`` and
    ``query_only``; PostgreSQL sessions with ``default_transaction_read_only``.

    Safe to share between threads; several processes (or control nodes, with PostgreSQL) may write at once.
    """

    url: str
    display_url: str

    def __init__(self, url: str | Path | None = None, *, read_only: bool = False) -> None:
        self.url = store_url(url)
        self.display_url = self.url
        self.read_only = read_only
        self._version = 0
        self._opening = True
        try:
            parsed = make_url(self.url)
        except sa.exc.ArgumentError:
            masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", self.url)
            raise StoreError(
                f"event store URL {masked!r} is not a URL or a path; "
                "use a file path, sqlite:///path or postgresql+psycopg://user@host/db"
            ) from None
        self._parsed = parsed
        self.display_url = _display(parsed)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"event store URL {self.display_url} uses an unsupported database {backend!r}; "
                "use a file path, sqlite:///path or postgresql+psycopg://user@host/db "
                "(set with --store or NOTIFICATION_EMERGENCY_STORE)"
            )
        self._where = self.display_url
        self._engine = self._create_engine(parsed)
        try:
            if read_only:
                self._check_schema()
            else:
                self._migrate()
        except StoreError:
            self._engine.dispose()
            raise
        except (sa.exc.SQLAlchemyError, OSError, sqlite3.Error) as exc:
            self._engine.dispose()
            raise self._error(exc) from None
        self._opening = False

    # -- opening -----------------------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> StoreError:
        doing = "cannot open" if self._opening else "cannot use"
        detail = _first_line(exc)
        if self._parsed.password:
            detail = detail.replace(str(self._parsed.password), "***")
        if "file is not a database" in detail:
            fix = "it is not an event store: choose another file with --store or NOTIFICATION_EMERGENCY_STORE"
        elif self._parsed.get_backend_name() == "sqlite":
            fix = FIX_HINT
        else:
            fix = (
                "check that the PostgreSQL server is running and reachable and the URL is right, "
                "or choose another store with --store or NOTIFICATION_EMERGENCY_STORE"
            )
        return StoreError(f"{doing} the event store at {self._where}: {detail}; {fix}")

    def _create_engine(self, parsed: URL) -> Engine:
        try:
            if parsed.get_backend_name() == "sqlite":
                return self._create_sqlite_engine(parsed)
            connect_args: dict[str, Any] = {
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                "application_name": "notification-emergency",
            }
            if self.read_only:
                connect_args["options"] = "-c default_transaction_read_only=on"
            return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        except StoreError:
            raise
        except sa.exc.NoSuchModuleError:
            raise StoreError(
                f"event store URL {self.display_url} names an unknown database driver {parsed.drivername!r}; "
                "use a file path, sqlite:///path or postgresql+psycopg://user@host/db"
            ) from None
        except ImportError as exc:
            raise StoreError(
                f"cannot open the event store at {self.display_url}: its database driver is missing ({exc}); "
                "install psycopg (pip install 'psycopg[binary]') or use a SQLite store"
            ) from None
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._error(exc) from None

    def _create_sqlite_engine(self, parsed: URL) -> Engine:
        database = parsed.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if memory:
            engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif self.read_only:
            path = Path(database).expanduser()
            self._where = str(path)
            self._check_sqlite_file(path)
            uri = "file:" + quote(str(path)) + "?mode=ro"
            engine = sa.create_engine(
                parsed,
                creator=lambda: sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False),
                poolclass=QueuePool,
            )
        else:
            path = Path(database).expanduser()
            self._where = str(path)
            engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
            self._prepare_sqlite_file(path)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
            # Transactions are begun explicitly in _on_begin (pysqlite's own BEGIN handling is off).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
                cursor.execute("PRAGMA foreign_keys = ON")
                if self.read_only:
                    # No journal-mode switch: on a file that is not yet WAL (or not a store) it is a write.
                    cursor.execute("PRAGMA query_only = ON")
                else:
                    _set_wal(cursor)
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that reads and then writes can
            # fail with SQLITE_BUSY in WAL mode without waiting for the busy timeout.
            reading = self.read_only or conn.get_execution_options().get("ne_read_only")
            conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

        return engine

    def _prepare_sqlite_file(self, path: Path) -> None:
        """Create the parent directory (0700) and the file (0600); refuse paths that cannot work."""
        parent = path.parent
        if path.is_dir():
            raise StoreError(f"event store path {path} is a directory, not a file; {FIX_HINT}")
        if not parent.is_dir():
            try:
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the event store directory {parent} for {path}: {exc.strerror or exc}; {FIX_HINT}"
                ) from None
        if path.exists():
            if not os.access(path, os.R_OK | os.W_OK):
                raise StoreError(f"event store file {path} is not writable; {FIX_HINT}")
        else:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StoreError(
                    f"cannot create the event store file {path}: {exc.strerror or exc}; {FIX_HINT}"
                ) from None
        if not os.access(parent, os.W_OK | os.X_OK):
            # SQLite creates its -wal and -shm files next to the database.
            raise StoreError(f"event store directory {parent} is not writable; {FIX_HINT}")

    def _check_sqlite_file(self, path: Path) -> None:
        """For a read-only opening: the file must exist and may be a store (it is never created)."""
        if path.is_dir():
            raise StoreError(f"event store path {path} is a directory, not a file; {FIX_HINT}")
        if not path.exists():
            raise StoreError(
                f"no event store at {path} (nothing was recorded there: check the path given with --store or "
                "NOTIFICATION_EMERGENCY_STORE, or record something first, for example with status)"
            )
        if not os.access(path, os.R_OK):
            raise StoreError(f"event store file {path} is not readable; {FIX_HINT}")
        if path.is_file() and path.stat().st_size == 0:
            raise StoreError(f"{path} is an empty file, not an event store; {NOT_A_STORE_HINT}")

    def _check_schema(self) -> None:
        """For a read-only opening: the tables of an event store at the latest schema, or a StoreError."""
        latest = max(version for version, _, _ in MIGRATIONS)
        with self._read() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if not {SCHEMA_MIGRATIONS.name, RUNS.name, INCIDENTS.name, AUDIT_LOG.name} <= tables:
                what = "an empty database" if not tables else "a database with other tables"
                raise StoreError(f"{self._where} is {what}, not an event store; {NOT_A_STORE_HINT}")
            try:
                applied = {int(v) for v in conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version))}
            except (sa.exc.SQLAlchemyError, TypeError, ValueError):
                raise StoreError(
                    f"{self._where} has a schema_migrations table that is not an event store's; {NOT_A_STORE_HINT}"
                ) from None
        self._version = self._check_version(applied, latest)
        missing = sorted({version for version, _, _ in MIGRATIONS} - applied)
        if missing:
            raise StoreError(
                f"the event store at {self._where} is at schema version {self._version} and needs a migration to "
                f"{latest}, which a command that only reads does not do; run a command that records (status, "
                "health-check, record-run...) once with this store to migrate it"
            )
        if not {table.name for table in METADATA.sorted_tables} <= tables:
            raise StoreError(f"{self._where} lacks tables of an event store; {NOT_A_STORE_HINT}")

    def _migrate(self) -> None:
        known = {version for version, _, _ in MIGRATIONS}
        latest = max(known)
        with self._read() as conn:
            if sa.inspect(conn).has_table(SCHEMA_MIGRATIONS.name):
                applied = set(conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version)))
                if applied >= known:
                    self._version = self._check_version(applied, latest)
                    return
        while True:
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                SCHEMA_MIGRATIONS.create(conn, checkfirst=True)
                applied = set(conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version)))
                self._version = self._check_version(applied, latest)
                pending = [m for m in sorted(MIGRATIONS, key=lambda m: m[0]) if m[0] not in applied]
                if not pending:
                    return
                version, description, apply = pending[0]
                apply(conn)
                conn.execute(
                    SCHEMA_MIGRATIONS.insert().values(version=version, description=description, applied_at=_utc(None))
                )

    def _check_version(self, applied: set[int], latest: int) -> int:
        current = max(applied, default=0)
        if current > latest:
            raise StoreError(
                f"the event store at {self._where} has schema version {current}, newer than this "
                f"notification-emergency knows (up to {latest}); upgrade the package "
                "(pip install -U notification-emergency) or choose another store with --store"
            )
        return current

    # -- plumbing ----------------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version of the store (the latest applied migration)."""
        return self._version

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.display_url!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``); a lost or locked database is a StoreError; text the
        database cannot hold (a lone surrogate from non-UTF-8 bytes; NUL on PostgreSQL) is BadInput."""
        if self.read_only:
            raise StoreError(f"the event store at {self._where} was opened read-only; open it without read_only")
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._error(exc) from (None if self._opening else exc)
        except (UnicodeEncodeError, sa.exc.StatementError) as exc:
            bad = exc if isinstance(exc, UnicodeEncodeError) else exc.orig
            if isinstance(bad, UnicodeEncodeError):
                raise BadInput(
                    f"cannot record the text {shown(bad.object)}: it is not valid Unicode (a lone surrogate at "
                    f"character {bad.start}, from bytes that are not UTF-8); give UTF-8 text"
                ) from None
            if isinstance(exc, sa.exc.DataError):
                raise BadInput(f"the event store refused a value: {_first_line(exc)}; give plain text") from None
            raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot); a lost or locked database is a StoreError."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(ne_read_only=True)
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise self._error(exc) from (None if self._opening else exc)

    def _insert_id(self, conn: Connection, table: sa.Table, values: dict[str, Any]) -> int:
        return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())

    # -- runs --------------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        action: str,
        playbook: str | None,
        actor: str,
        inputs: dict[str, Any],
        limit: str | None,
        check: bool,
        incident_id: int | None = None,
        started_at: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        """Record that run ``run_id`` started (status ``running``); a run id already recorded is a ValueError.
        ``owner``: the process running it (:func:`~notification_emergency.process.current_owner`)."""
        with self._write() as conn:
            if conn.execute(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first():
                raise ValueError(f"run {run_id} is already recorded")
            conn.execute(
                RUNS.insert().values(
                    run_id=run_id,
                    action=action,
                    playbook=playbook,
                    actor=actor,
                    inputs=_redact(inputs or {}),
                    host_limit=limit,
                    check_mode=bool(check),
                    incident_id=incident_id,
                    started_at=_utc(started_at),
                    status="running",
                    owner=owner,
                )
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        rc: int,
        hosts: dict[str, dict[str, Any]],
        report: dict[str, Any] | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Record the outcome of run ``run_id`` (``status``: successful, failed, timeout, canceled...)."""
        with self._write() as conn:
            done = conn.execute(
                RUNS.update()
                .where(RUNS.c.run_id == run_id)
                .values(
                    status=status,
                    rc=rc,
                    hosts=hosts,
                    report=_redact(report) if report is not None else None,
                    finished_at=_utc(finished_at),
                )
            )
            if done.rowcount == 0:
                raise ValueError(f"run {run_id} was never started in the event store")

    def reconcile_runs(self) -> list[str]:
        """Record as ``abandoned`` each run still ``running`` whose process is gone (killed, crashed, its
        machine rebooted): without this it would stay running forever, in ``status`` and in ``/metrics``.
        Runs of other control nodes are left alone (they cannot be checked from here). Returns the run ids."""
        with self._read() as conn:
            running = conn.execute(sa.select(RUNS.c.run_id, RUNS.c.owner).where(RUNS.c.status == "running")).all()
        gone = [run_id for run_id, owner in running if owner_alive(owner) is False]
        if gone:
            with self._write() as conn:
                conn.execute(
                    RUNS.update()
                    .where(RUNS.c.run_id.in_(gone), RUNS.c.status == "running")
                    .values(status="abandoned", finished_at=_utc(None))
                )
        return gone

    @staticmethod
    def _run_dict(row: sa.RowMapping) -> dict[str, Any]:
        finished = row["finished_at"] is not None
        status = row["status"]
        if status == "running" and owner_alive(row.get("owner")) is False:
            status = "abandoned"  # what reconcile_runs will record; read-only commands say so without writing
        ok_unfinished = None if status == "running" else False
        return {
            "run_id": row["run_id"],
            "action": row["action"],
            "playbook": row["playbook"],
            "actor": row["actor"],
            "inputs": row["inputs"],
            "limit": row["host_limit"],
            "check": bool(row["check_mode"]),
            "incident_id": row["incident_id"],
            "started_at": _iso(row["started_at"]),
            "finished_at": _iso(row["finished_at"]),
            "duration_s": seconds_between(row["started_at"], row["finished_at"]),
            "status": status,
            "rc": row["rc"],
            "owner": row.get("owner"),
            "ok": (row["status"] == "successful" and row["rc"] == 0) if finished else ok_unfinished,
            "hosts": row["hosts"],
            "report": row["report"],
        }

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run ``run_id``, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
        return self._run_dict(row) if row else None

    def runs(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Runs started at or after ``since``, newest first."""
        query = sa.select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
        if since is not None:
            query = query.where(RUNS.c.started_at >= _utc(since))
        with self._read() as conn:
            return [self._run_dict(row) for row in conn.execute(query).mappings()]

    # -- incidents ---------------------------------------------------------------------------------------

    def open_incident(
        self,
        *,
        failure_type: str,
        level: int,
        hosts: list[str],
        summary: str,
        started_at: datetime | None = None,
        detected_at: datetime | None = None,
        classified_at: datetime | None = None,
        source: str = "health-check",
    ) -> int:
        """Open an incident, or return the open one it duplicates; returns the incident id.

        A duplicate is an open incident of the same ``failure_type`` that shares a host (or where neither names
        a host): its hosts gain the new ones and its level becomes the more severe (lower) of the two; its
        times and summary stay. ``started_at`` is when the failure began, if known (a drill's injection time,
        the first failed probe); ``classified_at`` defaults to ``detected_at``, which defaults to now.
        """
        detected = _utc(detected_at)
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                key = _PG_INCIDENT_LOCK_BASE + zlib.crc32(failure_type.encode())
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            candidates = conn.execute(
                sa.select(INCIDENTS.c.id, INCIDENTS.c.hosts, INCIDENTS.c.level)
                .where(INCIDENTS.c.failure_type == failure_type, INCIDENTS.c.status == "open")
                .order_by(INCIDENTS.c.id)
            ).all()
            for incident_id, existing_hosts, existing_level in candidates:
                existing = list(existing_hosts or [])
                if _hosts_overlap(existing, hosts):
                    merged = existing + [h for h in dict.fromkeys(hosts) if h not in existing]
                    conn.execute(
                        INCIDENTS.update()
                        .where(INCIDENTS.c.id == incident_id)
                        .values(hosts=merged, level=min(int(existing_level), level))
                    )
                    return int(incident_id)
            return self._insert_id(
                conn,
                INCIDENTS,
                {
                    "failure_type": failure_type,
                    "level": level,
                    "status": "open",
                    "hosts": list(dict.fromkeys(hosts)),
                    "summary": summary,
                    "source": source,
                    "started_at": _utc(started_at) if started_at is not None else None,
                    "detected_at": detected,
                    "classified_at": _utc(classified_at) if classified_at is not None else detected,
                },
            )

    def _require_incident(self, conn: Connection, incident_id: int) -> None:
        if conn.execute(sa.select(INCIDENTS.c.id).where(INCIDENTS.c.id == incident_id)).first() is None:
            raise ValueError(f"no incident {incident_id} in the event store")

    def add_incident_action(
        self,
        incident_id: int,
        *,
        action: str,
        run_id: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        outcome: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Record a recovery action taken for an incident; returns the action id."""
        with self._write() as conn:
            self._require_incident(conn, incident_id)
            return self._insert_id(
                conn,
                INCIDENT_ACTIONS,
                {
                    "incident_id": incident_id,
                    "action": action,
                    "run_id": run_id,
                    "started_at": _utc(started_at),
                    "finished_at": _utc(finished_at) if finished_at is not None else None,
                    "outcome": outcome,
                    "details": _redact(details) if details is not None else None,
                },
            )

    def finish_incident_action(
        self,
        action_id: int,
        *,
        outcome: str,
        finished_at: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record the outcome of an action; ``details`` are merged into the ones it has."""
        with self._write() as conn:
            row = conn.execute(sa.select(INCIDENT_ACTIONS.c.details).where(INCIDENT_ACTIONS.c.id == action_id)).first()
            if row is None:
                raise ValueError(f"no incident action {action_id} in the event store")
            merged = dict(row[0] or {})
            merged.update(_redact(details or {}))
            conn.execute(
                INCIDENT_ACTIONS.update()
                .where(INCIDENT_ACTIONS.c.id == action_id)
                .values(outcome=outcome, finished_at=_utc(finished_at), details=merged or None)
            )

    def update_incident(
        self,
        incident_id: int,
        *,
        level: int | None = None,
        verified_at: datetime | None = None,
        resolved_at: datetime | None = None,
        resolution: str | None = None,
        escalated_at: datetime | None = None,
        notified_at: datetime | None = None,
    ) -> None:
        """Set the given fields of an incident (those left None keep their value); resolving sets ``status``."""
        values: dict[str, Any] = {}
        if level is not None:
            values["level"] = level
        if resolution is not None:
            values["resolution"] = resolution
        for name, moment in (
            ("verified_at", verified_at),
            ("resolved_at", resolved_at),
            ("escalated_at", escalated_at),
            ("notified_at", notified_at),
        ):
            if moment is not None:
                values[name] = _utc(moment)
        with self._write() as conn:
            self._require_incident(conn, incident_id)
            if values:
                conn.execute(INCIDENTS.update().where(INCIDENTS.c.id == incident_id).values(**values))
            # status is derived from resolved_at, whatever set it.
            conn.execute(
                INCIDENTS.update()
                .where(INCIDENTS.c.id == incident_id)
                .values(status=sa.case((INCIDENTS.c.resolved_at.is_(None), "open"), else_="resolved"))
            )

    @staticmethod
    def _action_dict(row: sa.RowMapping) -> dict[str, Any]:
        return {
            "id": row["id"],
            "incident_id": row["incident_id"],
            "action": row["action"],
            "run_id": row["run_id"],
            "started_at": _iso(row["started_at"]),
            "finished_at": _iso(row["finished_at"]),
            "duration_s": seconds_between(row["started_at"], row["finished_at"]),
            "outcome": row["outcome"],
            "ok": _ok(row["outcome"]),
            "details": row["details"],
        }

    @staticmethod
    def _incident_dict(row: sa.RowMapping, actions: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "failure_type": row["failure_type"],
            "level": row["level"],
            "status": row["status"],
            "hosts": list(row["hosts"] or []),
            "summary": row["summary"],
            "source": row["source"],
            "started_at": _iso(row["started_at"]),
            "detected_at": _iso(row["detected_at"]),
            "classified_at": _iso(row["classified_at"]),
            "escalated_at": _iso(row["escalated_at"]),
            "notified_at": _iso(row["notified_at"]),
            "verified_at": _iso(row["verified_at"]),
            "resolved_at": _iso(row["resolved_at"]),
            "resolution": row["resolution"],
            "detection_seconds": seconds_between(row["started_at"], row["detected_at"]),
            "recovery_seconds": seconds_between(row["detected_at"], row["resolved_at"]),
            "actions": actions,
        }

    def _with_actions(self, conn: Connection, rows: Sequence[sa.RowMapping]) -> list[dict[str, Any]]:
        ids = [row["id"] for row in rows]
        actions: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            query = (
                sa.select(INCIDENT_ACTIONS)
                .where(INCIDENT_ACTIONS.c.incident_id.in_(ids))
                .order_by(INCIDENT_ACTIONS.c.started_at, INCIDENT_ACTIONS.c.id)
            )
            for action in conn.execute(query).mappings():
                actions[action["incident_id"]].append(self._action_dict(action))
        return [self._incident_dict(row, actions[row["id"]]) for row in rows]

    def incident(self, incident_id: int) -> dict[str, Any] | None:
        """The incident with its actions (oldest first), or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(INCIDENTS).where(INCIDENTS.c.id == incident_id)).mappings().first()
            return self._with_actions(conn, [row])[0] if row else None

    def incidents(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        open_only: bool = False,
        host: str | None = None,
    ) -> list[dict[str, Any]]:
        """Incidents detected in [since, until), newest first, each with its actions."""
        query = sa.select(INCIDENTS).order_by(INCIDENTS.c.detected_at.desc(), INCIDENTS.c.id.desc())
        if since is not None:
            query = query.where(INCIDENTS.c.detected_at >= _utc(since))
        if until is not None:
            query = query.where(INCIDENTS.c.detected_at < _utc(until))
        if open_only:
            query = query.where(INCIDENTS.c.status == "open")
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
            if host is not None:
                rows = [row for row in rows if host in (row["hosts"] or [])]
            return self._with_actions(conn, rows)

    # -- emergency mode ----------------------------------------------------------------------------------

    def record_emergency(
        self,
        *,
        action: str,
        hosts: list[str],
        actor: str,
        reason: str | None = None,
        level: int | None = None,
        run_id: str | None = None,
        at: datetime | None = None,
    ) -> int:
        """Record an emergency-mode activation or deactivation (``action``); returns its id."""
        if action not in EMERGENCY_ACTIONS:
            raise ValueError(f"emergency action must be one of {sorted(EMERGENCY_ACTIONS)}, not {action!r}")
        with self._write() as conn:
            return self._insert_id(
                conn,
                EMERGENCIES,
                {
                    "action": action,
                    "hosts": list(hosts),
                    "actor": actor,
                    "reason": reason,
                    "level": level,
                    "run_id": run_id,
                    "at": _utc(at),
                },
            )

    @staticmethod
    def _emergency_dict(row: sa.RowMapping) -> dict[str, Any]:
        return {
            "id": row["id"],
            "action": row["action"],
            "hosts": list(row["hosts"] or []),
            "actor": row["actor"],
            "reason": row["reason"],
            "level": row["level"],
            "run_id": row["run_id"],
            "at": _iso(row["at"]),
        }

    def emergencies(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Emergency-mode activations and deactivations, newest first."""
        query = sa.select(EMERGENCIES).order_by(EMERGENCIES.c.at.desc(), EMERGENCIES.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(EMERGENCIES.c.at >= _utc(since))
        with self._read() as conn:
            return [self._emergency_dict(row) for row in conn.execute(query).mappings()]

    # -- notifications -----------------------------------------------------------------------------------

    def record_notification(
        self,
        notification_id: str,
        *,
        title: str,
        message: str,
        priority: str,
        actor: str,
        incident_id: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record a notification; recording the same ``notification_id`` again changes nothing."""
        values = {
            "notification_id": notification_id,
            "title": title,
            "message": message,
            "priority": priority,
            "actor": actor,
            "incident_id": incident_id,
            "created_at": _utc(at),
        }
        with self._write() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(insert(NOTIFICATIONS).values(**values).on_conflict_do_nothing())

    def record_delivery_attempt(
        self,
        notification_id: str,
        *,
        channel: str,
        outcome: str,
        error: str | None = None,
        at: datetime | None = None,
    ) -> int:
        """Record one delivery attempt (``outcome``: delivered, failed or kept) of a recorded notification."""
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(f"delivery outcome must be one of {sorted(DELIVERY_OUTCOMES)}, not {outcome!r}")
        with self._write() as conn:
            known = conn.execute(
                sa.select(NOTIFICATIONS.c.notification_id).where(NOTIFICATIONS.c.notification_id == notification_id)
            ).first()
            if known is None:
                raise ValueError(f"notification {notification_id} is not recorded; call record_notification first")
            return self._insert_id(
                conn,
                DELIVERY_ATTEMPTS,
                {
                    "notification_id": notification_id,
                    "channel": channel,
                    "outcome": outcome,
                    "error": error,
                    "at": _utc(at),
                },
            )

    def _notification_dicts(self, conn: Connection, rows: Sequence[sa.RowMapping]) -> list[dict[str, Any]]:
        ids = [row["notification_id"] for row in rows]
        attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            query = (
                sa.select(DELIVERY_ATTEMPTS)
                .where(DELIVERY_ATTEMPTS.c.notification_id.in_(ids))
                .order_by(DELIVERY_ATTEMPTS.c.at, DELIVERY_ATTEMPTS.c.id)
            )
            for attempt in conn.execute(query).mappings():
                attempts[attempt["notification_id"]].append(
                    {
                        "id": attempt["id"],
                        "channel": attempt["channel"],
                        "outcome": attempt["outcome"],
                        "error": attempt["error"],
                        "at": _iso(attempt["at"]),
                    }
                )
        result = []
        for row in rows:
            tried = attempts[row["notification_id"]]
            delivered_by = next((a["channel"] for a in tried if a["outcome"] == "delivered"), None)
            result.append(
                {
                    "notification_id": row["notification_id"],
                    "title": row["title"],
                    "message": row["message"],
                    "priority": row["priority"],
                    "actor": row["actor"],
                    "incident_id": row["incident_id"],
                    "at": _iso(row["created_at"]),
                    "status": "delivered" if delivered_by else ("failed" if tried else "pending"),
                    "delivered_by": delivered_by,
                    "attempts": tried,
                }
            )
        return result

    def notifications(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Notifications, newest first, each with its ``attempts`` (oldest first) and ``delivered_by``
        (the channel of the first successful attempt, or None); ``status`` is delivered, failed or pending."""
        query = (
            sa.select(NOTIFICATIONS)
            .order_by(NOTIFICATIONS.c.created_at.desc(), NOTIFICATIONS.c.notification_id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(NOTIFICATIONS.c.created_at >= _utc(since))
        with self._read() as conn:
            return self._notification_dicts(conn, list(conn.execute(query).mappings()))

    # -- audit -------------------------------------------------------------------------------------------

    def audit(
        self, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None, at: datetime | None = None
    ) -> int:
        """Append a record to the audit trail (which refuses UPDATE and DELETE); returns its id."""
        with self._write() as conn:
            return self._insert_id(
                conn,
                AUDIT_LOG,
                {
                    "at": _utc(at),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "details": _redact(details) if details is not None else None,
                },
            )

    @staticmethod
    def _audit_dict(row: sa.RowMapping) -> dict[str, Any]:
        return {
            "id": row["id"],
            "at": _iso(row["at"]),
            "actor": row["actor"],
            "action": row["action"],
            "target": row["target"],
            "details": row["details"],
        }

    def audit_trail(self, *, since: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Audit records, newest first."""
        query = sa.select(AUDIT_LOG).order_by(AUDIT_LOG.c.at.desc(), AUDIT_LOG.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(AUDIT_LOG.c.at >= _utc(since))
        with self._read() as conn:
            return [self._audit_dict(row) for row in conn.execute(query).mappings()]

    # -- timeline and statistics -------------------------------------------------------------------------

    def events(
        self, *, since: datetime | None = None, limit: int = 50, kinds: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """A merged timeline, newest first: ``{"at", "kind", "summary", "ok", "ref"}``.

        A run is placed at its start, an incident at its detection, an action at its start; ``ok`` is True
        for a successful run, a resolved incident, a succeeded action and a delivered notification, False
        for their failures (an open incident included), None otherwise. ``ref`` is the record's id (run id,
        incident id, action id, emergency id, notification id, audit id).
        """
        wanted = set(EVENT_KINDS if kinds is None else kinds)
        unknown = wanted - EVENT_KINDS
        if unknown:
            raise UnknownKind(
                f"unknown event kinds {sorted(shown(kind) for kind in unknown)}; choose from {sorted(EVENT_KINDS)}"
            )
        found: list[tuple[datetime, int, dict[str, Any]]] = []
        order = {kind: i for i, kind in enumerate(sorted(EVENT_KINDS))}

        def add(kind: str, at: datetime, summary: str, ok: bool | None, ref: Any) -> None:
            found.append((at, order[kind], {"at": _iso(at), "kind": kind, "summary": summary, "ok": ok, "ref": ref}))

        def newest(table: sa.Table, column: sa.Column[Any], *extra: Any) -> sa.Select[Any]:
            query = sa.select(table, *extra).order_by(column.desc()).limit(limit)
            return query.where(column >= _utc(since)) if since is not None else query

        with self._read() as conn:
            if "run" in wanted:
                for row in conn.execute(newest(RUNS, RUNS.c.started_at)).mappings():
                    run = self._run_dict(row)
                    where = f" on {run['limit']}" if run["limit"] else ""
                    mode = " (check mode)" if run["check"] else ""
                    outcome = run["status"] if run["rc"] is None else f"{run['status']} (rc={run['rc']})"
                    text = f"run {run['action']}{mode}{where} by {run['actor']}: {outcome}"
                    add("run", row["started_at"], text, run["ok"], run["run_id"])
            if "incident" in wanted:
                for row in conn.execute(newest(INCIDENTS, INCIDENTS.c.detected_at)).mappings():
                    hosts = ", ".join(row["hosts"] or []) or "no host"
                    recovery = seconds_between(row["detected_at"], row["resolved_at"])
                    state = f"resolved in {recovery:.0f}s" if recovery is not None else "open"
                    text = f"incident #{row['id']} level {row['level']} {row['failure_type']} on {hosts}: "
                    text += f"{row['summary']} [{state}]"
                    add("incident", row["detected_at"], text, recovery is not None, row["id"])
            if "action" in wanted:
                query = newest(INCIDENT_ACTIONS, INCIDENT_ACTIONS.c.started_at)
                for row in conn.execute(query).mappings():
                    text = f"incident #{row['incident_id']} action {row['action']}: {row['outcome'] or 'in progress'}"
                    add("action", row["started_at"], text, _ok(row["outcome"]), row["id"])
            if "emergency" in wanted:
                for row in conn.execute(newest(EMERGENCIES, EMERGENCIES.c.at)).mappings():
                    hosts = ", ".join(row["hosts"] or []) or "no host"
                    text = f"emergency mode {row['action']} on {hosts} by {row['actor']}"
                    text += f" (level {row['level']})" if row["level"] is not None else ""
                    text += f": {row['reason']}" if row["reason"] else ""
                    add("emergency", row["at"], text, None, row["id"])
            if "notification" in wanted:
                rows = list(conn.execute(newest(NOTIFICATIONS, NOTIFICATIONS.c.created_at)).mappings())
                for row, note in zip(rows, self._notification_dicts(conn, rows), strict=True):
                    if note["delivered_by"]:
                        state, ok = f"delivered via {note['delivered_by']}", True
                    elif note["attempts"]:
                        state, ok = f"failed after {len(note['attempts'])} attempt(s)", False
                    else:
                        state, ok = "pending", None
                    text = f"notification [{row['priority']}] {row['title']}: {state}"
                    add("notification", row["created_at"], text, ok, row["notification_id"])
            if "audit" in wanted:
                for row in conn.execute(newest(AUDIT_LOG, AUDIT_LOG.c.at)).mappings():
                    add("audit", row["at"], f"{row['actor']} {row['action']} {row['target']}", None, row["id"])
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [item[2] for item in found[:limit]]

    def statistics(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Counts and durations over [since, until) (incidents by detection time, the rest by their time).

        Detection time = detected_at - started_at (incidents whose start is known); recovery time =
        resolved_at - detected_at (resolved incidents). Durations are summarised by :func:`duration_summary`
        (percentiles by linear interpolation); ``recovery_rate`` = resolved / incidents, None with none.
        """

        def window(column: sa.Column[Any]) -> list[sa.ColumnElement[bool]]:
            clauses = []
            if since is not None:
                clauses.append(column >= _utc(since))
            if until is not None:
                clauses.append(column < _utc(until))
            return clauses

        with self._read() as conn:
            incidents = conn.execute(
                sa.select(
                    INCIDENTS.c.failure_type, INCIDENTS.c.started_at, INCIDENTS.c.detected_at, INCIDENTS.c.resolved_at
                ).where(*window(INCIDENTS.c.detected_at))
            ).all()
            run_counts = _counts(
                conn.execute(
                    sa.select(RUNS.c.status, sa.func.count()).where(*window(RUNS.c.started_at)).group_by(RUNS.c.status)
                )
            )
            emergency_counts = _counts(
                conn.execute(
                    sa.select(EMERGENCIES.c.action, sa.func.count())
                    .where(*window(EMERGENCIES.c.at))
                    .group_by(EMERGENCIES.c.action)
                )
            )
            delivered = (
                sa.select(DELIVERY_ATTEMPTS.c.id)
                .where(
                    DELIVERY_ATTEMPTS.c.notification_id == NOTIFICATIONS.c.notification_id,
                    DELIVERY_ATTEMPTS.c.outcome == "delivered",
                )
                .exists()
            )
            attempted = (
                sa.select(DELIVERY_ATTEMPTS.c.id)
                .where(DELIVERY_ATTEMPTS.c.notification_id == NOTIFICATIONS.c.notification_id)
                .exists()
            )
            note_state = sa.case((delivered, "delivered"), (attempted, "failed"), else_="pending").label("state")
            note_counts = _counts(
                conn.execute(
                    sa.select(note_state, sa.func.count())
                    .select_from(NOTIFICATIONS)
                    .where(*window(NOTIFICATIONS.c.created_at))
                    .group_by(note_state)
                )
            )

        def summarise(rows: Sequence[Any]) -> dict[str, Any]:
            resolved = sum(1 for row in rows if row.resolved_at is not None)
            detection = [d for d in (seconds_between(row.started_at, row.detected_at) for row in rows) if d is not None]
            recovery = [r for r in (seconds_between(row.detected_at, row.resolved_at) for row in rows) if r is not None]
            return {
                "incidents": len(rows),
                "open": len(rows) - resolved,
                "resolved": resolved,
                "recovery_rate": resolved / len(rows) if rows else None,
                "detection_seconds": duration_summary(detection),
                "recovery_seconds": duration_summary(recovery),
            }

        overall = summarise(incidents)
        by_type: dict[str, list[Any]] = {}
        for row in incidents:
            by_type.setdefault(row.failure_type, []).append(row)
        successful = run_counts.get("successful", 0)
        running = run_counts.get("running", 0)
        total_runs = sum(run_counts.values())
        total_notes = sum(note_counts.values())
        return {
            **overall,
            "runs": {
                "total": total_runs,
                "successful": successful,
                "failed": total_runs - successful - running,
                "running": running,
            },
            "emergencies": {
                "activated": emergency_counts.get("activated", 0),
                "deactivated": emergency_counts.get("deactivated", 0),
            },
            "notifications": {
                "total": total_notes,
                "delivered": note_counts.get("delivered", 0),
                "failed": note_counts.get("failed", 0),
                "pending": note_counts.get("pending", 0),
            },
            "by_type": {name: summarise(rows) for name, rows in sorted(by_type.items())},
        }
