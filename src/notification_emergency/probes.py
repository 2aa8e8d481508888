"""Direct probes of a host from the control node, no playbook: the one reader of the web process's
``GET /health`` (:func:`read_web_health`), one probe of a host (:func:`probe`: that, the page users see, and
the WebSocket process's own ``GET /health``), a fleet at once, and waiting for a host to be healthy. The
watch, the recovery engine's verification, ``status --quick``, the users channel and the dashboard use them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import requests

from notification_emergency.inventory import Target
from notification_emergency.timeutil import utc_now


class _Getter(Protocol):
    def get(self, url: str, **kwargs: Any) -> requests.Response: ...


@dataclass(frozen=True)
class WebHealth:
    """What the web process's ``GET /health`` says: its overall ``status`` (None when the body says none),
    the application ``mode``, the status of each component it reports (web, database, redis, websocket) and
    each one's ``reason`` when the service gives one (down, timeout, hung, slow, error: docs/health-result.md)."""

    http_status: int
    status: str | None
    mode: str | None
    components: dict[str, str]
    body: dict[str, Any]
    reasons: dict[str, str | None] = field(default_factory=dict)


def read_web_health(answer: requests.Response) -> WebHealth:
    """The web process's ``/health`` answer read the one way: a body that is not a JSON object reports nothing
    (status None, no component); raises ValueError for a JSON body that does not parse."""
    body: Any = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    body = body if isinstance(body, dict) else {}
    reported = body.get("components")
    components = {
        str(name): str(part.get("status"))
        for name, part in (reported.items() if isinstance(reported, dict) else ())
        if isinstance(part, dict)
    }
    reasons = {
        str(name): (str(part["reason"]) if part.get("reason") is not None else None)
        for name, part in (reported.items() if isinstance(reported, dict) else ())
        if isinstance(part, dict)
    }
    status = body.get("status")
    mode = body.get("mode")
    return WebHealth(
        answer.status_code,
        str(status) if status is not None else None,
        str(mode) if mode is not None else None,
        components,
        body,
        reasons,
    )


# Per component, what a probe tells apart: healthy, slow (answered over SLOW_MS), down (connection refused),
# timeout (the connection not even opened in time), hung (accepted, no answer in time), or the status the web
# reports when none of those says more (failed, degraded, disabled).
HEALTHY, SLOW, DOWN, TIMEOUT, HUNG = "healthy", "slow", "down", "timeout", "hung"
SLOW_MS = 500.0
# The web's /health answers within about 1 s whatever hangs (each dependency check has a 1 s deadline): a
# probe waits at least this long for it, so a hung dependency is not mistaken for a hung web process.
WEB_HEALTH_READ_S = 1.25


def component_verdict(status: str, reason: str | None) -> str:
    """One component's verdict from the status and reason the web's /health reports for it."""
    if status == HEALTHY:
        return SLOW if reason == SLOW else HEALTHY
    return reason if reason in (DOWN, TIMEOUT, HUNG) else status


def request_verdict(exc: requests.RequestException) -> str:
    """down, timeout or hung for a request that got no answer; failed for anything else."""
    if isinstance(exc, requests.ConnectTimeout):
        return TIMEOUT
    if isinstance(exc, requests.Timeout):
        return HUNG  # the connection was accepted (a read timeout): nothing answered in time
    if isinstance(exc, requests.ConnectionError):
        return DOWN
    return "failed"


# The failure types only the deep check sees (the health module reads the pending queue and the free disk
# space, compares config.yml with the inventory, and asks the process manager; the probes do not). The engine
# verifies a recovery from these with a deep check, not with probes: a drifted config.yml may still answer
# the probes (a bind host), and so do the orphans a dead supervisord leaves behind.
DEEP_ONLY_TYPES = frozenset({"delivery_backlog", "disk_pressure", "configuration_drift", "process_manager_down"})


