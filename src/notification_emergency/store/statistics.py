"""The statistics read model: counts, detection and recovery times (MTTD, MTTR and percentiles) over a window;
and the all-time totals behind the dashboard's ``/metrics`` (:meth:`Statistics.totals`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..process import owner_alive
from ..timeutil import seconds_between
from .common import utc
from .engine import StoreEngine
from .schema import DELIVERY_ATTEMPTS, EMERGENCIES, INCIDENT_ACTIONS, INCIDENTS, NOTIFICATIONS, RUNS

Window = Callable[[sa.Column[Any]], list[sa.ColumnElement[bool]]]


class Statistics(StoreEngine):
    """Counts and durations over a time window."""

    def statistics(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Counts and durations over [since, until) (incidents by detection time, the rest by their time).

        Detection time = detected_at - started_at (incidents whose start is known); recovery time =
        resolved_at - detected_at (resolved incidents). Durations are summarised by :func:`duration_summary`
        (percentiles by linear interpolation); ``recovery_rate`` = resolved / incidents, None with none.
        """

        def window(column: sa.Column[Any]) -> list[sa.ColumnElement[bool]]:
            clauses = []
            if since is not None:
                clauses.append(column >= utc(since))
            if until is not None:
                clauses.append(column < utc(until))
            return clauses

        with self._read() as conn:
            incidents = conn.execute(
                sa.select(
                    INCIDENTS.c.failure_type, INCIDENTS.c.started_at, INCIDENTS.c.detected_at, INCIDENTS.c.resolved_at
                ).where(*window(INCIDENTS.c.detected_at))
            ).all()
            run_counts = _counts(
                conn.execute(
                    sa.select(RUNS.c.status, sa.func.count()).where(*window(RUNS.c.started_at)).group_by(RUNS.c.status)
                )
            )
            emergency_counts = _counts(
                conn.execute(
                    sa.select(EMERGENCIES.c.action, sa.func.count())
                    .where(*window(EMERGENCIES.c.at))
                    .group_by(EMERGENCIES.c.action)
                )
            )
            note_counts = _notification_counts(conn, window)
        by_type: dict[str, list[Any]] = {}
        for row in incidents:
            by_type.setdefault(row.failure_type, []).append(row)
        successful = run_counts.get("successful", 0)
        running = run_counts.get("running", 0)
        total_runs = sum(run_counts.values())
        return {
            **_incident_summary(incidents),
            "runs": {
                "total": total_runs,
                "successful": successful,
                "failed": total_runs - successful - running,
                "running": running,
            },
            "emergencies": {
                "activated": emergency_counts.get("activated", 0),
                "deactivated": emergency_counts.get("deactivated", 0),
            },
            "notifications": {
                "total": sum(note_counts.values()),
                "delivered": note_counts.get("delivered", 0),
                "failed": note_counts.get("failed", 0),
                "pending": note_counts.get("pending", 0),
            },
            "by_type": {name: _incident_summary(rows) for name, rows in sorted(by_type.items())},
        }

    def totals(self, *, acted_since: datetime | None = None) -> dict[str, Any]:
        """All-time counts for ``/metrics``, in one read: what only grows (records are never deleted, and a
        run, incident action or delivery attempt is counted once it has ended) apart from what is true now.

        - ``runs_finished``: ``{status: count}`` of the runs that ended (every status but ``running``; a run
          whose process is gone is ``abandoned``, as :meth:`reconcile_runs` records it); ``runs_running``: the
          runs running now;
        - ``incidents``, ``incidents_resolved``, ``incidents_open``, ``incidents_by_type`` ``{type: count}``;
          ``detection_seconds`` (started -> detected, where the start is known) and ``recovery_seconds``
          (detected -> resolved) of every incident, as lists of durations;
        - ``actions``: the finished incident actions as ``{"failure_type", "action", "outcome", "count"}``;
        - ``acted``: ``{host: [incident ids]}``: the incidents with an automatic action started at or after
          ``acted_since`` (none when it is None), per host of the incident (what the circuit breaker counts);
        - ``notifications``: ``{state: count}`` now (delivered, failed, pending: a pending one is delivered
          later), ``notifications_created``, ``delivery_attempts`` ``{outcome: count}``;
        - ``emergencies``: ``{action: count}`` of emergency-mode activations and deactivations.
        """
        with self._read() as conn:
            runs = _counts(conn.execute(sa.select(RUNS.c.status, sa.func.count()).group_by(RUNS.c.status)))
            owners = conn.execute(sa.select(RUNS.c.owner).where(RUNS.c.status == "running")).scalars().all()
            incidents = conn.execute(
                sa.select(
                    INCIDENTS.c.failure_type, INCIDENTS.c.started_at, INCIDENTS.c.detected_at, INCIDENTS.c.resolved_at
                )
            ).all()
            actions = conn.execute(
                sa.select(
                    INCIDENTS.c.failure_type, INCIDENT_ACTIONS.c.action, INCIDENT_ACTIONS.c.outcome, sa.func.count()
                )
                .join(INCIDENTS, INCIDENTS.c.id == INCIDENT_ACTIONS.c.incident_id)
                .where(INCIDENT_ACTIONS.c.outcome.is_not(None))
                .group_by(INCIDENTS.c.failure_type, INCIDENT_ACTIONS.c.action, INCIDENT_ACTIONS.c.outcome)
            ).all()
            acted_rows = (
                conn.execute(
                    sa.select(INCIDENT_ACTIONS.c.incident_id, INCIDENT_ACTIONS.c.details, INCIDENTS.c.hosts)
                    .join(INCIDENTS, INCIDENTS.c.id == INCIDENT_ACTIONS.c.incident_id)
                    .where(INCIDENT_ACTIONS.c.started_at >= utc(acted_since))
                ).all()
                if acted_since is not None
                else []
            )
            notes = _notification_counts(conn, lambda _column: [])
            created = int(conn.execute(sa.select(sa.func.count()).select_from(NOTIFICATIONS)).scalar_one())
            attempts = _counts(
                conn.execute(
                    sa.select(DELIVERY_ATTEMPTS.c.outcome, sa.func.count()).group_by(DELIVERY_ATTEMPTS.c.outcome)
                )
            )
            emergencies = _counts(
                conn.execute(sa.select(EMERGENCIES.c.action, sa.func.count()).group_by(EMERGENCIES.c.action))
            )
        acted: dict[str, set[int]] = {}
        for incident_id, details, hosts in acted_rows:
            if (details or {}).get("automatic"):
                for host in hosts or []:
                    acted.setdefault(host, set()).add(int(incident_id))
        by_type: dict[str, int] = {}
        for row in incidents:
            by_type[row.failure_type] = by_type.get(row.failure_type, 0) + 1
        resolved = sum(1 for row in incidents if row.resolved_at is not None)
        detection = (seconds_between(row.started_at, row.detected_at) for row in incidents)
        recovery = (seconds_between(row.detected_at, row.resolved_at) for row in incidents)
        # A run whose process is gone counts as abandoned already: what reconcile_runs will record (as run_dict).
        gone = sum(1 for owner in owners if owner_alive(owner) is False)
        finished = {status: count for status, count in runs.items() if status != "running"}
        if gone:
            finished["abandoned"] = finished.get("abandoned", 0) + gone
        return {
            "runs_finished": finished,
            "runs_running": runs.get("running", 0) - gone,
            "incidents": len(incidents),
            "incidents_resolved": resolved,
            "incidents_open": len(incidents) - resolved,
            "incidents_by_type": dict(sorted(by_type.items())),
            "detection_seconds": [d for d in detection if d is not None],
            "recovery_seconds": [r for r in recovery if r is not None],
            "actions": [
                {"failure_type": failure_type, "action": action, "outcome": outcome, "count": int(count)}
                for failure_type, action, outcome, count in actions
            ],
            "acted": {host: sorted(ids) for host, ids in sorted(acted.items())},
            "notifications": {state: notes.get(state, 0) for state in ("delivered", "failed", "pending")},
            "notifications_created": created,
            "delivery_attempts": attempts,
            "emergencies": {action: emergencies.get(action, 0) for action in ("activated", "deactivated")},
        }


