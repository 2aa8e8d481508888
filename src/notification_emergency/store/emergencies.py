"""Emergency mode: each activation and deactivation, on which hosts, by whom and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..timeutil import iso
from .common import EMERGENCY_ACTIONS, utc
from .engine import StoreEngine
from .schema import EMERGENCIES


class EmergencyRecords(StoreEngine):
    """The ``emergencies`` table."""

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
                    "at": utc(at),
                },
            )

    def emergencies(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Emergency-mode activations and deactivations, newest first."""
        query = sa.select(EMERGENCIES).order_by(EMERGENCIES.c.at.desc(), EMERGENCIES.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(EMERGENCIES.c.at >= utc(since))
        with self._read() as conn:
            return [_emergency_dict(row) for row in conn.execute(query).mappings()]


def _emergency_dict(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "action": row["action"],
        "hosts": list(row["hosts"] or []),
        "actor": row["actor"],
        "reason": row["reason"],
        "level": row["level"],
        "run_id": row["run_id"],
        "at": iso(row["at"]),
    }
