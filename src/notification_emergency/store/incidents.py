"""Incidents and the recovery actions taken for each, with the moments that give detection and recovery times."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..redact import redact
from ..timeutil import iso, seconds_between
from .common import outcome_ok, utc
from .engine import StoreEngine
from .schema import INCIDENT_ACTIONS, INCIDENTS

# pg_advisory_xact_lock keys for incident de-duplication: one per failure type ("ne_in" + crc32).
_PG_INCIDENT_LOCK_BASE = 0x6E655F696E00


class IncidentRecords(StoreEngine):
    """The ``incidents`` and ``incident_actions`` tables: an open incident is de-duplicated by type and host."""

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
        detected = utc(detected_at)
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
                    "started_at": utc(started_at) if started_at is not None else None,
                    "detected_at": detected,
                    "classified_at": utc(classified_at) if classified_at is not None else detected,
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
                    "started_at": utc(started_at),
                    "finished_at": utc(finished_at) if finished_at is not None else None,
                    "outcome": outcome,
                    "details": redact(details) if details is not None else None,
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
            merged.update(redact(details or {}))
            conn.execute(
                INCIDENT_ACTIONS.update()
                .where(INCIDENT_ACTIONS.c.id == action_id)
                .values(outcome=outcome, finished_at=utc(finished_at), details=merged or None)
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
                values[name] = utc(moment)
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
                actions[action["incident_id"]].append(_action_dict(action))
        return [_incident_dict(row, actions[row["id"]]) for row in rows]

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
            query = query.where(INCIDENTS.c.detected_at >= utc(since))
        if until is not None:
            query = query.where(INCIDENTS.c.detected_at < utc(until))
        if open_only:
            query = query.where(INCIDENTS.c.status == "open")
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
            if host is not None:
                rows = [row for row in rows if host in (row["hosts"] or [])]
            return self._with_actions(conn, rows)


def _action_dict(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "incident_id": row["incident_id"],
        "action": row["action"],
        "run_id": row["run_id"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "duration_s": seconds_between(row["started_at"], row["finished_at"]),
        "outcome": row["outcome"],
        "ok": outcome_ok(row["outcome"]),
        "details": row["details"],
    }


def _incident_dict(row: sa.RowMapping, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "failure_type": row["failure_type"],
        "level": row["level"],
        "status": row["status"],
        "hosts": list(row["hosts"] or []),
        "summary": row["summary"],
        "source": row["source"],
        "started_at": iso(row["started_at"]),
        "detected_at": iso(row["detected_at"]),
        "classified_at": iso(row["classified_at"]),
        "escalated_at": iso(row["escalated_at"]),
        "notified_at": iso(row["notified_at"]),
        "verified_at": iso(row["verified_at"]),
        "resolved_at": iso(row["resolved_at"]),
        "resolution": row["resolution"],
        "detection_seconds": seconds_between(row["started_at"], row["detected_at"]),
        "recovery_seconds": seconds_between(row["detected_at"], row["resolved_at"]),
        "actions": actions,
    }


def _hosts_overlap(existing: Sequence[str], new: Sequence[str]) -> bool:
    if not existing and not new:
        return True
    return bool(set(existing) & set(new))
