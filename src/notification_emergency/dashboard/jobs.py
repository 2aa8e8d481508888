"""The dashboard's controls: each one an :class:`EmergencyToolkit` method run in a background thread.

An action is checked before it starts (its inputs, its hosts against the inventory), described in words for
the confirmation (what will happen, on which hosts), and refused while another dashboard action runs on
any of the same hosts (the playbooks' host lock also keeps out runs from elsewhere: the CLI, the watch,
AWX). Its progress comes from the ansible-runner events; its start, its end and every refusal go to the
audit trail with the user.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from notification_emergency.api import ActionResult, EmergencyToolkit
from notification_emergency.catalogue import LEVELS, RESTARTABLE_COMPONENTS
from notification_emergency.errors import EXIT_CANCELLED, BadInput, ToolkitError
from notification_emergency.inputs import validate_inputs
from notification_emergency.runner import Event
from notification_emergency.store import EventStore
from notification_emergency.timeutil import iso, utc_now

log = logging.getLogger("notification_emergency.dashboard")

COMPONENTS = RESTARTABLE_COMPONENTS  # what the restart control offers: the catalogue's restart steps
MAX_REASON = 300
KEPT_JOBS = 20
KEPT_LINES = 200
OUTCOME_KEYS = ("status", "line", "error", "primary", "level", "mode")  # of a host row, shown per job


class Conflict(ToolkitError):
    """Another dashboard action runs on one of the hosts (HTTP 409)."""


def _hosts(hosts: list[str]) -> str:
    return ", ".join(hosts)


def _no_inputs(name: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def parse(inputs: Mapping[str, Any]) -> dict[str, Any]:
        if inputs:
            raise BadInput(f"{name} takes no inputs; got {', '.join(sorted(map(str, inputs)))}")
        return {}

    return parse


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_text(name: str, text: str) -> str:
    """Refuse (BadInput naming ``name``) a control character, a lone surrogate or a bidirectional override in
    text shown to people: it would corrupt a terminal, a log line or the banner (whitespace is not refused)."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs":
            raise BadInput(
                f"{name} has a lone surrogate (U+{ord(char):04X}) at character {position + 1}: send UTF-8 text"
            )
        if (category == "Cc" and not char.isspace()) or char in _BIDI_CONTROLS:
            raise BadInput(
                f"{name} has the control character U+{ord(char):04X} at character {position + 1}: send plain text"
            )
    return text


