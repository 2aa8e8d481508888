"""Notifications and each attempt to deliver them, channel by channel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..timeutil import iso
from .common import DELIVERY_OUTCOMES, utc
from .engine import StoreEngine
from .schema import DELIVERY_ATTEMPTS, NOTIFICATIONS


class NotificationRecords(StoreEngine):
    """The ``notifications`` and ``delivery_attempts`` tables."""

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
            "created_at": utc(at),
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
                    "at": utc(at),
                },
            )

    def notifications(self, *, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Notifications, newest first, each with its ``attempts`` (oldest first) and ``delivered_by``
        (the channel of the first successful attempt, or None); ``status`` is delivered, failed or pending."""
        query = (
            sa.select(NOTIFICATIONS)
            .order_by(NOTIFICATIONS.c.created_at.desc(), NOTIFICATIONS.c.notification_id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(NOTIFICATIONS.c.created_at >= utc(since))
        with self._read() as conn:
            return notification_dicts(conn, list(conn.execute(query).mappings()))


def notification_dicts(conn: Connection, rows: Sequence[sa.RowMapping]) -> list[dict[str, Any]]:
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
                    "at": iso(attempt["at"]),
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
                "at": iso(row["created_at"]),
                "status": "delivered" if delivered_by else ("failed" if tried else "pending"),
                "delivered_by": delivered_by,
                "attempts": tried,
            }
        )
    return result
