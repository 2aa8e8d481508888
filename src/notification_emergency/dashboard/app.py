"""The dashboard's Flask application: pages, the JSON API behind them, server-sent events, /metrics.

``create_app`` only wires the parts: the configuration, the security headers and error answers that every
response gets, and one blueprint per responsibility (:mod:`notification_emergency.dashboard.web`).

Security, in the order every request meets it:

1. a session (a signed cookie set at login, HttpOnly, SameSite=Strict, whose random id must be live in the
   server-side session list: logout ends it for good) or, for the read-only GET endpoints and /metrics only,
   HTTP Basic credentials of a dashboard user (for scrapers and scripts); none: 401 (the page itself
   redirects to the login form);
2. on every POST, the session's CSRF token in the ``X-CSRF-Token`` header (or a ``csrf_token`` form field),
   and a same-origin ``Origin`` when the browser sends one; otherwise 403;
3. for a control, the operator role; a viewer gets 403 (and the refusal is audited);
4. the input (JSON body, query parameters) checked before anything runs: 400 naming what is wrong.

Both ways of giving a password (the login form, Basic credentials) go through one function,
``Gate.authenticate``: the same throttle (failures per user name and, with a higher limit, per client
address; 429 with Retry-After), the same cap on concurrent password hashing (503 with Retry-After when
full) and the same audit records (``dashboard login``, ``dashboard login failed``, with ``auth`` form or
basic). Basic credentials that were right are remembered (keyed by an HMAC, until the users file changes or
``BASIC_CACHE_S`` passes) so that a scraper does not cost a password hash every scrape.

Every control action goes to the audit trail with the user (requested, then succeeded/failed). Responses
carry a strict Content-Security-Policy: the pages load only their own script and stylesheet.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from notification_emergency.dashboard.core import Dashboard, secret_key
from notification_emergency.dashboard.sessions import SESSION_LIFETIME_S
from notification_emergency.dashboard.web.actions import actions
from notification_emergency.dashboard.web.api import api
from notification_emergency.dashboard.web.auth import auth
from notification_emergency.dashboard.web.inputs import MAX_JSON_DEPTH
from notification_emergency.dashboard.web.live import MAX_STREAMS, live
from notification_emergency.dashboard.web.pages import pages
from notification_emergency.dashboard.web.security import BASIC_CACHE_S, BASIC_CACHE_SIZE, Gate, Refused, error, is_api
from notification_emergency.dashboard.web.throttle import (
    LOGIN_FAILURES_PER_ADDRESS,
    LOGIN_FAILURES_PER_USER,
    LOGIN_WINDOW_S,
    MAX_TRACKED,
    LoginThrottle,
)
from notification_emergency.errors import BadInput
from notification_emergency.store import StoreError

log = logging.getLogger("notification_emergency.dashboard")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
BLUEPRINTS = (auth, pages, api, actions, live)


def create_app(dashboard: Dashboard, *, secure_cookies: bool = False, throttle: LoginThrottle | None = None) -> Flask:
    """The Flask application of ``dashboard`` (whose ``start()`` the caller owns); ``throttle``: the login
    throttle's limits, if not the defaults."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(dashboard.home),
        SESSION_COOKIE_NAME="notification_emergency_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=SESSION_LIFETIME_S),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    Gate(dashboard, throttle or LoginThrottle(), app.config["SECRET_KEY"]).install(app)
    app.after_request(_headers)
    _install_error_handlers(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def _headers(response: Response) -> Response:
    """What every response carries: the CSP, no sniffing, no framing; no caching but of the static files."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # (no-referrer makes Chromium send Origin: null)
    if request.path != "/static" and not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error(exc: HTTPException) -> Any:
    if is_api() or request.method == "POST":
        return error(exc.code or 500, exc.description or exc.name)
    return exc


def _store_error(exc: StoreError) -> Response:
    return error(503, f"the event store is not available: {exc.message}")


def _database_error(exc: sa.exc.SQLAlchemyError) -> Response:
    log.error("event store error: %s", exc)
    return error(503, f"the event store failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")


def _bad_input(exc: BadInput) -> Response:
    return error(400, exc.message)


def _install_error_handlers(app: Flask) -> None:
    """Errors of the API and of every POST are JSON (``{"ok": false, "error"}``), never a traceback page."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(sa.exc.SQLAlchemyError, _database_error)
    app.register_error_handler(BadInput, _bad_input)


__all__ = [
    "BASIC_CACHE_S",
    "BASIC_CACHE_SIZE",
    "CSP",
    "LOGIN_FAILURES_PER_ADDRESS",
    "LOGIN_FAILURES_PER_USER",
    "LOGIN_WINDOW_S",
    "MAX_JSON_DEPTH",
    "MAX_STREAMS",
    "MAX_TRACKED",
    "LoginThrottle",
    "Refused",
    "create_app",
]
