"""Notifications and their delivery state (SQLAlchemy Core, SQLite or PostgreSQL).

The database is the arbiter of delivery: a delivery row goes from ``pending`` to ``delivered`` through one
conditional ``UPDATE ... WHERE state = 'pending'`` whose row count says whether this caller won the claim.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from .names import CHANNELS

log = logging.getLogger(__name__)

_READ_ONLY = "notification_service_read_only"

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=True),  # NULL = everyone
    Column("title", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("notification_id", Integer, ForeignKey("notifications.id"), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id"), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_deliveries_user_state", "user_id", "state"),
    Index("ix_deliveries_state_channel", "state", "channel"),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def describe_error(exc: BaseException) -> str:
    """One line for the log: the driver's message without SQLAlchemy's background link."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@dataclass(frozen=True)
class Created:
    id: int
    recipients: list[str]
    channel: str
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    notification_id: int
    user_id: str
    channel: str
    state: str
    title: str
    message: str
    priority: str
    created_at: datetime
    delivered_at: datetime | None
    broadcast: bool

    def event_payload(self) -> dict[str, Any]:
        """What a Socket.IO client receives as the ``notification`` event."""
        return {
            "id": self.notification_id,
            "user": "*" if self.broadcast else self.user_id,
            "title": self.title,
            "message": self.message,
            "priority": self.priority,
            "created_at": iso(self.created_at),
            "broadcast": self.broadcast,
        }

    def as_dict(self) -> dict[str, Any]:
        data = self.event_payload()
        data.update(user=self.user_id, channel=self.channel, state=self.state, delivered_at=iso(self.delivered_at))
        return data

    def flash_text(self) -> str:
        return f"{self.title}: {self.message}" if self.message else self.title


