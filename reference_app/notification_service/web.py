"""The web process: pages, the HTTP API and ``/health``.

It re-reads ``config.yml`` when the file changes, so a mode switch written by the toolkit takes effect on
the next request. It never holds Socket.IO connections: it emits through the Redis message queue.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any

import redis
import requests
from flask import Flask, Response, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_socketio import SocketIO
from jinja2 import BaseLoader, Environment, TemplateNotFound
from jinja2.loaders import split_template_path
from sqlalchemy.exc import SQLAlchemyError

from . import __version__, healthcheck, redisq
from .config import Config, ConfigHolder
from .db import CHANNELS, Database, describe_error
from .emergency import read_emergency
from .names import PRIORITIES, USER_RULE, valid_user
from .tokens import MAX_AGE_SECONDS, make_ws_token

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
NOTIFICATION_FIELDS = ("user", "title", "message", "priority", "channel")
TITLE_MAX = 200
MESSAGE_MAX = 5000
JSON_MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")

# /health: each dependency check's own deadline (they run concurrently, so /health answers within about this
# long whatever hangs), the latency over which a correct answer is reported slow, and the websocket process's
# connect timeout. The websocket process's own /health answers within its shorter deadline (ws.py), so a
# hung dependency of the websocket process is not mistaken for a hung websocket process.
HEALTH_DEADLINE_S = 1.0
HEALTH_SLOW_MS = 500.0
WEBSOCKET_CONNECT_S = 0.5

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ActiveTemplatesLoader(BaseLoader):
    """Loads templates from the configured ``templates_dir`` of the moment.

    A compiled template stays cached only while the directory is the same and the file is unchanged.
    "Unchanged" includes the inode and ctime, so that copying another set into the same directory takes
    effect on the next render even when the copy keeps the files' modification times.
    """

    def __init__(self, current_dir: Callable[[], Path]) -> None:
        self._current_dir = current_dir

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        directory = self._current_dir()
        path = directory.joinpath(*split_template_path(template))
        stamp = _stamp(path)
        try:
            source = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise TemplateNotFound(template) from None

        def still_current() -> bool:
            return self._current_dir() == directory and _stamp(path) == stamp

        return source, str(path), still_current


class Resources:
    """Per-process clients, keyed by URL so that a reloaded config pointing elsewhere gets new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._databases: dict[str, Database] = {}
        self._redis: dict[str, redis.Redis] = {}
        self._emitters: dict[str, SocketIO] = {}

    def database(self, config: Config) -> Database:
        with self._lock:
            db = self._databases.get(config.database_url)
            if db is None:
                db = self._databases[config.database_url] = Database(config.database_url)
            return db

    def redis(self, config: Config) -> redis.Redis:
        with self._lock:
            conn = self._redis.get(config.redis_url)
            if conn is None:
                conn = self._redis[config.redis_url] = redisq.client(config.redis_url)
            return conn

    def emitter(self, config: Config) -> SocketIO:
        """A write-only Socket.IO emitter on the Redis message queue (no client connections here)."""
        with self._lock:
            emitter = self._emitters.get(config.redis_url)
            if emitter is None:
                emitter = SocketIO(message_queue=config.redis_url, async_mode="threading")
                emitter.server.manager.redis_options.update(redisq.CLIENT_OPTIONS)
                self._emitters[config.redis_url] = emitter
            return emitter


