"""Serving the dashboard: where it may listen, and its HTTP server, gunicorn with one threaded worker.

One worker process, because the dashboard keeps state in memory (its probes, the actions it runs, the login
throttle, the cap on password hashing); threaded (gunicorn's ``gthread``), because every server-sent event
stream holds a thread for as long as its page is open. The limits:

- ``THREADS`` request threads: at most ``MAX_STREAMS`` of them hold event streams (the stream beyond gets
  429 and its page polls), so ``REQUEST_THREADS`` are always left for pages, the API, /metrics and logins:
  event streams cannot starve ordinary requests;
- ``WORKER_CONNECTIONS`` open connections at most (kept-alive ones included); beyond, the worker stops
  accepting and new connections wait in the listen queue (``BACKLOG``); an idle kept-alive connection is
  closed after ``KEEPALIVE`` s, one that sends no request within 5 s gives its thread back; a request line
  over ``LIMIT_REQUEST_LINE`` bytes gets 414, a header line over ``LIMIT_REQUEST_FIELD_SIZE`` bytes 431;
- gunicorn's master restarts a worker silent for ``TIMEOUT`` s (hung); ``SIGTERM`` stops gracefully: the
  event streams end at once, running actions are cancelled (ansible-runner stops their playbooks cleanly),
  requests in flight finish within ``GRACEFUL_TIMEOUT`` s, after which the worker is killed. ``SIGINT``
  (Ctrl-C) and ``SIGQUIT`` stop at once.

The ``Server`` header is ``gunicorn``, without a version.

Two ways to run the same worker: ``serve_forever()`` (the CLI and the systemd unit) runs gunicorn's master in
the calling thread, which must be the main thread (signals), and forks the worker; ``start()`` (the tests,
embedding) runs the worker, with the same settings, in a thread of this process, without the master;
``shutdown()`` stops it as SIGTERM stops the worker.

It listens on loopback unless told otherwise, and refuses any other address while no user is configured
(there would be nobody to log in, and nothing to stop a stranger once there is). It speaks plain HTTP:
beyond loopback, put it behind a TLS-terminating proxy and start it with ``--secure-cookies``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import selectors
import signal
import socket
import threading
from typing import Any

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.sock import TCP6Socket, TCPSocket
from gunicorn.workers.gthread import ThreadWorker

from notification_emergency.dashboard.app import MAX_STREAMS, create_app
from notification_emergency.dashboard.core import Dashboard
from notification_emergency.dashboard.users import UserFile
from notification_emergency.errors import BadInput, ToolkitError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

REQUEST_THREADS = 16  # threads no event stream can take
THREADS = MAX_STREAMS + REQUEST_THREADS
WORKER_CONNECTIONS = 256
BACKLOG = 128
KEEPALIVE = 5
TIMEOUT = 30
GRACEFUL_TIMEOUT = 20  # under TimeoutStopSec of deploy/systemd/notification-emergency-dashboard.service
LIMIT_REQUEST_LINE = 4094  # bytes of the request line (method, URL, version): beyond, 414 from gunicorn
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes of a header line: beyond, 431 from gunicorn (the app never sees it)


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or a loopback name; 0.0.0.0 and :: are not."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, users: UserFile) -> None:
    """Refuse (BadInput, exit 2) a users file that cannot be used, and a non-loopback address without users."""
    known = users.check()
    if not is_loopback(host) and not known:
        raise BadInput(
            f"refusing to serve the dashboard on {host}, which is not a loopback address, with no users in "
            f"{users.path}: anybody who reaches it could act. Create a user first "
            "(notification-emergency dashboard --add-user NAME --role operator) or listen on 127.0.0.1"
        )


def server_options(bind: str, *, access_log: bool) -> dict[str, Any]:
    """gunicorn's settings for the dashboard (see the module's description)."""
    return {
        "bind": [bind],
        "workers": 1,
        "worker_class": DashboardWorker,
        "threads": THREADS,
        "worker_connections": WORKER_CONNECTIONS,
        "backlog": BACKLOG,
        "keepalive": KEEPALIVE,
        "timeout": TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": 100,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "max_requests": 0,  # a restarted worker forgets the actions it runs: never on purpose
        "preload_app": False,
        "proc_name": "notification-emergency-dashboard",
        "errorlog": "-",
        "accesslog": "-" if access_log else None,
        "loglevel": "info" if access_log else "warning",
        "umask": 0o077,  # the worker's heartbeat file
        "control_socket_disable": True,  # no gunicornc socket in the home directory
    }


class DashboardWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker, which also runs the dashboard's monitor thread. Its SIGTERM also stops the
    dashboard (the event streams end, actions are cancelled), so a graceful stop waits for ordinary requests
    only, not for pages that stay open."""

    app: DashboardApplication

    def run(self) -> None:
        dashboard = self.app.server.dashboard
        dashboard.start()
        try:
            super().run()
        finally:
            dashboard.stop()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # Not in the signal handler itself: stop() takes the dashboard's locks and waits for its threads.
        threading.Thread(target=self.app.server.dashboard.stop, name="dashboard-stop", daemon=True).start()

    def run_in_thread(self) -> None:
        """What ``init_process`` does before ``run()``, but nothing process-wide (signals, user, file
        descriptors, random seed): for a worker in a thread of a process that has a main thread of its own."""
        self.tpool = self.get_thread_pool()
        self.poller = selectors.DefaultSelector()
        self.method_queue.init()
        self.load_wsgi()
        self.booted = True
        try:
            self.run()
        finally:
            self.tmp.close()