class Database:
    """One engine per process (created after gunicorn forks), shared by the process's threads."""

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.backend == "sqlite":
            database = parsed.database or ""
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 5.0}
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
        else:
            kwargs["connect_args"] = {"connect_timeout": 3}
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=10)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.backend == "sqlite":
            _configure_sqlite(self.engine)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables if they are missing (several processes may race to do it at start)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            for attempt in range(5):
                try:
                    metadata.create_all(self.engine, checkfirst=True)
                    break
                except (IntegrityError, ProgrammingError):
                    # another process created the same table between our check and our CREATE
                    if attempt == 4:
                        raise
                    time.sleep(0.1 * (attempt + 1))
            self._schema_ready = True

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self.ensure_schema()
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self.ensure_schema()
        with self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            yield conn

    # -- checks -----------------------------------------------------------------------------------------

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            conn.exec_driver_sql("SELECT 1").scalar()
        self.ensure_schema()

    # -- users ------------------------------------------------------------------------------------------

    @staticmethod
    def _add_user(conn: Connection, user: str, now: datetime) -> None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(users).values(id=user, created_at=now).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(users).values(id=user, created_at=now).on_conflict_do_nothing())

    def ensure_user(self, user: str) -> None:
        with self._write() as conn:
            self._add_user(conn, user, utcnow())

    # -- notifications ----------------------------------------------------------------------------------

    def create_notification(self, user: str | None, title: str, message: str, priority: str, channel: str) -> Created:
        """Store a notification and one pending delivery per recipient (``user`` None = every known user)."""
        now = utcnow()
        with self._write() as conn:
            if user is not None:
                self._add_user(conn, user, now)
            result = conn.execute(
                insert(notifications).values(
                    user_id=user, title=title, message=message, priority=priority, created_at=now
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            notification_id = int(primary_key[0])
            if user is None:
                recipients = list(conn.execute(select(users.c.id).order_by(users.c.id)).scalars())
            else:
                recipients = [user]
            if recipients:
                conn.execute(
                    insert(deliveries),
                    [
                        {
                            "notification_id": notification_id,
                            "user_id": recipient,
                            "channel": channel,
                            "state": "pending",
                            "created_at": now,
                        }
                        for recipient in recipients
                    ],
                )
        return Created(id=notification_id, recipients=recipients, channel=channel, created_at=now)

    def _deliveries_query(self) -> Any:
        return select(
            deliveries.c.notification_id,
            deliveries.c.user_id,
            deliveries.c.channel,
            deliveries.c.state,
            notifications.c.title,
            notifications.c.message,
            notifications.c.priority,
            notifications.c.created_at,
            deliveries.c.delivered_at,
            notifications.c.user_id.is_(None).label("broadcast"),
        ).join(notifications, notifications.c.id == deliveries.c.notification_id)

    @staticmethod
    def _delivery(row: Any) -> Delivery:
        return Delivery(
            notification_id=int(row.notification_id),
            user_id=row.user_id,
            channel=row.channel,
            state=row.state,
            title=row.title,
            message=row.message,
            priority=row.priority,
            created_at=as_utc(row.created_at) or utcnow(),
            delivered_at=as_utc(row.delivered_at),
            broadcast=bool(row.broadcast),
        )

    def pending_for_user(self, user: str, channel: str | None) -> list[Delivery]:
        """The user's pending deliveries, oldest first; ``channel`` None means any channel."""
        query = self._deliveries_query().where(deliveries.c.user_id == user, deliveries.c.state == "pending")
        if channel is not None:
            query = query.where(deliveries.c.channel == channel)
        with self._read() as conn:
            rows = conn.execute(query.order_by(deliveries.c.notification_id)).all()
        return [self._delivery(row) for row in rows]

    def list_deliveries(self, user: str, limit: int = 500) -> list[Delivery]:
        query = (
            self._deliveries_query()
            .where(deliveries.c.user_id == user)
            .order_by(deliveries.c.notification_id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [self._delivery(row) for row in rows]

    # -- claims -----------------------------------------------------------------------------------------

    def claim(self, notification_id: int, user: str, *, channel: str | None, deliver_as: str) -> bool:
        """Mark one pending delivery delivered; True only for the single caller whose UPDATE matched.

        ``channel`` restricts the claim to deliveries of that channel (None: any channel); ``deliver_as``
        is the channel recorded as the one that delivered it.
        """
        stmt = update(deliveries).where(
            deliveries.c.notification_id == notification_id,
            deliveries.c.user_id == user,
            deliveries.c.state == "pending",
        )
        if channel is not None:
            stmt = stmt.where(deliveries.c.channel == channel)
        stmt = stmt.values(state="delivered", channel=deliver_as, delivered_at=utcnow())
        with self._write() as conn:
            return conn.execute(stmt).rowcount == 1

    def claim_for_flash(self, user: str, *, any_channel: bool) -> list[Delivery]:
        """Claim the user's pending deliveries for a page render; returns the ones this render won.

        Legacy mode passes ``any_channel=True`` (nothing can be stranded on the websocket channel by a
        request that raced the mode switch); WebSocket mode claims only channel ``flash``.
        """
        channel = None if any_channel else "flash"
        won: list[Delivery] = []
        for delivery in self.pending_for_user(user, channel):
            if self.claim(delivery.notification_id, user, channel=channel, deliver_as="flash"):
                won.append(delivery)
        return won

    def carry_pending(self) -> int:
        """Move every pending websocket delivery to the flash channel in one statement; returns the count."""
        stmt = (
            update(deliveries)
            .where(deliveries.c.state == "pending", deliveries.c.channel == "websocket")
            .values(channel="flash")
        )
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount)

    # -- counts -----------------------------------------------------------------------------------------

    def pending_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CHANNELS, 0)
        query = (
            select(deliveries.c.channel, func.count())
            .where(deliveries.c.state == "pending")
            .group_by(deliveries.c.channel)
        )
        with self._read() as conn:
            for channel, count in conn.execute(query):
                counts[channel] = int(count)
        return counts

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "pending": dict.fromkeys(CHANNELS, 0),
            "delivered": dict.fromkeys(CHANNELS, 0),
        }
        query = select(deliveries.c.state, deliveries.c.channel, func.count()).group_by(
            deliveries.c.state, deliveries.c.channel
        )
        with self._read() as conn:
            for state, channel, count in conn.execute(query):
                result.setdefault(state, dict.fromkeys(CHANNELS, 0))[channel] = int(count)
            result["notifications"] = int(conn.execute(select(func.count()).select_from(notifications)).scalar_one())
            result["users"] = int(conn.execute(select(func.count()).select_from(users)).scalar_one())
        return result


def _configure_sqlite(engine: Engine) -> None:
    """WAL and a busy timeout (several processes write); SQLAlchemy emits BEGIN so writes take the lock first."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 5000")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock at BEGIN (waiting up to busy_timeout) instead of failing with
        # SQLITE_BUSY when a read lock must be upgraded; readers stay deferred and never block in WAL.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
