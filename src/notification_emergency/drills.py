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
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import requests
import yaml

from notification_emergency.engine import Policy
from notification_emergency.errors import BadInput
from notification_emergency.inventory import Fleet, Target
from notification_emergency.probes import Probe, probe, wait_healthy
from notification_emergency.results import ActionResult
from notification_emergency.timeutil import iso, parse_iso, seconds_between, utc_now
from notification_emergency.watch import Watcher

if TYPE_CHECKING:
    from notification_emergency.store import EventStore


class DrillToolkit(Protocol):
    """What a drill uses of the toolkit (the facade passes itself): the fleet, the record, and the actions a
    drill starts or undoes."""

    fleet: Fleet
    home: Path
    actor: str

    @property
    def store(self) -> EventStore: ...

    def auto_recover(
        self,
        limit: str | None = None,
        *,
        dry_run: bool = False,
        started_at: datetime | None = None,
        detected_at: datetime | None = None,
        policy: Policy | None = None,
    ) -> ActionResult: ...

    def deep_check(self, limit: str | None) -> ActionResult: ...

    def deactivate_emergency(self, resolved_by: str, *, limit: str | None = None) -> ActionResult: ...

    def drain_backlog(self, *, limit: str | None = None) -> ActionResult: ...


SANDBOX_MARKER = ".notification-sandbox"
# Drills inject faults on purpose, one after another: the throttle and the circuit breaker, which protect a
# real fleet from flapping, would stop the engine from acting on the next drill. Everything else is as in
# production (the same plan, the same steps that never run automatically, the same escalation).
DRILL_POLICY = Policy(throttle_s=0.0, breaker_max=1_000_000)
DRILL_DEEP_EVERY = 3.0


