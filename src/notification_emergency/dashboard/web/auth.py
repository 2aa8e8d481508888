"""Logging in and out: the login form (GET and POST /login) and POST /logout."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for

from notification_emergency import __version__
from notification_emergency.dashboard.web.security import (
    Refused,
    csrf_ok,
    csrf_token,
    current_dashboard,
    current_gate,
    require_csrf,
    require_login,
)

auth = Blueprint("auth", __name__)


def _login_context() -> dict[str, Any]:
    users = current_dashboard().users
    return {
        "no_users": not users.users() and not users.error,
        "users_error": users.error,
        "users_file": str(users.path),
        "version": __version__,
    }


@auth.get("/login")
def login() -> Any:
    if current_gate().session_user() is not None:
        return redirect(url_for("pages.index"))
    return render_template("login.html", csrf=csrf_token(), error=None, **_login_context())


@auth.post("/login")
def login_post() -> Any:
    if not csrf_ok():
        return render_template(
            "login.html", csrf=csrf_token(), error="The form expired: try again.", **_login_context()
        ), 403
    try:
        user = current_gate().authenticate(request.form.get("username", ""), request.form.get("password", ""), "form")
    except Refused as refused:
        page = render_template("login.html", csrf=csrf_token(), error=refused.message, **_login_context())
        headers = {"Retry-After": str(max(1, round(refused.retry_after)))} if refused.retry_after else {}
        return page, refused.status, headers
    session.clear()  # a new session (id, CSRF token) at each login: no fixation
    session.permanent = True
    session["user"] = user.name
    session["sid"] = current_dashboard().sessions.create(user.name)
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("pages.index"))


@auth.post("/logout")
@require_login()
@require_csrf
def logout() -> Any:
    """End the session here and server-side: the cookie, even if saved, no longer logs anybody in."""
    current_dashboard().sessions.revoke(session.get("sid"))
    current_gate().audit_if_possible(g.user.name, "dashboard logout", f"from {request.remote_addr or '?'}", {})
    session.clear()
    return redirect(url_for("auth.login"))


__all__ = ["auth"]
