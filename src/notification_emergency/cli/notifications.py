"""Notifications: send one (or check the channels file), and list what was sent."""

from __future__ import annotations

from enum import StrEnum
from functools import partial
from typing import Annotated

import typer

from notification_emergency.cli.options import HOSTS, MAX_ROWS, RECORDS, Channels, Common, Since, shared
from notification_emergency.cli.render import render_channels, render_delivery, render_notifications
from notification_emergency.cli.running import act, fail, record, window
from notification_emergency.errors import EXIT_BAD_INPUT


class Priority(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class Broken(StrEnum):
    web = "web"
    websocket = "websocket"
    redis = "redis"
    database = "database"


@shared(HOSTS)
def send_notification(
    title: Annotated[str | None, typer.Option(help="The title (required unless --check-config).")] = None,
    message: Annotated[str, typer.Option(help="The text.")] = "",
    priority: Annotated[
        Priority, typer.Option(help="critical, high, medium or low: decides the channels (routing).")
    ] = Priority.high,
    failed_component: Annotated[
        list[Broken] | None,
        typer.Option(
            "--failed-component", help="A component known to be down (repeatable): no channel will depend on it."
        ),
    ] = None,
    check_config: Annotated[
        bool, typer.Option("--check-config", help="Only read and check the channels file (URLs masked); send nothing.")
    ] = False,
    channels: Channels = None,
    *,
    opts: Common,
) -> None:
    """Send a notification to the application's users and to operators, by the channels its priority is
    routed to (each with retries, then its fallback; notifications.log as the last resort). Every attempt
    is recorded. Exits 1, saying so loudly, when no channel delivered it; 2 on a bad channels file.

    Example: notification-emergency send-notification --title "Notifications delayed" --priority high
    """
    if check_config:
        act(opts, lambda t: t.check_channels(channels), render_channels)
    if not title or not title.strip():
        fail("--title is required: what the notification is about", EXIT_BAD_INPUT, opts.as_json)
    text = title
    broken = [component.value for component in failed_component or []]
    act(
        opts,
        lambda t: t.send_notification(
            text, message, priority.value, limit=opts.limit, channels=channels, failed_components=broken
        ),
        render_delivery,
    )


@shared(RECORDS)
def notifications(
    since: Since = None,
    limit: Annotated[
        int, typer.Option("--last", "-n", min=1, max=MAX_ROWS, help="How many notifications, newest first.")
    ] = 50,
    attempts: Annotated[bool, typer.Option("--attempts", help="Show every delivery attempt too.")] = False,
    *,
    opts: Common,
) -> None:
    """Notifications, newest first: whether each was delivered and by which channel, and the attempts.

    Example: notification-emergency notifications --since 24h --attempts
    """
    moment = window(since, opts.as_json)
    record(
        opts,
        lambda s: {"notifications": s.notifications(since=moment, limit=limit)},
        partial(render_notifications, attempts=attempts),
    )
