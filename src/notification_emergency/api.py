"""The API of the toolkit: what the CLI, the dashboard and scripts call.

Every action goes the same way: inputs checked against the playbook's own argument spec and the
inventory before anything runs, one playbook run through :mod:`notification_emergency.runner`, the run and
its outcome recorded in the event store with the audit trail, and a typed :class:`ActionResult`::

    from notification_emergency.api import EmergencyToolkit

    toolkit = EmergencyToolkit(inventory="inventories/sandbox")
    status = toolkit.status()
    if not status.ok:
        toolkit.rollback(limit="sandbox-01")
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency import catalogue
from notification_emergency.errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNHEALTHY,
    BadInput,
)
from notification_emergency.paths import state_dir
from notification_emergency.process import current_owner
from notification_emergency.runner import (
    Event,
    Inventory,
    RunResult,
    check_extra_vars,
    load_inventory,
    resolve_limit,
    run_playbook,
    validate_inputs,
)

if TYPE_CHECKING:
    from notification_emergency.engine import Policy
    from notification_emergency.notifier import Notifier
    from notification_emergency.store import EventStore

Inputs = Mapping[str, Any]


def default_actor() -> str:
    """Who acts: ``NOTIFICATION_EMERGENCY_ACTOR`` (AWX, the dashboard pass theirs), else user@host."""
    return os.environ.get("NOTIFICATION_EMERGENCY_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ActionResult:
    """The outcome of one API action; ``to_json()`` is the documented ``--json`` shape of the CLI."""

    action: str
    ok: bool
    exit_code: int
    message: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per host: status plus what the action says
    run: RunResult | None = None
    report: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)  # action-specific (incidents opened, statistics, files)

    def to_json(self) -> dict[str, Any]:
        run = None
        if self.run is not None:
            run = {
                "run_id": self.run.run_id,
                "playbook": self.run.playbook,
                "status": self.run.status,
                "rc": self.run.rc,
                "duration_s": round(self.run.duration_s, 3),
                "artifact_dir": str(self.run.artifact_dir),
                "recap": {host: asdict(recap) for host, recap in self.run.hosts.items()},
            }
        return {
            "action": self.action,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "message": self.message,
            "hosts": self.hosts,
            "run": run,
            **({"report": self.report} if self.report is not None else {}),
            **self.data,
        }


class EmergencyToolkit:
    """Drive the playbooks and keep the record.

    ``inventory``: file, directory or list of them (default: ``NOTIFICATION_EMERGENCY_INVENTORY`` or the
    sandbox's); ``store``: an :class:`EventStore`, a SQLite path or a database URL (default: the state
    directory's ``events.db``); ``on_event``: every ansible-runner event, for live progress; ``cancel``:
    polled during a run, a true answer cancels it.
    """

    def __init__(
        self,
        *,
        inventory: str | Path | Sequence[str | Path] | None = None,
        store: EventStore | str | Path | None = None,
        actor: str | None = None,
        home: Path | None = None,
        timeout: int | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        verbosity: int = 0,
    ) -> None:
        self._inventory_arg = inventory
        self._inventory: Inventory | None = None
        self._store_arg = store
        self._store: EventStore | None = None
        self.actor = actor or default_actor()
        self.home = home or state_dir()
        self.timeout = timeout
        self.on_event = on_event
        self.cancel = cancel
        self.verbosity = verbosity

    @property
    def store(self) -> EventStore:
        """The event store, opened on first use: SQLAlchemy is imported then, and ``status --quick`` (direct
        probes, no record) never pays for it."""
        if self._store is None:
            from notification_emergency.store import EventStore

            arg = self._store_arg
            self._store = arg if isinstance(arg, EventStore) else EventStore(arg)
        return self._store

    # -- inventory -------------------------------------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = load_inventory(self._inventory_arg)
        return self._inventory

    def hosts(self, limit: str | None = None) -> list[str]:
        """The managed hosts a run with ``limit`` targets (refuses an unknown name)."""
        return resolve_limit(self.inventory, limit)

    # -- the one way a playbook runs -------------------------------------------------------------------

    def _playbook(
        self,
        action: str,
        playbook: str,
        inputs: Inputs,
        *,
        limit: str | None,
        check: bool = False,
        diff: bool = False,
        incident_id: int | None = None,
    ) -> tuple[RunResult, dict[str, Any] | None]:
        given = {name: value for name, value in inputs.items() if value is not None}
        validated = validate_inputs(playbook, given)
        targets = self.hosts(limit)
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{action}-{uuid.uuid4().hex[:8]}"
        reports = self.home / "reports"
        extra_vars = {
            **validated,
            "notification_run_id": run_id,
            "notification_run_owner": self.actor,
            "notification_reports_dir": str(reports),
        }
        check_extra_vars(extra_vars)  # the actor too: refused before anything is recorded
        self.store.reconcile_runs()
        self.store.start_run(
            run_id,
            action=action,
            playbook=playbook,
            actor=self.actor,
            inputs=validated,
            limit=limit,
            check=check,
            incident_id=incident_id,
            owner=current_owner(),
        )
        self.store.audit(
            actor=self.actor,
            action=f"{action} started",
            target=",".join(targets),
            details={"run_id": run_id, "playbook": playbook, "inputs": validated, "check": check},
        )
        run = run_playbook(
            playbook,
            inventory=list(self.inventory.sources),
            limit=",".join(targets),
            extra_vars=extra_vars,
            check=check,
            diff=diff,
            timeout=self.timeout,
            artifacts_root=self.home / "artifacts",
            run_id=run_id,
            on_event=self.on_event,
            cancel=self.cancel,
            verbosity=self.verbosity,
        )
        report = run.stats.get("notification_run_report")
        hosts = {host: asdict(recap) for host, recap in run.hosts.items()}
        self.store.finish_run(run_id, status=run.status, rc=run.rc, hosts=hosts, report=report)
        self.store.audit(
            actor=self.actor,
            action=f"{action} {run.status}",
            target=",".join(targets),
            details={"run_id": run_id, "rc": run.rc, "failed_hosts": run.failed_hosts},
        )
        return run, report

    def _mutating(
        self,
        action: str,
        playbook: str,
        inputs: Inputs,
        *,
        limit: str | None,
        check: bool,
        diff: bool,
        done: str,
    ) -> ActionResult:
        run, report = self._playbook(action, playbook, inputs, limit=limit, check=check, diff=diff)
        rows = {row["host"]: row for row in (report or {}).get("hosts", [])}
        for host in run.hosts:
            rows.setdefault(host, {"host": host, "status": "ok" if host not in run.failed_hosts else "failed"})
        locked = sorted(host for host, row in rows.items() if row.get("status") == "locked")
        exit_code = _exit_code(run)
        if locked:
            exit_code = EXIT_LOCKED
        failed = sorted(host for host, row in rows.items() if row.get("status") not in ("ok",))
        if exit_code == EXIT_OK:
            message = f"{done} on {len(rows)} host{'s' if len(rows) != 1 else ''}" + (" (check mode)" if check else "")
        elif locked:
            message = f"{action} stopped: {', '.join(locked)} locked by another run; " + "; ".join(
                rows[h].get("error", "") for h in locked
            )
        else:
            message = f"{action} {run.status}: " + (
                "; ".join(f"{h}: {rows[h].get('error', rows[h].get('status'))}" for h in failed)
                or f"ansible-playbook ended with rc {run.rc}"
            )
        return ActionResult(action, exit_code == EXIT_OK, exit_code, message, rows, run, report)

    # -- read-only -------------------------------------------------------------------------------------

    def health_check(
        self,
        limit: str | None = None,
        *,
        affected_users: int | list[str] | None = None,
        messages: list[str] | None = None,
        record_incidents: bool = True,
        action: str = "health-check",
        started_at: datetime | Mapping[str, datetime] | None = None,
        detected_at: datetime | None = None,
    ) -> ActionResult:
        """Check and classify every targeted host; a detected failure opens (or joins) an incident.

        ``started_at``/``detected_at``: when the failure began and was detected, if known (the watch's first
        failed probe and its confirmation); by default both are the start of this check."""
        started = detected_at or _now()
        inputs = {"affected_users": affected_users, "messages": messages, "health_check_fail_on_failure": False}
        run, _report = self._playbook(action, "health_check.yml", inputs, limit=limit)
        health: dict[str, dict[str, Any]] = run.stats.get("notification_health") or {}
        hosts: dict[str, dict[str, Any]] = {}
        for host in sorted(set(run.hosts) | set(health)):
            if host in health:
                hosts[host] = {"status": health[host]["overall"], **health[host]}
            else:
                hosts[host] = {"status": "unreachable" if host in run.failed_hosts else "unknown", "level": None}
        incidents: list[int] = []
        if record_incidents:
            classified = _now()
            for host, row in hosts.items():
                if row.get("primary"):
                    row["incident"] = self.store.open_incident(
                        failure_type=row["primary"],
                        level=int(row["level"]),
                        hosts=[host],
                        summary=row.get("summary", ""),
                        started_at=started_at.get(host) if isinstance(started_at, Mapping) else started_at,
                        detected_at=started,
                        classified_at=classified,
                        source=action,
                    )
                    incidents.append(row["incident"])
        unhealthy = sorted(h for h, row in hosts.items() if row["status"] != "healthy")
        levels = [int(row["level"]) for row in hosts.values() if row.get("level")]
        if run.status != "successful" and not health:
            exit_code = _exit_code(run)
            message = f"{action} {run.status}: no health result (rc {run.rc})"
        elif unhealthy:
            exit_code = EXIT_UNHEALTHY
            worst = min(levels) if levels else None
            message = f"{len(unhealthy)} of {len(hosts)} hosts not healthy: {', '.join(unhealthy)}" + (
                f"; level {worst} {catalogue.LEVELS[worst]['name']}" if worst else ""
            )
        else:
            exit_code = EXIT_OK
            message = "the host is healthy" if len(hosts) == 1 else f"all {len(hosts)} hosts healthy"
        return ActionResult(
            action,
            exit_code == EXIT_OK,
            exit_code,
            message,
            hosts,
            run,
            data={"incidents": sorted(set(incidents))},
        )

    def status(self, limit: str | None = None) -> ActionResult:
        """Mode, emergency state, health and level of each host, plus the open incidents."""
        result = self.health_check(limit, action="status")
        result.data["open_incidents"] = self.store.incidents(open_only=True)
        # runs whose process died in the last day (reconciled by the run above): a human should look at those hosts
        result.data["abandoned_runs"] = [
            {key: run[key] for key in ("run_id", "action", "actor", "limit", "started_at", "finished_at", "owner")}
            for run in self.store.runs(since=_now() - timedelta(days=1), limit=200)
            if run["status"] == "abandoned"
        ]
        return result

    def quick_status(self, limit: str | None = None, timeout: float = 2.0) -> ActionResult:
        """Every host probed directly from here (GET /health, the page, the WebSocket /health), all at once:
        no playbook, so seconds for a fleet; no classification and no incident (``status`` does those)."""
        from notification_emergency.watch import probe_fleet, targets

        probes = probe_fleet(targets(self, limit), timeout)
        hosts = {
            answer.host: {
                "status": answer.status,
                "mode": answer.mode or "unknown",
                "latency_ms": answer.latency_ms,
                "problems": answer.problems,
            }
            for answer in probes
        }
        bad = sorted(host for host, row in hosts.items() if row["status"] != "healthy")
        message = (
            f"{len(hosts)} hosts healthy (direct probe)"
            if not bad
            else f"{len(bad)} of {len(hosts)} hosts not healthy (direct probe): {', '.join(bad)}"
        )
        return ActionResult("status", not bad, EXIT_OK if not bad else EXIT_UNHEALTHY, message, hosts)

    def verify(
        self,
        limit: str | None = None,
        *,
        expected_mode: str | None = None,
        verify_delivery: bool | None = None,
    ) -> ActionResult:
        """Assert that each host is in the expected mode and healthy (read-only)."""
        run, _report = self._playbook(
            "verify",
            "verify.yml",
            {"expected_mode": expected_mode, "verify_delivery": verify_delivery},
            limit=limit,
        )
        hosts = {host: {"status": "failed" if host in run.failed_hosts else "ok"} for host in run.hosts}
        exit_code = EXIT_OK if run.ok else (EXIT_UNHEALTHY if run.status == "failed" else _exit_code(run))
        message = (
            f"{len(hosts)} hosts verified in mode {expected_mode or 'websocket'}"
            if run.ok
            else f"verification failed on {', '.join(run.failed_hosts) or 'the run'}"
        )
        return ActionResult("verify", run.ok, exit_code, message, hosts, run)

    # -- mutating --------------------------------------------------------------------------------------

    def activate_emergency(
        self,
        reason: str,
        triggered_by: str,
        *,
        level: int = 2,
        limit: str | None = None,
        check: bool = False,
        diff: bool = False,
        notify: bool = True,
    ) -> ActionResult:
        """Turn emergency mode on (a banner for users with the reason); recorded with who and why.

        ``notify``: also send a notification at the level's priority (the channels are checked first, so a
        bad channels file stops this before anything runs); the engine, which notifies itself, passes False."""
        if not reason or not reason.strip():
            raise BadInput("--reason is required and must not be empty: say why, it is shown to users")
        if not triggered_by or not triggered_by.strip():
            raise BadInput("--triggered-by is required: who or what activates emergency mode")
        # inputs and targets first: a refused command opens no store and reads no channels file
        validate_inputs("emergency_activate.yml", {"reason": reason, "triggered_by": triggered_by, "level": level})
        self.hosts(limit)
        notifier = self._emergency_notifier(notify and not check)
        result = self._mutating(
            "activate-emergency",
            "emergency_activate.yml",
            {"reason": reason, "triggered_by": triggered_by, "level": level},
            limit=limit,
            check=check,
            diff=diff,
            done=f"emergency mode active (level {level})",
        )
        if isinstance(notifier, BadInput):
            _notification_not_sent(result, notifier)
        if not check and result.run is not None:
            changed = sorted(h for h, row in result.hosts.items() if row.get("status") == "ok")
            if changed:
                self.store.record_emergency(
                    action="activated",
                    hosts=changed,
                    actor=triggered_by,
                    reason=reason,
                    level=level,
                    run_id=result.run.run_id,
                )
                if notifier is not None and not isinstance(notifier, BadInput):
                    self._notify_emergency(
                        result,
                        notifier,
                        f"Emergency mode on: {reason}",
                        f"{reason} (emergency level {level}, activated by {triggered_by}).",
                        level,
                        changed,
                    )
        return result

    def deactivate_emergency(
        self,
        resolved_by: str,
        *,
        limit: str | None = None,
        check: bool = False,
        diff: bool = False,
        notify: bool = True,
    ) -> ActionResult:
        """Turn emergency mode off; recorded with who resolved it. ``notify``: also send a notification, at
        the priority of the level the emergency was activated with."""
        if not resolved_by or not resolved_by.strip():
            raise BadInput("--resolved-by is required: who resolved the emergency")
        validate_inputs("emergency_deactivate.yml", {"resolved_by": resolved_by})
        self.hosts(limit)
        notifier = self._emergency_notifier(notify and not check)
        result = self._mutating(
            "deactivate-emergency",
            "emergency_deactivate.yml",
            {"resolved_by": resolved_by},
            limit=limit,
            check=check,
            diff=diff,
            done="emergency mode off",
        )
        if isinstance(notifier, BadInput):
            _notification_not_sent(result, notifier)
        if not check and result.run is not None:
            done = sorted(h for h, row in result.hosts.items() if row.get("status") == "ok")
            if done:
                self.store.record_emergency(
                    action="deactivated", hosts=done, actor=resolved_by, run_id=result.run.run_id
                )
                if notifier is not None and not isinstance(notifier, BadInput):
                    activated = next(
                        (
                            e
                            for e in self.store.emergencies(limit=200)
                            if e["action"] == "activated" and set(e["hosts"]) & set(done)
                        ),
                        None,
                    )
                    self._notify_emergency(
                        result,
                        notifier,
                        "Emergency mode off",
                        f"The emergency is over (resolved by {resolved_by}); notifications work normally again.",
                        int((activated or {}).get("level") or 2),
                        done,
                    )
        return result

    def backup(
        self, *, label: str | None = None, limit: str | None = None, check: bool = False, diff: bool = False
    ) -> ActionResult:
        """A verified, checksummed backup of everything a rollback or restore touches."""
        return self._mutating(
            "backup", "backup.yml", {"backup_label": label}, limit=limit, check=check, diff=diff, done="backed up"
        )

    def record_run(self, report_file: str | Path) -> ActionResult:
        """Record in the store a run launched without the CLI (AWX, EDA, ansible-playbook), from the report the
        playbook wrote: the run with its hosts, and the audit entries the CLI would have written. A run that is
        recorded already (the CLI records its own) is left as it is."""
        path = Path(report_file)
        try:
            report = json.loads(path.read_text())
            run_id, playbook = str(report["run_id"]), str(report["playbook"])
            rows = {str(row["host"]): row for row in report.get("hosts") or []}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path} is not a run report of the playbooks ({type(exc).__name__}: {exc}); give the JSON file a "
                "playbook wrote into its reports directory"
            ) from None
        if self.store.run(run_id) is not None:
            return ActionResult("record-run", True, EXIT_OK, f"run {run_id} was recorded already")
        actor = str(report.get("owner") or self.actor)
        action = playbook.removesuffix(".yml")
        failed = sorted(host for host, row in rows.items() if row.get("status") != "ok")
        status = "failed" if failed else "successful"
        from notification_emergency.store import parse_time

        started = parse_time(report.get("started_at")) or parse_time(report.get("finished_at"))
        finished = parse_time(report.get("finished_at"))
        self.store.start_run(
            run_id,
            action=action,
            playbook=playbook,
            actor=actor,
            inputs={},
            limit=",".join(rows),
            check=bool(report.get("check_mode")),
            started_at=started,
        )
        self.store.audit(
            actor=actor, action=f"{action} started", target=",".join(rows), details={"run_id": run_id}, at=started
        )
        self.store.finish_run(
            run_id,
            status=status,
            rc=0 if not failed else 2,
            hosts={host: {"status": row.get("status"), "line": row.get("line")} for host, row in rows.items()},
            report=report,
            finished_at=finished,
        )
        self.store.audit(
            actor=actor,
            action=f"{action} {status}",
            target=",".join(rows),
            details={"run_id": run_id, "failed_hosts": failed},
            at=finished,
        )
        return ActionResult(
            "record-run",
            True,
            EXIT_OK,
            f"recorded run {run_id} of {playbook} by {actor}: {status}",
            {host: {"status": row.get("status")} for host, row in rows.items()},
            report=report,
        )

    def drain_backlog(self, *, limit: str | None = None, check: bool = False, diff: bool = False) -> ActionResult:
        """Move the pending WebSocket backlog into the flash store (each shown once on the user's next page).
        Touches data: the engine never runs it; an operator does, when a delivery backlog was escalated."""
        return self._mutating(
            "drain-backlog", "drain_backlog.yml", {}, limit=limit, check=check, diff=diff, done="drained"
        )

    def rollback(
        self,
        *,
        serial: str | int | None = None,
        max_fail_percentage: int | None = None,
        limit: str | None = None,
        check: bool = False,
        diff: bool = False,
    ) -> ActionResult:
        """Roll back to the legacy flash-message mode, losing no notification."""
        return self._mutating(
            "rollback",
            "rollback_to_legacy.yml",
            {"rollback_serial": serial, "rollback_max_fail_percentage": max_fail_percentage},
            limit=limit,
            check=check,
            diff=diff,
            done="rolled back to legacy mode",
        )

    def restore(
        self,
        *,
        backup: str | None = None,
        database: bool | None = None,
        serial: str | int | None = None,
        limit: str | None = None,
        check: bool = False,
        diff: bool = False,
    ) -> ActionResult:
        """Back to WebSocket mode (the roll-forward), or restore a named backup (``latest`` for the newest)."""
        return self._mutating(
            "restore",
            "restore.yml",
            {"restore_backup": backup, "restore_database": database, "restore_serial": serial},
            limit=limit,
            check=check,
            diff=diff,
            done=f"restored from backup {backup}" if backup else "restored to WebSocket mode",
        )

    def restart(
        self,
        components: list[str],
        *,
        serial: str | int | None = None,
        limit: str | None = None,
        check: bool = False,
        diff: bool = False,
    ) -> ActionResult:
        """Restart components host by host, each host healthy before the next."""
        return self._mutating(
            "restart",
            "restart_services.yml",
            {"components": components, "restart_serial": serial},
            limit=limit,
            check=check,
            diff=diff,
            done=f"restarted {', '.join(components)}",
        )

    # -- the recovery engine ---------------------------------------------------------------------------

    def auto_recover(
        self,
        limit: str | None = None,
        *,
        dry_run: bool = False,
        started_at: datetime | Mapping[str, datetime] | None = None,
        detected_at: datetime | None = None,
        policy: Policy | None = None,
    ) -> ActionResult:
        """Check, classify, run each unhealthy host's plan step by step (verified), escalate when exhausted."""
        from notification_emergency.engine import RecoveryEngine

        return RecoveryEngine(self, policy).auto_recover(
            limit, dry_run=dry_run, started_at=started_at, detected_at=detected_at
        )

    def explain(self, limit: str | None = None) -> ActionResult:
        """What auto_recover would do now, and why (read-only)."""
        from notification_emergency.engine import RecoveryEngine

        return RecoveryEngine(self).explain(limit)

    def test_recovery(
        self, faults: list[str] | None = None, limit: str | None = None, *, interval: float = 0.25
    ) -> ActionResult:
        """Recovery drills on sandbox hosts: inject each fault, let the watch and the engine recover, time it."""
        from notification_emergency.drills import FAULTS, run_drill

        names = faults or list(FAULTS)
        unknown = [name for name in names if name not in FAULTS]
        if unknown:
            raise BadInput(f"unknown fault {', '.join(unknown)}; the drills are: {', '.join(FAULTS)}")
        journals = [run_drill(self, host, name, interval=interval) for host in self.hosts(limit) for name in names]
        failed = [f"{j['fault']} on {j['host']}: {j['outcome']}" for j in journals if not j["as_expected"]]
        return ActionResult(
            "test-recovery",
            not failed,
            EXIT_OK if not failed else EXIT_FAILED,
            f"{len(journals) - len(failed)} of {len(journals)} drills as expected"
            + (f"; not: {'; '.join(failed)}" if failed else ""),
            data={"drills": journals},
        )

    # -- notifications ---------------------------------------------------------------------------------

    def notifier(self, channels: str | Path | None = None) -> Notifier:
        """The notifier of this toolkit (users reached through its inventory's hosts); ``channels``: the
        channels file (default: ``NOTIFICATION_EMERGENCY_CHANNELS``, else ``channels.yml`` in the state
        directory). Reading it checks it: a bad one is a BadInput naming the file, the entry and the fix."""
        from notification_emergency.notifier import Notifier

        cache: dict[str, Notifier] = self.__dict__.setdefault("_notifiers", {})  # one per channels file
        key = str(channels or "")
        if key not in cache:
            cache[key] = Notifier(self.store, self.home, actor=self.actor, channels=channels, toolkit=self)
        return cache[key]

    def check_channels(self, channels: str | Path | None = None) -> ActionResult:
        """Read and check the channel configuration; sends nothing. The URLs in the answer are masked."""
        config = self.notifier(channels).config
        described = config.describe()
        names = ", ".join(described["channels"]) or "none"
        return ActionResult(
            "check-channels",
            True,
            EXIT_OK,
            f"channels from {config.source}: {names}; routing "
            + "; ".join(f"{p}: {', '.join(c) or 'file'}" for p, c in described["routing"].items()),
            data={"channels": described},
        )

    def send_notification(
        self,
        title: str,
        message: str = "",
        priority: str = "high",
        *,
        limit: str | None = None,
        channels: str | Path | None = None,
        failed_components: Sequence[str] = (),
        incident_id: int | None = None,
    ) -> ActionResult:
        """Send a notification to the application's users and to operators by the channels its priority is
        routed to, with fallbacks and retries; every attempt is recorded. Exits 1 when no channel delivered
        it. ``failed_components`` (web, websocket, redis, database): what is broken, so that no channel depends
        on it; ``limit``: the application hosts the users channel goes through."""
        delivery = self.notifier(channels).send(
            title, message, priority, incident_id=incident_id, failed_components=failed_components, limit=limit
        )
        if delivery.duplicate:
            text = (
                f"notification {delivery.notification_id} was already delivered by {delivery.channel} within the "
                "de-duplication window; not sent again"
            )
        elif delivery.delivered:
            text = f"notification {delivery.notification_id} delivered by {', '.join(delivery.channels)}"
            if delivery.failed:
                text += "; NOT by " + "; ".join(delivery.failed.values())
        else:
            text = f"NOT DELIVERED: every channel failed for notification {delivery.notification_id}: " + (
                "; ".join(delivery.failed.values()) or "no channel"
            )
            if delivery.kept_in_file:
                text += f"; kept only in {self.home / 'notifications.log'}"
        from contextlib import suppress

        with suppress(BadInput):  # the store is down: the notification went out all the same
            self.store.audit(
                actor=self.actor,
                action="send-notification",
                target=priority,
                details={
                    "notification_id": delivery.notification_id,
                    "delivered": delivery.delivered,
                    "channels": delivery.channels,
                    "duplicate": delivery.duplicate,
                },
            )
        return ActionResult(
            "send-notification",
            delivery.delivered,
            EXIT_OK if delivery.delivered else EXIT_FAILED,
            text,
            data={"notification": delivery.to_json()},
        )

    def notifications(self, *, since: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recorded notifications, newest first, each with its attempts and the channel that delivered it."""
        return self.store.notifications(since=since, limit=limit)

    def _emergency_notifier(self, wanted: bool) -> Notifier | BadInput | None:
        """The notifier for an emergency-mode switch, read before anything runs. A bad channels file does not
        stop the switch (users need the banner more than operators need the message): it is returned, and
        the result says loudly that no notification was sent and why."""
        if not wanted:
            return None
        try:
            return self.notifier()
        except BadInput as exc:
            return exc

    def _notify_emergency(
        self, result: ActionResult, notifier: Notifier, title: str, message: str, level: int, hosts: list[str]
    ) -> None:
        from notification_emergency.notifier import LEVEL_PRIORITY

        delivery = notifier.send(title, message, LEVEL_PRIORITY.get(level, "high"), limit=",".join(hosts))
        result.data["notification"] = delivery.to_json()
        if delivery.delivered:
            result.message += f"; notified via {', '.join(delivery.channels)}"
        else:
            result.message += "; notification NOT DELIVERED: " + ("; ".join(delivery.failed.values()) or "no channel")

    # -- the record ------------------------------------------------------------------------------------

    def events(
        self, *, since: datetime | None = None, limit: int = 50, kinds: set[str] | None = None
    ) -> list[dict[str, Any]]:
        return self.store.events(since=since, limit=limit, kinds=kinds)

    def statistics(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        return self.store.statistics(since=since, until=until)

    def generate_report(
        self,
        output: Path,
        *,
        since: datetime | None = None,
        limit: str | None = None,
        include_status: bool = True,
    ) -> ActionResult:
        """Write a JSON and a Markdown report: status per host and component, active emergencies, the
        incidents and actions since ``since``, and statistics. ``output`` is a directory, or a file name
        whose stem both files share."""
        from notification_emergency.reports import build_report, write_report

        status = self.status(limit) if include_status else None
        report = build_report(self.store, status=status, since=since)
        files = write_report(report, output)
        return ActionResult(
            "generate-report",
            True,
            EXIT_OK,
            "report written: " + ", ".join(str(f) for f in files),
            status.hosts if status else {},
            status.run if status else None,
            data={"files": [str(f) for f in files], "statistics": report["statistics"]},
        )


def _notification_not_sent(result: ActionResult, error: BadInput) -> None:
    result.message += f"; notification NOT SENT, the channels are misconfigured: {error.message}"
    result.data["notification_error"] = error.message


def _exit_code(run: RunResult) -> int:
    if run.ok:
        return EXIT_OK
    if run.status == "timeout":
        return EXIT_TIMEOUT
    if run.status == "canceled":
        return EXIT_CANCELLED
    return EXIT_FAILED


__all__ = ["ActionResult", "EmergencyToolkit", "default_actor"]
