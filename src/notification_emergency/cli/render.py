"""What the commands print: compact tables on stdout (colour when the terminal has it, plain text otherwise),
``--json`` documents, and the live progress of a playbook run on stderr.

Text that comes from the record, a host or a person goes through :func:`plain` (or
:func:`~notification_emergency.text.terminal`): shown as it is, never read as Rich markup, no control
characters.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from notification_emergency.text import terminal

if TYPE_CHECKING:
    from notification_emergency.results import ActionResult

# Wide enough for the tables when the output is not a terminal (a pipe, a log, CI).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STYLE = {"healthy": "green", "ok": "green", "degraded": "yellow", "failed": "red", "locked": "magenta"}


def print_json(document: Any) -> None:
    out.print_json(json.dumps(document, default=str))


def table(*columns: str) -> Table:
    """A table without borders, the columns named."""
    made = Table(box=None, pad_edge=False, show_edge=False)
    for column in columns:
        made.add_column(column)
    return made


def mark(status: str) -> Text:
    """A status that reads without colour: a word, coloured when the terminal has colour."""
    style = _STYLE.get(status, "red" if status in ("unreachable", "unknown") else "")
    return Text(terminal(status), style=style)


def plain(value: Any) -> Text:
    """Text from the record, a host or a person, shown as it is: no Rich markup, no control characters."""
    return Text(terminal("" if value is None else value))


def summary(result: ActionResult) -> None:
    style = "green" if result.ok else "red"
    out.print(Text.assemble(("OK" if result.ok else "FAILED", style), " ", terminal(result.message)))
    if result.run is not None:
        out.print(f"run {result.run.run_id} ({result.run.duration_s:.1f} s); artifacts {result.run.artifact_dir}")


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


# -- the results of the playbook commands ----------------------------------------------------------------


def render_action(result: ActionResult) -> None:
    rows = table("HOST", "STATUS", "DETAIL")
    for host, row in sorted(result.hosts.items()):
        detail = row.get("line", "").split(": ", 2)[-1] if row.get("status") == "ok" else row.get("error", "")
        rows.add_row(plain(host), mark(str(row.get("status"))), plain(detail))
    if result.hosts:
        out.print(rows)
    summary(result)


def render_health(result: ActionResult) -> None:
    rows = table("HOST", "HEALTH", "MODE", "EMERGENCY", "LEVEL", "FAILURE", "NOT HEALTHY")
    for host, row in sorted(result.hosts.items()):
        emergency = row.get("emergency") or {}
        rows.add_row(
            plain(host),
            mark(str(row.get("status"))),
            plain(row.get("mode", "unknown")),
            plain(f"active (level {emergency.get('level')})" if emergency.get("active") else "off"),
            plain(f"{row['level']} {row.get('level_name', '')}".strip() if row.get("level") else "-"),
            plain(row.get("primary") or "-"),
            plain(", ".join((row.get("failed_checks") or []) + (row.get("degraded_checks") or [])) or "-"),
        )
    out.print(rows)
    for host, row in sorted(result.hosts.items()):
        if row.get("plan"):
            out.print(plain(row.get("summary") or f"{host}: plan {', '.join(row['plan'])}"))  # level, response, plan
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
            plain(
                f"open incident #{incident['id']} {incident['failure_type']} level {incident['level']} on "
                f"{', '.join(incident['hosts'])} since {incident['detected_at']}"
            )
        )
    summary(result)


def render_quick(result: ActionResult) -> None:
    rows = table("HOST", "HEALTH", "MODE", "LATENCY", "NOT HEALTHY")
    for host, row in sorted(result.hosts.items()):
        rows.add_row(
            plain(host),
            mark(str(row["status"])),
            plain(row["mode"]),
            f"{row['latency_ms']:.0f} ms",
            plain(", ".join(row["problems"]) or "-"),
        )
    out.print(rows)
    summary(result)


def render_recovery(result: ActionResult) -> None:
    render_health(result)
    for host, decision in sorted(result.data.get("decisions", {}).items()):
        if decision["status"] == "healthy":
            continue
        out.print(f"{host}: {decision['primary']} (level {decision['level']}): {decision['summary']}")
        for step in decision["steps"]:
            step_mark = "[green]run [/green]" if step["run"] else "[yellow]skip[/yellow]"
            out.print(f"  {step_mark} {step['label']}" + (f": {step['reason']}" if step["reason"] else ""))
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


def render_drills(result: ActionResult) -> None:
    rows = table("FAULT", "HOST", "DETECTED TYPE", "LEVEL", "ACTIONS", "RECOVERED", "MTTD", "MTTR", "AS EXPECTED")
    for journal in result.data["drills"]:
        rows.add_row(
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
    out.print(rows)
    summary(result)


# -- notifications ---------------------------------------------------------------------------------------


def render_attempts(attempts: list[dict[str, Any]]) -> None:
    rows = table("AT", "CHANNEL", "TRY", "OUTCOME", "DETAIL")
    for attempt in attempts:
        outcome = attempt["outcome"]
        style = {"delivered": "green", "failed": "red", "kept": "yellow"}.get(outcome, "")
        rows.add_row(
            plain(str(attempt["at"])[11:23]),
            plain(attempt["channel"]),
            str(attempt.get("attempt", "")),
            Text(terminal(outcome), style=style),
            plain(attempt.get("error") or attempt.get("detail") or ""),
        )
    if attempts:
        out.print(rows)


def render_delivery(result: ActionResult) -> None:
    note = result.data["notification"]
    render_attempts(note["attempts"])
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


def render_channels(result: ActionResult) -> None:
    config = result.data["channels"]
    out.print(f"channels file: {config['source']}")
    for name, channel in config["channels"].items():
        fallback = f" (fallback: {channel['fallback']})" if channel["fallback"] else ""
        out.print(f"  {name}: {channel['url']}{fallback}")
    out.print("routing (each listed channel gets it; a -> b: b when a fails):")
    for name, routed in config["routing"].items():
        out.print(f"  {name}: {', '.join(routed) or 'file'}")
    summary(result)


# -- what the store commands read ------------------------------------------------------------------------


def render_events(data: dict[str, Any]) -> None:
    events = data["events"]
    rows = table("AT", "KIND", "OK", "WHAT")
    for row in events:
        ok = {True: Text("ok", "green"), False: Text("failed", "red"), None: Text("-")}[row.get("ok")]
        rows.add_row(plain(row["at"]), plain(row["kind"]), ok, plain(row["summary"]))
    out.print(rows if events else "no events")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def render_stats(data: dict[str, Any]) -> None:
    rate = "-" if data["recovery_rate"] is None else f"{data['recovery_rate']:.0%}"
    out.print(
        f"incidents {data['incidents']} (open {data['open']}, resolved {data['resolved']}), recovery rate {rate}; "
        f"runs {data['runs']['total']} (failed {data['runs']['failed']}); "
        f"notifications {data['notifications']['total']} (failed {data['notifications']['failed']})"
    )
    rows = table("FAILURE TYPE", "INCIDENTS", "RESOLVED", "DETECT MEAN", "DETECT P90", "MTTR", "RECOVER P90")
    for name, row in {**data["by_type"], "all": {**data, "incidents": data["incidents"]}}.items():
        rows.add_row(
            plain(name),
            str(row["incidents"]),
            str(row["resolved"]),
            _seconds(row["detection_seconds"]["mean"]),
            _seconds(row["detection_seconds"]["p90"]),
            _seconds(row["recovery_seconds"]["mean"]),
            _seconds(row["recovery_seconds"]["p90"]),
        )
    out.print(rows)


def render_notifications(data: dict[str, Any], *, attempts: bool) -> None:
    notes = data["notifications"]
    rows = table("AT", "ID", "PRIORITY", "STATUS", "BY", "TRIES", "TITLE")
    for row in notes:
        style = {"delivered": "green", "failed": "red"}.get(row["status"], "yellow")
        rows.add_row(
            plain(row["at"]),
            plain(row["notification_id"]),
            plain(row["priority"]),
            Text(terminal(row["status"]), style=style),
            plain(row["delivered_by"] or "-"),
            str(len(row["attempts"])),
            plain(row["title"]),
        )
    out.print(rows if notes else "no notifications")
    if attempts:
        for row in notes:
            out.print(plain(f"{row['notification_id']} {row['title']}:"))
            render_attempts(row["attempts"])
