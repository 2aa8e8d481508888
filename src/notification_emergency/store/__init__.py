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
  details and audit details are stored as ``"***"`` (:func:`notification_emergency.redact.redact`): the
  audit trail cannot be edited afterwards.
* Schema changes are the ordered, versioned :data:`MIGRATIONS`; opening a store applies the missing ones,
  one transaction each, under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``).
* Concurrent writers: every write is its own short transaction. On SQLite the file is in WAL mode, write
  transactions start with ``BEGIN IMMEDIATE`` and wait up to 30 s for the lock (busy timeout).

The package, by responsibility:

========================== ===================================================================================
``locations``              where the store lives (:func:`store_url`, :func:`default_store_url`)
``schema``, ``migrations`` the tables, the schema history, migrating or checking a store as it opens
``engine``                 opening the store, its read and write transactions (:class:`StoreEngine`)
``runs``, ``incidents``,   one record family each (a table, or a table and its child: incident actions,
``emergencies``,           delivery attempts): how it is written and read back
``notifications``,
``audit``
``timeline``               the read model of every record merged into one list of events
``statistics``             the read model of counts and detection/recovery times
``since``                  a user's "since" (``24h``, an ISO time) for the queries
========================== ===================================================================================

:class:`EventStore` is the one class users see: the engine with each record family and read model mixed
in. The mixins share nothing but the engine's transactions; each lives next to the table it writes.
"""

from __future__ import annotations

from ..paths import state_dir
from .audit import AuditTrail
from .common import (
    DELIVERY_OUTCOMES,
    EMERGENCY_ACTIONS,
    EVENT_KINDS,
    FAILED_OUTCOMES,
    OK_OUTCOMES,
    StoreError,
    UnknownKind,
)
from .emergencies import EmergencyRecords
from .engine import BUSY_TIMEOUT_S, StoreEngine
from .incidents import IncidentRecords
from .locations import STORE_ENV, default_store_url, store_url
from .migrations import MIGRATIONS
from .notifications import NotificationRecords
from .runs import RunRecords
from .since import MAX_SINCE, parse_since
from .statistics import Statistics, duration_summary
from .timeline import Timeline

__all__ = [
    "BUSY_TIMEOUT_S",
    "DELIVERY_OUTCOMES",
    "EMERGENCY_ACTIONS",
    "EVENT_KINDS",
    "FAILED_OUTCOMES",
    "MAX_SINCE",
    "MIGRATIONS",
    "OK_OUTCOMES",
    "STORE_ENV",
    "EventStore",
    "StoreError",
    "UnknownKind",
    "default_store_url",
    "duration_summary",
    "parse_since",
    "state_dir",
    "store_url",
]


class EventStore(
    RunRecords,
    IncidentRecords,
    EmergencyRecords,
    NotificationRecords,
    AuditTrail,
    Timeline,
    Statistics,
    StoreEngine,
):
    """The event store at ``url`` (see :func:`store_url`); opening it migrates it to the latest schema, or
    with ``read_only`` only checks it (see :class:`StoreEngine` for what read-only guarantees).

    Its methods, by family: runs (:class:`RunRecords`), incidents and their actions (:class:`IncidentRecords`),
    emergency mode (:class:`EmergencyRecords`), notifications and delivery attempts
    (:class:`NotificationRecords`), the audit trail (:class:`AuditTrail`), the timeline (:class:`Timeline`),
    statistics (:class:`Statistics`); opening and closing (:class:`StoreEngine`).
    """
