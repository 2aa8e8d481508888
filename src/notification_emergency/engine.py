"""The recovery engine: detect, classify, run the catalogue's plan step by step, verify after each step,
and escalate to a human when the plan is exhausted, without flapping and without touching data.

One decision function (:meth:`RecoveryEngine.decide`) serves both ``explain`` (print the decision, change
nothing) and ``auto_recover`` (carry it out), so what ``explain`` prints is what ``auto-recover`` does.

Safety, all derived from the event store so that every control node sharing the store agrees:

- a step runs only when the catalogue marks it automatic, it does not touch data, and its playbook exists;
- throttling: a failure type on a host that had an automatic action within ``throttle_s`` is not acted on
  again (the earlier attempt is still settling, or it did not help and a human has been told);
- circuit breaker: after ``breaker_max`` incidents of a host with automatic actions within
  ``breaker_window_s``, nothing more is automatic on that host; the incident is escalated saying so;
- the playbooks take the host lock, so a recovery never runs beside a rollback or another recovery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from notification_emergency import catalogue, probes
from notification_emergency.catalogue import LEVEL_PRIORITY, STEPS
from notification_emergency.errors import EXIT_OK, EXIT_UNHEALTHY
from notification_emergency.fallback import ON_FLASH, FallbackTender
from notification_emergency.inventory import Fleet
from notification_emergency.notifier import Notifier
from notification_emergency.paths import project_root
from notification_emergency.results import ActionResult, HostRow
from notification_emergency.runner import RunResult
from notification_emergency.timeutil import UTC, parse_iso, seconds_between, utc_now

if TYPE_CHECKING:
    from notification_emergency.store import EventStore

ENGINE_ACTOR = "notification-emergency auto-recover"

# What the engine is given (by the facade) instead of the whole toolkit:
# check_health(limit, *, record_incidents, action, started_at, detected_at) -> the health check's result
CheckHealth = Callable[..., ActionResult]
# run_recorded(action, playbook, inputs, *, limit, incident_id) -> (run, report): one recorded playbook run
RunRecorded = Callable[..., tuple[RunResult, dict[str, Any] | None]]
# escalate(reason, triggered_by, *, level, limit, notify) -> emergency mode on for the host
Escalate = Callable[..., ActionResult]
# (incident, automatic action) pairs of a host's recent history, from the store
History = list[tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class Policy:
    throttle_s: float = 300.0
    breaker_max: int = 3
    breaker_window_s: float = 3600.0
    restart_health_timeout_s: int = 20
    verify_s: float = 10.0  # how long a step's effect may take to show in the probes
    verify_probes: int = 2  # healthy probes in a row that verify a step
    budget_s: float = 300.0  # one auto-recover never runs past this: a step that would is stopped, escalated
    auto_fallback: bool = True  # may the engine put a host on flash messages (the catalogue's fallback step)
    fallback_budget_s: float = 60.0  # from detection: past it, the fallback step comes next whatever is left
    rollforward_after_s: float = 60.0  # WebSocket healthy this long on a host on fallback: roll it forward
    canary_every_s: float = 30.0  # while on fallback, start the WebSocket process alone at most this often

    def for_host(self, hostvars: Mapping[str, Any]) -> Policy:
        """This policy with the host's own switches from the inventory (notification_auto_fallback)."""
        switch = hostvars.get("notification_auto_fallback")
        if switch is None:
            return self
        return replace(self, auto_fallback=str(switch).strip().lower() not in ("false", "no", "off", "0"))


@dataclass
class StepDecision:
    step: str
    label: str
    run: bool
    reason: str | None  # why it is skipped (None when it runs)
    playbook: str | None
    extra_vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class HostDecision:
    host: str
    status: str
    primary: str | None
    failures: list[str]
    level: int | None
    summary: str
    incident: int | None
    steps: list[StepDecision]
    throttled: str | None = None  # the reason, when the host is throttled
    breaker: str | None = None  # the reason, when the circuit breaker is open
    escalation: dict[str, Any] | None = None  # what happens when no step helps (or none may run)

    @property
    def runnable(self) -> list[StepDecision]:
        return [step for step in self.steps if step.run]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "runnable": [step.step for step in self.runnable]}


def _started(action: dict[str, Any]) -> datetime:
    return parse_iso(action.get("started_at")) or datetime.min.replace(tzinfo=UTC)


