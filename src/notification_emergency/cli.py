"""The notification-emergency command line: a thin layer over :class:`~notification_emergency.api.EmergencyToolkit`.

Every command prints a compact table (colour when the terminal has it, plain text otherwise) or, with
``--json``, one JSON document on stdout (the shape of ``ActionResult.to_json()``, documented in
``docs/cli.md``). Progress of a playbook run goes to stderr. Errors are one line naming the input and the
fix, never a traceback. Exit codes: see :mod:`notification_emergency.errors`.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from notification_emergency import __version__
from notification_emergency.errors import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_OK, ToolkitError
from notification_emergency.text import shown, terminal

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

# Wide enough for the tables when the output is not a terminal (a pipe, a log, CI).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Component(StrEnum):
    web = "web"
    websocket = "websocket"
    redis = "redis"


class Mode(StrEnum):
    websocket = "websocket"
    legacy = "legacy"


# Upper bounds of the numeric options: a typo of a few digits is refused (exit 2), not an overflow or a
# watch that never probes again.
HOUR = 3600
WEEK = 7 * 24 * HOUR
MAX_ROWS = 100_000

# -- options every command shares --------------------------------------------------------------------------

Inventory = Annotated[
    list[Path] | None,
    typer.Option(
        "-i",
        "--inventory",
        envvar="NOTIFICATION_EMERGENCY_INVENTORY",
        help="Inventory file or directory (repeatable). Default: the sandbox's, inventories/sandbox.",
    ),
]
Limit = Annotated[
    str | None, typer.Option("--limit", "-l", help="Only these hosts or groups (Ansible pattern, comma-separated).")
]
Check = Annotated[bool, typer.Option("--check", help="Show what would change; change nothing.")]
Diff = Annotated[bool, typer.Option("--diff", help="Show the differences in changed files.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (see docs/cli.md).")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="Show each task; -vv and more: Ansible's.")]
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="NOTIFICATION_EMERGENCY_STORE",
        help="Event store: a SQLite file or a postgresql+psycopg:// URL. Default: events.db in the state directory.",
    ),
]
Timeout = Annotated[
    int | None, typer.Option("--timeout", min=1, max=WEEK, help="Cancel the playbook run after this many seconds.")
]


# The signals that mean "stop": Ctrl-C, and what `timeout`, systemd, CI cancels and a closed terminal send.
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _cancellable() -> Iterator[threading.Event]:
    """While a playbook runs, Ctrl-C, SIGTERM or SIGHUP ask ansible-runner to cancel it: ansible-playbook is
    stopped, the run is recorded ``canceled`` and the command exits 130. A second signal stops waiting.

    (SIGKILL cannot be caught: then the project's notification_guard callback stops ansible-playbook, and the
    run shows as ``abandoned`` in the record once this process is gone.)"""
    cancelled = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in CANCEL_SIGNALS}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if cancelled.is_set():  # a second signal: stop waiting
            raise KeyboardInterrupt
        cancelled.set()
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        err.print(f"cancelling: waiting for ansible-playbook to stop ({again} again to abandon)")

    for signum in CANCEL_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield cancelled
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


class Progress:
    """Live progress of a playbook run from the runner's event stream, on stderr."""

    def __init__(self, verbose: int) -> None:
        self.verbose = verbose
        self.status = err.status("starting ansible-playbook") if err.is_terminal else None
        self.task = ""
        self.done = 0
        self.failed: list[str] = []

    def __enter__(self) -> Progress:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.task = data.get("task", "")
            self.done = 0
            if self.verbose:
                err.print(f"  task: {self.task}")
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            self.done += 1
            if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                message = str((data.get("res") or {}).get("msg", ""))[:300]
                err.print(f"  [red]{data.get('host')}[/red]: {kind[10:]} at {self.task}: {message}")
        if self.status is not None:
            self.status.update(f"{self.task} ({self.done} hosts done)")


def _toolkit(
    inventory: list[Path] | None,
    store: str | None,
    verbose: int,
    timeout: int | None = None,
    progress: Progress | None = None,
    cancelled: threading.Event | None = None,
) -> Any:
    from notification_emergency.api import EmergencyToolkit

    return EmergencyToolkit(
        inventory=inventory or None,
        store=store,
        timeout=timeout,
        on_event=progress,
        cancel=cancelled.is_set if cancelled is not None else None,
        verbosity=max(0, verbose - 1),
    )


