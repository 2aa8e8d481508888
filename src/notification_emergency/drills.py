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
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency.engine import Policy
from notification_emergency.errors import BadInput
from notification_emergency.watch import Probe, Target, Watcher, probe, targets

if TYPE_CHECKING:
    from notification_emergency.api import ActionResult, EmergencyToolkit

SANDBOX_MARKER = ".notification-sandbox"
# Drills inject faults on purpose, one after another: the throttle and the circuit breaker, which protect a
# real fleet from flapping, would stop the engine from acting on the next drill. Everything else is as in
# production (the same plan, the same steps that never run automatically, the same escalation).
DRILL_POLICY = Policy(throttle_s=0.0, breaker_max=1_000_000)


class SandboxHost:
    """The handles a fault needs on a local sandbox host."""

    def __init__(self, target: Target) -> None:
        if not target.sandbox or not target.root or not (Path(target.root) / SANDBOX_MARKER).is_file():
            raise BadInput(
                f"{target.host} is not a sandbox host (no notification_sandbox flag or no {SANDBOX_MARKER} in its "
                "root): drills break hosts on purpose and run only on sandbox hosts"
            )
        self.target = target
        self.root = Path(target.root)

    def supervisorctl(self, *args: str) -> str:
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "supervisorctl"),
                "-c",
                str(self.root / "etc" / "supervisord.conf"),
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return proc.stdout + proc.stderr

    def pid(self, program: str) -> int:
        answer = self.supervisorctl("pid", program).strip()
        if not answer.isdigit() or answer == "0":
            raise BadInput(f"{program} is not running on {self.target.host}: {answer}")
        return int(answer)

    @property
    def websocket_port(self) -> int:
        assert self.target.websocket_url is not None
        return int(self.target.websocket_url.rsplit(":", 1)[1])


Undo = Callable[[], None]