def decide(
    host: str,
    row: HostRow,
    history: History,
    policy: Policy,
    now: datetime,
    playbooks: Path | None = None,
) -> HostDecision:
    """What the engine does for one host's health row (from ``health_check``), given the host's recent
    automatic actions (``history``: (incident, action) pairs, see :meth:`RecoveryEngine.history`) and the
    policy. Pure: no store, no host, no clock; ``playbooks`` is where the steps' playbooks are (default: the
    project's), a step whose playbook is missing is skipped."""
    decision = HostDecision(
        host=host,
        status=str(row.get("status")),
        primary=row.get("primary"),
        failures=list(row.get("failures") or []),
        level=row.get("level"),
        summary=str(row.get("summary") or ""),
        incident=row.get("incident"),
        steps=[],
    )
    if decision.status == "healthy":
        return decision
    if not decision.primary:  # not healthy, but nothing classified it (the check itself failed, say)
        unknown = catalogue.CATALOGUE[catalogue.UNKNOWN]
        decision.primary = catalogue.UNKNOWN
        decision.failures = [catalogue.UNKNOWN]
        decision.level = decision.level or int(unknown["base_level"])
        decision.summary = decision.summary or f"{host} is {decision.status} and no failure type explains it"
        row = {**row, "plan": unknown["plan"]}
    decision.throttled = _throttled(decision, history, policy, now)
    decision.breaker = _breaker(decision, history, policy, now)
    playbooks = playbooks or project_root() / "playbooks"
    for step_id in row.get("plan") or []:
        if step_id == "escalate":
            continue
        step = catalogue.STEPS[step_id]
        action = step.get("action") or {}
        playbook = action.get("playbook")
        extra = dict(action.get("extra_vars") or {})
        if playbook == "restart_services.yml":
            extra["restart_health_timeout"] = policy.restart_health_timeout_s
        reason: str | None = None
        if step.get("fallback") and not policy.auto_fallback:
            reason = "automatic fallback to flash messages is off for this host (notification_auto_fallback)"
        elif step.get("touches_data") and not step.get("fallback"):
            reason = "touches data: never automatic, a human runs it"
        elif not step.get("automatic"):
            reason = "needs a human: " + step["description"]
        elif not playbook or not (playbooks / playbook).is_file():
            reason = f"no playbook {playbook} in this version of the toolkit"
        elif decision.breaker:
            reason = decision.breaker
        elif decision.throttled:
            reason = decision.throttled
        decision.steps.append(StepDecision(step_id, step["label"], reason is None, reason, playbook, extra))
    decision.escalation = _escalation(decision)
    return decision


def _throttled(decision: HostDecision, history: History, policy: Policy, now: datetime) -> str | None:
    """Why the host is throttled (one of its failure types was acted on within ``throttle_s``), or None."""
    throttle_from = now - timedelta(seconds=policy.throttle_s)
    recent = [
        (incident, action)
        for incident, action in history
        if incident["failure_type"] in decision.failures and _started(action) >= throttle_from
    ]
    if not recent:
        return None
    last = max(action["started_at"] for _incident, action in recent)
    return (
        f"throttled: {recent[0][0]['failure_type']} on {decision.host} was acted on at {last}, within the "
        f"{policy.throttle_s:.0f} s window; nothing automatic until it passes"
    )


def _breaker(decision: HostDecision, history: History, policy: Policy, now: datetime) -> str | None:
    """Why the circuit breaker is open (``breaker_max`` other incidents acted on within the window), or None."""
    breaker_from = now - timedelta(seconds=policy.breaker_window_s)
    acted_incidents = {incident["id"] for incident, action in history if _started(action) >= breaker_from}
    acted_incidents.discard(decision.incident)
    if len(acted_incidents) < policy.breaker_max:
        return None
    return (
        f"circuit breaker open: {len(acted_incidents)} automatic recoveries of {decision.host} in the last "
        f"{policy.breaker_window_s / 60:.0f} min (limit {policy.breaker_max}); a human must look"
    )