def _error(status: int, message: str, **headers: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_depth(text: str, limit: int) -> int:
    """How deeply arrays and objects nest in the JSON ``text`` (counting stops past ``limit``)."""
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
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bad_text(field: str, value: str) -> str | None:
    """Why the string ``value`` of ``field`` cannot be stored as text, or None."""
    found = _SURROGATE.search(value)
    if found:
        return (
            f"field {field!r} contains a lone surrogate (\\u{ord(found.group(0)):04x} at character {found.start()}), "
            "which is not text; send the text as UTF-8"
        )
    if "\x00" in value:
        return f"field {field!r} contains a NUL character (at character {value.index(chr(0))}); remove it"
    return None


def create_app(config: Config) -> Flask:
    holder = ConfigHolder(config)
    resources = Resources()
    app = Flask(__name__, static_folder=str(PACKAGE_DIR / "static"), template_folder=None)
    app.config.update(
        SECRET_KEY=config.secrets.secret_key,
        SESSION_COOKIE_NAME="notification_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        TEMPLATES_AUTO_RELOAD=True,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.jinja_env.loader = ActiveTemplatesLoader(lambda: holder.current.templates_dir)
    app.jinja_env.auto_reload = True
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    flask_wsgi = app.wsgi_app

    def refreshing_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Before Flask opens the session, so a rotated secret_key is already in force for this request.
        current = holder.refresh()
        app.config["SECRET_KEY"] = current.secrets.secret_key
        return flask_wsgi(environ, start_response)

    app.wsgi_app = refreshing_wsgi  # type: ignore[method-assign]

    try:
        resources.database(config).ensure_schema()
    except SQLAlchemyError as exc:
        log.error(
            "database %s not ready at start (will retry on use): %s",
            resources.database(config).safe_url,
            describe_error(exc),
        )

    @app.before_request
    def _current_config() -> None:
        g.config = holder.current

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def cfg() -> Config:
        current: Config = g.config
        return current

    # -- pages ------------------------------------------------------------------------------------------

    @app.get("/login")
    def login() -> Any:
        user = request.args.get("user", "").strip()
        if not valid_user(user):
            return Response(f"user must be {USER_RULE}; try /login?user=alice\n", status=400, mimetype="text/plain")
        try:
            resources.database(cfg()).ensure_user(user)
        except SQLAlchemyError as exc:
            log.warning("login of %s: database unavailable, user not recorded yet: %s", user, describe_error(exc))
        session.clear()
        session["user"] = user
        return redirect(url_for("index"))

    @app.get("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("index"))

    @app.get("/")
    def index() -> Any:
        config = cfg()
        user = session.get("user")
        if not valid_user(user):
            user = None
        database_error = None
        if user is not None:
            try:
                won = resources.database(config).claim_for_flash(user, any_channel=config.mode == "legacy")
            except SQLAlchemyError as exc:
                log.error("page for %s: cannot claim pending notifications: %s", user, describe_error(exc))
                database_error = "Notifications are temporarily unavailable."
                won = []
            for delivery in won:
                flash(delivery.flash_text(), delivery.priority)
            carried = [d for d in won if d.channel == "websocket"]
            if carried:
                try:
                    conn = resources.redis(config)
                    for delivery in carried:
                        redisq.remove_pending(conn, delivery.notification_id, user)
                except redis.RedisError as exc:
                    log.info("could not remove flashed deliveries from %s: %s", redisq.PENDING_KEY, exc)
        websocket = None
        if user is not None and config.mode == "websocket" and config.websocket.enabled:
            websocket = {
                "url": config.websocket.public_url,
                "namespace": config.websocket.namespace,
                "token": make_ws_token(config.secrets.secret_key, user),
            }
        return render_template(
            "index.html",
            user=user,
            mode=config.mode,
            websocket=websocket,
            emergency=read_emergency(config.emergency_file),
            database_error=database_error,
            version=__version__,
        )

    # -- health -----------------------------------------------------------------------------------------

    @app.get("/health")
    def health() -> Any:
        config = cfg()
        pending: dict[str, int] | None = None

        def check_web() -> dict[str, Any]:
            if not (config.templates_dir / "index.html").is_file():
                return {"status": "degraded", "error": f"no index.html in templates_dir {config.templates_dir}"}
            if holder.last_error:
                return {"status": "degraded", "error": f"config reload failed: {holder.last_error}"}
            return {"status": "healthy"}

        def check_database() -> None:
            nonlocal pending
            db = resources.database(config)
            db.ping()
            pending = db.pending_counts()

        def check_redis() -> None:
            redisq.ping_and_write(resources.redis(config))

        def check_websocket() -> dict[str, Any]:
            if not config.websocket.enabled:
                return {"status": "disabled"}
            url = f"{config.websocket_base_url}/health"
            try:
                response = requests.get(url, timeout=(WEBSOCKET_CONNECT_S, HEALTH_DEADLINE_S))
            except requests.RequestException as exc:
                reason = healthcheck.failure_reason(exc)
                return {"status": "failed", "reason": reason, "error": f"{url} {reason}: {type(exc).__name__}"}
            try:
                body = response.json()
            except ValueError:
                body = {}
            remote = body.get("status") if isinstance(body, dict) else None
            if response.status_code == 200 and remote == "healthy":
                return {"status": "healthy"}
            problems = (
                [
                    f"{name} {part.get('status')}"
                    for name, part in (body.get("components") or {}).items()
                    if isinstance(part, dict) and part.get("status") != "healthy"
                ]
                if isinstance(body, dict)
                else []
            )
            detail = ", ".join(problems) or f"HTTP {response.status_code}"
            status = "failed" if remote in (None, "failed") else "degraded"
            return {"status": status, "error": f"websocket process reports {remote or 'no status'}: {detail}"}

        # Concurrently, each with its own deadline: a dependency that hangs is reported hung, never waited for.
        components = healthcheck.run_checks(
            {"web": check_web, "database": check_database, "redis": check_redis, "websocket": check_websocket},
            HEALTH_DEADLINE_S,
            HEALTH_SLOW_MS,
        )
        emergency = read_emergency(config.emergency_file)
        needed = ["web", "database"]
        if config.mode == "websocket":
            needed += ["redis", "websocket"]
        if components["database"]["status"] == "failed":
            status = "failed"
        elif emergency.state == "unreadable" or any(
            components[name]["status"] in ("failed", "degraded") for name in needed
        ):
            status = "degraded"
        else:
            status = "healthy"
        body = {
            "status": status,
            "mode": config.mode,
            "websocket_enabled": config.websocket.enabled,
            "version": __version__,
            "emergency": emergency.as_dict(),
            "pending": pending,
            "components": components,
        }
        response = jsonify(body)
        response.status_code = 503 if status == "failed" else 200
        return response

    # -- API --------------------------------------------------------------------------------------------

    def api_token_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "").strip()
            how = "send the api_token of the secrets file as the header 'Authorization: Bearer <api_token>'"
            if not header:
                return _error(401, f"missing API token: {how}", WWW_Authenticate='Bearer realm="notifications"')
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _error(
                    401, f"malformed Authorization header: {how}", WWW_Authenticate='Bearer realm="notifications"'
                )
            expected = cfg().secrets.api_token.encode()
            if not hmac.compare_digest(token.strip().encode(), expected):
                return _error(403, "invalid API token")
            return view(*args, **kwargs)

        return wrapper

    def json_body() -> dict[str, Any] | Response:
        """The request's JSON object; anything else is a 400 saying what is wrong (never a 500): not JSON, not
        UTF-8, nested deeper than JSON_MAX_DEPTH, numbers Python cannot hold, NaN, lone surrogates or NUL in a
        field's text."""
        expected = "the request body must be a JSON object (Content-Type: application/json)"
        if not request.is_json:
            return _error(400, expected)
        raw = request.get_data(cache=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(400, f"the request body is not UTF-8 (byte {exc.start}); {expected}")
        if _json_depth(text, JSON_MAX_DEPTH) > JSON_MAX_DEPTH:
            return _error(400, f"the request body nests arrays or objects deeper than {JSON_MAX_DEPTH} levels")
        try:
            body = json.loads(text, parse_constant=_not_json_constant)
        except json.JSONDecodeError as exc:
            return _error(
                400, f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            )
        except (ValueError, RecursionError) as exc:
            return _error(400, f"the request body is not usable JSON ({str(exc).split(';')[0][:120]})")
        if not isinstance(body, dict):
            return _error(400, expected)
        for key, value in body.items():
            if _SURROGATE.search(key) or "\x00" in key:
                return _error(400, f"field name {_shown(key)} is not text (a lone surrogate or NUL); send UTF-8")
            why = _bad_text(key, value) if isinstance(value, str) else None
            if why:
                return _error(400, why)
        return body

    @app.post("/api/notifications")
    @api_token_required
    def create_notification() -> Any:
        body = json_body()
        if isinstance(body, Response):
            return body
        allowed = ", ".join(NOTIFICATION_FIELDS)
        unknown = sorted(str(key) for key in body if key not in NOTIFICATION_FIELDS)
        if unknown:
            return _error(400, f"unknown field {_shown(unknown[0])}; allowed fields: {allowed}")
        user = body.get("user")
        if user is None:
            return _error(400, "field 'user' is required: a user name or '*' for everyone")
        if user != "*" and not valid_user(user):
            return _error(400, f"field 'user' must be '*' (everyone) or a user name of {USER_RULE}; got {_shown(user)}")
        title = body.get("title")
        if title is None:
            return _error(400, f"field 'title' is required: a non-empty string of at most {TITLE_MAX} characters")
        if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX:
            return _error(400, f"field 'title' must be a non-empty string of at most {TITLE_MAX} characters")
        message = body.get("message", "")
        if message is None:
            message = ""
        if not isinstance(message, str) or len(message) > MESSAGE_MAX:
            return _error(400, f"field 'message' must be a string of at most {MESSAGE_MAX} characters")
        priority = body.get("priority", "normal")
        if priority not in PRIORITIES:
            return _error(400, f"field 'priority' must be one of {', '.join(PRIORITIES)}; got {_shown(priority)}")

        config = cfg()
        channel = body.get("channel") or config.delivery_channel
        if channel not in CHANNELS:
            return _error(
                400, f"field 'channel' must be one of {', '.join(CHANNELS)} (or absent); got {_shown(channel)}"
            )
        if channel == "websocket" and config.delivery_channel != "websocket":
            return _error(
                409, f"channel 'websocket' is off in mode {config.mode}; send channel 'flash' or leave 'channel' out"
            )
        try:
            created = resources.database(config).create_notification(
                None if user == "*" else user, title.strip(), message, priority, channel
            )
        except SQLAlchemyError as exc:
            log.error("cannot store notification: %s", describe_error(exc))
            return _error(503, "database unavailable; the notification was not stored, retry later")
        published = False
        if channel == "websocket" and created.recipients:
            published = publish(
                config,
                created.id,
                created.recipients,
                {
                    "id": created.id,
                    "user": user,
                    "title": title.strip(),
                    "message": message,
                    "priority": priority,
                    "created_at": created.created_at.isoformat(),
                    "broadcast": user == "*",
                },
                created.created_at.timestamp(),
            )
        response = jsonify(
            {"id": created.id, "recipients": len(created.recipients), "channel": channel, "published": published}
        )
        response.status_code = 201
        return response

    def publish(
        config: Config, notification_id: int, recipients: list[str], payload: dict[str, Any], score: float
    ) -> bool:
        """Queue and emit; on a Redis failure the deliveries stay pending and are replayed on connect."""
        try:
            redisq.add_pending(resources.redis(config), notification_id, recipients, score)
        except redis.RedisError as exc:
            log.warning(
                "notification %s stays pending in the database (replayed when its users connect): "
                "Redis unavailable: %s",
                notification_id,
                redisq.describe(exc),
            )
            return False
        try:
            resources.emitter(config).emit(
                "notification",
                payload,
                namespace=config.websocket.namespace,
                to=[f"user:{recipient}" for recipient in recipients],
            )
        except Exception as exc:
            log.warning(
                "notification %s stays pending (replayed on connect): emit failed: %s",
                notification_id,
                describe_error(exc),
            )
            return False
        return True

    @app.get("/api/notifications")
    @api_token_required
    def list_notifications() -> Any:
        user = request.args.get("user", "")
        if not valid_user(user):
            return _error(400, f"query parameter 'user' must be a user name of {USER_RULE}")
        try:
            rows = resources.database(cfg()).list_deliveries(user)
        except SQLAlchemyError as exc:
            log.error("cannot list deliveries: %s", describe_error(exc))
            return _error(503, "database unavailable, retry later")
        return jsonify({"user": user, "deliveries": [row.as_dict() for row in rows]})

    @app.post("/api/ws-token")
    @api_token_required
    def ws_token() -> Any:
        body = json_body()
        if isinstance(body, Response):
            return body
        unknown = sorted(str(key) for key in body if key != "user")
        if unknown:
            return _error(400, f"unknown field {_shown(unknown[0])}; allowed fields: user")
        user = body.get("user")
        if not valid_user(user):
            return _error(400, f"field 'user' must be a user name of {USER_RULE}")
        try:
            resources.database(cfg()).ensure_user(user)
        except SQLAlchemyError as exc:
            log.warning("ws-token for %s: database unavailable, user not recorded yet: %s", user, describe_error(exc))
        token = make_ws_token(cfg().secrets.secret_key, user)
        return jsonify({"token": token, "user": user, "expires_in": MAX_AGE_SECONDS})

    # -- errors -----------------------------------------------------------------------------------------

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Any:
        if request.path.startswith("/api/"):
            return _error(404, f"no such endpoint: {request.method} {request.path}")
        return Response("not found\n", status=404, mimetype="text/plain")

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Any:
        if request.path.startswith("/api/"):
            return _error(405, f"method {request.method} not allowed on {request.path}")
        return Response("method not allowed\n", status=405, mimetype="text/plain")

    @app.errorhandler(413)
    def too_large(exc: Exception) -> Any:
        return _error(413, "request body too large (at most 64 KiB)")

    @app.errorhandler(500)
    def server_error(exc: Exception) -> Any:
        if request.path.startswith("/api/") or request.path == "/health":
            return _error(500, "internal error; see the web process log")
        return Response("internal error\n", status=500, mimetype="text/plain")

    app.extensions["notification_service"] = {"holder": holder, "resources": resources}
    return app
