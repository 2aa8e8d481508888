"""How a command runs: one toolkit call with live progress and Ctrl-C handling, or one read of the event
store; its result printed (a table, or ``--json``); the exit code it names. Errors are one line naming the
input and the fix, never a traceback."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.text import Text

from notification_emergency.cli.options import Common
from notification_emergency.cli.render import Progress, err, print_json, render_action
from notification_emergency.cli.signals import cancellable
from notification_emergency.errors import EXIT_CANCELLED, ToolkitError
from notification_emergency.text import terminal

if TYPE_CHECKING:  # imported when used: `--help` and `status --quick` load neither the API's runner nor SQLAlchemy
    from notification_emergency.api import EmergencyToolkit
    from notification_emergency.results import ActionResult
    from notification_emergency.store import EventStore

Call = Callable[["EmergencyToolkit"], "ActionResult"]
Render = Callable[["ActionResult"], None]


def toolkit(
    opts: Common,
    *,
    store: EventStore | None = None,
    progress: Progress | None = None,
    cancelled: threading.Event | None = None,
) -> EmergencyToolkit:
    """The toolkit of a command line; ``store``: an event store opened already, in place of ``--store``."""
    from notification_emergency.api import EmergencyToolkit

    return EmergencyToolkit(
        inventory=opts.inventory or None,
        store=store if store is not None else opts.store,
        timeout=opts.timeout,
        on_event=progress,
        cancel=cancelled.is_set if cancelled is not None else None,
        verbosity=max(0, opts.verbose - 1),
    )


def fail(message: str, code: int, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"ok": False, "exit_code": code, "error": message})
    err.print(Text.assemble(("error:", "bold red"), " ", terminal(message)))
    raise typer.Exit(code)


def act(opts: Common, call: Call, render: Render = render_action, *, store: EventStore | None = None) -> NoReturn:
    """Run one API action with progress and Ctrl-C handling; print its result; exit with its code."""
    try:
        with cancellable() as cancelled, Progress(opts.verbose) as progress:
            result = call(toolkit(opts, store=store, progress=progress, cancelled=cancelled))
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, opts.as_json)
    except KeyboardInterrupt:
        fail("cancelled", EXIT_CANCELLED, opts.as_json)
    if opts.as_json:
        print_json(result.to_json())
    else:
        render(result)
    raise typer.Exit(result.exit_code)


def since_moment(value: str | None) -> datetime | None:
    from notification_emergency.store import parse_since  # (SQLAlchemy: only for the commands that need it)

    return parse_since(value)


def window(value: str | None, as_json: bool) -> datetime | None:
    """``--since`` of a command that only reads, checked before its store is opened."""
    try:
        return since_moment(value)
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, as_json)


def reader(store: str | None) -> EventStore:
    """The event store opened read-only: a command that only reads never creates, migrates or writes one."""
    from notification_emergency.store import EventStore

    return EventStore(store, read_only=True)


def record(
    opts: Common, call: Callable[[EventStore], dict[str, Any]], render: Callable[[dict[str, Any]], None]
) -> None:
    """Commands that only read the event store (no inventory, no playbook); the store is opened read-only."""
    try:
        with reader(opts.store) as opened:
            data = call(opened)
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, opts.as_json)
    if opts.as_json:
        print_json(data)
    else:
        render(data)
