"""What every part of the event store shares: its errors, its vocabulary and how it takes a time."""

from __future__ import annotations

from datetime import datetime

from ..errors import BadInput
from ..timeutil import as_utc, utc_now

FIX_HINT = "choose a writable directory with --store or NOTIFICATION_EMERGENCY_STORE"
NOT_A_STORE_HINT = "choose the event store with --store or NOTIFICATION_EMERGENCY_STORE"
EVENT_KINDS = frozenset({"run", "incident", "action", "emergency", "notification", "audit"})
EMERGENCY_ACTIONS = frozenset({"activated", "deactivated"})
# kept: written to the local notifications.log as the last resort because no channel delivered it (nobody
# was reached, so the notification is not delivered).
DELIVERY_OUTCOMES = frozenset({"delivered", "failed", "kept"})
# Outcomes of runs and incident actions read as success / failure in the timeline; others are neither.
OK_OUTCOMES = frozenset({"ok", "success", "successful", "succeeded", "recovered", "verified", "resolved", "done"})
FAILED_OUTCOMES = frozenset({"failed", "failure", "error", "timeout", "timed_out", "canceled", "cancelled"})


class StoreError(BadInput):
    """The event store cannot be opened or used; the message names the store (password masked) and the fix."""


class UnknownKind(BadInput, ValueError):
    """An event kind that is not one of :data:`EVENT_KINDS` (bad input: exit 2)."""


def utc(moment: datetime | None) -> datetime:
    """``moment`` as an aware UTC datetime, as the store records it: None is now, a naive one is UTC."""
    return utc_now() if moment is None else as_utc(moment)


def outcome_ok(outcome: str | None) -> bool | None:
    """True for a successful outcome (:data:`OK_OUTCOMES`), False for a failed one, None otherwise."""
    if outcome is None:
        return None
    if outcome.lower() in OK_OUTCOMES:
        return True
    if outcome.lower() in FAILED_OUTCOMES:
        return False
    return None
