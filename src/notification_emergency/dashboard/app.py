"""The dashboard's Flask application: pages, the JSON API behind them, server-sent events, /metrics.

Security, in the order every request meets it:

1. a session (a signed cookie set at login, HttpOnly, SameSite=Strict) or, for the read-only GET endpoints
   and /metrics only, HTTP Basic credentials of a dashboard user (for scrapers and scripts); none: 401 (the
   page itself redirects to the login form);
2. on every POST, the session's CSRF token in the ``X-CSRF-Token`` header (or a ``csrf_token`` form field),
   and a same-origin ``Origin`` when the browser sends one; otherwise 403;
3. for a control, the operator role; a viewer gets 403 (and the refusal is audited);
4. the input (JSON body, query parameters) checked before anything runs: 400 naming what is wrong.

Every control action goes to the audit trail with the user (requested, then succeeded/failed). Responses
carry a strict Content-Security-Policy: the pages load only their own script and stylesheet.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, Response, g, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from notification_emergency import __version__
from notification_emergency.dashboard import metrics
from notification_emergency.dashboard.core import Dashboard, secret_key
from notification_emergency.dashboard.jobs import ACTIONS, Conflict
from notification_emergency.dashboard.users import User
from notification_emergency.errors import BadInput
from notification_emergency.store import EVENT_KINDS, StoreError, parse_since

log = logging.getLogger("notification_emergency.dashboard")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_STREAMS = 32
LOGIN_FAILURES = 5  # per client address within LOGIN_WINDOW_S, then 429 until the window passes
LOGIN_WINDOW_S = 300.0


class LoginThrottle:
    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str) -> float:
        """Seconds this address must wait before trying again (0: it may try)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(address, []) if now - t < LOGIN_WINDOW_S]
            self._failures[address] = recent
            return LOGIN_WINDOW_S - (now - recent[0]) if len(recent) >= LOGIN_FAILURES else 0.0

    def failed(self, address: str) -> None:
        with self._lock:
            self._failures.setdefault(address, []).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def _error(status: int, message: str) -> Response:
    response = jsonify({"ok": False, "error": message})
    response.status_code = status
    return response


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise BadInput(f"query parameter {name} must be a whole number from {low} to {high}, not {raw!r}")
    return int(raw)


def _since_arg() -> Any:
    raw = request.args.get("since")
    if raw is not None and len(raw) > 64:
        raise BadInput("query parameter since is too long")
    return parse_since(raw, name="query parameter since")


