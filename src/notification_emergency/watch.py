"""Continuous watch: probe every host directly from Python, concurrently, every interval (0.5 s by default),
and start auto-recover when a failure is confirmed.

A probe is three HTTP requests from the control node, no playbook: the web process's ``GET /health`` (it
reports the database, Redis and the WebSocket service too), the page users see (``GET /``, which renders
the active templates) and the WebSocket process's own ``GET /health``.
A host is *confirmed failed* after ``fail_threshold`` failed probes in a row and *confirmed healthy* after
``ok_threshold`` good ones, so one slow answer does not start a recovery. The first failed probe is the
failure's start, the confirmation its detection: both go to the incident, so detection time is measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

from notification_emergency.errors import BadInput

if TYPE_CHECKING:
    from notification_emergency.api import EmergencyToolkit


@dataclass(frozen=True)
class Target:
    host: str
    web_url: str
    websocket_url: str | None
    sandbox: bool = False
    root: str | None = None


def targets(toolkit: EmergencyToolkit, limit: str | None = None) -> list[Target]:
    """Where each targeted host answers, from the inventory (``ansible_host`` and the service ports)."""
    found = []
    for host in toolkit.hosts(limit):
        variables = toolkit.inventory.hostvars.get(host, {})
        address = str(
            variables.get("ansible_host") or ("127.0.0.1" if variables.get("ansible_connection") == "local" else host)
        )
        web_port = variables.get("notification_service_web_port", 8000)
        ws_port = variables.get("notification_service_websocket_port")
        found.append(
            Target(
                host=host,
                web_url=f"http://{address}:{web_port}",
                websocket_url=f"http://{address}:{ws_port}" if ws_port else None,
                sandbox=bool(variables.get("notification_sandbox")),
                root=variables.get("notification_service_root"),
            )
        )
    return found


@dataclass
class Probe:
    host: str
    at: datetime
    ok: bool
    status: str  # healthy | degraded | failed | unreachable
    latency_ms: float
    mode: str | None = None
    problems: list[str] = field(default_factory=list)


def probe(target: Target, timeout: float = 1.0, session: requests.Session | None = None) -> Probe:
    """One direct probe of a host: web /health (which reports every component), the page users see, and the
    WebSocket /health."""
    getter = session or requests
    started = time.monotonic()
    at = datetime.now(UTC)
    problems: list[str] = []
    mode = None
    status = "healthy"
    try:
        answer = getter.get(f"{target.web_url}/health", timeout=timeout)
        body: dict[str, Any] = (
            answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        )
        mode = body.get("mode")
        if answer.status_code >= 500 or body.get("status") != "healthy":
            status = str(body.get("status") or "failed")
            for name, component in (body.get("components") or {}).items():
                if isinstance(component, dict) and component.get("status") != "healthy":
                    problems.append(f"{name} {component.get('status')}")
            problems = problems or [f"web /health answered {answer.status_code}"]
    except (requests.RequestException, ValueError) as exc:
        status = "unreachable"
        problems.append(f"web: {type(exc).__name__}")
    if status == "healthy":  # the page users see renders (a broken template answers 500)
        try:
            page = getter.get(f"{target.web_url}/", timeout=timeout)
            if page.status_code >= 500:
                status, problems = "failed", [*problems, f"page / answered {page.status_code}"]
        except requests.RequestException as exc:
            status, problems = "failed", [*problems, f"page /: {type(exc).__name__}"]
    if target.websocket_url and mode != "legacy" and status != "unreachable":
        try:
            answer = getter.get(f"{target.websocket_url}/health", timeout=timeout)
            if answer.status_code != 200:
                status, problems = "failed", [*problems, f"websocket /health answered {answer.status_code}"]
        except requests.RequestException as exc:
            status, problems = "failed", [*problems, f"websocket: {type(exc).__name__}"]
    latency = (time.monotonic() - started) * 1000
    return Probe(target.host, at, status == "healthy", status, round(latency, 1), mode, problems)


def wait_healthy(target: Target, timeout: float, *, probes: int = 2) -> Probe:
    """Probe until ``probes`` healthy answers in a row, or ``timeout`` seconds; the last probe says which."""
    deadline = time.monotonic() + timeout
    good = 0
    while True:
        result = probe(target, timeout=2.0)
        good = good + 1 if result.ok else 0
        if good >= probes:
            return result
        if time.monotonic() > deadline:
            return Probe(result.host, result.at, False, result.status, result.latency_ms, result.mode, result.problems)
        time.sleep(0.1)


@dataclass
class HostState:
    confirmed: str = "healthy"  # healthy | failed
    failures: int = 0
    successes: int = 0
    first_failure: datetime | None = None
    recovering: bool = False
    handled: bool = False  # the on_failure call of this failure episode has started (re-armed when healthy)


class Watcher:
    """Probe ``hosts`` every ``interval`` seconds; call ``on_failure(hosts, started_at, detected_at)`` (by
    default auto-recover) once per confirmed failure episode, in a worker so probing goes on meanwhile.
    The hosts confirmed failed in the same round go together (``started_at`` maps each to its first failed
    probe), so a fleet-wide failure is one recovery run, not one per host."""

    def __init__(
        self,
        toolkit: EmergencyToolkit,
        limit: str | None = None,
        *,
        interval: float = 0.5,
        fail_threshold: int = 2,
        ok_threshold: int = 2,
        timeout: float = 1.0,
        on_failure: Callable[[list[str], dict[str, datetime], datetime], Any] | None = None,
        on_probe: Callable[[Probe, HostState], None] | None = None,
        on_change: Callable[[str, str, Probe], None] | None = None,
    ) -> None:
        if interval <= 0 or fail_threshold < 1 or ok_threshold < 1 or timeout <= 0:
            raise BadInput("--interval and --timeout must be positive, the thresholds at least 1")
        self.toolkit = toolkit
        self.targets = targets(toolkit, limit)
        self.interval = interval
        self.fail_threshold = fail_threshold
        self.ok_threshold = ok_threshold
        self.timeout = min(timeout, max(interval, 0.2) * 4)
        self.on_failure = on_failure or self._auto_recover
        self.on_probe = on_probe
        self.on_change = on_change
        self.states = {target.host: HostState() for target in self.targets}
        self.stop_event = threading.Event()
        self.results: list[Any] = []
        self.errors: list[str] = []
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _auto_recover(self, hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> Any:
        return self.toolkit.auto_recover(",".join(hosts), started_at=started_at, detected_at=detected_at)

    def _handle(self, hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> None:
        try:
            result = self.on_failure(hosts, started_at, detected_at)
            with self._lock:
                self.results.append(result)
        except Exception as exc:  # the watch goes on; the error is kept and shown, not lost in a thread
            with self._lock:
                self.errors.append(f"{', '.join(hosts)}: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                for host in hosts:
                    self.states[host].recovering = False

    def step(self, pool: ThreadPoolExecutor, sessions: dict[str, requests.Session]) -> list[Probe]:
        """One round of probes, and the state changes they cause."""
        probes = list(pool.map(lambda t: probe(t, self.timeout, sessions[t.host]), self.targets))
        confirmed: list[Probe] = []
        for result in probes:
            state = self.states[result.host]
            if result.ok:
                state.successes += 1
                state.failures = 0
                state.first_failure = None
                if state.confirmed == "failed" and state.successes >= self.ok_threshold:
                    state.confirmed = "healthy"
                    state.handled = False
                    if self.on_change:
                        self.on_change(result.host, "healthy", result)
            else:
                state.failures += 1
                state.successes = 0
                state.first_failure = state.first_failure or result.at
                if state.confirmed == "healthy" and state.failures >= self.fail_threshold:
                    state.confirmed = "failed"
                    if self.on_change:
                        self.on_change(result.host, "failed", result)
                # One on_failure per failure episode, and none while a recovery of the host is running: its
                # own restarts (a deploy restarting the web process, say) are not a new failure.
                if state.confirmed == "failed" and not state.handled and not state.recovering:
                    state.handled = state.recovering = True
                    confirmed.append(result)
            if self.on_probe:
                self.on_probe(result, state)
        if confirmed:
            hosts = [result.host for result in confirmed]
            first = {host: self.states[host].first_failure or datetime.now(UTC) for host in hosts}
            worker = threading.Thread(
                target=self._handle, args=(hosts, first, datetime.now(UTC)), name="recover", daemon=True
            )
            self._workers.append(worker)
            worker.start()
        return probes

    def run(self, *, duration: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Probe until stopped (``stop()``, Ctrl-C in the CLI), ``duration`` seconds pass or ``until()`` holds."""
        ends = time.monotonic() + duration if duration else None
        sessions = {target.host: requests.Session() for target in self.targets}
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(self.targets)))) as pool:
            while not self.stop_event.is_set():
                started = time.monotonic()
                self.step(pool, sessions)
                if (ends is not None and time.monotonic() >= ends) or (until is not None and until()):
                    break
                self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))
        for worker in self._workers:
            worker.join()
        for session in sessions.values():
            session.close()

    def stop(self) -> None:
        self.stop_event.set()
