"""The dashboard: serve it, or manage its users."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from notification_emergency.cli.options import HOUR, Common, shared
from notification_emergency.cli.render import err
from notification_emergency.cli.running import fail
from notification_emergency.errors import EXIT_OK, ToolkitError


class DashboardRole(StrEnum):
    viewer = "viewer"
    operator = "operator"


HttpVerbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="Log every HTTP request.")]


@shared(("inventory", "limit", "verbose", "store"), verbose=HttpVerbose)
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to listen on; one that is not loopback is refused while no user exists.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 5001,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            envvar="NOTIFICATION_EMERGENCY_DASHBOARD_USERS",
            help="Users file (YAML, hashed passwords). Default: dashboard-users.yml in the state directory.",
        ),
    ] = None,
    add_user: Annotated[
        str | None,
        typer.Option(
            "--add-user", metavar="NAME", help="Add (or update) a user, password from the terminal or stdin; exit."
        ),
    ] = None,
    role: Annotated[DashboardRole, typer.Option(help="Role of --add-user: viewer looks, operator acts.")] = (
        DashboardRole.viewer
    ),
    remove_user: Annotated[
        str | None, typer.Option("--remove-user", metavar="NAME", help="Remove a user; exit.")
    ] = None,
    probe_interval: Annotated[
        float, typer.Option(min=0.2, max=HOUR, help="Seconds between direct probes of the hosts.")
    ] = 2.0,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Send the session cookie over HTTPS only (behind a TLS proxy).")
    ] = False,
    *,
    opts: Common,
) -> None:
    """Serve the emergency monitoring dashboard: live status, controls, events, component health, /metrics.

    Login required: users come from the users file (viewers look, operators act); every action is audited.
    Create a user first (the password is read from the terminal or stdin), then serve; see docs/dashboard.md.

    Example: notification-emergency dashboard --add-user alice --role operator && notification-emergency dashboard
    """
    from notification_emergency.dashboard import command

    try:
        if add_user is not None:
            err.print(command.add_user(users, add_user, role.value))
            raise typer.Exit(EXIT_OK)
        if remove_user is not None:
            err.print(command.remove_user(users, remove_user))
            raise typer.Exit(EXIT_OK)
        command.serve(
            host=host,
            port=port,
            users_file=users,
            inventory=opts.inventory,
            limit=opts.limit,
            store=opts.store,
            probe_interval=probe_interval,
            secure_cookies=secure_cookies,
            verbose=opts.verbose,
            say=lambda text: err.print(text, markup=False),
        )
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, False)
    raise typer.Exit(EXIT_OK)
