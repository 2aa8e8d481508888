"""The notification-emergency command line: a thin layer over :class:`~notification_emergency.api.EmergencyToolkit`.

Every command prints a compact table (colour when the terminal has it, plain text otherwise) or, with
``--json``, one JSON document on stdout (the shape of ``ActionResult.to_json()``, documented in
``docs/cli.md``). Progress of a playbook run goes to stderr. Errors are one line naming the input and the
fix, never a traceback. Exit codes: see :mod:`notification_emergency.errors`.

The package: :mod:`.options` declares the options the commands share (once), :mod:`.running` runs a
command (the toolkit call, progress, errors, exit code), :mod:`.render` prints, :mod:`.signals` stops; the
commands live by family in :mod:`.status`, :mod:`.actions`, :mod:`.recovery`, :mod:`.records`,
:mod:`.notifications` and :mod:`.dashboard`, and are registered here, in the order ``--help`` lists them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from notification_emergency import __version__
from notification_emergency.cli import actions, dashboard, notifications, records, recovery, status
from notification_emergency.cli.render import err
from notification_emergency.errors import EXIT_CANCELLED

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the run failed on a host; 2 bad input (nothing ran); 3 unhealthy; "
    "4 a host is locked by another run; 5 timed out; 130 cancelled (Ctrl-C, SIGTERM, SIGHUP)."
)

app = typer.Typer(
    name="notification-emergency",
    help=("Detect, classify and recover failures of the real-time notification service.\n\n" + EXIT_CODES_HELP),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"notification-emergency {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Emergency recovery toolkit for the notification service (see README.md)."""


COMMANDS = {
    "status": status.status,
    "health-check": status.health_check,
    "activate-emergency": actions.activate_emergency,
    "deactivate-emergency": actions.deactivate_emergency,
    "backup": actions.backup,
    "drain-backlog": actions.drain_backlog,
    "rollback": actions.rollback,
    "restore": actions.restore,
    "restart": actions.restart,
    "verify": status.verify,
    "auto-recover": recovery.auto_recover,
    "explain": recovery.explain,
    "watch": recovery.watch,
    "test-recovery": recovery.test_recovery,
    "record-run": records.record_run,
    "events": records.events,
    "stats": records.stats,
    "generate-report": records.generate_report,
    "send-notification": notifications.send_notification,
    "notifications": notifications.notifications,
    "dashboard": dashboard.dashboard,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def run() -> None:  # pragma: no cover - the console script entry point
    try:
        app()
    except KeyboardInterrupt:
        err.print("cancelled")
        sys.exit(EXIT_CANCELLED)
