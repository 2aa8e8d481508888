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
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency.errors import EXIT_FAILED, EXIT_OK, EXIT_UNHEALTHY, BadInput
from notification_emergency.inputs import validate_inputs
from notification_emergency.inventory import Fleet, Inventory
from notification_emergency.operations import Operations
from notification_emergency.paths import state_dir
from notification_emergency.results import ActionResult
from notification_emergency.runner import Event
from notification_emergency.timeutil import utc_now

if TYPE_CHECKING:
    from notification_emergency.engine import Policy, RecoveryEngine
    from notification_emergency.notifier import Notifier
    from notification_emergency.store import EventStore
    from notification_emergency.watch import Hold, OnFailure, Watcher

Inputs = Mapping[str, Any]


def default_actor() -> str:
    """Who acts: ``NOTIFICATION_EMERGENCY_ACTOR`` (AWX, the dashboard pass theirs), else user@host."""
    return os.environ.get("NOTIFICATION_EMERGENCY_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


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
        self.fleet = Fleet(inventory)
        self._store_arg = store
        self._store: EventStore | None = None
        self.actor = actor or default_actor()
        self.home = home or state_dir()
        self.ops = Operations(
            self.fleet,
            lambda: self.store,
            actor=self.actor,
            home=self.home,
            timeout=timeout,
            on_event=on_event,
            cancel=cancel,
            verbosity=verbosity,
        )

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
        return self.fleet.inventory

    def hosts(self, limit: str | None = None) -> list[str]:
        """The managed hosts a run with ``limit`` targets (refuses a limit that matches nothing)."""
        return self.fleet.hosts(limit)

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
        return self.ops.health_check(
            limit,
            affected_users=affected_users,
            messages=messages,
            record_incidents=record_incidents,
            action=action,
            started_at=started_at,
            detected_at=detected_at,
        )

    def verify(
        self,
        limit: str | None = None,
        *,
        expected_mode: str | None = None,
        verify_delivery: bool | None = None,
    ) -> ActionResult:
        """Assert that each host is in the expected mode and healthy (read-only)."""
        return self.ops.verify(limit, expected_mode=expected_mode, verify_delivery=verify_delivery)

    def status(self, limit: str | None = None) -> ActionResult:
        """Mode, emergency state, health and level of each host, plus the open incidents."""
        result = self.health_check(limit, action="status")
        result.data["open_incidents"] = self.store.incidents(open_only=True)
        # runs whose process died in the last day (reconciled by the run above): a human should look at those hosts
        result.data["abandoned_runs"] = [
            {key: run[key] for key in ("run_id", "action", "actor", "limit", "started_at", "finished_at", "owner")}
            for run in self.store.runs(since=utc_now() - timedelta(days=1), limit=200)
            if run["status"] == "abandoned"
        ]
        return result

    def quick_status(self, limit: str | None = None, timeout: float = 2.0) -> ActionResult:
        """Every host probed directly from here (GET /health, the page, the WebSocket /health), all at once:
        no playbook, so seconds for a fleet; no classification and no incident (``status`` does those)."""
        from notification_emergency.probes import probe_fleet

        probes = probe_fleet(self.fleet.targets(limit), timeout)
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
        result = self.ops.mutating(
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
        result = self.ops.mutating(
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
        return self.ops.mutating(
            "backup", "backup.yml", {"backup_label": label}, limit=limit, check=check, diff=diff, done="backed up"
        )

    def record_run(self, report_file: str | Path) -> ActionResult:
        """Record in the store a run launched without the CLI (AWX, EDA, ansible-playbook), from the report the
        playbook wrote (see :meth:`Operations.record_run`)."""
        return self.ops.record_run(report_file)

    def drain_backlog(self, *, limit: str | None = None, check: bool = False, diff: bool = False) -> ActionResult:
        """Move the pending WebSocket backlog into the flash store (each shown once on the user's next page).
        Touches data: the engine never runs it; an operator does, when a delivery backlog was escalated."""
        return self.ops.mutating(
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
        return self.ops.mutating(
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
        return self.ops.mutating(
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
        return self.ops.mutating(
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
        budget_s: float | None = None,
    ) -> ActionResult:
        """Check, classify, run each unhealthy host's plan step by step (verified), escalate when exhausted;
        ``budget_s``: what the whole run may take (the policy's, 300 s, by default)."""
        if budget_s is not None:
            from notification_emergency.engine import Policy

            policy = replace(policy or Policy(), budget_s=budget_s)
        return self.recovery_engine(policy).auto_recover(
            limit, dry_run=dry_run, started_at=started_at, detected_at=detected_at
        )

    def explain(self, limit: str | None = None) -> ActionResult:
        """What auto_recover would do now, and why (read-only)."""
        return self.recovery_engine().explain(limit)

    def recovery_engine(self, policy: Policy | None = None) -> RecoveryEngine:
        """The recovery engine, given what it uses: the store, the fleet, the health check, the recorded
        playbook run, emergency mode as its escalation, and its own notifier (a bad channels file is refused
        here, before anything runs)."""
        from notification_emergency.engine import ENGINE_ACTOR, RecoveryEngine
        from notification_emergency.notifier import Notifier

        return RecoveryEngine(
            self.store,
            self.fleet,
            check_health=self.ops.health_check,
            run_recorded=self.ops.run_recorded,
            escalate=self.activate_emergency,
            notifier=Notifier(self.store, self.home, actor=ENGINE_ACTOR, fleet=self.fleet),
            policy=policy,
        )

    def tend_fallbacks(
        self, limit: str | None = None, *, hold: Hold | None = None, policy: Policy | None = None
    ) -> dict[str, str]:
        """One pass of the fallback tender: hosts the engine put on flash messages are rolled forward to
        WebSocket once it has been healthy long enough (see :mod:`notification_emergency.fallback`)."""
        return self.recovery_engine(policy).tender.tend(limit, hold=hold)

    def deep_check(self, limit: str | None = None) -> ActionResult:
        """The watch's deep check: the health playbook, read-only, no incident (auto-recover opens those)."""
        return self.health_check(limit, record_incidents=False, action="watch:deep-check")

    def watcher(
        self,
        limit: str | None = None,
        *,
        on_failure: OnFailure | None = None,
        policy: Policy | None = None,
        **options: Any,
    ) -> Watcher:
        """A continuous watch of the targeted hosts (see :class:`~notification_emergency.watch.Watcher` for
        ``options``); a confirmed failure starts ``on_failure``, by default auto-recover (with ``policy``),
        and hosts the engine put on flash messages are rolled forward by the fallback tender's passes."""
        from notification_emergency.watch import Watcher

        def recover(hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> ActionResult:
            return self.auto_recover(",".join(hosts), started_at=started_at, detected_at=detected_at, policy=policy)

        def tend(hold: Hold) -> dict[str, str]:
            return self.tend_fallbacks(limit, hold=hold, policy=policy)

        options.setdefault("tend", tend)
        return Watcher(
            self.fleet.targets(limit),
            on_failure=on_failure or recover,
            deep_check=lambda: self.deep_check(limit),
            **options,
        )

    def test_recovery(
        self, faults: list[str] | None = None, limit: str | None = None, *, interval: float = 0.25
    ) -> ActionResult:
        """Recovery drills on sandbox hosts: inject each fault, let the watch and the engine recover, time it."""
        from notification_emergency.drills import FAULTS, SandboxHost, run_drill

        names = faults or list(FAULTS)
        unknown = [name for name in names if name not in FAULTS]
        if unknown:
            raise BadInput(f"unknown fault {', '.join(unknown)}; the drills are: {', '.join(FAULTS)}")
        hosts = self.hosts(limit)
        for target in self.fleet.targets(",".join(hosts)):
            SandboxHost(target)  # refuses a host that is not a sandbox: before any drill, not half-way
        journals = [run_drill(self, host, name, interval=interval) for host in hosts for name in names]
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
            cache[key] = Notifier(self.store, self.home, actor=self.actor, channels=channels, fleet=self.fleet)
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
        from notification_emergency.catalogue import LEVEL_PRIORITY

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


__all__ = ["ActionResult", "EmergencyToolkit", "default_actor"]  # ActionResult: from results, for the front ends