def _fail(message: str, code: int, as_json: bool) -> NoReturn:
    if as_json:
        out.print_json(json.dumps({"ok": False, "exit_code": code, "error": message}))
    err.print(Text.assemble(("error:", "bold red"), " ", terminal(message)))
    raise typer.Exit(code)


def _act(
    as_json: bool,
    verbose: int,
    inventory: list[Path] | None,
    store: str | None,
    timeout: int | None,
    call: Callable[[Any], Any],
    render: Callable[[Any], None] | None = None,
) -> NoReturn:
    """Run one API action with progress and Ctrl-C handling; print its result; exit with its code."""
    try:
        with _cancellable() as cancelled, Progress(verbose) as progress:
            toolkit = _toolkit(inventory, store, verbose, timeout, progress, cancelled)
            result = call(toolkit)
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("cancelled", EXIT_CANCELLED, as_json)
    if as_json:
        out.print_json(json.dumps(result.to_json(), default=str))
    else:
        (render or _render_action)(result)
    raise typer.Exit(result.exit_code)


# -- human output ----------------------------------------------------------------------------------------

_STYLE = {"healthy": "green", "ok": "green", "degraded": "yellow", "failed": "red", "locked": "magenta"}


def _mark(status: str) -> Text:
    """A status that reads without colour: a word, coloured when the terminal has colour."""
    style = _STYLE.get(status, "red" if status in ("unreachable", "unknown") else "")
    return Text(terminal(status), style=style)


def _plain(value: Any) -> Text:
    """Text from the record, a host or a person, shown as it is: no Rich markup, no control characters."""
    return Text(terminal("" if value is None else value))


def _summary(result: Any) -> None:
    style = "green" if result.ok else "red"
    out.print(Text.assemble(("OK" if result.ok else "FAILED", style), " ", terminal(result.message)))
    if result.run is not None:
        out.print(f"run {result.run.run_id} ({result.run.duration_s:.1f} s); artifacts {result.run.artifact_dir}")


def _render_action(result: Any) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("HOST", "STATUS", "DETAIL"):
        table.add_column(column)
    for host, row in sorted(result.hosts.items()):
        detail = row.get("line", "").split(": ", 2)[-1] if row.get("status") == "ok" else row.get("error", "")
        table.add_row(_plain(host), _mark(str(row.get("status"))), _plain(detail))
    if result.hosts:
        out.print(table)
    _summary(result)


def _render_health(result: Any) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("HOST", "HEALTH", "MODE", "EMERGENCY", "LEVEL", "FAILURE", "NOT HEALTHY"):
        table.add_column(column)
    for host, row in sorted(result.hosts.items()):
        emergency = row.get("emergency") or {}
        table.add_row(
            _plain(host),
            _mark(str(row.get("status"))),
            _plain(row.get("mode", "unknown")),
            _plain(f"active (level {emergency.get('level')})" if emergency.get("active") else "off"),
            _plain(f"{row['level']} {row.get('level_name', '')}".strip() if row.get("level") else "-"),
            _plain(row.get("primary") or "-"),
            _plain(", ".join((row.get("failed_checks") or []) + (row.get("degraded_checks") or [])) or "-"),
        )
    out.print(table)
    for host, row in sorted(result.hosts.items()):
        if row.get("plan"):
            out.print(_plain(row.get("summary") or f"{host}: plan {', '.join(row['plan'])}"))  # level, response, plan
    for run in result.data.get("abandoned_runs", []):
        out.print(
            Text.assemble(
                ("abandoned run", "yellow"),
                " ",
                terminal(
                    f"{run['run_id']} ({run['action']} by {run['actor']}, started {run['started_at']}): its "
                    f"process died before it finished; check its hosts ({run['limit'] or 'all'}) with verify"
                ),
            )
        )
    for incident in result.data.get("open_incidents", []):
        out.print(
            _plain(
                f"open incident #{incident['id']} {incident['failure_type']} level {incident['level']} on "
                f"{', '.join(incident['hosts'])} since {incident['detected_at']}"
            )
        )
    _summary(result)


