"""The health and action operations: every playbook run of the package, recorded.

:meth:`Operations.run_recorded` is the one way a playbook runs: inputs checked against the playbook's own
argument spec and the limit resolved before anything runs, the run and its outcome recorded in the event
store with the audit trail. :meth:`Operations.health_check` turns the health playbook's report into host
rows and incidents; :meth:`Operations.mutating` turns a mutating playbook's report into an
:class:`~notification_emergency.results.ActionResult`. The facade (:mod:`notification_emergency.api`) and the
recovery engine use them; neither knows the other.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from notification_emergency import catalogue
from notification_emergency.errors import EXIT_LOCKED, EXIT_OK, EXIT_UNHEALTHY, BadInput
from notification_emergency.inputs import check_extra_vars, validate_inputs
from notification_emergency.inventory import Fleet
from notification_emergency.process import current_owner
from notification_emergency.results import ActionResult, HostHealth, HostRow, exit_code_of
from notification_emergency.runner import Event, RunResult, run_playbook
from notification_emergency.timeutil import parse_iso, utc_now

if TYPE_CHECKING:
    from notification_emergency.store import EventStore

Inputs = Mapping[str, Any]


class Operations:
    """Run and record the playbooks for ``actor`` on the hosts of ``fleet``; ``store()`` opens the event store
    (on first use: ``status --quick`` never pays for SQLAlchemy)."""

    def __init__(
        self,
        fleet: Fleet,
        store: Callable[[], EventStore],
        *,
        actor: str,
        home: Path,
        timeout: int | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        verbosity: int = 0,
    ) -> None:
        self.fleet = fleet
        self._store = store
        self.actor = actor
        self.home = home
        self.timeout = timeout
        self.on_event = on_event
        self.cancel = cancel
        self.verbosity = verbosity

    @property
    def store(self) -> EventStore:
        return self._store()

    def run_recorded(
        self,
        action: str,
        playbook: str,
        inputs: Inputs,
        *,
        limit: str | None,
        check: bool = False,
        diff: bool = False,
        incident_id: int | None = None,
        timeout: int | None = None,
    ) -> tuple[RunResult, dict[str, Any] | None]:
        given = {name: value for name, value in inputs.items() if value is not None}
        validated = validate_inputs(playbook, given)
        targets = self.fleet.hosts(limit)
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
            inventory=self.fleet.sources,
            limit=",".join(targets),
            extra_vars=extra_vars,
            check=check,
            diff=diff,
            timeout=min(t for t in (timeout, self.timeout) if t) if (timeout or self.timeout) else None,
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

    def mutating(
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
        run, report = self.run_recorded(action, playbook, inputs, limit=limit, check=check, diff=diff)
        rows = {row["host"]: row for row in (report or {}).get("hosts", [])}
        for host in run.hosts:
            rows.setdefault(host, {"host": host, "status": "ok" if host not in run.failed_hosts else "failed"})
        locked = sorted(host for host, row in rows.items() if row.get("status") == "locked")
        exit_code = exit_code_of(run)
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
        started = detected_at or utc_now()
        inputs = {"affected_users": affected_users, "messages": messages, "health_check_fail_on_failure": False}
        run, _report = self.run_recorded(action, "health_check.yml", inputs, limit=limit)
        health: dict[str, HostHealth] = run.stats.get("notification_health") or {}
        hosts: dict[str, HostRow] = {}
        for host in sorted(set(run.hosts) | set(health)):
            if host in health:
                hosts[host] = cast(HostRow, {"status": health[host]["overall"], **health[host]})
            else:
                hosts[host] = {"status": "unreachable" if host in run.failed_hosts else "unknown", "level": None}
        incidents: list[int] = []
        if record_incidents:
            classified = utc_now()
            for host, row in hosts.items():
                primary, level = row.get("primary"), row.get("level")
                if primary and level:
                    row["incident"] = self.store.open_incident(
                        failure_type=primary,
                        level=int(level),
                        hosts=[host],
                        summary=row.get("summary", ""),
                        started_at=started_at.get(host) if isinstance(started_at, Mapping) else started_at,
                        detected_at=started,
                        classified_at=classified,
                        source=action,
                    )
                    incidents.append(row["incident"])
        unhealthy = sorted(h for h, row in hosts.items() if row["status"] != "healthy")
        levels = [int(level) for row in hosts.values() if (level := row.get("level"))]
        if run.status != "successful" and not health:
            exit_code = exit_code_of(run)
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
            cast(dict[str, dict[str, Any]], hosts),  # the typed rows, in the result every action shares
            run,
            data={"incidents": sorted(set(incidents))},
        )

    def verify(
        self,
        limit: str | None = None,
        *,
        expected_mode: str | None = None,
        verify_delivery: bool | None = None,
    ) -> ActionResult:
        """Assert that each host is in the expected mode and healthy (read-only)."""
        run, _report = self.run_recorded(
            "verify",
            "verify.yml",
            {"expected_mode": expected_mode, "verify_delivery": verify_delivery},
            limit=limit,
        )
        hosts = {host: {"status": "failed" if host in run.failed_hosts else "ok"} for host in run.hosts}
        exit_code = EXIT_OK if run.ok else (EXIT_UNHEALTHY if run.status == "failed" else exit_code_of(run))
        message = (
            f"{len(hosts)} hosts verified in mode {expected_mode or 'websocket'}"
            if run.ok
            else f"verification failed on {', '.join(run.failed_hosts) or 'the run'}"
        )
        return ActionResult("verify", run.ok, exit_code, message, hosts, run)

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
        started = parse_iso(report.get("started_at")) or parse_iso(report.get("finished_at"))
        finished = parse_iso(report.get("finished_at"))
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
