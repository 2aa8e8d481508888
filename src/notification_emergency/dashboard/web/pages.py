"""The HTML views: the dashboard page, and /healthz (the dashboard's own liveness)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template

from notification_emergency import __version__
from notification_emergency.dashboard.jobs import ACTIONS
from notification_emergency.dashboard.users import User
from notification_emergency.dashboard.web.security import csrf_token, current_dashboard, require_login

pages = Blueprint("pages", __name__)


@pages.get("/")
@require_login()
def index() -> Any:
    user: User = g.user
    dashboard = current_dashboard()
    return render_template(
        "index.html",
        user=user,
        csrf=csrf_token(),
        actions=ACTIONS,
        version=__version__,
        store=dashboard.store.display_url,
    )


@pages.get("/healthz")
def healthz() -> Response:
    """Liveness of the dashboard itself (no login; says nothing about the hosts)."""
    return jsonify({"ok": True})


__all__ = ["pages"]