def _render_quick(result: Any) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("HOST", "HEALTH", "MODE", "LATENCY", "NOT HEALTHY"):
        table.add_column(column)
    for host, row in sorted(result.hosts.items()):
        table.add_row(
            _plain(host),
            _mark(str(row["status"])),
            _plain(row["mode"]),
            f"{row['latency_ms']:.0f} ms",
            _plain(", ".join(row["problems"]) or "-"),
        )
    out.print(table)
    _summary(result)


# -- commands --------------------------------------------------------------------------------------------


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


@app.command()
def status(
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
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
        _act(as_json, verbose, inventory, store, timeout, lambda t: t.quick_status(limit), _render_quick)
        return
    _act(as_json, verbose, inventory, store, timeout, lambda t: t.status(limit), _render_health)


@app.command("health-check")
def health_check(
    inventory: Inventory = None,
    limit: Limit = None,
    affected_users: Annotated[
        str | None,
        typer.Option(help="Affected users: a count (250) or comma-separated user ids (u1,u2); raises the level."),
    ] = None,
    message: Annotated[
        list[str] | None, typer.Option("--message", "-m", help="An error message or log line (repeatable).")
    ] = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Check every component, classify the failures (type, level, plan) and record an incident for each.

    Exits 3 when a host is not healthy. Example: notification-emergency health-check --affected-users 250
    """
    users: int | list[str] | None = None
    if affected_users is not None:
        users = int(affected_users) if affected_users.strip().isdigit() else [u for u in affected_users.split(",") if u]
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.health_check(limit, affected_users=users, messages=message),
        _render_health,
    )


@app.command("activate-emergency")
def activate_emergency(
    reason: Annotated[str, typer.Option(help="Why: shown to users in the banner.")],
    triggered_by: Annotated[str, typer.Option(help="Who or what activates it.")],
    level: Annotated[int, typer.Option(min=1, max=4, help="1 critical, 2 high, 3 medium, 4 low.")] = 2,
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Turn emergency mode on: users see a banner with the reason; recorded with who and why.

    Example: notification-emergency activate-emergency --reason "Notifications delayed" --triggered-by alice
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.activate_emergency(reason, triggered_by, level=level, limit=limit, check=check, diff=diff),
    )


@app.command("deactivate-emergency")
def deactivate_emergency(
    resolved_by: Annotated[str, typer.Option(help="Who resolved the emergency.")],
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Turn emergency mode off.

    Example: notification-emergency deactivate-emergency --resolved-by alice
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.deactivate_emergency(resolved_by, limit=limit, check=check, diff=diff),
    )


@app.command()
def backup(
    label: Annotated[str | None, typer.Option(help="A word in the backup's name (letters, digits, - and _).")] = None,
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Take a verified, checksummed backup of everything a rollback or restore touches.

    Example: notification-emergency backup --label before-release
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.backup(label=label, limit=limit, check=check, diff=diff),
    )


@app.command("drain-backlog")
def drain_backlog(
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Move the pending WebSocket backlog into the flash store: each waiting user sees every notification
    once, on their next page. Backed up first. It touches data, so auto-recover never runs it: this is the
    step an escalated delivery backlog asks a human for.

    Example: notification-emergency drain-backlog --limit sandbox-01
    """
    _act(as_json, verbose, inventory, store, timeout, lambda t: t.drain_backlog(limit=limit, check=check, diff=diff))


@app.command()
def rollback(
    serial: Annotated[str | None, typer.Option(help="Hosts per batch: a number or a percentage (25%).")] = None,
    max_fail_percentage: Annotated[
        int | None, typer.Option(min=0, max=100, help="Stop when more than this % of a batch failed.")
    ] = None,
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Roll back to the legacy flash-message mode, carrying every pending notification.

    A host whose verification fails is restored from the backup taken in the same run.
    Example: notification-emergency rollback --limit sandbox-01 --check --diff
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.rollback(
            serial=serial, max_fail_percentage=max_fail_percentage, limit=limit, check=check, diff=diff
        ),
    )


@app.command()
def restore(
    backup_name: Annotated[
        str | None, typer.Option("--backup", help="Restore this backup (a name, or latest) instead of rolling forward.")
    ] = None,
    database: Annotated[bool, typer.Option("--database", help="Also restore the database copy of the backup.")] = False,
    serial: Annotated[str | None, typer.Option(help="Hosts per batch: a number or a percentage.")] = None,
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Back to WebSocket mode after the incident, or restore a named backup.

    Example: notification-emergency restore            (roll forward)
             notification-emergency restore --backup latest --limit sandbox-01
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.restore(
            backup=backup_name, database=database or None, serial=serial, limit=limit, check=check, diff=diff
        ),
    )


@app.command()
def restart(
    component: Annotated[
        list[Component], typer.Option("--component", "-c", help="A component to restart (repeatable).")
    ],
    serial: Annotated[str | None, typer.Option(help="Hosts per batch (default 1: one host at a time).")] = None,
    inventory: Inventory = None,
    limit: Limit = None,
    check: Check = False,
    diff: Diff = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Restart components host by host; each host must be healthy before the next.

    Example: notification-emergency restart -c websocket
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.restart([c.value for c in component], serial=serial, limit=limit, check=check, diff=diff),
    )


@app.command()
def verify(
    expected_mode: Annotated[Mode, typer.Option(help="The mode each host should be in.")] = Mode.websocket,
    verify_delivery: Annotated[bool, typer.Option(help="Also send a notification and see it arrive.")] = False,
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Check (read-only) that each host is in the expected mode and healthy; exits 3 when not.

    Example: notification-emergency verify --expected-mode legacy
    """
    _act(
        as_json,
        verbose,
        inventory,
        store,
        timeout,
        lambda t: t.verify(limit, expected_mode=expected_mode.value, verify_delivery=verify_delivery or None),
    )


def _render_recovery(result: Any) -> None:
    _render_health(result)
    for host, decision in sorted(result.data.get("decisions", {}).items()):
        if decision["status"] == "healthy":
            continue
        out.print(f"{host}: {decision['primary']} (level {decision['level']}): {decision['summary']}")
        for step in decision["steps"]:
            mark = "[green]run [/green]" if step["run"] else "[yellow]skip[/yellow]"
            out.print(f"  {mark} {step['label']}" + (f": {step['reason']}" if step["reason"] else ""))
        escalation = decision.get("escalation")
        if escalation:
            out.print(
                f"  then escalate {escalation['when']}: level {escalation['level']} ({escalation['priority']}), "
                f"emergency mode on, notify: {escalation['title']} ({escalation['reason']})"
            )
    for host, row in sorted(result.hosts.items()):
        for action in row.get("actions", []):
            out.print(
                f"{host}: {action['step']}: {action['outcome']}"
                + (f" ({action['reason']})" if action.get("reason") else "")
            )


@app.command("auto-recover")
def auto_recover(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only explain the decision; change nothing.")] = False,
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """Check, classify and run each unhealthy host's recovery plan, verifying after each step; escalate
    (level raised, emergency mode on, operators notified) when the plan is exhausted.

    Throttled per failure and host, with a circuit breaker per host; steps that touch data never run
    automatically. Exits 0 when every host is healthy at the end, 3 otherwise.
    Example: notification-emergency auto-recover --limit sandbox-01 --dry-run
    """
    _act(
        as_json, verbose, inventory, store, timeout, lambda t: t.auto_recover(limit, dry_run=dry_run), _render_recovery
    )


@app.command()
def explain(
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
    timeout: Timeout = None,
) -> None:
    """What auto-recover would do now and why: failure type, level, each plan step run or skipped (and
    why), the escalation and its notification. Read-only.

    Example: notification-emergency explain --json
    """
    _act(as_json, verbose, inventory, store, timeout, lambda t: t.explain(limit), _render_recovery)


@app.command()
def watch(
    interval: Annotated[float, typer.Option(min=0.05, max=HOUR, help="Seconds between probe rounds.")] = 0.5,
    fail_threshold: Annotated[
        int, typer.Option(min=1, max=1000, help="Failed probes in a row that confirm a failure.")
    ] = 2,
    ok_threshold: Annotated[int, typer.Option(min=1, max=1000, help="Good probes in a row that confirm recovery.")] = 2,
    probe_timeout: Annotated[float, typer.Option(min=0.05, max=60, help="Seconds a probe may take.")] = 1.0,
    recover: Annotated[
        bool, typer.Option("--recover/--no-recover", help="Start auto-recover on a confirmed failure.")
    ] = True,
    duration: Annotated[float | None, typer.Option(min=0.1, max=WEEK, help="Stop after this many seconds.")] = None,
    deep_every: Annotated[
        float,
        typer.Option(
            min=0,
            max=WEEK,
            help="Seconds between deep checks (the health playbook: pending queue, disk, processes), which see "
            "what probes cannot; 0 turns them off.",
        ),
    ] = 30.0,
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line for each change.")] = False,
    verbose: Verbose = 0,
    store: Store = None,
) -> None:
    """Probe the hosts directly (no playbook) every interval; on a confirmed failure start auto-recover.

    Ctrl-C (or SIGTERM, as systemd sends) stops it cleanly after the round in progress; a recovery in
    progress is finished first. Example: notification-emergency watch --interval 0.5 --limit sandbox-01
    """
    from notification_emergency.watch import Watcher

    def emit(kind: str, host: str, **data: Any) -> None:
        line = {"at": datetime.now(UTC).isoformat(), "event": kind, "host": host, **data}
        if as_json:
            print(json.dumps(line, default=str), flush=True)
        else:
            detail = ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, [], ""))
            out.print(f"{line['at'][11:23]} {host} {kind} {detail}")

    def on_change(host: str, state: str, probe: Any) -> None:
        emit(state, host, problems=probe.problems, latency_ms=probe.latency_ms)

    def on_probe(probe: Any, _state: Any) -> None:
        if verbose:
            emit("probe", probe.host, status=probe.status, latency_ms=probe.latency_ms, problems=probe.problems)

    try:
        toolkit = _toolkit(inventory, store, verbose)
        toolkit.notifier()  # a bad channels file is refused now, not at the first escalation

        def on_failure(hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> Any:
            if not recover:
                return None
            for host in hosts:
                emit("auto-recover", host, started_at=started_at[host].isoformat())
            result = toolkit.auto_recover(",".join(hosts), started_at=started_at, detected_at=detected_at)
            for host in hosts:
                row = result.hosts.get(host, {})
                ok = row.get("status") in ("recovered", "healthy")
                emit(
                    "recovered" if ok else "not-recovered",
                    host,
                    message=f"{host}: {row.get('line', row.get('status'))}",
                )
            return result

        watcher = Watcher(
            toolkit,
            limit,
            interval=interval,
            fail_threshold=fail_threshold,
            ok_threshold=ok_threshold,
            timeout=probe_timeout,
            on_failure=on_failure,
            on_probe=on_probe,
            on_change=on_change,
            deep_every=deep_every,
        )
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, as_json)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        watcher.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    hosts = ", ".join(t.host for t in watcher.targets)
    deep = f", deep check every {deep_every:g} s" if deep_every else ", no deep checks"
    err.print(
        f"watching {hosts} every {interval} s (failure after {fail_threshold}, recovery after {ok_threshold}{deep})"
    )
    try:
        watcher.run(duration=duration)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print("watch stopped")
    raise typer.Exit(EXIT_OK)


@app.command("test-recovery")
def test_recovery(
    fault: Annotated[
        list[str] | None, typer.Option("--fault", "-f", help="A fault to inject (repeatable); see --list.")
    ] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every drill of the catalogue.")] = False,
    list_faults: Annotated[bool, typer.Option("--list", help="List the drills and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.05, max=HOUR, help="Seconds between the watch's probes.")] = 0.25,
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
) -> None:
    """Recovery drills on sandbox hosts: inject a fault, let the watch detect it and auto-recover fix it
    (or escalate), and time it. Refuses hosts that are not sandboxes. Writes a JSON journal per drill.

    Example: notification-emergency test-recovery --all --limit sandbox-01
    """
    from notification_emergency.drills import FAULTS

    if list_faults:
        for name, item in FAULTS.items():
            out.print(
                f"{name:22} {item.description} (expects {item.expects}, {'recovers' if item.recovers else 'escalates'})"
            )
        raise typer.Exit(EXIT_OK)
    if not fault and not run_all:
        _fail("name the drills with --fault NAME (see --list) or run them all with --all", EXIT_BAD_INPUT, as_json)

    def render(result: Any) -> None:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in (
            "FAULT",
            "HOST",
            "DETECTED TYPE",
            "LEVEL",
            "ACTIONS",
            "RECOVERED",
            "MTTD",
            "MTTR",
            "AS EXPECTED",
        ):
            table.add_column(column)
        for journal in result.data["drills"]:
            table.add_row(
                journal["fault"],
                journal["host"],
                journal["detected_type"] or "-",
                str(journal["level"] or "-"),
                ", ".join(journal["actions"]) or "-",
                "yes" if journal["recovered"] else ("escalated" if journal["outcome"] == "escalated" else "no"),
                "-" if journal["mttd_s"] is None else f"{journal['mttd_s']:.1f}s",
                "-" if journal["mttr_s"] is None else f"{journal['mttr_s']:.1f}s",
                "[green]yes[/green]" if journal["as_expected"] else "[red]NO[/red]",
            )
        out.print(table)
        _summary(result)

    _act(
        as_json,
        verbose,
        inventory,
        store,
        None,
        lambda t: t.test_recovery(None if run_all else fault, limit, interval=interval),
        render,
    )


def _since(value: str | None) -> datetime | None:
    from notification_emergency.store import parse_since  # (SQLAlchemy: only for the commands that need it)

    return parse_since(value)


def _window(value: str | None, as_json: bool) -> datetime | None:
    """``--since`` of a command that only reads, checked before its store is opened."""
    try:
        return _since(value)
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, as_json)


Since = Annotated[str | None, typer.Option(help="Only since then: 30m, 24h, 7d or an ISO time.")]


def _reader(store: str | None) -> Any:
    """The event store opened read-only: a command that only reads never creates, migrates or writes one."""
    from notification_emergency.store import EventStore

    return EventStore(store, read_only=True)


def _record(as_json: bool, store: str | None, call: Callable[[Any], Any], render: Callable[[Any], None]) -> None:
    """Commands that only read the event store (no inventory, no playbook); the store is opened read-only."""
    try:
        with _reader(store) as opened:
            data = call(opened)
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, as_json)
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        render(data)


@app.command("record-run")
def record_run(
    report: Annotated[Path, typer.Argument(help="The run report a playbook wrote (reports/<playbook>-<run id>.json).")],
    as_json: AsJson = False,
    store: Store = None,
) -> None:
    """Record in the event store a run launched without this CLI (AWX, EDA, ansible-playbook), from its report.

    The playbooks call it themselves at the end of a run when a store is configured (the notification_store
    variable or NOTIFICATION_EMERGENCY_STORE), so the runs of AWX job templates land in the same records
    (runs, audit trail) as the CLI's. A run recorded already is left as it is.

    Example: notification-emergency record-run reports/backup-20261127T101500Z-ab12cd.json
    """
    _act(as_json, 0, None, store, None, lambda t: t.record_run(report))


@app.command()
def events(
    since: Since = None,
    limit: Annotated[
        int, typer.Option("--last", "-n", min=1, max=MAX_ROWS, help="How many events, newest first.")
    ] = 50,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only these kinds (repeatable): run, incident, action, emergency, notification, audit."),
    ] = None,
    as_json: AsJson = False,
    store: Store = None,
) -> None:
    """The incident and action timeline, newest first.

    Example: notification-emergency events --since 24h --kind incident --kind run
    """
    from notification_emergency.store import EVENT_KINDS

    kinds = set(kind) if kind else None
    unknown = sorted((kinds or set()) - EVENT_KINDS)
    if unknown:
        _fail(
            f"--kind {shown(unknown[0])} is not an event kind; choose from {', '.join(sorted(EVENT_KINDS))}",
            EXIT_BAD_INPUT,
            as_json,
        )

    def render(data: dict[str, Any]) -> None:
        rows = data["events"]
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("AT", "KIND", "OK", "WHAT"):
            table.add_column(column)
        for row in rows:
            ok = {True: Text("ok", "green"), False: Text("failed", "red"), None: Text("-")}[row.get("ok")]
            table.add_row(_plain(row["at"]), _plain(row["kind"]), ok, _plain(row["summary"]))
        out.print(table if rows else "no events")

    moment = _window(since, as_json)
    _record(as_json, store, lambda s: {"events": s.events(since=moment, limit=limit, kinds=kinds)}, render)


@app.command()
def stats(since: Since = None, as_json: AsJson = False, store: Store = None) -> None:
    """Incidents, recovery rate, detection and recovery times (mean, p50, p90, p95) by failure type.

    Example: notification-emergency stats --since 7d --json
    """

    def seconds(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}s"

    def render(data: dict[str, Any]) -> None:
        rate = "-" if data["recovery_rate"] is None else f"{data['recovery_rate']:.0%}"
        out.print(
            f"incidents {data['incidents']} (open {data['open']}, resolved {data['resolved']}), recovery rate {rate}; "
            f"runs {data['runs']['total']} (failed {data['runs']['failed']}); "
            f"notifications {data['notifications']['total']} (failed {data['notifications']['failed']})"
        )
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("FAILURE TYPE", "INCIDENTS", "RESOLVED", "DETECT MEAN", "DETECT P90", "MTTR", "RECOVER P90"):
            table.add_column(column)
        rows = {**data["by_type"], "all": {**data, "incidents": data["incidents"]}}
        for name, row in rows.items():
            table.add_row(
                _plain(name),
                str(row["incidents"]),
                str(row["resolved"]),
                seconds(row["detection_seconds"]["mean"]),
                seconds(row["detection_seconds"]["p90"]),
                seconds(row["recovery_seconds"]["mean"]),
                seconds(row["recovery_seconds"]["p90"]),
            )
        out.print(table)

    moment = _window(since, as_json)
    _record(as_json, store, lambda s: s.statistics(since=moment), render)


@app.command("generate-report")
def generate_report(
    output: Annotated[
        Path | None,
        typer.Option(
            help="An existing directory, or a file name in one: NAME.json and NAME.md are written. "
            "Default: reports/ in the state directory."
        ),
    ] = None,
    since: Since = None,
    with_status: Annotated[
        bool, typer.Option("--status/--no-status", help="Run a status check for the current state.")
    ] = True,
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
) -> None:
    """Write a JSON and a Markdown report: status per host and component, active emergencies, incidents and
    actions in the window, statistics.

    Example: notification-emergency generate-report --output reports/incident-42.md --since 24h
    """
    from notification_emergency.paths import state_dir
    from notification_emergency.reports import report_files

    if output is None:  # the toolkit's own directory, created private (0700) like the rest of its state
        output = state_dir() / "reports"
        output.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Refused before the status check runs: a bad window, an output directory that does not exist, a target
    # that is a symlink. Without the status check the report only reads the store (opened read-only).
    reader: Any = store
    try:
        moment = _since(since)
        report_files(output)
        if not with_status:
            reader = _reader(store)
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, as_json)

    def call(toolkit: Any) -> Any:
        result = toolkit.generate_report(output, since=moment, limit=limit, include_status=with_status)
        result.exit_code = EXIT_OK  # the report is the deliverable; an unhealthy host is in it, not an error
        result.ok = True
        return result

    _act(as_json, verbose, inventory, reader, None, call, _summary)


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


Channels = Annotated[
    str | None,
    typer.Option(
        "--channels",
        envvar="NOTIFICATION_EMERGENCY_CHANNELS",
        help="The channels file (docs/notifications.md). Default: channels.yml in the state directory.",
    ),
]


def _render_attempts(attempts: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("AT", "CHANNEL", "TRY", "OUTCOME", "DETAIL"):
        table.add_column(column)
    for attempt in attempts:
        outcome = attempt["outcome"]
        style = {"delivered": "green", "failed": "red", "kept": "yellow"}.get(outcome, "")
        table.add_row(
            _plain(str(attempt["at"])[11:23]),
            _plain(attempt["channel"]),
            str(attempt.get("attempt", "")),
            Text(terminal(outcome), style=style),
            _plain(attempt.get("error") or attempt.get("detail") or ""),
        )
    if attempts:
        out.print(table)


def _render_delivery(result: Any) -> None:
    note = result.data["notification"]
    _render_attempts(note["attempts"])
    for name, reason in note["skipped"].items():
        out.print(Text.assemble(("skipped", "yellow"), " ", terminal(f"{name}: {reason}")))
    if not result.ok:
        out.print(Text(terminal(result.message), style="bold red"))
        err.print(
            "[bold red]error: the notification reached nobody: every channel failed.[/bold red] "
            "Check the channels (send-notification --check-config) and tell the people concerned another way.",
            markup=True,
        )
    elif note["failed"]:
        out.print(Text.assemble(("PARTLY DELIVERED", "yellow"), " ", terminal(result.message)))
    else:
        out.print(Text.assemble(("OK", "green"), " ", terminal(result.message)))


@app.command("send-notification")
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
    inventory: Inventory = None,
    limit: Limit = None,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    store: Store = None,
) -> None:
    """Send a notification to the application's users and to operators, by the channels its priority is
    routed to (each with retries, then its fallback; notifications.log as the last resort). Every attempt
    is recorded. Exits 1, saying so loudly, when no channel delivered it; 2 on a bad channels file.

    Example: notification-emergency send-notification --title "Notifications delayed" --priority high
    """
    if check_config:

        def render_config(result: Any) -> None:
            config = result.data["channels"]
            out.print(f"channels file: {config['source']}")
            for name, channel in config["channels"].items():
                fallback = f" (fallback: {channel['fallback']})" if channel["fallback"] else ""
                out.print(f"  {name}: {channel['url']}{fallback}")
            out.print("routing (each listed channel gets it; a -> b: b when a fails):")
            for name, routed in config["routing"].items():
                out.print(f"  {name}: {', '.join(routed) or 'file'}")
            _summary(result)

        _act(as_json, verbose, inventory, store, None, lambda t: t.check_channels(channels), render_config)
    if not title or not title.strip():
        _fail("--title is required: what the notification is about", EXIT_BAD_INPUT, as_json)
    broken = [component.value for component in failed_component or []]
    _act(
        as_json,
        verbose,
        inventory,
        store,
        None,
        lambda t: t.send_notification(
            title, message, priority.value, limit=limit, channels=channels, failed_components=broken
        ),
        _render_delivery,
    )


@app.command()
def notifications(
    since: Since = None,
    limit: Annotated[
        int, typer.Option("--last", "-n", min=1, max=MAX_ROWS, help="How many notifications, newest first.")
    ] = 50,
    attempts: Annotated[bool, typer.Option("--attempts", help="Show every delivery attempt too.")] = False,
    as_json: AsJson = False,
    store: Store = None,
) -> None:
    """Notifications, newest first: whether each was delivered and by which channel, and the attempts.

    Example: notification-emergency notifications --since 24h --attempts
    """

    def render(data: dict[str, Any]) -> None:
        rows = data["notifications"]
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("AT", "ID", "PRIORITY", "STATUS", "BY", "TRIES", "TITLE"):
            table.add_column(column)
        for row in rows:
            style = {"delivered": "green", "failed": "red"}.get(row["status"], "yellow")
            table.add_row(
                _plain(row["at"]),
                _plain(row["notification_id"]),
                _plain(row["priority"]),
                Text(terminal(row["status"]), style=style),
                _plain(row["delivered_by"] or "-"),
                str(len(row["attempts"])),
                _plain(row["title"]),
            )
        out.print(table if rows else "no notifications")
        if attempts:
            for row in rows:
                out.print(_plain(f"{row['notification_id']} {row['title']}:"))
                _render_attempts(row["attempts"])

    moment = _window(since, as_json)
    _record(as_json, store, lambda s: {"notifications": s.notifications(since=moment, limit=limit)}, render)


class DashboardRole(StrEnum):
    viewer = "viewer"
    operator = "operator"


@app.command()
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
    inventory: Inventory = None,
    limit: Limit = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="Log every HTTP request.")] = 0,
    store: Store = None,
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
            inventory=inventory,
            limit=limit,
            store=store,
            probe_interval=probe_interval,
            secure_cookies=secure_cookies,
            verbose=verbose,
            say=lambda text: err.print(text, markup=False),
        )
    except ToolkitError as exc:
        _fail(exc.message, exc.exit_code, False)
    raise typer.Exit(EXIT_OK)


def run() -> None:  # pragma: no cover - the console script entry point
    try:
        app()
    except KeyboardInterrupt:
        err.print("cancelled")
        sys.exit(EXIT_CANCELLED)
