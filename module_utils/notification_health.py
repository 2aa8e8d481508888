"""Health checks of the notification service: one call, every component, one structured result.

Used by the ``notification_health`` module; the result shape is the contract in ``docs/health-result.md``.
This module runs the checks (``notification_checks``) that ``notification_health_plan`` derives from the
module's arguments and config.yml: concurrently, each one bounded by its own timeout (socket timeouts computed
from what is left of it, SQLite's busy timeout, libpq's connect_timeout and statement_timeout, subprocess
timeouts) and the call by its deadline. Nothing here writes anything: the module is read-only and behaves the
same in check mode.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import datetime
from typing import Any

from ansible.module_utils.notification_checks import CHECKS, NETWORK_KINDS, CheckSpec, Context
from ansible.module_utils.notification_common import (
    DEGRADED,
    FAILED,
    HEALTHY,
    SEVERITY,
    CheckProblem,
    CheckTimeout,
    Deadline,
    first_line,
    os_error_problem,
)
from ansible.module_utils.notification_health_plan import build_plan
from ansible.module_utils.notification_redact import scrub
from ansible.module_utils.notification_timeutil import iso_seconds, utc_now

# How long the call waits for a check past its own timeout before it reports the timeout itself. Every
# check bounds its own waits, so this only matters for a call that ignores timeouts (a hung DNS lookup).
GRACE_S = 0.25


class Probe:
    """One check in flight: its spec, the evidence gathered so far and what is left of its timeout."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.evidence: dict[str, Any] = {}
        self.deadline = Deadline(spec.timeout)
        self.started = time.monotonic()

    def result(self, status: str, reason: str | None = None, error: str | None = None) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "component": spec.component,
            "kind": spec.kind,
            "critical": spec.critical,
            "status": status,
            "latency_ms": None if spec.disabled else round((time.monotonic() - self.started) * 1000, 1),
            "error": error,
            "reason": reason,
            "evidence": dict(self.evidence),
        }


def run_one(probe: Probe, context: Context) -> dict[str, Any]:
    """Run one check; never raises: every problem becomes a failed or degraded result."""
    spec = probe.spec
    if spec.disabled:
        probe.evidence["disabled"] = True
        return probe.result(HEALTHY)
    try:
        if spec.setup_error:
            raise CheckProblem("error", spec.setup_error)
        CHECKS[spec.kind](spec, probe.deadline, probe.evidence, context)
    except CheckProblem as problem:
        return probe.result(problem.status, problem.reason, problem.error)
    except (CheckTimeout, TimeoutError, socket.timeout):  # noqa: UP041 (not one before Python 3.10)
        return probe.result(FAILED, probe.deadline.timeout_reason(), probe.deadline.timeout_message())
    except OSError as exc:
        mapped = os_error_problem(exc, probe.deadline)
        return probe.result(FAILED, mapped.reason, mapped.error)
    except Exception as exc:
        return probe.result(FAILED, "error", f"{type(exc).__name__}: {first_line(exc)}")
    result = probe.result(HEALTHY)
    threshold = spec.options.get("latency_degraded_ms")
    if spec.kind in NETWORK_KINDS and threshold is not None and result["latency_ms"] > threshold:
        result.update(
            status=DEGRADED,
            reason="slow",
            error=f"answered in {result['latency_ms']:g} ms, over the {threshold:g} ms threshold",
        )
    return result


def _start(probe: Probe, context: Context, runner: Callable[[Probe, Context], dict[str, Any]]) -> Future[Any]:
    """Run ``runner`` in a daemon thread.

    Not a ThreadPoolExecutor: its worker threads are joined when the interpreter exits, so one check stuck
    in a call that ignores timeouts (a DNS lookup, a hung network file system) would hold the module's
    process past its deadline. A daemon thread is abandoned instead.
    """
    future: Future[Any] = Future()

    def target() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(runner(probe, context))
            except BaseException as exc:
                future.set_exception(exc)

    threading.Thread(target=target, name=f"health-{probe.spec.name}", daemon=True).start()
    return future


def _collect(
    probes: dict[str, Probe], futures: dict[str, Future[Any]], call_end: float, deadline_s: float
) -> dict[str, dict[str, Any]]:
    """Every check's result: waited for until its own timeout (plus a moment to report it itself), never past
    the call's deadline."""
    limits = {name: min(probe.started + probe.spec.timeout + GRACE_S, call_end) for name, probe in probes.items()}
    results: dict[str, dict[str, Any]] = {}
    pending = set(probes)
    while pending:
        now = time.monotonic()
        for name in sorted(pending):
            probe, future = probes[name], futures[name]
            if future.done():
                try:
                    results[name] = future.result()
                except Exception as exc:  # a runner that raises is a bug; report it, do not lose the call
                    results[name] = probe.result(FAILED, "error", f"{type(exc).__name__}: {first_line(exc)}")
                pending.discard(name)
            elif now >= limits[name]:
                if limits[name] >= call_end and call_end < probe.started + probe.spec.timeout + GRACE_S:
                    error = f"timeout: still running at the call's {float(deadline_s)}s deadline"
                else:
                    error = probe.deadline.timeout_message()
                results[name] = probe.result(FAILED, probe.deadline.timeout_reason(), error)
                pending.discard(name)
        if pending:
            wait(
                [futures[name] for name in pending],
                timeout=max(0.0, min(limits[name] for name in pending) - time.monotonic()),
                return_when=FIRST_COMPLETED,
            )
    return results


def run_checks(
    specs: list[CheckSpec],
    deadline_s: float,
    context: Context | None = None,
    runner: Callable[[Probe, Context], dict[str, Any]] = run_one,
    secrets: set[str] | None = None,
) -> dict[str, Any]:
    """Run every check concurrently and return the health result (docs/health-result.md)."""
    context = context or Context()
    checked_at = utc_now()
    started = time.monotonic()
    probes = {spec.name: Probe(spec) for spec in specs}
    futures = {name: _start(probe, context, runner) for name, probe in probes.items()}
    results = _collect(probes, futures, started + deadline_s, deadline_s)
    checks = {spec.name: results[spec.name] for spec in specs}
    for check in checks.values():
        check["error"] = scrub(check["error"], secrets or ())
        check["evidence"] = scrub(check["evidence"], secrets or ())
    return summarize(checks, checked_at, time.monotonic() - started, deadline_s)


def summarize(
    checks: dict[str, dict[str, Any]], checked_at: datetime, duration_s: float, deadline_s: float
) -> dict[str, Any]:
    overall = HEALTHY
    counts = {HEALTHY: 0, DEGRADED: 0, FAILED: 0}
    for check in checks.values():
        counts[check["status"]] += 1
        # A non-critical check that fails makes the whole at most degraded.
        weight = check["status"] if check["critical"] or check["status"] == HEALTHY else DEGRADED
        if SEVERITY[weight] > SEVERITY[overall]:
            overall = weight
    return {
        "overall": overall,
        "checked_at": iso_seconds(checked_at),
        "duration_ms": round(duration_s * 1000, 1),
        "deadline_s": float(deadline_s),
        "counts": counts,
        "checks": checks,
        "failed_checks": [name for name, check in checks.items() if check["status"] == FAILED],
        "degraded_checks": [name for name, check in checks.items() if check["status"] == DEGRADED],
    }


def check_health(params: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Validate, run every check, and return (the health result, the secrets the caller must keep hidden)."""
    plan = build_plan(params)
    return run_checks(plan.specs, plan.deadline, plan.context, secrets=plan.secrets), plan.secrets
