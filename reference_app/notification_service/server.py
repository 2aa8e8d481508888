"""Running the web and websocket processes under gunicorn, configured from config.yml (no gunicorn CLI)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from .config import Config

log = logging.getLogger(__name__)

# Under supervisord's stopwaitsecs (5 s, roles/notification_service/templates/supervisor-program.conf.j2), so a
# graceful stop completes before supervisord's SIGKILL; a hung process (SIGSTOP, deadlock) is killed after it.
WEB_GRACEFUL_TIMEOUT = 3
WEBSOCKET_GRACEFUL_TIMEOUT = 3
WEBSOCKET_THREADS = 100


class ServiceApplication(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose settings come from a dict and whose app is built in each worker."""

    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _common_options(name: str) -> dict[str, Any]:
    return {
        "worker_class": "gthread",
        "proc_name": f"notification-service-{name}",
        "errorlog": "-",  # stderr; supervisord captures it
        "accesslog": None,
        "loglevel": "info",
        "preload_app": False,  # each worker opens its own database and Redis connections after the fork
        "control_socket_disable": True,  # two gunicorn masters would fight over one default socket path
        "timeout": 30,
        "keepalive": 5,
    }


def _disconnect_clients_on_sigterm(worker: Any) -> None:
    """gunicorn post_worker_init hook: on SIGTERM, close Socket.IO clients first.

    The threaded worker waits for open connections during the graceful period; long-lived WebSocket
    connections would otherwise hold every shutdown for the whole ``graceful_timeout``. Clients
    reconnect to the next process and get their pending notifications replayed.
    """
    from .ws import disconnect_all

    original = worker.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        threading.Thread(target=disconnect_all, args=(worker.wsgi,), daemon=True).start()
        original(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
    signal.siginterrupt(signal.SIGTERM, False)


def run_web(config: Config) -> None:
    from .web import create_app

    options = _common_options("web")
    options.update(
        bind=[_bind(config.web.host, config.web.port)],
        workers=config.web.workers,
        threads=config.web.threads,
        graceful_timeout=WEB_GRACEFUL_TIMEOUT,
    )
    log.info(
        "web: %s, %d workers x %d threads, mode %s",
        options["bind"][0],
        config.web.workers,
        config.web.threads,
        config.mode,
    )
    ServiceApplication(lambda: create_app(config), options).run()


def run_websocket(config: Config) -> None:
    from .ws import create_ws_app

    options = _common_options("websocket")
    options.update(
        bind=[_bind(config.websocket.host, config.websocket.port)],
        workers=1,  # Socket.IO needs sticky sessions: one worker holds all connections
        threads=WEBSOCKET_THREADS,
        worker_connections=WEBSOCKET_THREADS * 10,
        graceful_timeout=WEBSOCKET_GRACEFUL_TIMEOUT,
        post_worker_init=_disconnect_clients_on_sigterm,
    )
    log.info(
        "websocket: %s, 1 worker x %d threads, namespace %s",
        options["bind"][0],
        WEBSOCKET_THREADS,
        config.websocket.namespace,
    )
    ServiceApplication(lambda: create_ws_app(config), options).run()
