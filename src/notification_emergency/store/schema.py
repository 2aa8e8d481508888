"""The event store's tables: one SQLAlchemy metadata for SQLite and PostgreSQL, times always in UTC.

The tables are built by the migrations (:mod:`.migrations`); these definitions are the latest schema.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from ..timeutil import as_utc


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A UTC timestamp: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite; always aware UTC in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


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
