"""Recovery drills: break a sandbox host on purpose, let the watch detect it and the engine recover it, and
time every part.

Each drill checks the steady state (a healthy probe), injects its fault, runs the watch on that host (direct
probes every ``interval``) which starts auto-recover on the confirmed failure, waits until the host is
verified healthy again (or the engine escalated), then undoes whatever the fault left behind and writes a
journal: detection time (fault injected to failure confirmed), recovery time (fault injected to verified
healthy), and the parts: detect, decide (health check and classification), act (the recovery playbooks),
verify. Drills refuse any host that is not a sandbox (the inventory flag and the marker file in its root).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from notification_emergency.drills.aftercheck import left_as_found
from notification_emergency.drills.faults import FAULTS, Fault
from notification_emergency.drills.sandbox import (
    DRILL_DEEP_EVERY,
    DRILL_POLICY,
    DRILL_TEND_EVERY,
    DrillToolkit,
    SandboxHost,
)
from notification_emergency.errors import BadInput
from notification_emergency.fallback import FALLBACK_STEPS, ON_FLASH
from notification_emergency.inventory import Target
from notification_emergency.probes import Probe, probe, wait_healthy
from notification_emergency.results import ActionResult
from notification_emergency.timeutil import iso, parse_iso, seconds_between, utc_now
from notification_emergency.watch import Watcher


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    between = seconds_between(start, end)
    return None if between is None else round(between, 3)


def _steady(target: Target, timeout: float) -> None:
    steady = wait_healthy(target, timeout)
    if not steady.ok:
        raise BadInput(
            f"{target.host} is not in its steady state before the drill ({steady.status}: "
            f"{', '.join(steady.problems)}); mend it (notification-emergency auto-recover) and run the drill again"
        )


@dataclass
class _Exercise:
    """What happened when a fault was injected into some hosts at once and the watch and the engine acted."""

    injected_at: datetime
    detected: dict[str, datetime] = field(default_factory=dict)  # confirmation of the failure, per host
    results: dict[str, ActionResult] = field(default_factory=dict)  # the auto-recover run that covered the host
    first_healthy: dict[str, Probe] = field(default_factory=dict)  # healthy again after detection (or healed)
    errors: list[str] = field(default_factory=list)

    def row(self, host: str) -> dict[str, Any]:
        result = self.results.get(host)
        return result.hosts.get(host, {}) if result else {}

    def back_from_fallback(self, toolkit: DrillToolkit, host: str) -> bool:
        """The engine put the host on flash messages and has since rolled it forward (incident resolved)."""
        row = self.row(host)
        if row.get("status") != "fallback" or not row.get("incident"):
            return False
        incident = toolkit.store.incident(int(row["incident"]))
        return bool(incident and incident["status"] == "resolved")


def _exercise(
    toolkit: DrillToolkit,
    hosts: list[str],
    fault: Fault,
    *,
    interval: float,
    fail_threshold: int,
    timeout: float,
    steady_timeout: float,
) -> _Exercise:
    """Steady state, inject into every host, one watch over them until the engine has acted on each (or the
    fault healed by itself), undo, steady state again (emergency mode off where the drill escalated)."""
    found = {target.host: target for target in toolkit.fleet.targets(",".join(hosts))}
    sandboxes = [SandboxHost(found[host], toolkit.fleet.hostvars(host)) for host in hosts]
    for sandbox in sandboxes:
        sandbox.toolkit = toolkit
    for host in hosts:
        _steady(found[host], steady_timeout)
    lock = threading.Lock()
    exercise = _Exercise(injected_at=utc_now())

    def on_failure(names: list[str], _started: dict[str, datetime], detected_at: datetime) -> ActionResult | None:
        with lock:  # a drill is about the first detection of each host and its recovery
            fresh = [name for name in names if name not in exercise.detected]
            exercise.detected.update(dict.fromkeys(fresh, detected_at))
        if not fresh:
            return None
        result = toolkit.auto_recover(
            ",".join(fresh), started_at=exercise.injected_at, detected_at=detected_at, policy=DRILL_POLICY
        )
        with lock:
            exercise.results.update(dict.fromkeys(fresh, result))
        return result

    def on_probe(result: Probe, _state: Any) -> None:
        healed_alone = (
            fault.self_heals and result.host not in exercise.detected and time.monotonic() - injected_mono > 5
        )
        if (
            result.ok
            and result.host not in exercise.first_healthy
            and (result.host in exercise.detected or healed_alone)
        ):
            exercise.first_healthy[result.host] = result

    def done(host: str) -> bool:
        if host not in exercise.detected:
            return host in exercise.first_healthy
        if host not in exercise.results:
            return False
        return exercise.row(host).get("status") != "fallback" or exercise.back_from_fallback(toolkit, host)

    def finished() -> bool:
        with lock:
            return time.monotonic() - injected_mono > timeout or all(done(host) for host in hosts)

    watcher = Watcher(
        [found[host] for host in hosts],
        deep_check=lambda: toolkit.deep_check(",".join(hosts)),
        interval=interval,
        fail_threshold=fail_threshold,
        on_failure=on_failure,
        on_probe=on_probe,
        # Faults only a deep check sees get one every few seconds; for the others it runs at the production
        # period, so it costs the drill what it costs a real watch.
        deep_every=DRILL_DEEP_EVERY if fault.deep else Watcher.DEEP_EVERY,
        deep_at_start=False,  # the steady state was just checked; the first deep check comes one period later
        tend=lambda hold: toolkit.tend_fallbacks(",".join(hosts), hold=hold, policy=DRILL_POLICY),
        tend_every=DRILL_TEND_EVERY,
    )
    injected_mono = time.monotonic()
    exercise.injected_at = utc_now()
    undos = [fault.inject(sandbox) for sandbox in sandboxes]
    try:
        watcher.run(until=finished)
    finally:
        for undo in undos:
            undo()
        escalated = [host for host in hosts if exercise.row(host).get("status") == "escalated"]
        if escalated:  # the drill's escalation turned emergency mode on: back to the steady state
            toolkit.deactivate_emergency("recovery drill", limit=",".join(escalated))
        stuck = [h for h in hosts if probe(found[h], timeout=2.0).mode == "legacy"]
        if stuck:  # on flash messages and not rolled forward within the drill: back to WebSocket mode
            toolkit.restore(limit=",".join(stuck))
        for host in hosts:
            wait_healthy(found[host], steady_timeout)
    exercise.errors = watcher.errors
    return exercise


def _recovery(toolkit: DrillToolkit, exercise: _Exercise, host: str) -> tuple[bool, float | None]:
    """(recovered, MTTR): fault injected to verified healthy (the engine's verification, else the first
    healthy probe). Status "healthy": the failure was confirmed, but by the time auto-recover checked, the
    process manager had restarted the process; the engine verified it and had nothing to do."""
    row = exercise.row(host)
    recovered = (
        row.get("status") in ("recovered", "healthy")
        or (host not in exercise.results and host in exercise.first_healthy)
        or exercise.back_from_fallback(toolkit, host)
    )
    incident = toolkit.store.incident(row["incident"]) if row.get("incident") else None
    verified_at = parse_iso(incident.get("verified_at")) if incident else None
    healthy = exercise.first_healthy.get(host)
    end = verified_at or (healthy.at if healthy else None)
    return recovered, _seconds(exercise.injected_at, end) if recovered else None


def _on_flash_at(toolkit: DrillToolkit, row: dict[str, Any]) -> datetime | None:
    """When the engine's fallback step put the host on flash messages (from the incident), or None."""
    incident = toolkit.store.incident(int(row["incident"])) if row.get("incident") else None
    for action in (incident or {}).get("actions", []):
        if action["action"] in FALLBACK_STEPS and action["outcome"] == ON_FLASH:
            return parse_iso(action["finished_at"])
    return None


