"""Serving the dashboard: where it may listen, and the HTTP server (Werkzeug's threaded WSGI server: one
thread per request, which the server-sent event streams need; enough for a handful of operators).

It listens on loopback unless told otherwise, and refuses any other address while no user is configured
(there would be nobody to log in, and nothing to stop a stranger once there is). It speaks plain HTTP:
beyond loopback, put it behind a TLS-terminating proxy and start it with ``--secure-cookies``.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from notification_emergency.dashboard.app import create_app
from notification_emergency.dashboard.core import Dashboard
from notification_emergency.dashboard.users import UserFile
from notification_emergency.errors import BadInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


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


class DashboardServer:
    """The dashboard's HTTP server on ``host:port`` (port 0: any free port; see ``port``)."""

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
        # Werkzeug logs every request (each probe of the page's fallback, each stream); only when asked.
        logging.getLogger("werkzeug").setLevel(logging.INFO if access_log else logging.WARNING)
        self.dashboard = dashboard
        self.app = create_app(dashboard, **app_options)
        try:
            self.server: BaseWSGIServer = make_server(host, port, self.app, threaded=True)
        except OSError as exc:
            raise BadInput(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host"
            ) from None
        except SystemExit:  # werkzeug exits when the port is taken (it prints why)
            raise BadInput(f"cannot listen on {host}:{port}: the port is in use; choose another --port") from None
        self.host = host
        self.port = int(self.server.server_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Start probing and serve until ``shutdown()`` (from another thread or a signal handler)."""
        self.dashboard.start()
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.dashboard.stop()
            self.server.server_close()

    def start(self) -> DashboardServer:
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, name="dashboard-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.dashboard.stop_event.set()  # ends the event streams, so their threads let go
        self.server.shutdown()
        if self._thread is not None:
            self._thread.join(30)


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DashboardServer", "check_bind", "is_loopback"]
