"""Fixtures of the dashboard tests: users, an inventory whose host is down, the shared sandbox host, and a
dashboard served for real on a free loopback port."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from notification_emergency.dashboard import Dashboard, DashboardServer
from tests.ansible.conftest import SandboxHost
from tests.conftest import VENV_BIN, free_port_block

PASSWORDS = {"alice": "alice-operator-pw", "bob": "bob-viewer-pw"}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory of the test's own: store, users, session key, reports, artifacts."""
    home = tmp_path / "state"
    home.mkdir()
    return home


@pytest.fixture
def users_file(state: Path) -> Path:
    """alice (operator) and bob (viewer)."""
    from notification_emergency.dashboard.users import UserFile

    users = UserFile(state / "dashboard-users.yml")
    users.add("alice", "operator", PASSWORDS["alice"])
    users.add("bob", "viewer", PASSWORDS["bob"])
    return users.path


@pytest.fixture
def offline_inventory(tmp_path: Path) -> Path:
    """One managed host whose service is down: nothing listens on its ports, its root does not exist."""
    base = free_port_block(2, start=31500)
    path = tmp_path / "offline.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(VENV_BIN / "python"),
        "notification_service_root": str(tmp_path / "offline-01"),
        "notification_service_manager": "supervisord",
        "notification_service_web_port": base,
        "notification_service_websocket_port": base + 1,
    }
    path.write_text(yaml.safe_dump({"all": {"children": {"notification_hosts": {"hosts": {"offline-01": host}}}}}))
    return path


@pytest.fixture
def make_dashboard(state: Path, users_file: Path) -> Iterator[Callable[..., Dashboard]]:
    """``make_dashboard(inventory, **options)``: a started Dashboard (stopped after the test)."""
    made: list[Dashboard] = []

    def make(inventory: Path, **options: Any) -> Dashboard:
        options.setdefault("probe_interval", 0.5)
        dashboard = Dashboard(
            inventory=inventory, store=state / "events.db", home=state, users_file=users_file, **options
        ).start()
        made.append(dashboard)
        return dashboard

    yield make
    for dashboard in made:
        dashboard.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., DashboardServer]]:
    """``serve(dashboard, **app_options)``: the dashboard on a free port of 127.0.0.1, in a thread (shut down
    after); ``app_options`` go to ``create_app`` (``throttle``)."""
    servers: list[DashboardServer] = []

    def start(dashboard: Dashboard, **app_options: Any) -> DashboardServer:
        server = DashboardServer(dashboard, "127.0.0.1", 0, **app_options).start()
        servers.append(server)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{server.url}/healthz", timeout=1).ok:
                    return server
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError(f"the dashboard did not answer on {server.url}")

    yield start
    for server in servers:
        server.shutdown()


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (the login form's field or the dashboard's meta tag)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def dashboard_host(sandbox_host: SandboxHost) -> SandboxHost:
    """The session's shared sandbox host (tests/conftest.py), healthy before the test and mended after it."""
    return sandbox_host
