"""Emergency notifications to operators: the one place every notification of the package goes through.

This first version has the channel that never depends on the failing service: a JSON-lines file in the
state directory (``notifications.log``), which the dashboard and a log shipper can read. Every notification
gets an id, is recorded in the event store with each delivery attempt, and a repeat of the same message
within the de-duplication window is not sent twice. The chat, e-mail and webhook channels (Apprise) plug
in as further channels of the same chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notification_emergency.errors import BadInput
from notification_emergency.store import EventStore

PRIORITIES = ("critical", "high", "medium", "low")
LEVEL_PRIORITY = {1: "critical", 2: "high", 3: "medium", 4: "low"}


@dataclass
class Delivery:
    notification_id: str
    delivered: bool
    channel: str | None
    duplicate: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Notifier:
    def __init__(self, store: EventStore, home: Path, *, actor: str, dedup_window_s: float = 300.0) -> None:
        self.store = store
        self.log_file = home / "notifications.log"
        self.actor = actor
        self.dedup_window = timedelta(seconds=dedup_window_s)

    @staticmethod
    def notification_id(title: str, message: str, priority: str) -> str:
        return hashlib.sha256(f"{priority}\0{title}\0{message}".encode()).hexdigest()[:16]

    def send(self, title: str, message: str, priority: str, *, incident_id: int | None = None) -> Delivery:
        if priority not in PRIORITIES:
            raise BadInput(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        base = self.notification_id(title, message, priority)
        now = datetime.now(UTC)
        for earlier in self.store.notifications(since=now - self.dedup_window):
            if str(earlier["notification_id"]).startswith(base) and earlier.get("delivered_by"):
                return Delivery(str(earlier["notification_id"]), True, earlier["delivered_by"], duplicate=True)
        notification_id = f"{base}-{now.strftime('%Y%m%dT%H%M%S%f')}"
        self.store.record_notification(
            notification_id, title=title, message=message, priority=priority, actor=self.actor, incident_id=incident_id
        )
        attempts: list[dict[str, Any]] = []
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            line = {
                "id": notification_id,
                "at": now.isoformat(),
                "priority": priority,
                "title": title,
                "message": message,
            }
            with self.log_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self.store.record_delivery_attempt(notification_id, channel="file", outcome="failed", error=str(exc))
            attempts.append({"channel": "file", "outcome": "failed", "error": str(exc)})
            return Delivery(notification_id, False, None, attempts=attempts)
        self.store.record_delivery_attempt(notification_id, channel="file", outcome="delivered")
        attempts.append({"channel": "file", "outcome": "delivered"})
        return Delivery(notification_id, True, "file", attempts=attempts)