def _notification_counts(conn: Connection, window: Window) -> dict[str, int]:
    """``{state: count}`` of the notifications created in the window: delivered (an attempt delivered it),
    failed (attempted, never delivered) or pending (not attempted)."""
    delivered = (
        sa.select(DELIVERY_ATTEMPTS.c.id)
        .where(
            DELIVERY_ATTEMPTS.c.notification_id == NOTIFICATIONS.c.notification_id,
            DELIVERY_ATTEMPTS.c.outcome == "delivered",
        )
        .exists()
    )
    attempted = (
        sa.select(DELIVERY_ATTEMPTS.c.id)
        .where(DELIVERY_ATTEMPTS.c.notification_id == NOTIFICATIONS.c.notification_id)
        .exists()
    )
    note_state = sa.case((delivered, "delivered"), (attempted, "failed"), else_="pending").label("state")
    return _counts(
        conn.execute(
            sa.select(note_state, sa.func.count())
            .select_from(NOTIFICATIONS)
            .where(*window(NOTIFICATIONS.c.created_at))
            .group_by(note_state)
        )
    )


def _incident_summary(rows: Sequence[Any]) -> dict[str, Any]:
    """Counts, recovery rate and detection/recovery durations of incident rows (failure_type, started_at,
    detected_at, resolved_at)."""
    resolved = sum(1 for row in rows if row.resolved_at is not None)
    detection = [d for d in (seconds_between(row.started_at, row.detected_at) for row in rows) if d is not None]
    recovery = [r for r in (seconds_between(row.detected_at, row.resolved_at) for row in rows) if r is not None]
    return {
        "incidents": len(rows),
        "open": len(rows) - resolved,
        "resolved": resolved,
        "recovery_rate": resolved / len(rows) if rows else None,
        "detection_seconds": duration_summary(detection),
        "recovery_seconds": duration_summary(recovery),
    }


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0-100) of sorted values by linear interpolation between closest ranks.

    The rank is ``(n - 1) * q / 100`` (NumPy's default, Excel's PERCENTILE.INC).
    """
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def duration_summary(values: Iterable[float]) -> dict[str, Any]:
    """``{"count", "mean", "p50", "p90", "p95", "max"}`` of durations in seconds (linear-interpolation
    percentiles, see :func:`_percentile`); with no values, count 0 and every other value ``None``."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    return {
        "count": len(ordered),
        "mean": math.fsum(ordered) / len(ordered),
        "p50": _percentile(ordered, 50),
        "p90": _percentile(ordered, 90),
        "p95": _percentile(ordered, 95),
        "max": ordered[-1],
    }


def _counts(rows: Iterable[Any]) -> dict[str, int]:
    """``{key: count}`` from ``(key, count)`` rows."""
    return {str(key): int(count) for key, count in rows}
