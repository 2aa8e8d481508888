"""What the dashboard reads back from the event store: its recent actions (after a restart) and a host's
backups (for restore-by-name).

The actions: every dashboard action is in the audit trail twice, its request (``dashboard <action>``, with
the user, the hosts, the inputs and the job id, written before it starts) and its end (``dashboard <action>
succeeded|failed|canceled``, with the message, the exit code and the run ids). A request without an end
was running when the dashboard stopped without ending it (killed): it shows ``abandoned``. Per-host outcomes
come from the runs' reports.

The backups: the runs that took or used one (backup, rollback, restore) name it in their report's host
row; the names are the host's own (``<UTC time>-<label>``), newest first. A backup pruned since is still
listed: restoring it fails on the host, naming it.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from notification_emergency.dashboard.jobs import ACTIONS, KEPT_JOBS, OUTCOME_KEYS, Job
from notification_emergency.errors import BadInput
from notification_emergency.store import EventStore
from notification_emergency.timeutil import parse_iso

AUDIT_READ = 500  # audit records read back at start (each action is two, plus the rest of the trail)
RUNS_READ = 300  # runs searched for a host's backups
ENDS = ("succeeded", "failed", "canceled", "refused")


def recent_jobs(store: EventStore, limit: int = KEPT_JOBS) -> list[Job]:
    """The dashboard's newest ``limit`` actions, read back from the audit trail and the runs."""
    requests: list[dict[str, Any]] = []
    ends: dict[str, tuple[str, dict[str, Any], str]] = {}
    for entry in store.audit_trail(limit=AUDIT_READ):
        details: dict[str, Any] = entry["details"] if isinstance(entry.get("details"), dict) else {}
        words = entry["action"].split(" ")
        job_id = details.get("job")
        if words[0] != "dashboard" or not isinstance(job_id, str) or len(words) < 2 or words[1] not in ACTIONS:
            continue
        if len(words) == 2:
            requests.append(entry)
        elif words[2] in ENDS and len(words) == 3:
            ends.setdefault(job_id, (words[2], details, entry["at"]))
    jobs = []
    for entry in requests:
        details = entry["details"]
        end = ends.get(details["job"])
        if end is not None and end[0] == "refused":
            continue
        jobs.append(_job(store, entry, end))
        if len(jobs) == limit:
            break
    return jobs


def _job(store: EventStore, request: dict[str, Any], end: tuple[str, dict[str, Any], str] | None) -> Job:
    name = request["action"].split(" ")[1]
    spec = ACTIONS[name]
    details = request["details"]
    inputs = details.get("inputs") if isinstance(details.get("inputs"), dict) else {}
    hosts = [host.strip() for host in str(request["target"]).split(",") if host.strip()]
    job = Job(
        id=details["job"],
        action=name,
        label=spec.label,
        hosts=hosts,
        user=request["actor"],
        inputs=inputs,
        description="",
    )
    with suppress(BadInput, KeyError, TypeError, ValueError):  # inputs of an older version: no text
        job.description = spec.describe(hosts, spec.parse(inputs), job.user)
    started = parse_iso(request["at"])
    if started is not None:
        job.started_at = started
    if end is None:
        job.state, job.message = "abandoned", "the dashboard stopped while it ran (the run is recorded abandoned)"
        return job
    state, done, at = end
    job.state = state
    job.finished_at = parse_iso(at)
    job.exit_code = done.get("exit_code") if isinstance(done.get("exit_code"), int) else None
    job.message = str(done.get("message") or "")
    job.canceled_by = done.get("canceled_by") if isinstance(done.get("canceled_by"), str) else None
    run_ids = done.get("run_ids")
    job.run_ids = [run for run in run_ids if isinstance(run, str)] if isinstance(run_ids, list) else []
    for run_id in job.run_ids:
        run = store.run(run_id) or {}
        for row in (run.get("report") or {}).get("hosts") or []:
            if isinstance(row, dict) and isinstance(row.get("host"), str):
                job.outcome[row["host"]] = {key: row[key] for key in OUTCOME_KEYS if row.get(key) is not None}
    job.lines.append(f"{state}: {job.message}")
    return job


def backups_of(store: EventStore, host: str) -> list[str]:
    """The backups the store knows ``host`` has (taken by a backup, a rollback or a restore), newest first."""
    names: set[str] = set()
    for run in store.runs(limit=RUNS_READ):
        for row in (run.get("report") or {}).get("hosts") or []:
            if isinstance(row, dict) and row.get("host") == host and isinstance(row.get("backup"), str):
                names.add(row["backup"])
    return sorted(names, reverse=True)


__all__ = ["backups_of", "recent_jobs"]
