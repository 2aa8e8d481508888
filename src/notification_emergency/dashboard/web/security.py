"""Who is asking, and may they: sessions, passwords (the form's and HTTP Basic), CSRF, the audit of it.

Every view of every blueprint goes through here: ``require_login`` (a live session or, where allowed,
Basic credentials), ``require_csrf`` on every POST. The per-application state (the dashboard, the login
throttle, the cache of Basic credentials) is a :class:`Gate` kept in ``app.extensions``; ``create_app``
makes it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, jsonify, redirect, request, session, url_for

from notification_emergency.dashboard.core import Dashboard
from notification_emergency.dashboard.users import MAX_NAME, MAX_PASSWORD, Busy, User
from notification_emergency.dashboard.web.throttle import LoginThrottle

log = logging.getLogger("notification_emergency.dashboard")

DASHBOARD = "notification_emergency_dashboard"  # app.extensions key of the Dashboard
GATE = "notification_emergency_dashboard_gate"  # app.extensions key of the Gate
BASIC_CACHE_S = 600.0
BASIC_CACHE_SIZE = 256
BASIC_REALM = 'Basic realm="notification-emergency dashboard"'


class Refused(Exception):
    """A login refused: ``status`` (400, 401, 429, 503), the message, and Retry-After seconds if any."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def error(status: int, message: str) -> Response:
    """A JSON error answer: ``{"ok": false, "error": message}``."""
    response = jsonify({"ok": False, "error": message})
    response.status_code = status
    return response


def is_api() -> bool:
    """The request is for the JSON API or /metrics (answered in JSON, not with a page or a redirect)."""
    return request.path.startswith("/api/") or request.path == "/metrics"


def current_dashboard() -> Dashboard:
    return cast(Dashboard, current_app.extensions[DASHBOARD])


def current_gate() -> Gate:
    return cast(Gate, current_app.extensions[GATE])


class Gate:
    """The checks of one application: its dashboard's users and sessions, its throttle, its Basic cache."""

    def __init__(self, dashboard: Dashboard, throttle: LoginThrottle, secret_key: bytes) -> None:
        self.dashboard = dashboard
        self.throttle = throttle
        self._basic_cache: dict[bytes, tuple[str, float]] = {}  # HMAC of name and password -> (hash, until)
        self._basic_lock = threading.Lock()
        self._cache_key = hashlib.sha256(b"basic-cache\0" + secret_key).digest()

    def install(self, app: Flask) -> None:
        app.extensions[DASHBOARD] = self.dashboard
        app.extensions[GATE] = self

    def session_user(self) -> User | None:
        name = session.get("user")
        if not isinstance(name, str):
            return None
        user = self.dashboard.users.get(name)
        if user is None or not self.dashboard.sessions.valid(session.get("sid"), name):
            session.clear()  # removed from the users file since login, logged out, expired
            return None
        return user

    def authenticate(self, name: str, password: str, via: str) -> User:
        """The user of these credentials, through the throttle, the hashing cap and the audit (every way of
        giving a password comes here); Refused when not."""
        users, throttle = self.dashboard.users, self.throttle
        address = request.remote_addr or "?"
        if not name or not password:
            raise Refused(400, "Give a user name and a password.")
        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
            raise Refused(400, f"A user name has at most {MAX_NAME} characters, a password at most {MAX_PASSWORD}.")
        wait, token = throttle.attempt(name, address)
        if wait:
            raise Refused(429, f"Too many failed logins: wait {wait:.0f} s.", wait)
        try:
            user = users.authenticate(name, password)
        except Busy as exc:
            throttle.undo(name, address, token)
            raise Refused(503, f"Too many logins at once: try again in {exc.retry_after} s.", exc.retry_after) from None
        if user is None:
            locked = throttle.wait(name, address) > 0
            self.audit_if_possible(
                name if users.valid_name(name) else "?",
                "dashboard login failed",
                f"from {address}",
                {"auth": via, "locked": locked} | ({} if users.valid_name(name) else {"name": name}),
            )
            raise Refused(401, "Wrong user name or password.")
        throttle.succeeded(name, address, token)
        self.audit_if_possible(user.name, "dashboard login", f"from {address}", {"role": user.role, "auth": via})
        return user

    def basic_user(self) -> User | None:
        """The user of the request's Basic credentials (None without any); Refused when they are refused."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        name, password = auth.username or "", auth.password or ""
        key = hmac.new(self._cache_key, f"{name}\0{password}".encode("utf-8", "replace"), "sha256").digest()
        now = time.monotonic()
        with self._basic_lock:
            known = self._basic_cache.get(key)
        user = self.dashboard.users.get(name) if known else None
        if known and user is not None and user.password_hash == known[0] and now < known[1]:
            return user  # checked in the last BASIC_CACHE_S, and neither removed nor given a new password
        user = self.authenticate(name, password, "basic")
        with self._basic_lock:
            if len(self._basic_cache) >= BASIC_CACHE_SIZE:
                self._basic_cache.clear()
            self._basic_cache[key] = (user.password_hash, now + BASIC_CACHE_S)
        return user

    def audit(self, user: str, action: str, target: str, details: dict[str, Any]) -> None:
        self.dashboard.store.audit(
            actor=user,
            action=action,
            target=target,
            details={**details, "via": "dashboard", "address": request.remote_addr},
        )

    def audit_if_possible(self, user: str, action: str, target: str, details: dict[str, Any]) -> None:
        """Audit what must not wait for the store (a login, a refusal): a store that fails is logged."""
        try:
            self.audit(user, action, target, details)
        except Exception as exc:
            log.error("cannot record %r of %s in the audit trail: %s", action, user, exc)


def csrf_token() -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    """The request carries the session's CSRF token and, if the browser sent one, a same-origin Origin."""
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        return False
    origin = request.headers.get("Origin")  # sent by browsers on POST: it must be this dashboard
    return origin is None or urlsplit(origin).netloc == request.host


def _refused(refused: Refused) -> Response:
    response = error(401 if refused.status == 400 else refused.status, refused.message)
    if refused.retry_after:
        response.headers["Retry-After"] = str(max(1, round(refused.retry_after)))
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = BASIC_REALM
    return response


def require_login(*, basic: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """401 without a session (or, with ``basic``, valid Basic credentials); the page redirects instead. The
    user is ``g.user`` in the view."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            gate = current_gate()
            try:
                user = gate.session_user() or (gate.basic_user() if basic and request.method == "GET" else None)
            except Refused as refused:
                return _refused(refused)
            if user is None:
                if not is_api():
                    return redirect(url_for("auth.login"))
                response = error(401, "log in first (POST /login), or send a dashboard user's Basic credentials")
                if basic:
                    response.headers["WWW-Authenticate"] = BASIC_REALM
                return response
            g.user = user
            return view(*args, **kwargs)

        return wrapper

    return decorator


def require_csrf(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 without the session's CSRF token (see ``csrf_ok``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not csrf_ok():
            return error(403, "missing or wrong CSRF token: reload the page and try again")
        return view(*args, **kwargs)

    return wrapper


__all__ = [
    "BASIC_CACHE_S",
    "BASIC_CACHE_SIZE",
    "Gate",
    "Refused",
    "csrf_ok",
    "csrf_token",
    "current_dashboard",
    "current_gate",
    "error",
    "is_api",
    "require_csrf",
    "require_login",
]
