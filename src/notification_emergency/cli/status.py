"""Read-only commands that look at the hosts: status, health-check, verify."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from notification_emergency.cli.options import RUN, Common, shared
from notification_emergency.cli.render import render_health, render_quick
from notification_emergency.cli.running import act


class Mode(StrEnum):
    websocket = "websocket"
    legacy = "legacy"


@shared(RUN)
def status(
    opts: Common,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Probe every host directly from here, all at once (no playbook: seconds for a fleet); "
            "no classification, no incident.",
        ),
    ] = False,
) -> None:
    """Mode, emergency state, health and level of each host, and the open incidents.

    Example: notification-emergency status --limit sandbox-01; notification-emergency status --quick
    """
    if quick:
        act(opts, lambda t: t.quick_status(opts.limit), render_quick)
    act(opts, lambda t: t.status(opts.limit), render_health)


@shared(RUN, after_limit=("affected_users", "message"))
def health_check(
    opts: Common,
    affected_users: Annotated[
        str | None,
        typer.Option(help="Affected users: a count (250) or comma-separated user ids (u1,u2); raises the level."),
    ] = None,
    message: Annotated[
        list[str] | None, typer.Option("--message", "-m", help="An error message or log line (repeatable).")
    ] = None,
) -> None:
    """Check every component, classify the failures (type, level, plan) and record an incident for each.

    Exits 3 when a host is not healthy. Example: notification-emergency health-check --affected-users 250
    """
    users: int | list[str] | None = None
    if affected_users is not None:
        users = int(affected_users) if affected_users.strip().isdigit() else [u for u in affected_users.split(",") if u]
    act(opts, lambda t: t.health_check(opts.limit, affected_users=users, messages=message), render_health)


@shared(RUN)
def verify(
    expected_mode: Annotated[Mode, typer.Option(help="The mode each host should be in.")] = Mode.websocket,
    verify_delivery: Annotated[bool, typer.Option(help="Also send a notification and see it arrive.")] = False,
    *,
    opts: Common,
) -> None:
    """Check (read-only) that each host is in the expected mode and healthy; exits 3 when not.

    Example: notification-emergency verify --expected-mode legacy
    """
    act(
        opts,
        lambda t: t.verify(opts.limit, expected_mode=expected_mode.value, verify_delivery=verify_delivery or None),
    )