@dataclass
class Probe:
    host: str
    at: datetime
    ok: bool
    status: str  # healthy | degraded | failed | unreachable
    latency_ms: float
    mode: str | None = None
    problems: list[str] = field(default_factory=list)
    # web, database, redis, websocket -> healthy | slow | down | timeout | hung | failed | degraded | disabled:
    # the web's own view of its dependencies, the WebSocket process timed by the probe itself.
    components: dict[str, str] = field(default_factory=dict)


def probe(target: Target, timeout: float = 1.0, session: requests.Session | None = None) -> Probe:
    """One direct probe of a host: web /health (which reports every component), the page users see, and the
    WebSocket /health."""
    getter: _Getter = session or requests  # type: ignore[assignment]
    started = time.monotonic()
    at = utc_now()
    problems: list[str] = []
    mode = None
    status = "healthy"
    components: dict[str, str] = {}
    try:
        read_s = max(timeout, WEB_HEALTH_READ_S)
        web = read_web_health(getter.get(f"{target.web_url}/health", timeout=(timeout, read_s)))
        mode = web.mode
        components = {name: component_verdict(state, web.reasons.get(name)) for name, state in web.components.items()}
        if components.get("web") == HEALTHY and (time.monotonic() - started) * 1000 > SLOW_MS and web.status == HEALTHY:
            components["web"] = SLOW
        if web.http_status >= 500 or web.status != "healthy":
            status = web.status or "failed"
            problems = [f"{name} {state}" for name, state in web.components.items() if state != "healthy"]
            problems = problems or [f"web /health answered {web.http_status}"]
    except (requests.RequestException, ValueError) as exc:
        status = "unreachable"
        problems.append(f"web: {type(exc).__name__}")
        components["web"] = request_verdict(exc) if isinstance(exc, requests.RequestException) else "failed"
    if status == "healthy":  # the page users see renders (a broken template answers 500)
        try:
            page = getter.get(f"{target.web_url}/", timeout=timeout)
            if page.status_code >= 500:
                status, problems = "failed", [*problems, f"page / answered {page.status_code}"]
        except requests.RequestException as exc:
            status, problems = "failed", [*problems, f"page /: {type(exc).__name__}"]
    # Not asked again when the web already found it down or hung (waiting for a hung process costs the timeout).
    known = components.get("websocket") in (DOWN, TIMEOUT, HUNG)
    if known and target.websocket_url and mode != "legacy" and status != "unreachable":
        status, problems = "failed", [*problems, f"websocket {components['websocket']} (the web's /health)"]
    elif target.websocket_url and mode != "legacy" and status != "unreachable":
        asked = time.monotonic()
        try:
            answer = getter.get(f"{target.websocket_url}/health", timeout=timeout)
            components["websocket"] = SLOW if (time.monotonic() - asked) * 1000 > SLOW_MS else HEALTHY
            if answer.status_code != 200:
                status, problems = "failed", [*problems, f"websocket /health answered {answer.status_code}"]
                components["websocket"] = "failed"
        except requests.RequestException as exc:
            status, problems = "failed", [*problems, f"websocket: {type(exc).__name__}"]
            components["websocket"] = request_verdict(exc)
    latency = (time.monotonic() - started) * 1000
    return Probe(target.host, at, status == "healthy", status, round(latency, 1), mode, problems, components)


def probe_fleet(fleet: list[Target], timeout: float = 2.0) -> list[Probe]:
    """One direct probe of every host at once (a thread per host, up to 64): no playbook, no module start-up.

    The fleet's health in about the time of the slowest host's answer; what ``status --quick`` shows."""
    if not fleet:
        return []
    with ThreadPoolExecutor(max_workers=min(64, len(fleet)), thread_name_prefix="probe") as pool:
        return list(pool.map(lambda target: probe(target, timeout), fleet))


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
            return Probe(
                result.host,
                result.at,
                False,
                result.status,
                result.latency_ms,
                result.mode,
                result.problems,
                result.components,
            )
        time.sleep(0.1)
