"""The schema history and how a store is brought to it (or, opened read-only, checked against it).

Schema changes are the ordered, versioned :data:`MIGRATIONS`; opening a store applies the missing ones, one
transaction each, under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .common import NOT_A_STORE_HINT, StoreError, utc
from .schema import (
    AUDIT_LOG,
    DELIVERY_ATTEMPTS,
    EMERGENCIES,
    INCIDENT_ACTIONS,
    INCIDENTS,
    METADATA,
    NOTIFICATIONS,
    RUNS,
    SCHEMA_MIGRATIONS,
)

# pg_advisory_xact_lock key of the migrations ("ne_mig").
_PG_MIGRATION_LOCK = 0x6E655F6D6967

#: A transaction of the store: ``with transaction() as conn: ...``.
Transaction = Callable[[], AbstractContextManager[Connection]]


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
#: builds the tables from the definitions in :mod:`.schema`: if a later migration alters a table, freeze the
#: version-1 definition of that table inside ``_migration_1`` first.)
MIGRATIONS: list[Migration] = [
    (1, "create the event tables", _migration_1),
    (2, "make the audit trail append-only", _migration_2),
    (3, "record the process that owns each run", _migration_3),
]


def migrate(read: Transaction, write: Transaction, where: str) -> int:
    """Apply the missing migrations, oldest first, each in its own write transaction under the migration lock
    (so that several processes opening a fresh store apply each once); returns the schema version."""
    known = {version for version, _, _ in MIGRATIONS}
    latest = max(known)
    with read() as conn:
        if sa.inspect(conn).has_table(SCHEMA_MIGRATIONS.name):
            applied = set(conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version)))
            if applied >= known:
                return _check_version(applied, latest, where)
    while True:
        with write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            SCHEMA_MIGRATIONS.create(conn, checkfirst=True)
            applied = set(conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version)))
            current = _check_version(applied, latest, where)
            pending = [m for m in sorted(MIGRATIONS, key=lambda m: m[0]) if m[0] not in applied]
            if not pending:
                return current
            version, description, apply = pending[0]
            apply(conn)
            conn.execute(
                SCHEMA_MIGRATIONS.insert().values(version=version, description=description, applied_at=utc(None))
            )


def check_schema(read: Transaction, where: str) -> int:
    """For a read-only opening: the schema version of an event store at the latest schema, or a StoreError
    saying why not (not a store, a store that needs a migration, a newer one)."""
    latest = max(version for version, _, _ in MIGRATIONS)
    with read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        if not {SCHEMA_MIGRATIONS.name, RUNS.name, INCIDENTS.name, AUDIT_LOG.name} <= tables:
            what = "an empty database" if not tables else "a database with other tables"
            raise StoreError(f"{where} is {what}, not an event store; {NOT_A_STORE_HINT}")
        try:
            applied = {int(v) for v in conn.scalars(sa.select(SCHEMA_MIGRATIONS.c.version))}
        except (sa.exc.SQLAlchemyError, TypeError, ValueError):
            raise StoreError(
                f"{where} has a schema_migrations table that is not an event store's; {NOT_A_STORE_HINT}"
            ) from None
    version = _check_version(applied, latest, where)
    missing = sorted({version for version, _, _ in MIGRATIONS} - applied)
    if missing:
        raise StoreError(
            f"the event store at {where} is at schema version {version} and needs a migration to "
            f"{latest}, which a command that only reads does not do; run a command that records (status, "
            "health-check, record-run...) once with this store to migrate it"
        )
    if not {table.name for table in METADATA.sorted_tables} <= tables:
        raise StoreError(f"{where} lacks tables of an event store; {NOT_A_STORE_HINT}")
    return version


def _check_version(applied: set[int], latest: int, where: str) -> int:
    current = max(applied, default=0)
    if current > latest:
        raise StoreError(
            f"the event store at {where} has schema version {current}, newer than this "
            f"notification-emergency knows (up to {latest}); upgrade the package "
            "(pip install -U notification-emergency) or choose another store with --store"
        )
    return current
