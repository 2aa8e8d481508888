"""The timeline read model: every kind of record merged into one list of events, newest first."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..text import shown
from ..timeutil import iso, seconds_between
from .common import EVENT_KINDS, UnknownKind, outcome_ok, utc
from .engine import StoreEngine
from .notifications import notification_dicts
from .runs import run_dict
from .schema import AUDIT_LOG, EMERGENCIES, INCIDENT_ACTIONS, INCIDENTS, NOTIFICATIONS, RUNS


class Timeline(StoreEngine):
    """The merged timeline of runs, incidents, actions, emergencies, notifications and audit records."""

    def events(
        self,
        *,
        since: datetime | None = None,
        limit: int = 50,
        kinds: set[str] | None = None,
        host: str | None = None,
    ) -> list[dict[str, Any]]:
        """A merged timeline, newest first: ``{"at", "kind", "summary", "ok", "ref"}``.

        A run is placed at its start, an incident at its detection, an action at its start; ``ok`` is True
        for a successful run, a resolved incident, a succeeded action and a delivered notification, False
        for their failures (an open incident included), None otherwise. ``ref`` is the record's id (run id,
        incident id, action id, emergency id, notification id, audit id).

        ``host``: only what concerns that host (a host's timeline): runs limited to it or that ran on it,
        incidents on it and their actions, emergency mode on it; notifications and audit records name no host
        and are left out.
        """
        wanted = set(EVENT_KINDS if kinds is None else kinds)
        unknown = wanted - EVENT_KINDS
        if unknown:
            raise UnknownKind(
                f"unknown event kinds {sorted(shown(kind) for kind in unknown)}; choose from {sorted(EVENT_KINDS)}"
            )
        found: list[tuple[datetime, int, dict[str, Any]]] = []
        order = {kind: i for i, kind in enumerate(sorted(EVENT_KINDS))}

        def add(kind: str, at: datetime, summary: str, ok: bool | None, ref: Any) -> None:
            found.append((at, order[kind], {"at": iso(at), "kind": kind, "summary": summary, "ok": ok, "ref": ref}))

        if host is not None:
            wanted -= {"notification", "audit"}

        def newest(table: sa.Table, column: sa.Column[Any], *extra: Any) -> sa.Select[Any]:
            query = sa.select(table, *extra).order_by(column.desc()).limit(limit)
            if host is not None:
                query = query.where(_about(table, host))
            return query.where(column >= utc(since)) if since is not None else query

        with self._read() as conn:
            if "run" in wanted:
                for row in conn.execute(newest(RUNS, RUNS.c.started_at)).mappings():
                    run = run_dict(row)
                    where = f" on {run['limit']}" if run["limit"] else ""
                    mode = " (check mode)" if run["check"] else ""
                    outcome = run["status"] if run["rc"] is None else f"{run['status']} (rc={run['rc']})"
                    text = f"run {run['action']}{mode}{where} by {run['actor']}: {outcome}"
                    add("run", row["started_at"], text, run["ok"], run["run_id"])
            if "incident" in wanted:
                for row in conn.execute(newest(INCIDENTS, INCIDENTS.c.detected_at)).mappings():
                    hosts = ", ".join(row["hosts"] or []) or "no host"
                    recovery = seconds_between(row["detected_at"], row["resolved_at"])
                    state = f"resolved in {recovery:.0f}s" if recovery is not None else "open"
                    text = f"incident #{row['id']} level {row['level']} {row['failure_type']} on {hosts}: "
                    text += f"{row['summary']} [{state}]"
                    add("incident", row["detected_at"], text, recovery is not None, row["id"])
            if "action" in wanted:
                query = newest(INCIDENT_ACTIONS, INCIDENT_ACTIONS.c.started_at)
                for row in conn.execute(query).mappings():
                    text = f"incident #{row['incident_id']} action {row['action']}: {row['outcome'] or 'in progress'}"
                    add("action", row["started_at"], text, outcome_ok(row["outcome"]), row["id"])
            if "emergency" in wanted:
                for row in conn.execute(newest(EMERGENCIES, EMERGENCIES.c.at)).mappings():
                    hosts = ", ".join(row["hosts"] or []) or "no host"
                    text = f"emergency mode {row['action']} on {hosts} by {row['actor']}"
                    text += f" (level {row['level']})" if row["level"] is not None else ""
                    text += f": {row['reason']}" if row["reason"] else ""
                    add("emergency", row["at"], text, None, row["id"])
            if "notification" in wanted:
                rows = list(conn.execute(newest(NOTIFICATIONS, NOTIFICATIONS.c.created_at)).mappings())
                for row, note in zip(rows, notification_dicts(conn, rows), strict=True):
                    if note["delivered_by"]:
                        state, ok = f"delivered via {note['delivered_by']}", True
                    elif note["attempts"]:
                        state, ok = f"failed after {len(note['attempts'])} attempt(s)", False
                    else:
                        state, ok = "pending", None
                    text = f"notification [{row['priority']}] {row['title']}: {state}"
                    add("notification", row["created_at"], text, ok, row["notification_id"])
            if "audit" in wanted:
                for row in conn.execute(newest(AUDIT_LOG, AUDIT_LOG.c.at)).mappings():
                    add("audit", row["at"], f"{row['actor']} {row['action']} {row['target']}", None, row["id"])
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [item[2] for item in found[:limit]]


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _holds(column: sa.Column[Any], host: str, *, key: bool = False) -> sa.ColumnElement[bool]:
    """The JSON ``column`` holds ``host`` as a string (an array element, or ``key``: an object's key), as
    SQLite (ASCII escapes) and PostgreSQL (JSONB, UTF-8) write it."""
    needles = {json.dumps(host), json.dumps(host, ensure_ascii=False)}
    text = sa.cast(column, sa.Text)
    return sa.or_(*(text.like(f"%{_escaped(n)}{':' if key else ''}%", escape="\\") for n in needles))


def _about(table: sa.Table, host: str) -> sa.ColumnElement[bool]:
    """The rows of ``table`` that concern ``host``."""
    if table is RUNS:  # limited to it (alone or in a comma-separated list), or it is in the run's recap
        limit, plain = RUNS.c.host_limit, _escaped(host)
        return sa.or_(
            limit == host,
            limit.like(f"{plain},%", escape="\\"),
            limit.like(f"%,{plain}", escape="\\"),
            limit.like(f"%,{plain},%", escape="\\"),
            _holds(RUNS.c.hosts, host, key=True),
        )
    if table is INCIDENT_ACTIONS:
        on_host = sa.select(INCIDENTS.c.id).where(_holds(INCIDENTS.c.hosts, host))
        return INCIDENT_ACTIONS.c.incident_id.in_(on_host.scalar_subquery())
    return _holds(table.c.hosts, host)
