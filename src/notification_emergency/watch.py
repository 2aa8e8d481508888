"""Continuous watch: probe every host directly from Python, concurrently, every interval (0.5 s by default),
and start auto-recover when a failure is confirmed.

A probe is three HTTP requests from the control node, no playbook: the web process's ``GET /health`` (it
reports the database, Redis and the WebSocket service too), the page users see (``GET /``, which renders
the active templates) and the WebSocket process's own ``GET /health``.
A host is *confirmed failed* after ``fail_threshold`` failed probes in a row and *confirmed healthy* after
``ok_threshold`` good ones, so one slow answer does not start a recovery. The first failed probe is the
failure's start, the confirmation its detection: both go to the incident, so detection time is measured.

Hosts the engine put on flash messages (its fallback) are rolled forward by ``tend`` (the fallback tender's
pass, every ``tend_every`` seconds, in the background); while it acts on a host, that host's probes start no
recovery (a roll-forward restarts its services on purpose).

Some failures no probe can see: the pending queue backing up, the disk filling. A *deep check* (the health
playbook, every ``deep_every`` seconds, in the background) reads them; until a later deep check finds the
host healthy again, every probe of that host counts as failed with the deep check's findings, so the same
thresholds and the same one-recovery-per-episode rule apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from notification_emergency.errors import BadInput
from notification_emergency.inventory import Target
from notification_emergency.probes import Probe, probe
from notification_emergency.results import ActionResult
from notification_emergency.timeutil import utc_now

# What the watch calls for each confirmed failure: (hosts, first failed probe of each, detection time).
OnFailure = Callable[[list[str], dict[str, datetime], datetime], Any]
# What a tend pass is given: hold(hosts) marks the hosts busy (no recovery starts for them) while it acts.
Hold = Callable[[list[str]], AbstractContextManager[None]]
Tend = Callable[[Hold], Any]


@dataclass
class HostState:
    confirmed: str = "healthy"  # healthy | failed
    failures: int = 0
    successes: int = 0
    first_failure: datetime | None = None
    recovering: bool = False
    handled: bool = False  # the on_failure call of this failure episode has started (re-armed when healthy)


class Watcher:
    """Probe ``targets`` every ``interval`` seconds; call ``on_failure(hosts, started_at, detected_at)`` (the
    toolkit passes auto-recover) once per confirmed failure episode, in a worker so probing goes on meanwhile.
    The hosts confirmed failed in the same round go together (``started_at`` maps each to its first failed
    probe), so a fleet-wide failure is one recovery run, not one per host. ``deep_check()`` is the health
    check of every watched host (the toolkit passes the health playbook's), run every ``deep_every`` seconds.

    The toolkit builds one with :meth:`~notification_emergency.api.EmergencyToolkit.watcher`."""

    DEEP_EVERY = 30.0
    TEND_EVERY = 10.0

    def __init__(
        self,
        targets: list[Target],
        *,
        on_failure: OnFailure,
        deep_check: Callable[[], ActionResult] | None = None,
        interval: float = 0.5,
        fail_threshold: int = 2,
        ok_threshold: int = 2,
        timeout: float = 1.0,
        on_probe: Callable[[Probe, HostState], None] | None = None,
        on_change: Callable[[str, str, Probe], None] | None = None,
        deep_every: float = DEEP_EVERY,
        deep_at_start: bool = True,
        tend: Tend | None = None,
        tend_every: float = TEND_EVERY,
    ) -> None:
        if interval <= 0 or fail_threshold < 1 or ok_threshold < 1 or timeout <= 0:
            raise BadInput("--interval and --timeout must be positive, the thresholds at least 1")
        if deep_every < 0:
            raise BadInput("--deep-every must be 0 (no deep checks) or a number of seconds")
        if deep_every and deep_check is None:
            raise ValueError("a watch with deep checks needs deep_check")
        self._deep_check = deep_check
        self._tend = tend
        self.tend_every = tend_every
        self.tended: list[Any] = []  # what each tend pass did
        self.deep_every = deep_every
        self.deep_at_start = deep_at_start  # else the first deep check comes one period after the start
        self.deep: dict[str, list[str]] = {}  # host -> findings of the latest deep check that found it unhealthy
        self.deep_checks = 0
        self._deep_due = threading.Event()
        self._settled: dict[str, float] = {}  # host -> when its last recovery run ended (monotonic)
        self.targets = list(targets)
        self.interval = interval
        self.fail_threshold = fail_threshold
        self.ok_threshold = ok_threshold
        self.timeout = min(timeout, max(interval, 0.2) * 4)
        self.on_failure = on_failure
        self.on_probe = on_probe
        self.on_change = on_change
        self.states = {target.host: HostState() for target in self.targets}
        self.stop_event = threading.Event()
        self.results: list[Any] = []
        self.errors: list[str] = []
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _handle(self, hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> None:
        try:
            result = self.on_failure(hosts, started_at, detected_at)
            with self._lock:
                self.results.append(result)
                rows = getattr(result, "hosts", None) or {}
                for host in hosts:  # verified healthy by the engine: the deep findings are out of date
                    if rows.get(host, {}).get("status") in ("recovered", "healthy"):
                        self.deep.pop(host, None)
        except Exception as exc:  # the watch goes on; the error is kept and shown, not lost in a thread
            with self._lock:
                self.errors.append(f"{', '.join(hosts)}: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                for host in hosts:
                    self.states[host].recovering = False
                    self._settled[host] = time.monotonic()
            self._deep_due.set()  # look again soon, rather than a full period later

    def deep_check(self) -> None:
        """One deep check of every watched host (the health playbook: queue, disk, processes, everything)."""
        started = time.monotonic()
        assert self._deep_check is not None
        result = self._deep_check()
        with self._lock:
            self.deep_checks += 1
            for host, row in result.hosts.items():
                if host not in self.states:
                    continue
                if row.get("status") == "healthy":
                    self.deep.pop(host, None)
                elif started >= self._settled.get(host, 0.0) and not self.states[host].recovering:
                    # (a check that began before the host's last recovery ended says nothing about it now)
                    what = row.get("primary") or row.get("status")
                    self.deep[host] = [f"deep check: {what}: {row.get('summary') or ''}".rstrip(": ")]

    def _deep_loop(self) -> None:
        first = True
        while not self.stop_event.is_set():
            if not (first and self.deep_at_start):
                deadline = time.monotonic() + self.deep_every
                while not self.stop_event.is_set() and not self._deep_due.is_set() and time.monotonic() < deadline:
                    self._deep_due.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                if self.stop_event.is_set():
                    break
            first = False
            self._deep_due.clear()
            try:
                self.deep_check()
            except Exception as exc:  # a failed deep check is reported, and the probes go on
                with self._lock:
                    self.errors.append(f"deep check: {type(exc).__name__}: {exc}")

    @contextmanager
    def hold(self, hosts: list[str]) -> Iterator[None]:
        """While the block runs, no recovery starts for ``hosts`` (their failed probes are expected)."""
        with self._lock:
            for host in hosts:
                if host in self.states:
                    self.states[host].recovering = True
        try:
            yield
        finally:
            with self._lock:
                for host in hosts:
                    if host in self.states:
                        self.states[host].recovering = False
                        self.states[host].failures = 0
                        self._settled[host] = time.monotonic()

    def _tend_loop(self) -> None:
        assert self._tend is not None
        while not self.stop_event.wait(self.tend_every):
            try:
                done = self._tend(self.hold)
                with self._lock:
                    self.tended.append(done)
            except Exception as exc:  # a failed pass is reported, and the watch goes on
                with self._lock:
                    self.errors.append(f"fallback: {type(exc).__name__}: {exc}")

    def _with_deep(self, result: Probe) -> Probe:
        with self._lock:
            findings = self.deep.get(result.host)
        if not findings:
            return result
        status = result.status if not result.ok else "degraded"
        problems = [*result.problems, *findings]
        return Probe(result.host, result.at, False, status, result.latency_ms, result.mode, problems, result.components)

    def step(self, pool: ThreadPoolExecutor, sessions: dict[str, requests.Session]) -> list[Probe]:
        """One round of probes, and the state changes they cause."""
        answers = pool.map(lambda t: probe(t, self.timeout, sessions[t.host]), self.targets)
        probes = [self._with_deep(answer) for answer in answers]
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
            first = {host: self.states[host].first_failure or utc_now() for host in hosts}
            worker = threading.Thread(target=self._handle, args=(hosts, first, utc_now()), name="recover", daemon=True)
            self._workers.append(worker)
            worker.start()
        return probes

    def run(self, *, duration: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Probe until stopped (``stop()``, Ctrl-C in the CLI), ``duration`` seconds pass or ``until()`` holds."""
        ends = time.monotonic() + duration if duration else None
        sessions = {target.host: requests.Session() for target in self.targets}
        deep = threading.Thread(target=self._deep_loop, name="deep-check", daemon=True) if self.deep_every else None
        if deep:
            deep.start()
        tender = threading.Thread(target=self._tend_loop, name="fallback", daemon=True) if self._tend else None
        if tender:
            tender.start()
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(self.targets)))) as pool:
            while not self.stop_event.is_set():
                started = time.monotonic()
                self.step(pool, sessions)
                if (ends is not None and time.monotonic() >= ends) or (until is not None and until()):
                    break
                self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))
        self.stop_event.set()  # (ended by duration or until(): the deep checks stop too)
        for worker in self._workers:
            worker.join()
        if deep:
            deep.join()
        if tender:
            tender.join()
        for session in sessions.values():
            session.close()

    def stop(self) -> None:
        self.stop_event.set()


__all__ = ["Hold", "HostState", "OnFailure", "Tend", "Watcher"]
