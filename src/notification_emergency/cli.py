"""The notification-emergency command line."""

from __future__ import annotations

import typer

from notification_emergency import __version__

app = typer.Typer(
    name="notification-emergency",
    help="Detect, classify and recover failures of the real-time notification service.",
    no_args_is_help=True,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"notification-emergency {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Emergency recovery toolkit for the notification service (see README.md)."""