def supervisorctl(root: Path, *args: str) -> str:
    """``supervisorctl`` of the sandbox host whose root is ``root`` (its own supervisord); what it printed."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(root / "etc" / "supervisord.conf"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout + proc.stderr


class SandboxHost:
    """The handles a fault needs on a local sandbox host."""

    def __init__(self, target: Target, variables: dict[str, Any] | None = None) -> None:
        if not target.sandbox or not target.root or not (Path(target.root) / SANDBOX_MARKER).is_file():
            raise BadInput(
                f"{target.host} is not a sandbox host (no notification_sandbox flag or no {SANDBOX_MARKER} in its "
                "root): drills break hosts on purpose and run only on sandbox hosts"
            )
        self.target = target
        self.root = Path(target.root)
        self.variables = variables or {}
        self.toolkit: DrillToolkit | None = None  # for a fault whose undo is a toolkit action

    def supervisorctl(self, *args: str) -> str:
        return supervisorctl(self.root, *args)

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


def _back_up_queue(host: SandboxHost) -> Undo:
    """Pile up notifications for a user who is not connected, one more than the host's pending-queue limit:
    real notifications through the service's own API, each a pending WebSocket delivery in the database and
    an entry in the Redis pending queue. The engine must not move them (that touches data): it escalates,
    and the drill then does what the on-call would, runs drain_backlog.yml."""
    limit = int(host.variables.get("notification_pending_max_length", 1000))
    secrets = yaml.safe_load((host.root / "etc" / "secrets.yml").read_text())
    headers = {"Authorization": f"Bearer {secrets['api_token']}"}
    url = f"{host.target.web_url}/api/notifications"

    def post(number: int) -> None:
        body = {"user": "drill-offline-user", "title": f"backlog drill {number}", "priority": "low"}
        requests.post(url, json=body, headers=headers, timeout=10).raise_for_status()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, range(limit + 1 + 10)))

    def undo() -> None:
        assert host.toolkit is not None
        host.toolkit.drain_backlog(limit=host.target.host)

    return undo


def _fill_log_volume(host: SandboxHost) -> Undo:
    """Give the host's log directory a small filesystem of its own (a 16 MiB tmpfs, as a log volume would be)
    and fill it with rotated logs past their retention until its free space is under the host's threshold.
    prune.yml (step prune_logs) deletes exactly those files, so the engine can recover it."""
    log_dir = host.root / "log"
    if os.path.ismount(log_dir):
        raise BadInput(f"{log_dir} is a mount point already: a previous disk drill did not finish; umount it")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "notification-drill", str(log_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise BadInput(
            f"the disk drill gives {log_dir} a small tmpfs of its own and could not mount it "
            f"({mounted.stderr.strip()}); run it as root on a machine that allows mounts"
        )
    threshold = float(host.variables.get("notification_disk_min_free_percent", 5))
    old = time.time() - 30 * 86400
    chunk = b"x" * (1024 * 1024)  # rotated logs of a MiB each
    number = 0
    try:
        while True:
            usage = shutil.disk_usage(log_dir)
            if usage.free / usage.total * 100 < threshold / 2:
                break
            number += 1
            path = log_dir / f"notification-drill.log.{number}"
            try:
                path.write_bytes(chunk)
            except OSError:  # full: that is the point
                break
            os.utime(path, (old, old))
    except BaseException:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)
        raise

    def undo() -> None:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)

    return undo


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    expects: str  # the failure type the engine should find
    recovers: bool  # True: recovered automatically; False: must escalate
    inject: Callable[[SandboxHost], Undo]
    self_heals: bool = False  # the process manager may bring it back before anything is detected
    deep: bool = False  # only the watch's deep check (the health playbook) sees it, not the probes


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
        Fault(
            "queue_backed_up",
            "Notifications pile up for a user who is not connected, past the host's pending-queue limit.",
            "delivery_backlog",
            False,
            _back_up_queue,
            deep=True,
        ),
        Fault(
            "disk_full",
            "The host's log volume (a small filesystem of its own) fills with old rotated logs.",
            "disk_pressure",
            True,
            _fill_log_volume,
            deep=True,
        ),
    )
}


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

    def finished() -> bool:
        with lock:
            return time.monotonic() - injected_mono > timeout or all(
                host in exercise.results if host in exercise.detected else host in exercise.first_healthy
                for host in hosts
            )

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
        for host in hosts:
            wait_healthy(found[host], steady_timeout)
    exercise.errors = watcher.errors
    return exercise


def _recovery(toolkit: DrillToolkit, exercise: _Exercise, host: str) -> tuple[bool, float | None]:
    """(recovered, MTTR): fault injected to verified healthy (the engine's verification, else the first
    healthy probe). Status "healthy": the failure was confirmed, but by the time auto-recover checked, the
    process manager had restarted the process; the engine verified it and had nothing to do."""
    row = exercise.row(host)
    recovered = row.get("status") in ("recovered", "healthy") or (
        host not in exercise.results and host in exercise.first_healthy
    )
    incident = toolkit.store.incident(row["incident"]) if row.get("incident") else None
    verified_at = parse_iso(incident.get("verified_at")) if incident else None
    healthy = exercise.first_healthy.get(host)
    end = verified_at or (healthy.at if healthy else None)
    return recovered, _seconds(exercise.injected_at, end) if recovered else None


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
    recovered, mttr = _recovery(toolkit, exercise, host)
    detected_at = exercise.detected.get(host)
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
        "injected_at": iso(exercise.injected_at),
        "detected_at": iso(detected_at),
        "detected_type": row.get("primary"),
        "level": row.get("level"),
        "actions": [f"{a['step']}: {a['outcome']}" for a in row.get("actions", [])],
        "explained": (row.get("decision") or {}).get("runnable", []),
        "outcome": {"healthy": "recovered by the process manager (no action needed)"}.get(
            row.get("status", ""),
            row.get("status") or ("healed before detection" if host in exercise.first_healthy else "not detected"),
        ),
        "recovered": recovered,
        "escalation": (row.get("escalation") or {}).get("line"),
        "healthy_after": final.ok,
        "mttd_s": _seconds(exercise.injected_at, detected_at),
        "mttr_s": mttr,
        "parts_s": {
            "detect": _seconds(exercise.injected_at, detected_at),
            "decide": timings.get("check_s"),
            "act": timings.get("act_s"),
            "verify": timings.get("verify_s"),
        },
        "error": "; ".join(exercise.errors) or None,
        "matches_explain": matches_explain,
        "as_expected": not exercise.errors
        and matches_explain
        and (row.get("primary") == fault.expects or (fault.self_heals and row.get("primary") is None))
        and (recovered if fault.recovers else row.get("status") == "escalated"),
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