def _kill(program: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        os.kill(host.pid(program), signal.SIGKILL)
        return lambda: None  # supervisord restarts it; the engine makes sure

    return inject


def _stop(program: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        host.supervisorctl("stop", program)

        def undo() -> None:
            host.supervisorctl("start", program)

        return undo

    return inject


def _rewrite(relative: str, content: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        path = host.root / relative
        original = path.read_bytes()
        path.write_text(content)

        def undo() -> None:
            if path.read_text() == content:  # the engine did not put it back: do it
                path.write_bytes(original)

        return undo

    return inject


def _take_websocket_port(host: SandboxHost) -> Undo:
    """Stop the WebSocket service and hold its port with another listener, so it cannot come back."""
    host.supervisorctl("stop", "notification-websocket")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            squatter.bind(("127.0.0.1", host.websocket_port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    squatter.listen(1)

    def undo() -> None:
        squatter.close()
        host.supervisorctl("start", "notification-websocket")

    return undo


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    expects: str  # the failure type the engine should find
    recovers: bool  # True: recovered automatically; False: must escalate
    inject: Callable[[SandboxHost], Undo]
    self_heals: bool = False  # the process manager may bring it back before anything is detected


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "websocket_killed",
            "The WebSocket process is killed (SIGKILL).",
            "websocket_service_down",
            True,
            _kill("notification-websocket"),
            self_heals=True,
        ),
        Fault(
            "web_killed",
            "The web server's master process is killed (SIGKILL); its workers may go on serving a while.",
            "web_service_down",
            True,
            _kill("notification-web"),
            self_heals=True,
        ),
        Fault("redis_stopped", "Redis is stopped.", "redis_unavailable", True, _stop("redis")),
        Fault(
            "websocket_stopped",
            "The WebSocket service is stopped (and stays stopped: supervisord does not restart it).",
            "websocket_service_down",
            True,
            _stop("notification-websocket"),
        ),
        Fault(
            "config_invalid",
            "config.yml is replaced by invalid YAML.",
            "configuration_error",
            True,
            _rewrite("etc/config.yml", "mode: [websocket\nthis is: not: valid yaml\n"),
        ),
        Fault(
            "template_broken",
            "The active page template has a syntax error (pages answer 500).",
            "template_error",
            True,
            _rewrite("templates/active/index.html", "{% extends 'base.html' %}{% block content %}{{ broken(\n"),
        ),
        Fault(
            "websocket_port_taken",
            "Another process holds the WebSocket port: a restart cannot bring the service back.",
            "websocket_service_down",
            False,
            _take_websocket_port,
        ),
    )
}


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def wait_steady(target: Target, timeout: float) -> Probe:
    """Wait until the host answers healthy twice in a row (a previous drill may still be settling)."""
    deadline = time.monotonic() + timeout
    good = 0
    while True:
        result = probe(target, timeout=2.0)
        good = good + 1 if result.ok else 0
        if good >= 2 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def run_drill(
    toolkit: EmergencyToolkit,
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
    if fault_name not in FAULTS:
        raise BadInput(f"unknown fault {fault_name!r}; the drills are: {', '.join(FAULTS)}")
    fault = FAULTS[fault_name]
    [target] = targets(toolkit, host)
    sandbox = SandboxHost(target)
    steady = wait_steady(target, steady_timeout)
    if not steady.ok:
        raise BadInput(
            f"{host} is not in its steady state before the drill ({steady.status}: {', '.join(steady.problems)}); "
            "mend it (notification-emergency auto-recover) and run the drill again"
        )

    outcome: dict[str, Any] = {}
    done = threading.Event()
    first_healthy: list[Probe] = []

    def on_failure(names: list[str], started_at: dict[str, datetime], detected_at: datetime) -> ActionResult | None:
        if "detected_at" in outcome:  # the drill is about the first detection and its recovery
            return None
        outcome["detected_at"] = detected_at
        result = toolkit.auto_recover(
            ",".join(names), started_at=injected_at, detected_at=detected_at, policy=DRILL_POLICY
        )
        outcome["result"] = result
        outcome["finished_at"] = datetime.now(UTC)
        done.set()
        return result

    def on_probe(result: Probe, _state: Any) -> None:
        if result.ok and not first_healthy and ("detected_at" in outcome or time.monotonic() - injected_mono > 5):
            first_healthy.append(result)  # healthy again (after detection, or the fault healed by itself)
            if "detected_at" not in outcome:
                done.set()

    watcher = Watcher(
        toolkit, host, interval=interval, fail_threshold=fail_threshold, on_failure=on_failure, on_probe=on_probe
    )
    injected_at = datetime.now(UTC)
    injected_mono = time.monotonic()
    undo = fault.inject(sandbox)
    try:
        watcher.run(until=lambda: done.is_set() or time.monotonic() - injected_mono > timeout)
    finally:
        undo()
        escalated = (
            outcome.get("result") is not None and outcome["result"].hosts.get(host, {}).get("status") == "escalated"
        )
        if escalated:  # the drill's escalation turned emergency mode on: back to the steady state
            toolkit.deactivate_emergency("recovery drill", limit=host)
        wait_steady(target, steady_timeout)
    result: ActionResult | None = outcome.get("result")
    row = result.hosts.get(host, {}) if result else {}
    final = probe(target, timeout=2.0)
    incident = toolkit.store.incident(row["incident"]) if row.get("incident") else None
    verified_at = _parse(incident.get("verified_at")) if incident else None
    # "healthy": the failure was confirmed, but by the time auto-recover checked, the process manager had
    # already restarted the process; the engine verified it and had nothing to do.
    recovered = row.get("status") in ("recovered", "healthy") or (result is None and bool(first_healthy))
    timings = row.get("timings", {})
    # explain's decision for the very snapshot auto-recover acted on: the steps that ran must be its runnable
    # steps, in order, up to the one that restored health.
    ran = [action["step"] for action in row.get("actions", []) if action["outcome"] != "skipped"]
    matches_explain = ran == (row.get("decision") or {}).get("runnable", [])[: len(ran)]
    journal = {
        "fault": fault.name,
        "description": fault.description,
        "host": host,
        "expected_type": fault.expects,
        "expected_outcome": "recovered" if fault.recovers else "escalated",
        "injected_at": injected_at.isoformat(),
        "detected_at": outcome["detected_at"].isoformat() if "detected_at" in outcome else None,
        "detected_type": row.get("primary"),
        "level": row.get("level"),
        "actions": [f"{a['step']}: {a['outcome']}" for a in row.get("actions", [])],
        "explained": (row.get("decision") or {}).get("runnable", []),
        "outcome": {"healthy": "recovered by the process manager (no action needed)"}.get(
            row.get("status", ""), row.get("status") or ("healed before detection" if first_healthy else "not detected")
        ),
        "recovered": recovered,
        "escalation": (row.get("escalation") or {}).get("line"),
        "healthy_after": final.ok,
        "mttd_s": _seconds(injected_at, outcome.get("detected_at")),
        "mttr_s": _seconds(injected_at, verified_at or (first_healthy[0].at if first_healthy else None))
        if recovered
        else None,
        "parts_s": {
            "detect": _seconds(injected_at, outcome.get("detected_at")),
            "decide": timings.get("check_s"),
            "act": timings.get("act_s"),
            "verify": timings.get("verify_s"),
        },
        "error": "; ".join(watcher.errors) or None,
        "matches_explain": matches_explain,
        "as_expected": not watcher.errors
        and matches_explain
        and (row.get("primary") == fault.expects or (fault.self_heals and row.get("primary") is None))
        and (recovered if fault.recovers else row.get("status") == "escalated"),
    }
    folder = journal_dir or toolkit.home / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{injected_at.strftime('%Y%m%dT%H%M%S')}-{fault.name}-{host}.json"
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
    toolkit: EmergencyToolkit,
    hosts: list[str],
    fault_name: str,
    *,
    interval: float = 0.25,
    fail_threshold: int = 2,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """The same fault on every host at once, one watch over the fleet: the hosts confirmed failed in the
    same probe round share one recovery run. Returns the fleet's MTTD/MTTR (median and max over hosts)."""
    if fault_name not in FAULTS:
        raise BadInput(f"unknown fault {fault_name!r}; the drills are: {', '.join(FAULTS)}")
    fault = FAULTS[fault_name]
    found = {target.host: target for target in targets(toolkit, ",".join(hosts))}
    sandboxes = [SandboxHost(found[host]) for host in hosts]
    for host in hosts:
        if not wait_steady(found[host], 60.0).ok:
            raise BadInput(f"{host} is not in its steady state before the drill; mend it and run the drill again")
    detected: dict[str, datetime] = {}
    healthy_at: dict[str, datetime] = {}
    results: list[ActionResult] = []
    lock = threading.Lock()

    def on_failure(names: list[str], _started: dict[str, datetime], detected_at: datetime) -> ActionResult:
        with lock:
            for name in names:
                detected.setdefault(name, detected_at)
        result = toolkit.auto_recover(
            ",".join(names), started_at=injected_at, detected_at=detected_at, policy=DRILL_POLICY
        )
        with lock:
            results.append(result)
        return result

    def on_probe(result: Probe, _state: Any) -> None:
        if (
            result.ok
            and result.host not in healthy_at
            and (result.host in detected or time.monotonic() - injected_mono > 5)
        ):
            healthy_at[result.host] = result.at

    watcher = Watcher(
        toolkit,
        ",".join(hosts),
        interval=interval,
        fail_threshold=fail_threshold,
        on_failure=on_failure,
        on_probe=on_probe,
    )
    injected_at = datetime.now(UTC)
    injected_mono = time.monotonic()
    undos = [fault.inject(sandbox) for sandbox in sandboxes]
    try:
        watcher.run(
            until=lambda: (
                (len(healthy_at) == len(hosts) and not any(s.recovering for s in watcher.states.values()))
                or time.monotonic() - injected_mono > timeout
            )
        )
    finally:
        for undo in undos:
            undo()
    mttr = sorted(v for v in (_seconds(injected_at, healthy_at.get(h)) for h in hosts) if v is not None)
    mttd = sorted(v for v in (_seconds(injected_at, detected.get(h)) for h in hosts) if v is not None)
    runs = [r.run.run_id for r in results if r.run is not None]
    return {
        "fault": fault.name,
        "hosts": len(hosts),
        "recovered": len(mttr),
        "recovery_runs": len(results),
        "runs": runs,
        "mttd_median_s": mttd[len(mttd) // 2] if mttd else None,
        "mttr_median_s": mttr[len(mttr) // 2] if mttr else None,
        "mttr_max_s": mttr[-1] if mttr else None,
        "errors": watcher.errors,
    }
