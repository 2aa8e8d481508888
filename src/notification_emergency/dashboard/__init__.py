"""The emergency monitoring dashboard: live status, controls, events and component health in the browser.

``notification-emergency dashboard`` serves it (default http://127.0.0.1:5001). From Python::

    from notification_emergency.dashboard import Dashboard, DashboardServer

    server = DashboardServer(Dashboard(inventory="inventories/sandbox"), "127.0.0.1", 5001)
    server.serve_forever()

Parts: :mod:`.core` (what it knows, the monitor thread, the event stream), :mod:`.probes` (the live probe),
:mod:`.jobs` (the controls), :mod:`.app` (the Flask application: it wires the blueprints of :mod:`.web`,
one per responsibility: login, pages, JSON API, controls, live stream and /metrics, and their security),
:mod:`.metrics` (Prometheus text), :mod:`.users` (the users file), :mod:`.server` (where it listens, and
gunicorn, which serves it).

Imports go one way: ``server`` → ``app`` → ``web`` → ``core`` → ``jobs``, ``probes`` → the toolkit facade
(:mod:`notification_emergency.api`) and the foundations; nothing here imports the package itself or upward.
"""

from __future__ import annotations

from notification_emergency.dashboard.app import create_app
from notification_emergency.dashboard.core import Dashboard
from notification_emergency.dashboard.server import DashboardServer, check_bind, is_loopback
from notification_emergency.dashboard.users import User, UserFile

__all__ = ["Dashboard", "DashboardServer", "User", "UserFile", "check_bind", "create_app", "is_loopback"]
