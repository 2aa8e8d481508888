"""Opening the event store and its transactions: the engine every record family and read model works through.

SQLite (the default, one file) or PostgreSQL (shared by several control nodes). Concurrent writers: every
write is its own short transaction. On SQLite the file is in WAL mode, write transactions start with
``BEGIN IMMEDIATE`` and wait up to 30 s for the lock (busy timeout). Opened ``read_only``, nothing is ever
created, migrated or written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

from ..errors import BadInput
from ..redact import MASK, mask_url, scrub, url_secrets
from ..text import shown
from .common import FIX_HINT, NOT_A_STORE_HINT, StoreError
from .locations import store_url
from .migrations import check_schema, migrate

BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10


class StoreEngine:
    """The connection side of :class:`~notification_emergency.store.EventStore`: opening the store at ``url``
    (see :func:`store_url`; migrated to the latest schema, or only checked when ``read_only``), its read and
    write transactions, closing it. The record families and read models are mixins over this class.

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
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise StoreError(
                f"event store URL {_masked(self.url)!r} is not a URL or a path; "
                "use a file path, sqlite:///path or postgresql+psycopg://user@host/db"
            ) from None
        self._parsed = parsed
        self.display_url = parsed.render_as_string(hide_password=True)
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
                self._version = check_schema(self._read, self._where)
            else:
                self._version = migrate(self._read, self._write, self._where)
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
        secrets = url_secrets(self.url, service=True)
        if self._parsed.password:
            secrets.add(str(self._parsed.password))
        detail = scrub(_first_line(exc), secrets)
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

    # -- plumbing ----------------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version of the store (the latest applied migration)."""
        return self._version

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

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


def _masked(url: str) -> str:
    """``url`` as a message may show it: password and secret query values masked (all but the scheme when it
    cannot be parsed at all)."""
    masked, _ = mask_url(url, service=True)
    return masked if masked != MASK else url.split("://", 1)[0] + "://" + MASK


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


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