class DashboardApplication(BaseApplication):  # type: ignore[misc]
    """The gunicorn application: settings from ``server_options``, the app built once, before any fork."""

    def __init__(self, server: DashboardServer, options: dict[str, Any]) -> None:
        self.server = server
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.server.app


class DashboardServer:
    """The dashboard's HTTP server on ``host:port`` (port 0: any free port; see ``port``), listening from
    the moment it is made."""

    def __init__(
        self,
        dashboard: Dashboard,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        access_log: bool = False,
        **app_options: Any,
    ) -> None:
        check_bind(host, dashboard.users)
        self.dashboard = dashboard
        self.app = create_app(dashboard, **app_options)
        self.host = host
        bracketed = f"[{host}]" if ":" in host else host
        self.application = DashboardApplication(self, server_options(f"{bracketed}:{port}", access_log=access_log))
        self.log = glogging.Logger(self.application.cfg)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            kind = TCP6Socket if family == socket.AF_INET6 else TCPSocket
            self.listener = kind((host, port), self.application.cfg, self.log)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise BadInput(f"cannot listen on {host}:{port}: {reason}; choose another --port or --host") from None
        self.port = int(self.listener.getsockname()[1])
        self.application.cfg.set("bind", [f"{bracketed}:{self.port}"])
        self._worker: DashboardWorker | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve under gunicorn's master until SIGTERM (graceful), SIGINT or SIGQUIT; from the main thread.
        Raises ToolkitError if gunicorn stopped for another reason (a worker that could not start)."""
        master = os.getpid()
        arbiter = Arbiter(self.application)
        arbiter.LISTENERS = [self.listener]
        self.dashboard.store.close()  # the worker opens connections of its own after the fork
        try:
            arbiter.run()
        except SystemExit as exc:
            if os.getpid() != master:
                raise  # the worker process ends here, as gunicorn's workers do
            if exc.code not in (0, None):
                raise ToolkitError(
                    f"the dashboard's server stopped with status {exc.code}; its log above says why"
                ) from None

    def start(self) -> DashboardServer:
        """Serve in a background thread (tests, embedding): the same worker, without gunicorn's master."""
        cfg = self.application.cfg
        self._worker = DashboardWorker(
            1, os.getppid(), [self.listener], self.application, cfg.timeout / 2.0, cfg, self.log
        )
        self._thread = threading.Thread(target=self._worker.run_in_thread, name="dashboard-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop the server of ``start()`` as SIGTERM stops a worker, and wait for it."""
        if self._worker is None or self._thread is None:
            return
        self._worker.handle_exit(signal.SIGTERM, None)
        self._thread.join(GRACEFUL_TIMEOUT + 15)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "GRACEFUL_TIMEOUT",
    "LIMIT_REQUEST_FIELD_SIZE",
    "LIMIT_REQUEST_LINE",
    "MAX_STREAMS",
    "THREADS",
    "DashboardServer",
    "check_bind",
    "is_loopback",
    "server_options",
]