def _parse_activate(inputs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(inputs) - {"reason", "level"}
    if unknown:
        raise BadInput(f"activate-emergency takes reason and level; unknown: {', '.join(sorted(unknown))}")
    reason = inputs.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadInput("reason is required: say why (it is shown to users in the banner)")
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise BadInput(f"reason has {len(reason)} characters; keep it under {MAX_REASON}")
    check_text("reason", reason)
    level = inputs.get("level", 2)
    if isinstance(level, str) and level.strip().isascii() and level.strip().isdigit() and len(level) < 8:
        level = int(level)
    if not isinstance(level, int) or isinstance(level, bool) or level not in LEVELS:
        raise BadInput(f"level must be 1 (critical), 2 (high), 3 (medium) or 4 (low), not {str(level)[:40]!r}")
    return {"reason": reason, "level": level}


def _parse_restart(inputs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(inputs) - {"components"}
    if unknown:
        raise BadInput(f"restart takes components; unknown: {', '.join(sorted(unknown))}")
    components = inputs.get("components")
    if (
        not isinstance(components, list)
        or not components
        or not all(isinstance(c, str) and c in COMPONENTS for c in components)
    ):
        raise BadInput(f"components must be a non-empty list of {', '.join(COMPONENTS)}")
    return {"components": list(dict.fromkeys(components))}


def _parse_backup(inputs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(inputs) - {"label"}
    if unknown:
        raise BadInput(f"backup takes label; unknown: {', '.join(sorted(map(str, unknown)))[:200]}")
    label = inputs.get("label") or "dashboard"
    if not isinstance(label, str):
        raise BadInput("label must be text: 1 to 64 lower-case letters, digits, - and _ (before-upgrade)")
    try:  # the playbook's own rule (backup.yml's spec and inputs.py), checked before anything runs
        validate_inputs("backup.yml", {"backup_label": label})
    except BadInput as exc:
        raise BadInput(f"label: {exc.message}") from None
    return {"label": label}


def _parse_restore_backup(inputs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(inputs) - {"backup"}
    if unknown:
        raise BadInput(f"restore-backup takes backup; unknown: {', '.join(sorted(map(str, unknown)))[:200]}")
    name = inputs.get("backup")
    fix = "give latest or a backup name as the host's backups list shows it (20261203T101500Z-manual)"
    if not isinstance(name, str) or not name:
        raise BadInput(f"backup is required: {fix}")
    try:  # restore.yml's rule for restore_backup (inputs.py): the name is data, checked, never a path
        validate_inputs("restore.yml", {"restore_backup": name})
    except BadInput:
        raise BadInput(f"backup {name[:80]!r} is not a backup name: {fix}") from None
    return {"backup": name}


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    kind: str  # read (changes nothing), change, danger (users notice)
    parse: Callable[[Mapping[str, Any]], dict[str, Any]]
    describe: Callable[[list[str], dict[str, Any], str], str]
    # (toolkit, limit, inputs, user, started): ``started`` maps each failing host to the dashboard's first
    # failed probe of it, the failure's start for the incident (so detection time is measured).
    run: Callable[[EmergencyToolkit, str, dict[str, Any], str, dict[str, datetime]], ActionResult]


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "health-check",
            "Run health check",
            "read",
            _no_inputs("health-check"),
            lambda hosts, _i, _u: (
                f"Check every component of {_hosts(hosts)} (the health playbook), classify what is broken and "
                "open an incident for each failure found. Changes nothing on the hosts."
            ),
            lambda t, limit, _i, _u, started: t.health_check(limit, started_at=started),
        ),
        ActionSpec(
            "auto-recover",
            "Auto-recover",
            "change",
            _no_inputs("auto-recover"),
            lambda hosts, _i, _u: (
                f"Check {_hosts(hosts)}; on each unhealthy host run its recovery plan from the failure catalogue "
                "step by step (restarts, restores from backup; never a step that touches data), verifying after "
                "each step. If the plan runs out: the level is raised, emergency mode goes on and operators are "
                "notified. Healthy hosts are left alone."
            ),
            lambda t, limit, _i, _u, started: t.auto_recover(limit, started_at=started),
        ),
        ActionSpec(
            "activate-emergency",
            "Activate emergency mode",
            "danger",
            _parse_activate,
            lambda hosts, i, u: (
                f"Turn emergency mode ON on {_hosts(hosts)} at level {i['level']} ({LEVELS[i['level']]['name']}): "
                f'every user of the application sees a banner saying "{i["reason"]}". Recorded as activated by '
                f"{u}; operators are notified."
            ),
            lambda t, limit, i, u, _s: t.activate_emergency(i["reason"], u, level=i["level"], limit=limit),
        ),
        ActionSpec(
            "deactivate-emergency",
            "Deactivate emergency mode",
            "change",
            _no_inputs("deactivate-emergency"),
            lambda hosts, _i, u: (
                f"Turn emergency mode OFF on {_hosts(hosts)}: the banner disappears for users. Recorded as resolved "
                f"by {u}; operators are notified."
            ),
            lambda t, limit, _i, u, _s: t.deactivate_emergency(u, limit=limit),
        ),
        ActionSpec(
            "restart",
            "Restart components",
            "change",
            _parse_restart,
            lambda hosts, i, _u: (
                f"Restart {', '.join(i['components'])} on {_hosts(hosts)}, one host at a time, each host healthy "
                "again before the next. Connected users reconnect."
            ),
            lambda t, limit, i, _u, _s: t.restart(i["components"], limit=limit),
        ),
        ActionSpec(
            "rollback",
            "Roll back to legacy",
            "danger",
            _no_inputs("rollback"),
            lambda hosts, _i, _u: (
                f"Roll {_hosts(hosts)} back to legacy flash messages: take a backup, carry every pending WebSocket "
                "notification into the flash store, stop and disable the WebSocket service, switch templates and "
                "routes to legacy, verify. Users then see notifications on their next page instead of live; none "
                "is lost. A host whose verification fails is put back from the backup."
            ),
            lambda t, limit, _i, _u, _s: t.rollback(limit=limit),
        ),
        ActionSpec(
            "restore",
            "Restore WebSocket mode",
            "danger",
            _no_inputs("restore"),
            lambda hosts, _i, _u: (
                f"Roll {_hosts(hosts)} forward to WebSocket mode: WebSocket service enabled and started, WebSocket "
                "templates and routes, verified; notifications are live again."
            ),
            lambda t, limit, _i, _u, _s: t.restore(limit=limit),
        ),
        ActionSpec(
            "backup",
            "Take a backup",
            "change",
            _parse_backup,
            lambda hosts, i, _u: (
                f"Take a verified, checksummed backup labelled {i['label']} on {_hosts(hosts)} (templates, state, "
                "database, the pending queue), then keep the newest backups by the retention. Nothing new is taken "
                "on a host whose files did not change since its newest backup. Users notice nothing."
            ),
            lambda t, limit, i, _u, _s: t.backup(label=i["label"], limit=limit),
        ),
        ActionSpec(
            "drain-backlog",
            "Drain the backlog",
            "danger",
            _no_inputs("drain-backlog"),
            lambda hosts, _i, _u: (
                f"Move the pending WebSocket backlog of {_hosts(hosts)} into the flash store: each pending "
                "notification is shown once on its user's next page instead of live. Touches data (the recovery "
                "engine never does this by itself)."
            ),
            lambda t, limit, _i, _u, _s: t.drain_backlog(limit=limit),
        ),
        ActionSpec(
            "restore-backup",
            "Restore a backup",
            "danger",
            _parse_restore_backup,
            lambda hosts, i, _u: (
                f"Restore backup {i['backup']} on {_hosts(hosts)}: verify its checksums first (a corrupt backup is "
                "refused before anything is written), put back its templates, state and mode, restart what "
                "changed and verify. The database is not put back. Users may see a short interruption."
            ),
            lambda t, limit, i, _u, _s: t.restore(backup=i["backup"], limit=limit),
        ),
    )
}


@dataclass
class Job:
    id: str
    action: str
    label: str
    hosts: list[str]
    user: str
    inputs: dict[str, Any]
    description: str
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    state: str = "running"  # running | succeeded | failed | canceled | abandoned (running when the dashboard died)
    task: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    message: str = ""
    exit_code: int | None = None
    outcome: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    canceled_by: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def finish(self, result: ActionResult) -> None:
        """Take the outcome of the action's run (its state, exit code, message, per-host rows, run id)."""
        canceled = result.exit_code == EXIT_CANCELLED or (result.run is not None and result.run.status == "canceled")
        self.state = "canceled" if canceled else "succeeded" if result.ok else "failed"
        self.exit_code, self.message = result.exit_code, result.message
        if canceled and result.exit_code != EXIT_CANCELLED:  # (a health check reads what the run got to)
            self.exit_code, self.message = EXIT_CANCELLED, f"canceled: {result.message}"
        self.outcome = {
            host: {key: row.get(key) for key in OUTCOME_KEYS if row.get(key) is not None}
            for host, row in result.hosts.items()
        }
        if result.run is not None:
            self.run_ids.append(result.run.run_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "label": self.label,
            "hosts": self.hosts,
            "user": self.user,
            "inputs": self.inputs,
            "description": self.description,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "state": self.state,
            "task": self.task,
            "progress": list(self.lines)[-40:],
            "message": self.message,
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "run_ids": self.run_ids,
            "canceled_by": self.canceled_by,
        }


class ToolkitFactory(Protocol):
    """Makes the facade one action runs through: acting as ``actor``, its playbooks' events to ``on_event``,
    stopped when ``cancel()`` turns true."""

    def __call__(
        self, *, actor: str, on_event: Callable[[Event], None], cancel: Callable[[], bool]
    ) -> EmergencyToolkit: ...


class Jobs:
    """The dashboard's actions: started, followed, kept (the last few) for the page.

    What it needs, and no more: ``toolkit`` (the facade each action runs through), ``store`` (the audit
    trail), ``hosts()`` (the hosts an action may target), ``changed(record)`` (something the page shows
    changed; ``record``: the event store too), ``failing_since(hosts)`` (each failing host's first failed
    probe, the incident's start) and ``record_health(result, source, at)`` (the rows of a health check).
    """

    def __init__(
        self,
        *,
        toolkit: ToolkitFactory,
        store: EventStore,
        hosts: Callable[[], list[str]],
        changed: Callable[[bool], None],
        failing_since: Callable[[list[str]], dict[str, datetime]],
        record_health: Callable[[ActionResult, str, datetime], None],
    ) -> None:
        self._toolkit = toolkit
        self._store = store
        self._hosts = hosts
        self._changed = changed
        self._failing_since = failing_since
        self._record_health = record_health
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []

    def prepare(self, action: Any, limit_hosts: Any, inputs: Any) -> tuple[ActionSpec, list[str], dict[str, Any]]:
        """Check an action request; returns (spec, hosts, inputs) or raises BadInput naming what is wrong."""
        spec = ACTIONS.get(action) if isinstance(action, str) else None
        if spec is None:
            raise BadInput(f"unknown action {action!r}; the actions are: {', '.join(ACTIONS)}")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise BadInput("inputs must be an object")
        known = self._hosts()
        if limit_hosts is None:
            hosts = list(known)
        elif isinstance(limit_hosts, list) and limit_hosts and all(isinstance(h, str) for h in limit_hosts):
            unknown = [h for h in limit_hosts if h not in known]
            if unknown:
                raise BadInput(
                    f"hosts {', '.join(unknown)} are not shown by this dashboard; its hosts are: {', '.join(known)}"
                )
            hosts = sorted(set(limit_hosts))
        else:
            raise BadInput("hosts must be a non-empty list of host names (or left out for every host)")
        return spec, hosts, spec.parse(inputs)

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.state == "running"]

    def conflict(self, hosts: list[str]) -> Job | None:
        return next((job for job in self.running() if set(job.hosts) & set(hosts)), None)

    @staticmethod
    def new_id() -> str:
        """A job's id, made before it starts (the audit record of the request carries it)."""
        return uuid.uuid4().hex[:12]

    def start(
        self, spec: ActionSpec, hosts: list[str], inputs: dict[str, Any], user: str, job_id: str | None = None
    ) -> Job:
        """Start the action in a thread (Conflict while another dashboard action runs on one of the hosts)."""
        job = Job(
            id=job_id or self.new_id(),
            action=spec.name,
            label=spec.label,
            hosts=hosts,
            user=user,
            inputs=inputs,
            description=spec.describe(hosts, inputs, user),
        )
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.state == "running" and set(j.hosts) & set(hosts)), None)
            if busy is not None:
                raise Conflict(
                    f"{busy.label} started by {busy.user} at {iso(busy.started_at)} is running on "
                    f"{_hosts(sorted(set(busy.hosts) & set(hosts)))}; wait for it to finish"
                )
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(target=self._run, args=(spec, job), name=f"dashboard-{spec.name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        self._changed(True)
        return job

    def _forget_old(self) -> None:
        """Keep the running jobs and the newest finished ones, KEPT_JOBS in all (under the lock)."""
        finished = sorted((j for j in self._jobs.values() if j.state != "running"), key=lambda j: j.started_at)
        for old in finished[: max(0, len(self._jobs) - KEPT_JOBS)]:
            del self._jobs[old.id]

    def cancel(self, job_id: str, user: str) -> Job:
        """Ask a running job to stop: ansible-runner stops ansible-playbook (as on Ctrl-C in the CLI) and the
        run is recorded ``canceled``. KeyError: no such job; Conflict: it is not running."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.state != "running":
            raise Conflict(f"{job.label} ({job.id}) is not running: it {job.state}")
        if not job.cancel.is_set():
            job.canceled_by = user
            job.lines.append(f"cancel requested by {user}: waiting for ansible-playbook to stop")
            job.cancel.set()
            self._changed(False)
        return job

    def show_recent(self, jobs: list[Job]) -> None:
        """Show ``jobs`` (read back from the store after a restart) as recent actions."""
        with self._lock:
            for job in jobs:
                self._jobs.setdefault(job.id, job)
            self._forget_old()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [job.to_json() for job in sorted(jobs, key=lambda j: j.started_at, reverse=True)]

    def _on_event(self, job: Job, event: Event) -> None:
        """Progress lines from the ansible-runner events (what the CLI shows on stderr)."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        line = None
        if kind == "playbook_on_start":
            line = f"playbook {data.get('playbook', '')}"
        elif kind == "playbook_on_play_start":
            line = f"play: {data.get('play', '')}"
        elif kind == "playbook_on_task_start":
            job.task = str(data.get("task", ""))
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            message = str((data.get("res") or {}).get("msg", ""))[:300]
            line = f"{data.get('host')}: {kind[10:]} at {job.task}: {message}"
        elif kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            line = f"{data.get('host')}: changed: {job.task}"
        elif kind == "playbook_on_stats":
            line = "playbook finished"
        if line:
            job.lines.append(line)
        if line or kind == "playbook_on_task_start":
            self._changed(False)

    def _run(self, spec: ActionSpec, job: Job) -> None:
        try:
            toolkit = self._toolkit(
                actor=job.user,
                on_event=lambda event: self._on_event(job, event),
                cancel=lambda: self.stop_event.is_set() or job.cancel.is_set(),
            )
            result = spec.run(toolkit, ",".join(job.hosts), job.inputs, job.user, self._failing_since(job.hosts))
        except ToolkitError as exc:
            state = "canceled" if exc.exit_code == EXIT_CANCELLED else "failed"
            job.state, job.exit_code, job.message = state, exc.exit_code, exc.message
        except Exception as exc:  # reported on the page and in the log; the dashboard goes on
            log.exception("dashboard action %s failed", spec.name)
            job.state, job.exit_code, job.message = "failed", 1, f"internal error: {type(exc).__name__}: {exc}"
        else:
            job.finish(result)
            if spec.name in ("health-check", "auto-recover"):
                self._record_health(result, spec.name, job.started_at)
        if job.cancel.is_set() and job.state == "failed":  # it stopped because it was asked to
            job.state = "canceled"
        job.finished_at = utc_now()
        job.lines.append(f"{job.state}: {job.message}")
        try:
            self._store.audit(
                actor=job.user,
                action=f"dashboard {spec.name} {job.state}",
                target=_hosts(job.hosts),
                details={
                    "job": job.id,
                    "exit_code": job.exit_code,
                    "message": job.message[:500],
                    "run_ids": job.run_ids,
                    "canceled_by": job.canceled_by,
                },
            )
        except ToolkitError as exc:  # the store is down: the page still shows the result
            log.error("cannot record the end of dashboard action %s in the audit trail: %s", job.id, exc.message)
        self._changed(True)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the running playbooks (ansible-runner stops them cleanly) and wait for the threads."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)


__all__ = ["ACTIONS", "ActionSpec", "Conflict", "Job", "Jobs", "ToolkitFactory", "check_text"]
