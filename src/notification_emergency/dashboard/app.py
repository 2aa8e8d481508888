"""The dashboard's Flask application: pages, the JSON API behind them, server-sent events, /metrics.

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
``authenticate``: the same throttle (failures per user name and, with a higher limit, per client address;
429 with Retry-After), the same cap on concurrent password hashing (503 with Retry-After when full) and the
same audit records (``dashboard login``, ``dashboard login failed``, with ``auth`` form or basic). Basic
credentials that were right are remembered (keyed by an HMAC, until the users file changes or
``BASIC_CACHE_S`` passes) so that a scraper does not cost a password hash every scrape.

Every control action goes to the audit trail with the user (requested, then succeeded/failed). Responses
carry a strict Content-Security-Policy: the pages load only their own script and stylesheet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
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
from notification_emergency.dashboard.sessions import SESSION_LIFETIME_S
from notification_emergency.dashboard.users import MAX_NAME, MAX_PASSWORD, Busy, User
from notification_emergency.errors import BadInput
from notification_emergency.store import EVENT_KINDS, StoreError, parse_since

log = logging.getLogger("notification_emergency.dashboard")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_STREAMS = 32
LOGIN_FAILURES_PER_USER = 5  # failed logins of one user name within LOGIN_WINDOW_S (from any address)
LOGIN_FAILURES_PER_ADDRESS = 20  # failed logins from one client address within LOGIN_WINDOW_S (any names)
LOGIN_WINDOW_S = 300.0
MAX_TRACKED = 10_000  # names and addresses the throttle remembers (the oldest are forgotten first)
BASIC_CACHE_S = 600.0
BASIC_CACHE_SIZE = 256
MAX_JSON_DEPTH = 32


class LoginThrottle:
    """Failed logins counted per user name and per client address in a sliding window of ``window`` s.

    A name with ``per_user`` failures is refused from every address (a guesser cannot spread over
    addresses); an address with ``per_address`` failures is refused for every name (a guesser cannot spread
    over names). Below the address limit, the other users of a shared address (a NAT, a proxy) still log
    in while one name is hammered. An attempt counts as a failure from the moment it starts, so parallel
    attempts cannot slip past the limit together; a success takes its attempt back and clears the name's
    failures (not the address's: a valid login of one's own must not reset a guesser's count).
    """

    def __init__(
        self,
        per_user: int = LOGIN_FAILURES_PER_USER,
        per_address: int = LOGIN_FAILURES_PER_ADDRESS,
        window: float = LOGIN_WINDOW_S,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._users: dict[str, list[float]] = {}
        self._addresses: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, table: dict[str, list[float]], key: str, now: float) -> list[float]:
        recent = [t for t in table.get(key, ()) if now - t < self.window]
        if recent:
            table[key] = recent
        else:
            table.pop(key, None)
        return recent

    def _wait(self, user: str, address: str, now: float) -> float:
        waits = [
            self.window - (now - recent[-limit])
            for table, key, limit in ((self._users, user, self.per_user), (self._addresses, address, self.per_address))
            if len(recent := self._recent(table, key, now)) >= limit
        ]
        return max(waits, default=0.0)

    def wait(self, user: str, address: str) -> float:
        """Seconds before ``user`` may try again from ``address`` (0: now)."""
        with self._lock:
            return self._wait(user, address, time.monotonic())

    def attempt(self, user: str, address: str) -> tuple[float, float]:
        """Start an attempt: ``(wait, 0)`` when refused, else ``(0, token)`` with the attempt counted as failed
        until ``succeeded`` or ``undo`` takes it back."""
        now = time.monotonic()
        with self._lock:
            wait = self._wait(user, address, now)
            if wait:
                return wait, 0.0
            for table, key in ((self._users, user), (self._addresses, address)):
                if key not in table and len(table) >= MAX_TRACKED:
                    self._forget(table, now)
                table.setdefault(key, []).append(now)
            return 0.0, now

    def _forget(self, table: dict[str, list[float]], now: float) -> None:
        for key in [k for k, times in table.items() if now - times[-1] >= self.window]:
            del table[key]
        while len(table) >= MAX_TRACKED:
            del table[min(table, key=lambda k: table[k][-1])]

    def _take_back(self, table: dict[str, list[float]], key: str, token: float) -> None:
        times = table.get(key)
        if times and token in times:
            times.remove(token)
        if not times:
            table.pop(key, None)

    def succeeded(self, user: str, address: str, token: float) -> None:
        with self._lock:
            self._users.pop(user, None)
            self._take_back(self._addresses, address, token)

    def undo(self, user: str, address: str, token: float) -> None:
        """An attempt that checked no password (the hashing cap was full): it does not count."""
        with self._lock:
            self._take_back(self._users, user, token)
            self._take_back(self._addresses, address, token)


class Refused(Exception):
    """A login refused: ``status`` (400, 401, 429, 503), the message, and Retry-After seconds if any."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (strings skipped), without parsing it: one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _json_body() -> Any:
    """The request's JSON body (None without one, or without ``Content-Type: application/json``); BadInput
    for a body that is not UTF-8, not JSON, or nested deeper than ``MAX_JSON_DEPTH``."""
    if not request.is_json:
        return None
    raw = request.get_data(cache=True)  # (over MAX_CONTENT_LENGTH: 413 before this)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"the request body is not UTF-8 (byte {exc.start}): send JSON in UTF-8") from None
    if not text.strip():
        return None
    depth = _nesting(text)
    if depth > MAX_JSON_DEPTH:
        raise BadInput(f"the request body is JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"the request body is not valid JSON: {str(exc)[:200]}") from None


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
    if not re.fullmatch(r"\s*[0-9]{1,9}\s*", raw) or not low <= int(raw) <= high:
        raise BadInput(f"query parameter {name} must be a whole number from {low} to {high}, not {raw[:80]!r}")
    return int(raw)


def _since_arg() -> Any:
    raw = request.args.get("since")
    if raw is not None and len(raw) > 64:
        raise BadInput("query parameter since is too long")
    try:
        return parse_since(raw, name="query parameter since")
    except (OverflowError, ValueError):  # a duration beyond the calendar (99999999d), a time out of range
        raise BadInput(f"query parameter since {raw!r} reaches before the year 1; give a shorter duration") from None


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
    app.extensions["notification_emergency_dashboard"] = dashboard
    throttle = throttle or LoginThrottle()
    streams = threading.BoundedSemaphore(MAX_STREAMS)
    basic_cache: dict[bytes, tuple[str, float]] = {}  # HMAC of name and password -> (password hash, until)
    basic_lock = threading.Lock()
    cache_key = hashlib.sha256(b"basic-cache\0" + app.config["SECRET_KEY"]).digest()

    # -- who is asking -----------------------------------------------------------------------------------

    def session_user() -> User | None:
        name = session.get("user")
        if not isinstance(name, str):
            return None
        user = dashboard.users.get(name)
        if user is None or not dashboard.sessions.valid(session.get("sid"), name):
            session.clear()  # removed from the users file since login, logged out, expired
            return None
        return user

    def authenticate(name: str, password: str, via: str) -> User:
        """The user of these credentials, through the throttle, the hashing cap and the audit (every way of
        giving a password comes here); Refused when not."""
        address = request.remote_addr or "?"
        if not name or not password:
            raise Refused(400, "Give a user name and a password.")
        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
            raise Refused(400, f"A user name has at most {MAX_NAME} characters, a password at most {MAX_PASSWORD}.")
        wait, token = throttle.attempt(name, address)
        if wait:
            raise Refused(429, f"Too many failed logins: wait {wait:.0f} s.", wait)
        try:
            user = dashboard.users.authenticate(name, password)
        except Busy as exc:
            throttle.undo(name, address, token)
            raise Refused(503, f"Too many logins at once: try again in {exc.retry_after} s.", exc.retry_after) from None
        if user is None:
            locked = throttle.wait(name, address) > 0
            audit_if_possible(
                name if dashboard.users.valid_name(name) else "?",
                "dashboard login failed",
                f"from {address}",
                {"auth": via, "locked": locked} | ({} if dashboard.users.valid_name(name) else {"name": name}),
            )
            raise Refused(401, "Wrong user name or password.")
        throttle.succeeded(name, address, token)
        audit_if_possible(user.name, "dashboard login", f"from {address}", {"role": user.role, "auth": via})
        return user

    def basic_user() -> User | None:
        """The user of the request's Basic credentials (None without any); Refused when they are refused."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        name, password = auth.username or "", auth.password or ""
        key = hmac.new(cache_key, f"{name}\0{password}".encode("utf-8", "replace"), "sha256").digest()
        now = time.monotonic()
        with basic_lock:
            known = basic_cache.get(key)
        user = dashboard.users.get(name) if known else None
        if known and user is not None and user.password_hash == known[0] and now < known[1]:
            return user  # checked in the last BASIC_CACHE_S, and neither removed nor given a new password
        user = authenticate(name, password, "basic")
        with basic_lock:
            if len(basic_cache) >= BASIC_CACHE_SIZE:
                basic_cache.clear()
            basic_cache[key] = (user.password_hash, now + BASIC_CACHE_S)
        return user

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
                try:
                    user = session_user() or (basic_user() if basic and request.method == "GET" else None)
                except Refused as refused:
                    response = _error(401 if refused.status == 400 else refused.status, refused.message)
                    if refused.retry_after:
                        response.headers["Retry-After"] = str(max(1, round(refused.retry_after)))
                    if response.status_code == 401:
                        response.headers["WWW-Authenticate"] = 'Basic realm="notification-emergency dashboard"'
                    return response
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
        if not csrf_ok():
            return render_template(
                "login.html", csrf=csrf_token(), error="The form expired: try again.", **login_context()
            ), 403
        try:
            user = authenticate(request.form.get("username", ""), request.form.get("password", ""), "form")
        except Refused as refused:
            page = render_template("login.html", csrf=csrf_token(), error=refused.message, **login_context())
            headers = {"Retry-After": str(max(1, round(refused.retry_after)))} if refused.retry_after else {}
            return page, refused.status, headers
        session.clear()  # a new session (id, CSRF token) at each login: no fixation
        session.permanent = True
        session["user"] = user.name
        session["sid"] = dashboard.sessions.create(user.name)
        session["csrf"] = secrets.token_urlsafe(32)
        return redirect(url_for("index"))

    @app.post("/logout")
    @require_login()
    @require_csrf
    def logout() -> Any:
        """End the session here and server-side: the cookie, even if saved, no longer logs anybody in."""
        dashboard.sessions.revoke(session.get("sid"))
        audit_if_possible(g.user.name, "dashboard logout", f"from {request.remote_addr or '?'}", {})
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
        body_error: BadInput | None = None
        try:
            body = _json_body()
        except BadInput as exc:  # (a viewer is told that first)
            body, body_error = None, exc
        action = body.get("action") if isinstance(body, dict) else None
        if not user.can_act:
            named = action if isinstance(action, str) and action in ACTIONS else "action"
            audit_if_possible(
                user.name, f"dashboard {named} refused", "dashboard", {"role": user.role, "reason": "viewer"}
            )
            return _error(403, f"{user.name} is a viewer: only operators can run controls")
        if body_error is not None:
            raise body_error
        if not isinstance(body, dict):
            raise BadInput(
                'the request body must be a JSON object: {"action": NAME, "hosts": [HOST, ...], "inputs": {...}}'
            )
        unknown = set(body) - {"action", "hosts", "inputs", "confirmed"}
        if unknown:
            raise BadInput(
                f"the request body has unknown fields {', '.join(sorted(map(str, unknown)))[:500]}; "
                "it takes action, hosts, inputs and confirmed"
            )
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

    @app.get("/metrics")
    @require_login(basic=True)
    def metrics_view() -> Response:
        return Response(metrics.render(dashboard.live(), dashboard.record()), content_type=metrics.CONTENT_TYPE)

    return app


__all__ = ["create_app"]
