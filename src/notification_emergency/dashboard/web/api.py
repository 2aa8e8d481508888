"""The read-only JSON API behind the page (a session, or a dashboard user's Basic credentials)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from notification_emergency.dashboard.history import backups_of
from notification_emergency.dashboard.web.inputs import int_arg, since_arg
from notification_emergency.dashboard.web.security import current_dashboard, error, require_login
from notification_emergency.errors import BadInput
from notification_emergency.store import EVENT_KINDS

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/state")
@require_login(basic=True)
def state() -> Response:
    return jsonify(current_dashboard().state())


@api.get("/status")
@require_login(basic=True)
def status() -> Response:
    return jsonify({"hosts": current_dashboard().host_rows()})


@api.get("/components")
@require_login(basic=True)
def components() -> Response:
    return jsonify(
        {
            row["host"]: {"live": row["components"], "last_check": row["last_check"]}
            for row in current_dashboard().host_rows()
        }
    )


@api.get("/events")
@require_login(basic=True)
def events() -> Response:
    limit = int_arg("limit", 50, 1, 1000)
    since = since_arg()
    kinds = set(request.args.getlist("kind")) or None
    if kinds and not kinds <= EVENT_KINDS:
        raise BadInput(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}")
    return jsonify({"events": current_dashboard().store.events(since=since, limit=limit, kinds=kinds)})


@api.get("/stats")
@require_login(basic=True)
def stats() -> Response:
    return jsonify(current_dashboard().store.statistics(since=since_arg()))


@api.get("/audit")
@require_login(basic=True)
def audit() -> Response:
    trail = current_dashboard().store.audit_trail(since=since_arg(), limit=int_arg("limit", 100, 1, 1000))
    return jsonify({"audit": trail})


def _known(host: str) -> Response | None:
    """404 for a host the dashboard does not show (named, with where to find its hosts)."""
    if host in current_dashboard().hosts:
        return None
    return error(404, f"host {host[:80]!r} is not shown by this dashboard: see GET /api/status for its hosts")


@api.get("/hosts/<path:host>/timeline")
@require_login(basic=True)
def host_timeline(host: str) -> Response:
    """One host's timeline from the store: its runs, incidents and their actions, emergency mode."""
    unknown = _known(host)
    if unknown is not None:
        return unknown
    limit = int_arg("limit", 50, 1, 500)
    since = since_arg()
    return jsonify({"host": host, "events": current_dashboard().store.events(since=since, limit=limit, host=host)})


@api.get("/hosts/<path:host>/backups")
@require_login(basic=True)
def host_backups(host: str) -> Response:
    """The backups of a host the store knows (from the runs that took or used them), newest first."""
    unknown = _known(host)
    if unknown is not None:
        return unknown
    return jsonify({"host": host, "backups": backups_of(current_dashboard().store, host)})


__all__ = ["api"]