def _fault(name: str) -> Fault:
    if name not in FAULTS:
        raise BadInput(f"unknown fault {name!r}; the drills are: {', '.join(FAULTS)}")
    return FAULTS[name]


def run_drill(
    toolkit: DrillToolkit,
    host: str,
    fault_name: str,
    *,
    interval: float = 0.25,
    fail_threshold: int = 2,
    timeout: float = 180.0,
    steady_timeout: float = 60.0,
    journal_dir: Path | None = None,
) -> dict[str, Any]:
    """Run one drill on one sandbox host; return (and write) its journal."""
    fault = _fault(fault_name)
    exercise = _exercise(
        toolkit,
        [host],
        fault,
        interval=interval,
        fail_threshold=fail_threshold,
        timeout=timeout,
        steady_timeout=steady_timeout,
    )
    row = exercise.row(host)
    final = probe(toolkit.fleet.target(host), timeout=2.0)
    hostvars = toolkit.fleet.hostvars(host)
    # The service's ports (not ansible_port: a host reached over SSH has its sshd there, outside supervisord).
    ports = {int(v) for k, v in hostvars.items() if k.endswith("_port") and k != "ansible_port" and str(v).isdigit()}
    left = left_as_found(SandboxHost(toolkit.fleet.target(host), hostvars), ports)
    recovered, mttr = _recovery(toolkit, exercise, host)
    detected_at = exercise.detected.get(host)
    timings = row.get("timings", {})
    # explain's decision for the very snapshot auto-recover acted on: the steps that ran must be its runnable
    # steps, in order, up to the one that restored health.
    ran = [action["step"] for action in row.get("actions", []) if action["outcome"] != "skipped"]
    matches_explain = ran == (row.get("decision") or {}).get("runnable", [])[: len(ran)]
    on_flash = _on_flash_at(toolkit, row)
    journal = {
        "fault": fault.name,
        "description": fault.description,
        "host": host,
        "expected_type": fault.expects,
        "expected_outcome": "recovered" if fault.recovers else "escalated",
        "injected_at": iso(exercise.injected_at),
        "detected_at": iso(detected_at),
        "detected_type": row.get("primary"),
        "level": row.get("level"),
        "actions": [f"{a['step']}: {a['outcome']}" for a in row.get("actions", [])],
        "explained": (row.get("decision") or {}).get("runnable", []),
        "outcome": {
            "healthy": "recovered by the process manager (no action needed)",
            "fallback": "on flash messages, then rolled forward" if recovered else "on flash messages",
        }.get(
            row.get("status", ""),
            row.get("status") or ("healed before detection" if host in exercise.first_healthy else "not detected"),
        ),
        "recovered": recovered,
        "escalation": (row.get("escalation") or {}).get("line"),
        "healthy_after": final.ok,
        # Not worse than found: supervisord runs every program, no orphan, the ports held by its programs only.
        "left_as_found": not left,
        "left_problems": left,
        "mttd_s": _seconds(exercise.injected_at, detected_at),
        "mttr_s": mttr,
        # The engine's fallback: when users were on flash messages (from injection), and back on WebSocket.
        "fell_back": on_flash is not None,
        "on_flash_s": _seconds(exercise.injected_at, on_flash),
        # How long users went without their notifications: until the host was recovered or on flash messages.
        "served_again_s": min(
            (s for s in (mttr, _seconds(exercise.injected_at, on_flash)) if s is not None), default=None
        ),
        "parts_s": {
            "detect": _seconds(exercise.injected_at, detected_at),
            "decide": timings.get("check_s"),
            "act": timings.get("act_s"),
            "verify": timings.get("verify_s"),
        },
        "error": "; ".join(exercise.errors) or None,
        "matches_explain": matches_explain,
        "as_expected": not exercise.errors
        and not left
        and matches_explain
        and (row.get("primary") == fault.expects or (fault.self_heals and row.get("primary") is None))
        and (recovered if fault.recovers else row.get("status") == "escalated")
        # A drill that must go by flash messages must; another may, when its plan's fallback step came
        # into play (a repair that failed once under load), as long as it ends recovered: fell_back says so.
        and (on_flash is not None or not fault.falls_back),
    }
    folder = journal_dir or toolkit.home / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{exercise.injected_at.strftime('%Y%m%dT%H%M%S')}-{fault.name}-{host}.json"
    path.write_text(json.dumps(journal, indent=2) + "\n")
    journal["journal"] = str(path)
    toolkit.store.audit(
        actor=toolkit.actor,
        action="drill",
        target=host,
        details={k: journal[k] for k in ("fault", "outcome", "mttd_s", "mttr_s")},
    )
    return journal


