"""Live updates and metrics: the server-sent event stream of the page, and /metrics for Prometheus."""

from __future__ import annotations

import threading

from flask import Blueprint, Response, current_app, g, session
from flask.blueprints import BlueprintSetupState

from notification_emergency.dashboard.metrics import CONTENT_TYPE, read_store, render
from notification_emergency.dashboard.web.security import current_dashboard, error, require_login

MAX_STREAMS = 32
STREAMS = "notification_emergency_dashboard_streams"  # app.extensions key of the streams' semaphore

live = Blueprint("live", __name__)


@live.record_once
def _streams(state: BlueprintSetupState) -> None:
    state.app.extensions[STREAMS] = threading.BoundedSemaphore(MAX_STREAMS)


@live.get("/api/stream")
@require_login()
def stream() -> Response:
    streams: threading.BoundedSemaphore = current_app.extensions[STREAMS]
    if not streams.acquire(blocking=False):
        return error(429, f"too many live streams (at most {MAX_STREAMS}); the page falls back to polling")
    dashboard = current_dashboard()
    name, sid = g.user.name, session.get("sid")

    def still_allowed() -> bool:  # the stream ends with its session (logout) or its user (removed)
        return dashboard.users.get(name) is not None and dashboard.sessions.valid(sid, name)

    response = Response(
        dashboard.stream(alive=still_allowed),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(streams.release)
    return response


@live.get("/metrics")
@require_login(basic=True)
def metrics_view() -> Response:
    dashboard = current_dashboard()
    # The store is read at each scrape: its counters as of now, not as of the monitor's last refresh.
    return Response(render(dashboard.live(), read_store(dashboard.store)), content_type=CONTENT_TYPE)


__all__ = ["MAX_STREAMS", "live"]