def create_app(dashboard: Dashboard, *, secure_cookies: bool = False) -> Flask:
    """The Flask application of ``dashboard`` (whose ``start()`` the caller owns)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(dashboard.home),
        SESSION_COOKIE_NAME="notification_emergency_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.extensions["notification_emergency_dashboard"] = dashboard
    throttle = LoginThrottle()
    streams = threading.BoundedSemaphore(MAX_STREAMS)

    # -- who is asking -----------------------------------------------------------------------------------

    def session_user() -> User | None:
        name = session.get("user")
        if not isinstance(name, str):
            return None
        user = dashboard.users.get(name)
        if user is None:  # removed from the users file since login
            session.clear()
        return user

    def basic_user() -> User | None:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
            return None
        return dashboard.users.authenticate(auth.username, auth.password)

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    def csrf_ok() -> bool:
        expected = session.get("csrf")
        given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
            return False
        origin = request.headers.get("Origin")  # sent by browsers on POST: it must be this dashboard
        return origin is None or urlsplit(origin).netloc == request.host

    def audit(user: str, action: str, target: str, details: dict[str, Any]) -> None:
        dashboard.store.audit(
            actor=user,
            action=action,
            target=target,
            details={**details, "via": "dashboard", "address": request.remote_addr},
        )

    def audit_if_possible(user: str, action: str, target: str, details: dict[str, Any]) -> None:
        """Audit what must not wait for the store (a login, a refusal): a store that fails is logged."""
        try:
            audit(user, action, target, details)
        except Exception as exc:
            log.error("cannot record %r of %s in the audit trail: %s", action, user, exc)

    def require_login(*, basic: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """401 without a session (or, with ``basic``, valid Basic credentials); the page redirects instead."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                user = session_user() or (basic_user() if basic and request.method == "GET" else None)
                if user is None:
                    if not _is_api():
                        return redirect(url_for("login"))
                    response = _error(401, "log in first (POST /login), or send a dashboard user's Basic credentials")
                    if basic:
                        response.headers["WWW-Authenticate"] = 'Basic realm="notification-emergency dashboard"'
                    return response
                g.user = user
                return view(*args, **kwargs)

            return wrapper

        return decorator

    def require_csrf(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not csrf_ok():
                return _error(403, "missing or wrong CSRF token: reload the page and try again")
            return view(*args, **kwargs)

        return wrapper

    # -- every response ----------------------------------------------------------------------------------

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"  # (no-referrer makes Chromium send Origin: null)
        if request.path != "/static" and not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if _is_api() or request.method == "POST":
            return _error(exc.code or 500, exc.description or exc.name)
        return exc

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError) -> Response:
        return _error(503, f"the event store is not available: {exc.message}")

    @app.errorhandler(sa.exc.SQLAlchemyError)
    def database_error(exc: sa.exc.SQLAlchemyError) -> Response:
        log.error("event store error: %s", exc)
        return _error(503, f"the event store failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")

    @app.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> Response:
        return _error(400, exc.message)

    # -- pages -------------------------------------------------------------------------------------------

    @app.get("/login")
    def login() -> Any:
        if session_user() is not None:
            return redirect(url_for("index"))
        return render_template("login.html", csrf=csrf_token(), error=None, **login_context())

    def login_context() -> dict[str, Any]:
        users = dashboard.users.users()
        return {
            "no_users": not users and not dashboard.users.error,
            "users_error": dashboard.users.error,
            "users_file": str(dashboard.users.path),
            "version": __version__,
        }

    @app.post("/login")
    def login_post() -> Any:
        address = request.remote_addr or "?"
        if not csrf_ok():
            return render_template(
                "login.html", csrf=csrf_token(), error="The form expired: try again.", **login_context()
            ), 403
        wait = throttle.wait(address)
        if wait:
            return render_template(
                "login.html", csrf=csrf_token(), error=f"Too many failed logins: wait {wait:.0f} s.", **login_context()
            ), 429
        name = request.form.get("username", "")
        password = request.form.get("password", "")
        if not name or not password or len(name) > 64 or len(password) > 1024:
            return render_template(
                "login.html", csrf=csrf_token(), error="Give a user name and a password.", **login_context()
            ), 400
        user = dashboard.users.authenticate(name, password)
        if user is None:
            throttle.failed(address)
            audit_if_possible(name, "dashboard login failed", f"from {address}", {})
            return render_template(
                "login.html", csrf=csrf_token(), error="Wrong user name or password.", **login_context()
            ), 401
        throttle.succeeded(address)
        session.clear()  # a new session (and CSRF token) at each login: no fixation
        session.permanent = True
        session["user"] = user.name
        session["csrf"] = secrets.token_urlsafe(32)
        audit_if_possible(user.name, "dashboard login", f"from {address}", {"role": user.role})
        return redirect(url_for("index"))

    @app.post("/logout")
    @require_login()
    @require_csrf
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    @require_login()
    def index() -> Any:
        user: User = g.user
        return render_template(
            "index.html",
            user=user,
            csrf=csrf_token(),
            hosts=dashboard.hosts,
            actions=ACTIONS,
            version=__version__,
            store=dashboard.store.display_url,
        )

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness of the dashboard itself (no login; says nothing about the hosts)."""
        return jsonify({"ok": True})

    # -- the JSON API ------------------------------------------------------------------------------------

    @app.get("/api/state")
    @require_login(basic=True)
    def api_state() -> Response:
        return jsonify(dashboard.state())

    @app.get("/api/status")
    @require_login(basic=True)
    def api_status() -> Response:
        return jsonify({"hosts": dashboard.host_rows()})

    @app.get("/api/components")
    @require_login(basic=True)
    def api_components() -> Response:
        return jsonify(
            {row["host"]: {"live": row["components"], "last_check": row["last_check"]} for row in dashboard.host_rows()}
        )

    @app.get("/api/events")
    @require_login(basic=True)
    def api_events() -> Response:
        limit = _int_arg("limit", 50, 1, 1000)
        since = _since_arg()
        kinds = set(request.args.getlist("kind")) or None
        if kinds and not kinds <= EVENT_KINDS:
            raise BadInput(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}")
        return jsonify({"events": dashboard.store.events(since=since, limit=limit, kinds=kinds)})

    @app.get("/api/stats")
    @require_login(basic=True)
    def api_stats() -> Response:
        return jsonify(dashboard.store.statistics(since=_since_arg()))

    @app.get("/api/audit")
    @require_login(basic=True)
    def api_audit() -> Response:
        return jsonify(
            {"audit": dashboard.store.audit_trail(since=_since_arg(), limit=_int_arg("limit", 100, 1, 1000))}
        )

    @app.get("/api/actions")
    @require_login(basic=True)
    def api_actions() -> Response:
        return jsonify(
            {
                "actions": {name: {"label": spec.label, "kind": spec.kind} for name, spec in ACTIONS.items()},
                "jobs": dashboard.jobs.to_json(),
            }
        )

    @app.get("/api/actions/<job_id>")
    @require_login(basic=True)
    def api_job(job_id: str) -> Response:
        job = dashboard.jobs.get(job_id)
        if job is None:
            return _error(404, f"no dashboard action {job_id} (the dashboard keeps the last few)")
        return jsonify(job.to_json())

    @app.post("/api/actions")
    @require_login()
    @require_csrf
    def api_act() -> Response:
        """``{"action", "hosts"?, "inputs"?, "confirmed"?}``: without ``confirmed: true`` the answer is the
        confirmation text (what will happen, on which hosts); with it, the action starts (202)."""
        user: User = g.user
        body = request.get_json(silent=True)
        action = body.get("action") if isinstance(body, dict) else None
        if not user.can_act:
            named = action if isinstance(action, str) and action in ACTIONS else "action"
            audit_if_possible(
                user.name, f"dashboard {named} refused", "dashboard", {"role": user.role, "reason": "viewer"}
            )
            return _error(403, f"{user.name} is a viewer: only operators can run controls")
        if not isinstance(body, dict):
            raise BadInput('send a JSON object: {"action": NAME, "hosts": [HOST, ...], "inputs": {...}}')
        unknown = set(body) - {"action", "hosts", "inputs", "confirmed"}
        if unknown:
            raise BadInput(f"unknown fields {', '.join(sorted(map(str, unknown)))}")
        confirmed = body.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise BadInput("confirmed must be true or false")
        spec, hosts, inputs = dashboard.jobs.prepare(body.get("action"), body.get("hosts"), body.get("inputs"))
        description = spec.describe(hosts, inputs, user.name)
        busy = dashboard.jobs.conflict(hosts)
        if not confirmed:
            return jsonify(
                {
                    "ok": True,
                    "confirm": description,
                    "action": spec.name,
                    "label": spec.label,
                    "kind": spec.kind,
                    "hosts": hosts,
                    "inputs": inputs,
                    "busy": f"{busy.label} by {busy.user} is running on {', '.join(busy.hosts)}" if busy else None,
                }
            )
        # Recorded before it starts: an action the audit trail cannot hold does not run.
        audit(user.name, f"dashboard {spec.name}", ", ".join(hosts), {"role": user.role, "inputs": inputs})
        try:
            job = dashboard.jobs.start(spec, hosts, inputs, user.name)
        except Conflict as exc:
            audit(user.name, f"dashboard {spec.name} refused", ", ".join(hosts), {"reason": exc.message})
            return _error(409, exc.message)
        response = jsonify({"ok": True, "job": job.to_json()})
        response.status_code = 202
        return response

    # -- live updates and metrics ------------------------------------------------------------------------

    @app.get("/api/stream")
    @require_login()
    def api_stream() -> Response:
        if not streams.acquire(blocking=False):
            return _error(429, f"too many live streams (at most {MAX_STREAMS}); the page falls back to polling")
        name = g.user.name

        def still_allowed() -> bool:
            return dashboard.users.get(name) is not None

        response = Response(
            dashboard.stream(alive=still_allowed),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        response.call_on_close(streams.release)
        return response

    @app.get("/metrics")
    @require_login(basic=True)
    def metrics_view() -> Response:
        return Response(metrics.render(dashboard.live(), dashboard.record()), content_type=metrics.CONTENT_TYPE)

    return app


__all__ = ["create_app"]
