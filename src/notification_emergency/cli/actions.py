"""Commands that change the hosts, each one playbook run (``--check`` and ``--diff`` supported): emergency
mode on and off, backup, drain-backlog, rollback, restore, restart."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from notification_emergency.cli.options import CHANGE, Common, shared
from notification_emergency.cli.running import act


class Component(StrEnum):
    web = "web"
    websocket = "websocket"
    redis = "redis"


@shared(CHANGE)
def activate_emergency(
    reason: Annotated[str, typer.Option(help="Why: shown to users in the banner.")],
    triggered_by: Annotated[str, typer.Option(help="Who or what activates it.")],
    level: Annotated[int, typer.Option(min=1, max=4, help="1 critical, 2 high, 3 medium, 4 low.")] = 2,
    *,
    opts: Common,
) -> None:
    """Turn emergency mode on: users see a banner with the reason; recorded with who and why.

    Example: notification-emergency activate-emergency --reason "Notifications delayed" --triggered-by alice
    """
    act(
        opts,
        lambda t: t.activate_emergency(
            reason, triggered_by, level=level, limit=opts.limit, check=opts.check, diff=opts.diff
        ),
    )


@shared(CHANGE)
def deactivate_emergency(
    resolved_by: Annotated[str, typer.Option(help="Who resolved the emergency.")], *, opts: Common
) -> None:
    """Turn emergency mode off.

    Example: notification-emergency deactivate-emergency --resolved-by alice
    """
    act(opts, lambda t: t.deactivate_emergency(resolved_by, limit=opts.limit, check=opts.check, diff=opts.diff))


@shared(CHANGE)
def backup(
    label: Annotated[str | None, typer.Option(help="A word in the backup's name (letters, digits, - and _).")] = None,
    *,
    opts: Common,
) -> None:
    """Take a verified, checksummed backup of everything a rollback or restore touches.

    Example: notification-emergency backup --label before-release
    """
    act(opts, lambda t: t.backup(label=label, limit=opts.limit, check=opts.check, diff=opts.diff))


@shared(CHANGE)
def drain_backlog(opts: Common) -> None:
    """Move the pending WebSocket backlog into the flash store: each waiting user sees every notification
    once, on their next page. Backed up first. It touches data, so auto-recover never runs it: this is the
    step an escalated delivery backlog asks a human for.

    Example: notification-emergency drain-backlog --limit sandbox-01
    """
    act(opts, lambda t: t.drain_backlog(limit=opts.limit, check=opts.check, diff=opts.diff))


@shared(CHANGE)
def rollback(
    serial: Annotated[str | None, typer.Option(help="Hosts per batch: a number or a percentage (25%).")] = None,
    max_fail_percentage: Annotated[
        int | None, typer.Option(min=0, max=100, help="Stop when more than this % of a batch failed.")
    ] = None,
    *,
    opts: Common,
) -> None:
    """Roll back to the legacy flash-message mode, carrying every pending notification.

    A host whose verification fails is restored from the backup taken in the same run.
    Example: notification-emergency rollback --limit sandbox-01 --check --diff
    """
    act(
        opts,
        lambda t: t.rollback(
            serial=serial, max_fail_percentage=max_fail_percentage, limit=opts.limit, check=opts.check, diff=opts.diff
        ),
    )


@shared(CHANGE)
def restore(
    backup_name: Annotated[
        str | None, typer.Option("--backup", help="Restore this backup (a name, or latest) instead of rolling forward.")
    ] = None,
    database: Annotated[bool, typer.Option("--database", help="Also restore the database copy of the backup.")] = False,
    serial: Annotated[str | None, typer.Option(help="Hosts per batch: a number or a percentage.")] = None,
    *,
    opts: Common,
) -> None:
    """Back to WebSocket mode after the incident, or restore a named backup.

    Example: notification-emergency restore            (roll forward)
             notification-emergency restore --backup latest --limit sandbox-01
    """
    act(
        opts,
        lambda t: t.restore(
            backup=backup_name,
            database=database or None,
            serial=serial,
            limit=opts.limit,
            check=opts.check,
            diff=opts.diff,
        ),
    )


@shared(CHANGE)
def restart(
    component: Annotated[
        list[Component], typer.Option("--component", "-c", help="A component to restart (repeatable).")
    ],
    serial: Annotated[str | None, typer.Option(help="Hosts per batch (default 1: one host at a time).")] = None,
    *,
    opts: Common,
) -> None:
    """Restart components host by host; each host must be healthy before the next.

    Example: notification-emergency restart -c websocket
    """
    act(
        opts,
        lambda t: t.restart(
            [c.value for c in component], serial=serial, limit=opts.limit, check=opts.check, diff=opts.diff
        ),
    )
