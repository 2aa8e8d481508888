"""What ``notification-emergency dashboard`` does (the CLI's command only parses options and calls these)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from notification_emergency.dashboard.users import MIN_PASSWORD_LENGTH, UserFile, check_role
from notification_emergency.errors import BadInput


def read_password(name: str) -> str:
    """The new password: asked twice on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name} (at least {MIN_PASSWORD_LENGTH} characters): ")
        if getpass.getpass("again: ") != first:
            raise BadInput("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise BadInput(f"give the password of {name} on standard input (one line), or run this on a terminal")
    return line.rstrip("\r\n")


def add_user(users_file: Path | None, name: str, role: str, password: str | None = None) -> str:
    users = UserFile(users_file)
    check_role(role)
    created = users.add(name, role, password if password is not None else read_password(name))
    return f"{'added' if created else 'updated'} dashboard user {name} ({role}) in {users.path}"


def remove_user(users_file: Path | None, name: str) -> str:
    users = UserFile(users_file)
    if not users.remove(name):
        raise BadInput(f"no dashboard user {name} in {users.path}")
    return f"removed dashboard user {name} from {users.path}"


def serve(
    *,
    host: str,
    port: int,
    users_file: Path | None,
    inventory: Sequence[Path] | None,
    limit: str | None,
    store: str | None,
    probe_interval: float,
    secure_cookies: bool,
    verbose: int,
    say: Callable[[str], None],
) -> None:
    """Serve (gunicorn, see :mod:`.server`) until SIGTERM or SIGINT; bad options, an unusable users file or a
    non-loopback address without users raise BadInput (exit 2) before anything listens."""
    from notification_emergency.dashboard.core import Dashboard
    from notification_emergency.dashboard.server import DashboardServer, check_bind

    users = UserFile(users_file)
    check_bind(host, users)  # before reading the inventory: the refusal is immediate
    dashboard = Dashboard(
        inventory=list(inventory) if inventory else None,
        limit=limit,
        store=store,
        users_file=users.path,
        probe_interval=probe_interval,
    )
    server = DashboardServer(dashboard, host, port, access_log=verbose > 0, secure_cookies=secure_cookies)
    say(f"dashboard on {server.url} for {', '.join(dashboard.hosts)}; store {dashboard.store.display_url}")
    if not users.users():
        say(
            f"no users in {users.path}: nobody can log in yet; create one with "
            "`notification-emergency dashboard --add-user NAME --role operator`"
        )
    server.serve_forever()  # gunicorn's master: SIGTERM stops it gracefully, SIGINT at once
    say("dashboard stopped")