def _escalation(decision: HostDecision) -> dict[str, Any] | None:
    """What happens when no step helps (or none may run): the level raised by one, emergency mode, a
    notification; None for a throttled host (acted on and escalated already if it had to be: no flapping)."""
    if decision.throttled and not decision.breaker:
        return None
    raised = max(1, int(decision.level or 4) - 1)
    why = decision.breaker or (
        "the plan was exhausted without restoring health"
        if decision.runnable
        else "no step of the plan may run automatically"
    )
    return {
        "when": "if no step restores health" if decision.runnable else "now",
        "level": raised,
        "level_name": catalogue.LEVELS[raised]["name"],
        "priority": LEVEL_PRIORITY[raised],
        "reason": why,
        "emergency_mode": True,
        "title": f"[{LEVEL_PRIORITY[raised].upper()}] {decision.primary} on {decision.host}",
    }


class RecoveryEngine:
    """Carry out :func:`decide`'s decisions: run each failing host's plan step by step, verify after each,
    escalate when exhausted. Built by :meth:`EmergencyToolkit.recovery_engine
    <notification_emergency.api.EmergencyToolkit.recovery_engine>`, it receives the narrow things it uses
    (the store, the fleet, a health check, a recorded playbook run, an escalation and a notifier), not the
    facade."""

    def __init__(
        self,
        store: EventStore,
        fleet: Fleet,
        *,
        check_health: CheckHealth,
        run_recorded: RunRecorded,
        escalate: Escalate,
        notifier: Notifier,
        policy: Policy | None = None,
    ) -> None:
        self.store = store
        self.fleet = fleet
        self.check_health = check_health
        self.run_recorded = run_recorded
        self.escalate_emergency = escalate
        self.notifier = notifier
        self.policy = policy or Policy()
        self.tender = FallbackTender(
            store,
            fleet,
            run_recorded=run_recorded,
            notifier=notifier,
            rollforward_after_s=self.policy.rollforward_after_s,
            canary_every_s=self.policy.canary_every_s,
        )

    def policy_for(self, host: str) -> Policy:
        """The engine's policy with the host's own switches from the inventory."""
        return self.policy.for_host(self.fleet.hostvars(host))

    # -- the decision ----------------------------------------------------------------------------------

    def history(self, host: str, now: datetime) -> History:
        """(incident, automatic action) pairs of the host within the longer of the policy's two windows."""
        horizon = now - timedelta(seconds=max(self.policy.throttle_s, self.policy.breaker_window_s))
        pairs = []
        for incident in self.store.incidents(host=host, since=horizon - timedelta(days=1)):
            for action in incident.get("actions", []):
                if (action.get("details") or {}).get("automatic") and _started(action) >= horizon:
                    pairs.append((incident, action))
        return pairs

    def decide(self, host: str, row: HostRow, now: datetime | None = None) -> HostDecision:
        """What the engine would do for one host's health row, from the store's history; no side effect."""
        now = now or utc_now()
        return decide(host, row, self.history(host, now), self.policy_for(host), now)

    # -- explain and act -------------------------------------------------------------------------------

    def explain(self, limit: str | None = None) -> ActionResult:
        """The full decision for the targeted hosts, from a fresh read-only health check; nothing changes."""
        health = self.check_health(limit, record_incidents=False, action="explain")
        decisions = {host: self.decide(host, cast(HostRow, row)) for host, row in health.hosts.items()}
        health.action = "explain"
        health.data["decisions"] = {host: d.to_json() for host, d in decisions.items()}
        health.message = "; ".join(_explain_line(d) for d in decisions.values())
        return health

    def auto_recover(
        self,
        limit: str | None = None,
        *,
        dry_run: bool = False,
        started_at: datetime | Mapping[str, datetime] | None = None,
        detected_at: datetime | None = None,
    ) -> ActionResult:
        """Check, classify, and for each unhealthy host run its plan until health is back; escalate else."""
        if dry_run:
            return self.explain(limit)
        deadline = time.monotonic() + self.policy.budget_s
        health = self.check_health(limit, action="auto-recover", started_at=started_at, detected_at=detected_at)
        if not health.hosts and not health.ok:  # the check itself failed: nothing is known, nothing is fine
            health.action = "auto-recover"
            health.message = f"auto-recover could not check the hosts: {health.message}"
            return health
        check_s = round(health.run.duration_s, 3) if health.run else None
        detected = detected_at or utc_now()
        outcomes: dict[str, dict[str, Any]] = {}
        cases: dict[str, _Case] = {}
        for host, row in health.hosts.items():
            if row.get("status") == "healthy":
                outcomes[host] = {"status": "healthy", "actions": [], "timings": {}}
            else:
                decision = self.decide(host, cast(HostRow, row))
                cases[host] = _Case(
                    decision,
                    decision.to_json(),
                    timings={"check_s": check_s, "act_s": 0.0, "verify_s": 0.0},
                    detected=detected,
                    deadline=deadline,
                )
        self._run_plans(cases)
        for host, case in cases.items():
            outcomes[host] = self._conclude(case)
        # Hosts the engine put on flash messages earlier: roll them forward once WebSocket is healthy again.
        health.data["fallback"] = self.tender.tend(limit)
        recovered = all(o["status"] in ("healthy", "recovered") for o in outcomes.values())
        health.action = "auto-recover"
        health.hosts = {host: {**health.hosts[host], **o} for host, o in sorted(outcomes.items())}
        health.ok = recovered
        health.exit_code = EXIT_OK if recovered else EXIT_UNHEALTHY
        health.message = "; ".join(f"{host}: {o.get('line', 'healthy')}" for host, o in sorted(outcomes.items()))
        return health

    def _skip(self, case: _Case, step: StepDecision, reason: str | None) -> None:
        if case.decision.incident is not None and not case.decision.throttled:
            self.store.add_incident_action(
                case.decision.incident,
                action=step.step,
                outcome=f"skipped: {reason}",
                finished_at=utc_now(),
                details={"automatic": False},
            )
        case.actions.append({"step": step.step, "outcome": "skipped", "reason": reason})

    def _next_step(self, case: _Case) -> StepDecision | None:
        """The host's next step that runs; the skipped ones on the way are recorded with their reason. Past
        the fallback budget the fallback step comes next; past the run's budget nothing more runs."""
        steps = case.decision.steps
        if time.monotonic() >= case.deadline:
            case.out_of_time = True
            for step in steps[case.position :]:
                self._skip(case, step, f"the auto-recover budget ({self.policy.budget_s:.0f} s) ran out")
            case.position = len(steps)
            return None
        budget = self.policy_for(case.decision.host).fallback_budget_s
        fallback = next(
            (i for i in range(case.position, len(steps)) if steps[i].run and STEPS[steps[i].step].get("fallback")),
            None,
        )
        if fallback is not None and (seconds_between(case.detected, utc_now()) or 0.0) >= budget:
            for step in steps[case.position : fallback]:
                self._skip(case, step, f"the fallback budget ({budget:.0f} s from detection) ran out: flash first")
            case.position = fallback
        while case.position < len(steps):
            step = steps[case.position]
            case.position += 1
            if step.run:
                return step
            self._skip(case, step, step.reason)
        return None

    def _run_plans(self, cases: dict[str, _Case]) -> None:
        """Run every host's plan in rounds: in each round the hosts still failing take their next step, and
        hosts on the same step share one playbook run (a fleet-wide failure costs one run per step, not one
        per host); each host is then verified on its own, concurrently."""
        active = dict(cases)
        while active:
            groups: dict[tuple[str, str], list[tuple[str, StepDecision]]] = {}
            for host, case in list(active.items()):
                step = self._next_step(case)
                if step is None:
                    del active[host]
                    continue
                groups.setdefault((step.step, json.dumps(step.extra_vars, sort_keys=True)), []).append((host, step))
            for members in groups.values():
                self._run_step(members, cases)
            for host in [h for h in active if cases[h].recovered_by is not None]:
                del active[host]

    def _run_step(self, members: list[tuple[str, StepDecision]], cases: dict[str, _Case]) -> None:
        step = members[0][1]
        hosts = [host for host, _step in members]
        assert step.playbook is not None
        started = utc_now()
        action_ids: dict[str, int] = {}
        for host in hosts:
            incident = cases[host].decision.incident
            if incident is not None:
                action_ids[host] = self.store.add_incident_action(
                    incident,
                    action=step.step,
                    started_at=started,
                    details={"automatic": True, "playbook": step.playbook, "hosts": hosts},
                )
        extra = dict(step.extra_vars)
        if step.playbook == "restart_services.yml" and len(hosts) > 1:
            extra["restart_serial"] = "100%"  # the hosts are down already: restart them together, each gated
        # The step may take what is left of the run's budget (whole seconds, at least one); ansible-runner
        # stops a playbook that goes past it, and the host is escalated with what happened.
        timeout = max(1, int(min(cases[host].deadline for host in hosts) - time.monotonic()))
        run, _report = self.run_recorded(
            f"auto-recover:{step.step}",
            step.playbook,
            extra,
            limit=",".join(hosts),
            incident_id=cases[hosts[0]].decision.incident,
            timeout=timeout,
        )
        verify_started = time.monotonic()
        # A host whose step failed gets one look, not the full wait: its failure is known, and the next step
        # (the fallback to flash messages, say) should not wait verify_s for it.
        failed = set(run.failed_hosts)
        with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
            verdicts = dict(
                zip(hosts, pool.map(lambda host: self._verify(host, once=host in failed), hosts), strict=True)
            )
        # A failure the probes cannot see (a backlog, a full disk, or one nothing classified) is verified by
        # the health check that found it: probes alone would call it fixed after any step.
        blind = [
            host
            for host in hosts
            if verdicts[host] and set(cases[host].decision.failures) & (probes.DEEP_ONLY_TYPES | {catalogue.UNKNOWN})
        ]
        if blind:
            check = self.check_health(",".join(blind), record_incidents=False, action="auto-recover:verify")
            for host in blind:
                verdicts[host] = check.hosts.get(host, {}).get("status") == "healthy"
        verify_s = time.monotonic() - verify_started
        for host in hosts:
            case = cases[host]
            healthy = verdicts[host]
            failed_here = host in run.failed_hosts
            outcome = "recovered" if healthy else ("failed (" + run.status + ")" if failed_here else "no effect")
            if run.status == "timeout":
                outcome = f"timed out: stopped after {timeout} s, the rest of the auto-recover budget"
                healthy = False
                case.deadline = min(case.deadline, time.monotonic())  # spent: the next round skips the rest
            fell_back = healthy and bool(STEPS[step.step].get("fallback"))
            if fell_back:
                outcome = ON_FLASH
            case.timings["act_s"] = round((case.timings["act_s"] or 0.0) + run.duration_s, 3)
            case.timings["verify_s"] = round((case.timings["verify_s"] or 0.0) + verify_s, 3)
            if host in action_ids:
                self.store.finish_incident_action(
                    action_ids[host],
                    outcome=outcome,
                    details={"automatic": True, "run_id": run.run_id, "playbook": step.playbook, "hosts": hosts},
                )
            case.actions.append({"step": step.step, "outcome": outcome, "run_id": run.run_id})
            if fell_back:
                case.recovered_by = step  # users are served again; the incident stays open until roll-forward
            elif healthy:
                case.recovered_by = step
                if case.decision.incident is not None:
                    now = utc_now()
                    self.store.update_incident(
                        case.decision.incident,
                        verified_at=now,
                        resolved_at=now,
                        resolution=f"auto-recover: {step.label}",
                    )

    def _conclude(self, case: _Case) -> dict[str, Any]:
        decision = case.decision
        common = {"decision": case.explained, "actions": case.actions, "timings": case.timings}
        if case.recovered_by is not None and STEPS[case.recovered_by.step].get("fallback"):
            return {"status": "fallback", **common, **self._announce_fallback(case)}
        if case.recovered_by is not None:
            return {"status": "recovered", **common, "line": f"recovered by {case.recovered_by.label}"}
        if decision.throttled and not decision.breaker:
            return {"status": "throttled", **common, "line": decision.throttled}
        why = f"the auto-recover budget ({self.policy.budget_s:.0f} s) ran out" if case.out_of_time else None
        escalation = self._escalate(decision, why)
        return {"status": "escalated", **common, "escalation": escalation, "line": escalation["line"]}

    def _verify(self, host: str, *, once: bool = False) -> bool:
        """Is the host healthy again? Direct probes (every component, through the service's own /health
        endpoints) for up to ``verify_s`` (``once``: no wait, for a host whose step failed); a host the package
        cannot probe directly gets the health playbook."""
        found = [target for target in self.fleet.targets(host) if target.host == host]
        if not found:
            result = self.check_health(host, record_incidents=False, action="auto-recover:verify")
            return bool(result.hosts.get(host, {}).get("status") == "healthy")
        if once:
            return probes.wait_healthy(found[0], 0.0, probes=1).ok
        return probes.wait_healthy(found[0], self.policy.verify_s, probes=self.policy.verify_probes).ok

    def _announce_fallback(self, case: _Case) -> dict[str, Any]:
        """Tell the on-call that a host is on flash messages (users served, real-time delivery down)."""
        decision = case.decision
        level = int(decision.level or 4)
        tried = ", ".join(f"{a['step']} ({a['outcome']})" for a in case.actions)
        after = self.policy.rollforward_after_s
        message = (
            f"{decision.summary}. WebSocket delivery could not be restored, so {decision.host} is on flash "
            f"messages: users keep getting their notifications on their next page. Tried: {tried}. The engine "
            f"rolls it forward to WebSocket once the WebSocket process has been healthy for {after:.0f} s."
        )
        delivery = self.notifier.send(
            f"[{LEVEL_PRIORITY[level].upper()}] {decision.primary} on {decision.host}: on flash messages",
            message,
            LEVEL_PRIORITY[level],
            incident_id=decision.incident,
            failed_components=decision.failures,
            limit=decision.host,
        )
        if decision.incident is not None:
            self.store.update_incident(decision.incident, notified_at=utc_now() if delivery.delivered else None)
        return {
            "notification": delivery.notification_id,
            "line": f"on flash messages (fallback); back on WebSocket once it is healthy for {after:.0f} s",
        }

    def _escalate(self, decision: HostDecision, why: str | None = None) -> dict[str, Any]:
        assert decision.escalation is not None
        plan = {**decision.escalation, "reason": why} if why else decision.escalation
        incident = self.store.incident(decision.incident) if decision.incident is not None else None
        if incident is not None and incident.get("escalated_at"):
            return {**plan, "line": f"already escalated at {incident['escalated_at']}: {plan['reason']}"}
        tried = ", ".join(f"{s.label} ({'ran' if s.run else 'skipped'})" for s in decision.steps) or "nothing"
        message = (
            f"{decision.summary}. Automatic recovery stopped: {plan['reason']}. Tried: {tried}. "
            f"Level {plan['level']} ({plan['level_name']}): respond {catalogue.LEVELS[plan['level']]['response']}."
        )
        emergency = self.escalate_emergency(
            f"{decision.primary}: automatic recovery stopped, operators are on it",
            ENGINE_ACTOR,
            level=plan["level"],
            limit=decision.host,
            notify=False,  # the escalation's own notification follows: one, not two
        )
        delivery = self.notifier.send(
            plan["title"],
            message,
            plan["priority"],
            incident_id=decision.incident,
            failed_components=decision.failures,  # never announced through the component that failed
            limit=decision.host,
        )
        if decision.incident is not None:
            now = utc_now()
            self.store.update_incident(
                decision.incident,
                level=plan["level"],
                escalated_at=now,
                notified_at=now if delivery.delivered else None,
            )
            self.store.add_incident_action(
                decision.incident,
                action="escalate",
                finished_at=now,
                outcome="notified" if delivery.delivered else "notification failed",
                details={"automatic": False, "notification": delivery.notification_id, "emergency": emergency.ok},
            )
        return {
            **plan,
            "message": message,
            "notification": delivery.notification_id,
            "delivered_by": delivery.channel,
            "emergency_mode": emergency.ok,
            "line": f"escalated to level {plan['level']} ({plan['reason']})",
        }


@dataclass
class _Case:
    """One failing host during an auto-recover run: its decision and how far its plan got."""

    decision: HostDecision
    explained: dict[str, Any]
    timings: dict[str, float | None]
    detected: datetime  # when the failure was detected: the fallback budget counts from here
    deadline: float  # monotonic end of the run's budget
    actions: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    recovered_by: StepDecision | None = None
    out_of_time: bool = False


def _explain_line(decision: HostDecision) -> str:
    if decision.status == "healthy":
        return f"{decision.host}: healthy, nothing to do"
    runs = ", ".join(step.label for step in decision.runnable) or "no automatic step"
    line = f"{decision.host}: {decision.primary} level {decision.level}; would run: {runs}"
    if decision.escalation:
        line += f"; escalate to level {decision.escalation['level']} {decision.escalation['when']}"
    return line
