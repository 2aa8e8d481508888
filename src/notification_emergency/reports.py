"""Incident reports: one dictionary (the JSON report) and its Markdown rendering.

The report holds the current status per host and component (when a status check ran), the active
emergencies, the incidents and their actions in the time window, the runs, and the statistics of the
event store. ``write_report`` writes ``<stem>.json`` and ``<stem>.md`` side by side.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency.errors import BadInput

if TYPE_CHECKING:
    from notification_emergency.api import ActionResult
    from notification_emergency.store import EventStore

REPORT_VERSION = 1


def build_report(store: EventStore, *, status: ActionResult | None, since: datetime | None) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    if status is not None:
        for host, row in status.hosts.items():
            hosts[host] = {
                "health": row.get("status"),
                "mode": row.get("mode", "unknown"),
                "emergency": row.get("emergency", {}),
                "level": row.get("level"),
                "primary": row.get("primary"),
                "summary": row.get("summary"),
                "plan": row.get("plan", []),
                "components": {
                    name: {
                        "status": check.get("status"),
                        "latency_ms": check.get("latency_ms"),
                        "error": check.get("error"),
                    }
                    for name, check in (row.get("checks") or {}).items()
                },
            }
    return {
        "report_version": REPORT_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": {"since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None},
        "store": store.display_url,
        "status": {"message": status.message, "ok": status.ok} if status is not None else None,
        "hosts": hosts,
        "active_emergencies": {
            host: row["emergency"] for host, row in hosts.items() if (row.get("emergency") or {}).get("active")
        },
        "incidents": store.incidents(since=since),
        "runs": store.runs(since=since, limit=200),
        "emergencies": store.emergencies(since=since),
        "notifications": store.notifications(since=since),
        "statistics": store.statistics(since=since),
    }


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "/")


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Notification service: emergency report",
        "",
        f"Generated {report['generated_at']}; window: since {report['window']['since'] or 'the beginning'}; "
        f"store: `{report['store']}`.",
        "",
        "## Status",
        "",
    ]
    if report["hosts"]:
        lines += ["| host | health | mode | emergency | level | failure |", "|---|---|---|---|---|---|"]
        for host, row in sorted(report["hosts"].items()):
            emergency = row["emergency"] or {}
            active = f"active (level {emergency.get('level')})" if emergency.get("active") else "off"
            lines.append(
                f"| {host} | {row['health']} | {row['mode']} | {active} | {row['level'] or '-'} | "
                f"{row['primary'] or '-'} |"
            )
        lines += ["", "### Components", ""]
        lines += ["| host | component | status | latency | error |", "|---|---|---|---|---|"]
        for host, row in sorted(report["hosts"].items()):
            for name, check in sorted(row["components"].items()):
                latency = "-" if check["latency_ms"] is None else f"{check['latency_ms']:.0f} ms"
                error = (check["error"] or "").replace("|", "/")
                lines.append(f"| {host} | {name} | {check['status']} | {latency} | {error} |")
    else:
        lines.append("No status check in this report.")
    stats = report["statistics"]
    lines += [
        "",
        "## Statistics",
        "",
        f"- Incidents: {stats['incidents']} ({stats['open']} open, {stats['resolved']} resolved); recovery rate "
        + ("-" if stats["recovery_rate"] is None else f"{stats['recovery_rate']:.0%}"),
        f"- Detection time: mean {_seconds(stats['detection_seconds']['mean'])}, "
        f"p90 {_seconds(stats['detection_seconds']['p90'])}",
        f"- Recovery time (MTTR): mean {_seconds(stats['recovery_seconds']['mean'])}, "
        f"p90 {_seconds(stats['recovery_seconds']['p90'])}",
        f"- Runs: {stats['runs']['total']} ({stats['runs']['successful']} successful, "
        f"{stats['runs']['failed']} failed)",
        f"- Notifications: {stats['notifications']['total']} ({stats['notifications']['delivered']} delivered, "
        f"{stats['notifications']['failed']} failed)",
        "",
        "## Incidents",
        "",
    ]
    if not report["incidents"]:
        lines.append("None in this window.")
    for incident in report["incidents"]:
        lines.append(
            f"- **#{incident['id']} {incident['failure_type']}** (level {incident['level']}, {incident['status']}) "
            f"on {', '.join(incident['hosts'])}: detected {incident['detected_at']}, resolved "
            f"{incident.get('resolved_at') or '-'}. {incident.get('summary') or ''}".rstrip()
        )
        for action in incident.get("actions", []):
            lines.append(
                f"  - {action['started_at']} {action['action']}: {action.get('outcome') or 'running'}"
                + (f" (run {action['run_id']})" if action.get("run_id") else "")
            )
    lines += ["", "## Notifications", ""]
    if not report["notifications"]:
        lines.append("None in this window.")
    else:
        lines += ["| at | priority | title | status | delivered by | attempts |", "|---|---|---|---|---|---|"]
        for note in report["notifications"]:
            tried = ", ".join(f"{a['channel']} {a['outcome']}" for a in note.get("attempts", []))
            lines.append(
                f"| {note['at']} | {note['priority']} | {_cell(note['title'])} | {note['status']} | "
                f"{note.get('delivered_by') or '-'} | {_cell(tried) or '-'} |"
            )
    lines += ["", "## Runs", ""]
    if not report["runs"]:
        lines.append("None in this window.")
    else:
        lines += ["| started | action | by | limit | status |", "|---|---|---|---|---|"]
        for run in report["runs"]:
            lines.append(
                f"| {run['started_at']} | {run['action']}{' (check)' if run.get('check') else ''} | {run['actor']} | "
                f"{run.get('limit') or 'all'} | {run.get('status') or 'running'} |"
            )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], output: Path) -> list[Path]:
    """Write the JSON and the Markdown report; ``output`` is a directory or a ``.json``/``.md`` file name."""
    if output.suffix in (".json", ".md"):
        stem = output.with_suffix("")
    else:
        stem = output / f"notification-emergency-report-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        json_file, md_file = stem.with_suffix(".json"), stem.with_suffix(".md")
        json_file.write_text(json.dumps(report, indent=2, default=str) + "\n")
        md_file.write_text(render_markdown(report))
    except OSError as exc:
        raise BadInput(f"cannot write the report to {output}: {exc.strerror}; choose a writable --output") from exc
    return [json_file, md_file]