def run_fleet_drill(
    toolkit: DrillToolkit,
    hosts: list[str],
    fault_name: str,
    *,
    interval: float = 0.25,
    fail_threshold: int = 2,
    timeout: float = 300.0,
    steady_timeout: float = 60.0,
) -> dict[str, Any]:
    """The same fault on every host at once, one watch over the fleet: the hosts confirmed failed in the
    same probe round share one recovery run. Returns the fleet's MTTD/MTTR (median and max over hosts)."""
    exercise = _exercise(
        toolkit,
        hosts,
        _fault(fault_name),
        interval=interval,
        fail_threshold=fail_threshold,
        timeout=timeout,
        steady_timeout=steady_timeout,
    )
    recoveries = [_recovery(toolkit, exercise, host) for host in hosts]
    mttr = sorted(seconds for recovered, seconds in recoveries if recovered and seconds is not None)
    mttd = sorted(v for v in (_seconds(exercise.injected_at, exercise.detected.get(h)) for h in hosts) if v is not None)
    runs = {result.run.run_id for result in exercise.results.values() if result.run is not None}
    return {
        "fault": fault_name,
        "hosts": len(hosts),
        "recovered": sum(recovered for recovered, _seconds in recoveries),
        "recovery_runs": len(runs),
        "runs": sorted(runs),
        "mttd_median_s": mttd[len(mttd) // 2] if mttd else None,
        "mttr_median_s": mttr[len(mttr) // 2] if mttr else None,
        "mttr_max_s": mttr[-1] if mttr else None,
        "errors": exercise.errors,
    }
