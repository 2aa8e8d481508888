"""The audit trail: append-only (the database refuses UPDATE and DELETE), secrets in its details masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..redact import redact
from ..timeutil import iso
from .common import utc
from .engine import StoreEngine
from .schema import AUDIT_LOG


class AuditTrail(StoreEngine):
    """The ``audit_log`` table."""

    def audit(
        self, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None, at: datetime | None = None
    ) -> int:
        """Append a record to the audit trail (which refuses UPDATE and DELETE); returns its id."""
        with self._write() as conn:
            return self._insert_id(
                conn,
                AUDIT_LOG,
                {
                    "at": utc(at),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "details": redact(details) if details is not None else None,
                },
            )

    def audit_trail(self, *, since: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Audit records, newest first."""
        query = sa.select(AUDIT_LOG).order_by(AUDIT_LOG.c.at.desc(), AUDIT_LOG.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(AUDIT_LOG.c.at >= utc(since))
        with self._read() as conn:
            return [_audit_dict(row) for row in conn.execute(query).mappings()]


def _audit_dict(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "details": row["details"],
    }
