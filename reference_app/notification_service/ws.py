"""The websocket process: Flask-SocketIO in ``threading`` mode, joined to the web process by Redis.

Clients authenticate with a token from the web process, join ``user:<id>``, are sent their pending
websocket deliveries (replay), and ``ack`` each one; the database decides which claim wins. A monitoring
client authenticates with ``{"api_token": ...}`` instead: it may only ``ping``.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

from flask import Flask, jsonify, request
from flask_socketio import ConnectionRefusedError as SocketRefused
from flask_socketio import SocketIO, join_room
from sqlalchemy.exc import SQLAlchemyError

from . import __version__, healthcheck, redisq
from .config import Config
from .db import Database, Delivery, describe_error
from .tokens import verify_ws_token

log = logging.getLogger(__name__)

REPLAY_WAIT_SECONDS = 10.0
# /health: each dependency check's deadline (under the web's 1 s for this whole endpoint) and slow threshold.
HEALTH_DEADLINE_S = 0.5
HEALTH_SLOW_MS = 300.0


def _notification_id(data: Any) -> int | None:
    value = data.get("id") if isinstance(data, dict) else data
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def create_ws_app(config: Config) -> Flask:
    namespace = config.websocket.namespace
    app = Flask(__name__, static_folder=None, template_folder=None)
    app.config["SECRET_KEY"] = config.secrets.secret_key
    db = Database(config.database_url, pool_size=10, max_overflow=30)
    try:
        db.ensure_schema()
    except SQLAlchemyError as exc:
        log.error("database %s not ready at start (will retry on use): %s", db.safe_url, describe_error(exc))
    redis_conn = redisq.client(config.redis_url)
    socketio = SocketIO(
        app,
        async_mode="threading",
        message_queue=config.redis_url,
        cors_allowed_origins=config.cors_origins(),
        ping_interval=25,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    socketio.server.manager.redis_options.update(redisq.LISTENER_OPTIONS)
    users: dict[str, str] = {}  # Socket.IO sid -> user
    users_lock = threading.Lock()

    def replay(sid: str, user: str, pending: list[Delivery]) -> None:
        """Send the pending deliveries read at connect time once the client is fully connected.

        Emitting from the connect handler itself would reach the client before the CONNECT packet; the
        server marks the client connected only after that packet is queued, so waiting for that keeps
        the order. The list was read after the client joined its room: anything created later arrives
        live, so nothing is missed (a notification created in between may arrive twice; only one ack
        claims it).
        """
        manager = socketio.server.manager
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while not manager.is_connected(sid, namespace):
            with users_lock:
                gone = sid not in users
            if gone or time.monotonic() > deadline:
                return
            time.sleep(0.005)
        for delivery in pending:
            socketio.server.emit(
                "notification", delivery.event_payload(), to=sid, namespace=namespace, ignore_queue=True
            )
        log.info("replayed %d pending notifications to %s", len(pending), user)

    @socketio.on("connect", namespace=namespace)
    def on_connect(auth: Any = None) -> None:
        monitor_token = auth.get("api_token") if isinstance(auth, dict) else None
        if isinstance(monitor_token, str):
            # A monitoring connection (the toolkit's health check): proves the namespace answers and
            # may ``ping``; it is no user, joins no room and is sent nothing.
            if not hmac.compare_digest(monitor_token.encode(), config.secrets.api_token.encode()):
                raise SocketRefused("wrong api_token for a monitoring connection")
            return
        token = auth.get("token") if isinstance(auth, dict) else None
        user = verify_ws_token(config.secrets.secret_key, token)
        if user is None:
            raise SocketRefused("invalid or expired token: get one from POST /api/ws-token or the page")
        sid: str = request.sid  # type: ignore[attr-defined]
        with users_lock:
            users[sid] = user
        join_room(f"user:{user}")
        try:
            db.ensure_user(user)
            pending = db.pending_for_user(user, "websocket")
        except SQLAlchemyError as exc:
            log.error("connect of %s: cannot read pending notifications: %s", user, describe_error(exc))
            return
        if pending:
            socketio.start_background_task(replay, sid, user, pending)

    @socketio.on("disconnect", namespace=namespace)
    def on_disconnect(reason: Any = None) -> None:
        with users_lock:
            users.pop(request.sid, None)  # type: ignore[attr-defined]

    @socketio.on("ack", namespace=namespace)
    def on_ack(data: Any = None) -> dict[str, Any]:
        with users_lock:
            user = users.get(request.sid)  # type: ignore[attr-defined]
        notification_id = _notification_id(data)
        if user is None or notification_id is None:
            return {"claimed": False, "error": 'ack needs {"id": <notification id>}'}
        try:
            claimed = db.claim(notification_id, user, channel="websocket", deliver_as="websocket")
        except SQLAlchemyError as exc:
            log.error("ack of %s by %s failed: %s", notification_id, user, describe_error(exc))
            return {"claimed": False, "error": "database unavailable"}
        if claimed:
            try:
                redisq.remove_pending(redis_conn, notification_id, user)
            except Exception as exc:
                log.info("could not remove %s from %s: %s", notification_id, redisq.PENDING_KEY, exc)
        return {"claimed": claimed}

    @socketio.on("ping", namespace=namespace)
    def on_ping(*_args: Any) -> str:
        return "pong"

    @app.get("/health")
    def health() -> Any:
        # Concurrently, each with its own deadline (shorter than the web's check of this endpoint).
        components = healthcheck.run_checks(
            {"database": db.ping, "redis": lambda: redisq.ping_and_write(redis_conn)},
            HEALTH_DEADLINE_S,
            HEALTH_SLOW_MS,
        )
        if components["database"]["status"] == "failed":
            status = "failed"
        elif components["redis"]["status"] == "failed":
            status = "degraded"
        else:
            status = "healthy"
        with users_lock:
            clients = len(users)
        response = jsonify(
            {
                "status": status,
                "process": "websocket",
                "version": __version__,
                "namespace": namespace,
                "clients": clients,
                "components": components,
            }
        )
        response.status_code = 503 if status == "failed" else 200
        return response

    app.extensions["notification_service"] = {"socketio": socketio, "database": db}
    return app


def disconnect_all(app: Flask) -> None:
    """Close every client connection (used on SIGTERM so that shutdown does not wait for them)."""
    socketio: SocketIO | None = app.extensions.get("notification_service", {}).get("socketio")
    if socketio is None:
        return
    try:
        socketio.server.eio.disconnect()
    except Exception as exc:  # pragma: no cover - best effort during shutdown
        log.info("disconnecting clients at shutdown: %s", exc)
