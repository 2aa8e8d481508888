"""Commands over the record: record-run, events, stats (they only read the event store, opened read-only,
except record-run) and generate-report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from notification_emergency.cli.options import HOSTS, MAX_ROWS, RECORDS, Common, Since, shared
from notification_emergency.cli.render import render_events, render_stats, summary
from notification_emergency.cli.running import act, fail, reader, record, since_moment, window
from notification_emergency.errors import EXIT_BAD_INPUT, EXIT_OK, ToolkitError
from notification_emergency.text import shown

if TYPE_CHECKING:
    from notification_emergency.api import EmergencyToolkit
    from notification_emergency.results import ActionResult
    from notification_emergency.store import EventStore


@shared(RECORDS)
def record_run(
    report: Annotated[Path, typer.Argument(help="The run report a playbook wrote (reports/<playbook>-<run id>.json).")],
    *,
    opts: Common,
) -> None:
    """Record in the event store a run launched without this CLI (AWX, EDA, ansible-playbook), from its report.

    The playbooks call it themselves at the end of a run when a store is configured (the notification_store
    variable or NOTIFICATION_EMERGENCY_STORE), so the runs of AWX job templates land in the same records
    (runs, audit trail) as the CLI's. A run recorded already is left as it is.

    Example: notification-emergency record-run reports/backup-20261127T101500Z-ab12cd.json
    """
    act(opts, lambda t: t.record_run(report))


@shared(RECORDS)
def events(
    since: Since = None,
    limit: Annotated[
        int, typer.Option("--last", "-n", min=1, max=MAX_ROWS, help="How many events, newest first.")
    ] = 50,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only these kinds (repeatable): run, incident, action, emergency, notification, audit."),
    ] = None,
    *,
    opts: Common,
) -> None:
    """The incident and action timeline, newest first.

    Example: notification-emergency events --since 24h --kind incident --kind run
    """
    from notification_emergency.store import EVENT_KINDS

    kinds = set(kind) if kind else None
    unknown = sorted((kinds or set()) - EVENT_KINDS)
    if unknown:
        fail(
            f"--kind {shown(unknown[0])} is not an event kind; choose from {', '.join(sorted(EVENT_KINDS))}",
            EXIT_BAD_INPUT,
            opts.as_json,
        )
    moment = window(since, opts.as_json)
    record(opts, lambda s: {"events": s.events(since=moment, limit=limit, kinds=kinds)}, render_events)


@shared(RECORDS)
def stats(since: Since = None, *, opts: Common) -> None:
    """Incidents, recovery rate, detection and recovery times (mean, p50, p90, p95) by failure type.

    Example: notification-emergency stats --since 7d --json
    """
    moment = window(since, opts.as_json)
    record(opts, lambda s: s.statistics(since=moment), render_stats)


@shared(HOSTS)
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
    *,
    opts: Common,
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
    opened: EventStore | None = None
    try:
        moment = since_moment(since)
        report_files(output)
        if not with_status:
            opened = reader(opts.store)
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, opts.as_json)
    target = output

    def call(kit: EmergencyToolkit) -> ActionResult:
        result = kit.generate_report(target, since=moment, limit=opts.limit, include_status=with_status)
        result.exit_code = EXIT_OK  # the report is the deliverable; an unhealthy host is in it, not an error
        result.ok = True
        return result

    act(opts, call, summary, store=opened)
