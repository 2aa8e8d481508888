"""Incident reports: one dictionary (the JSON report) and its Markdown rendering.

The report holds the current status per host and component (when a status check ran), the active
emergencies, the incidents and their actions in the time window, the runs, and the statistics of the
event store. ``write_report`` writes ``<stem>.json`` and ``<stem>.md`` side by side.

Every text in the Markdown that came from a host or a person (host names, reasons, titles, messages,
summaries, errors, actors) goes through :func:`notification_emergency.text.markdown`: it renders as the text
itself, never as HTML, a link or a broken table.

Writing is safe in a directory others can write to (``/tmp``): the directory must exist (it is never
created), a target that is a symlink or not a regular file is refused, and each file is written to a new
temporary file in the same directory (``O_EXCL``, ``O_NOFOLLOW``) then renamed over the target, so a link
planted there is never followed and a reader never sees half a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency.errors import BadInput
from notification_emergency.text import markdown as md
from notification_emergency.timeutil import iso_seconds, utc_now

if TYPE_CHECKING:
    from notification_emergency.results import ActionResult
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
        "generated_at": iso_seconds(utc_now()),
        "window": {"since": iso_seconds(since) if since else None},
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


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Notification service: emergency report",
        "",
        f"Generated {report['generated_at']}; window: since {report['window']['since'] or 'the beginning'}; "
        f"store: {md(report['store'])}.",
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
                f"| {md(host)} | {md(row['health'])} | {md(row['mode'])} | {md(active)} | {md(row['level'] or '-')} | "
                f"{md(row['primary'] or '-')} |"
            )
        lines += ["", "### Components", ""]
        lines += ["| host | component | status | latency | error |", "|---|---|---|---|---|"]
        for host, row in sorted(report["hosts"].items()):
            for name, check in sorted(row["components"].items()):
                latency = "-" if check["latency_ms"] is None else f"{check['latency_ms']:.0f} ms"
                lines.append(
                    f"| {md(host)} | {md(name)} | {md(check['status'])} | {latency} | {md(check['error'] or '')} |"
                )
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
            f"- **#{incident['id']} {md(incident['failure_type'])}** (level {incident['level']}, "
            f"{md(incident['status'])}) on {md(', '.join(incident['hosts']))}: detected {incident['detected_at']}, "
            f"resolved {incident.get('resolved_at') or '-'}. {md(incident.get('summary') or '')}".rstrip()
        )
        for action in incident.get("actions", []):
            lines.append(
                f"  - {action['started_at']} {md(action['action'])}: {md(action.get('outcome') or 'running')}"
                + (f" (run {md(action['run_id'])})" if action.get("run_id") else "")
            )
    lines += ["", "## Emergency mode", ""]
    if not report.get("emergencies"):
        lines.append("None in this window.")
    for change in report.get("emergencies", []):
        level = f" (level {change['level']})" if change.get("level") is not None else ""
        lines.append(
            f"- {change['at']} {md(change['action'])}{level} on {md(', '.join(change['hosts']) or 'no host')} "
            f"by {md(change['actor'])}" + (f": {md(change['reason'])}" if change.get("reason") else "")
        )
    lines += ["", "## Notifications", ""]
    if not report["notifications"]:
        lines.append("None in this window.")
    else:
        lines += ["| at | priority | title | status | delivered by | attempts |", "|---|---|---|---|---|---|"]
        for note in report["notifications"]:
            tried = ", ".join(f"{a['channel']} {a['outcome']}" for a in note.get("attempts", []))
            lines.append(
                f"| {note['at']} | {md(note['priority'])} | {md(note['title'])} | {md(note['status'])} | "
                f"{md(note.get('delivered_by') or '-')} | {md(tried or '-')} |"
            )
    lines += ["", "## Runs", ""]
    if not report["runs"]:
        lines.append("None in this window.")
    else:
        lines += ["| started | action | by | limit | status |", "|---|---|---|---|---|"]
        for run in report["runs"]:
            lines.append(
                f"| {run['started_at']} | {md(run['action'])}{' (check)' if run.get('check') else ''} | "
                f"{md(run['actor'])} | {md(run.get('limit') or 'all')} | {md(run.get('status') or 'running')} |"
            )
    return "\n".join(lines) + "\n"


def report_files(output: Path) -> tuple[Path, Path]:
    """The JSON and Markdown files a report to ``output`` writes (a directory, or a ``.json``/``.md`` file
    name whose stem both share), refused as :class:`BadInput` when they cannot be written safely: the
    directory does not exist (it is never created) or a target is a symlink or not a regular file."""
    if output.suffix in (".json", ".md"):
        stem = output.with_suffix("")
    else:
        stem = output / f"notification-emergency-report-{time.strftime('%Y%m%dT%H%M%S')}"
    directory = stem.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() or directory.is_symlink() else "does not exist"
        raise BadInput(
            f"--output {output}: the directory {directory} {what}; reports never create directories: "
            f"create it first (mkdir -p {directory}) or give --output an existing directory"
        )
    files = (stem.with_suffix(".json"), stem.with_suffix(".md"))
    for file in files:
        try:
            mode = file.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BadInput(f"--output {output}: cannot check {file}: {exc.strerror}; choose another --output") from None
        if stat.S_ISLNK(mode):
            raise BadInput(
                f"--output {output}: {file} is a symbolic link; reports never follow links: remove it or choose "
                "another --output"
            )
        if not stat.S_ISREG(mode):
            raise BadInput(f"--output {output}: {file} exists and is not a regular file; choose another --output")
    return files


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else the usual 022."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _write_new(target: Path, text: str) -> None:
    """Write ``text`` to a new temporary file next to ``target`` (created exclusively, never through a
    link) and rename it over ``target``; the rename replaces a link, it never follows one."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            os.fsync(file.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def write_report(report: dict[str, Any], output: Path) -> list[Path]:
    """Write the JSON and the Markdown report; ``output`` is an existing directory or a ``.json``/``.md``
    file name in one (see :func:`report_files` for what is refused)."""
    json_file, md_file = report_files(output)
    try:
        _write_new(json_file, json.dumps(report, indent=2, default=str) + "\n")
        _write_new(md_file, render_markdown(report))
    except OSError as exc:
        raise BadInput(f"cannot write the report to {output}: {exc.strerror}; choose a writable --output") from None
    return [json_file, md_file]
