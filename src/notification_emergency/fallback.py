"""Graceful degradation, the way back: hosts the recovery engine put on flash messages (the catalogue's
``enable_flash_fallback`` step, the verified rollback to legacy mode) are rolled forward to WebSocket on their
own once the WebSocket process has been healthy for a sustained period.

One pass of :meth:`FallbackTender.tend` looks at each host on fallback, that is a host whose open incident's
latest fallback step put it on flash messages (a host a human rolled back is never rolled forward by the
engine: it has no such incident):

- WebSocket process healthy (its own ``GET /health``): the first healthy observation is recorded in the
  incident (``websocket_canary: healthy``); once it has stayed healthy for ``rollforward_after_s``, the host
  is rolled forward with ``restore.yml`` (backed up, verified, put back on failure) and the incident resolved;
- not healthy: at most every ``canary_every_s``, the WebSocket process is started on its own with
  ``restart_services.yml`` (in legacy mode no user depends on it, so this is a safe canary), recorded;
- the host already back in WebSocket mode and healthy (a human rolled it forward): the incident is resolved.

Every observation and switch is an action of the incident, so the store, the dashboard and the report show
them, and the state survives a restart of whatever runs the pass (the watch, or a later ``auto-recover``).
Hysteresis: a lost healthy streak starts over; a failed roll-forward counts as lost.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from notification_emergency.catalogue import STEPS
from notification_emergency.inventory import Fleet, Target
from notification_emergency.notifier import Notifier
from notification_emergency.probes import probe, wait_healthy
from notification_emergency.runner import RunResult
from notification_emergency.timeutil import parse_iso, seconds_between, utc_now

if TYPE_CHECKING:
    from notification_emergency.store import EventStore

FALLBACK_STEPS = frozenset(step_id for step_id, step in STEPS.items() if step.get("fallback"))
ON_FLASH = "on flash messages"  # the outcome of a fallback step that put the host on flash messages
CANARY = "websocket_canary"
ROLL_FORWARD = "roll_forward"
RunRecorded = Callable[..., tuple[RunResult, dict[str, Any] | None]]
Hold = Callable[[list[str]], AbstractContextManager[None]]


@dataclass(frozen=True)
class FallbackState:
    """Where a host on fallback stands, read from its incident's actions (oldest first)."""

    incident: dict[str, Any]
    since: datetime | None  # when the fallback step put it on flash messages
    healthy_since: datetime | None  # the start of the current healthy streak of its WebSocket process
    last_attempt: datetime | None  # the last canary start or roll-forward


def fallback_state(incident: dict[str, Any]) -> FallbackState | None:
    """The fallback state of an open incident, or None when its host is not on an engine fallback."""
    if incident.get("status") != "open":
        return None
    since: datetime | None = None
    healthy: datetime | None = None
    attempt: datetime | None = None
    for action in incident.get("actions", []):
        name, outcome = action.get("action"), str(action.get("outcome") or "")
        at = parse_iso(action.get("finished_at")) or parse_iso(action.get("started_at"))
        if name in FALLBACK_STEPS:
            since, healthy, attempt = (at, None, None) if outcome == ON_FLASH else (None, None, None)
        elif since is None:
            continue
        elif name == CANARY:
            healthy = (healthy or at) if outcome == "healthy" else None
            if (action.get("details") or {}).get("started"):
                attempt = at
        elif name == ROLL_FORWARD:
            attempt, healthy = at, None
            if outcome == "recovered":
                since = None
    return FallbackState(incident, since, healthy, attempt) if since is not None else None


def websocket_healthy(target: Target, timeout: float = 2.0) -> bool:
    """The WebSocket process's own ``GET /health`` answers 200 with status healthy."""
    if not target.websocket_url:
        return False
    try:
        answer = requests.get(f"{target.websocket_url}/health", timeout=timeout)
        body = answer.json() if answer.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "healthy"


class FallbackTender:
    """Roll hosts on flash-message fallback forward to WebSocket once it is healthy again (see the module)."""

    def __init__(
        self,
        store: EventStore,
        fleet: Fleet,
        *,
        run_recorded: RunRecorded,
        notifier: Notifier,
        rollforward_after_s: float = 60.0,
        canary_every_s: float = 30.0,
        verify_s: float = 20.0,
    ) -> None:
        self.store = store
        self.fleet = fleet
        self.run_recorded = run_recorded
        self.notifier = notifier
        self.rollforward_after_s = rollforward_after_s
        self.canary_every_s = canary_every_s
        self.verify_s = verify_s

    def on_fallback(self, limit: str | None = None) -> dict[str, FallbackState]:
        """The targeted hosts on an engine fallback, with their state."""
        hosts = set(self.fleet.hosts(limit))
        found: dict[str, FallbackState] = {}
        for incident in self.store.incidents(open_only=True):
            state = fallback_state(incident)
            for host in incident.get("hosts") or []:
                if state is not None and host in hosts and host not in found:
                    found[host] = state
        return found

    def tend(self, limit: str | None = None, *, hold: Hold | None = None) -> dict[str, str]:
        """One pass over the hosts on fallback; what was done for each (a line per host). ``hold(hosts)``
        (the watch's) marks a host busy while the pass acts on it, so its probes start no recovery."""
        done: dict[str, str] = {}
        for host, state in sorted(self.on_fallback(limit).items()):
            with hold([host]) if hold else nullcontext():
                done[host] = self._tend_host(self.fleet.target(host), state, utc_now())
        return done

    def _record(self, state: FallbackState, action: str, outcome: str, **details: Any) -> None:
        self.store.add_incident_action(
            int(state.incident["id"]), action=action, outcome=outcome, finished_at=utc_now(), details=details
        )

    def _tend_host(self, target: Target, state: FallbackState, now: datetime) -> str:
        web = probe(target, timeout=2.0)
        if web.ok and web.mode == "websocket":
            self._resolve(state, "back on WebSocket (rolled forward outside the engine)")
            return "back on WebSocket: incident resolved"
        if websocket_healthy(target):
            if state.healthy_since is None:
                self._record(state, CANARY, "healthy")
                return "WebSocket healthy: the streak starts"
            streak = seconds_between(state.healthy_since, now) or 0.0
            if streak < self.rollforward_after_s:
                return f"WebSocket healthy for {streak:.0f} s of {self.rollforward_after_s:.0f} s"
            return self._roll_forward(target, state)
        if state.healthy_since is not None:
            self._record(state, CANARY, "lost")
        since_attempt = seconds_between(state.last_attempt or state.since, now) or 0.0
        if since_attempt < self.canary_every_s:
            return f"WebSocket down; next start in {self.canary_every_s - since_attempt:.0f} s"
        run, _report = self.run_recorded(
            "auto-recover:websocket_canary",
            "restart_services.yml",
            {"components": ["websocket"], "restart_health_timeout": 10},
            limit=target.host,
            incident_id=state.incident["id"],
        )
        healthy = websocket_healthy(target)
        self._record(state, CANARY, "healthy" if healthy else "failed", started=True, run_id=run.run_id)
        return "WebSocket started on its own: healthy" if healthy else f"WebSocket start failed ({run.status})"

    def _roll_forward(self, target: Target, state: FallbackState) -> str:
        started = utc_now()
        run, _report = self.run_recorded(
            "auto-recover:roll_forward", "restore.yml", {}, limit=target.host, incident_id=state.incident["id"]
        )
        back = run.status == "successful" and wait_healthy(target, self.verify_s).mode == "websocket"
        self.store.add_incident_action(
            int(state.incident["id"]),
            action=ROLL_FORWARD,
            started_at=started,
            finished_at=utc_now(),
            outcome="recovered" if back else f"failed ({run.status}): still on flash messages",
            details={"automatic": True, "playbook": "restore.yml", "run_id": run.run_id},
        )
        if not back:
            return f"roll-forward failed ({run.status}); still on flash messages"
        self._resolve(state, "auto-recover: on flash messages, then rolled forward to WebSocket")
        return "rolled forward to WebSocket: incident resolved"

    def _resolve(self, state: FallbackState, resolution: str) -> None:
        now = utc_now()
        incident = state.incident
        self.store.update_incident(int(incident["id"]), verified_at=now, resolved_at=now, resolution=resolution)
        hosts = ",".join(incident.get("hosts") or [])
        self.notifier.send(
            f"[RESOLVED] {incident['failure_type']} on {hosts}",
            f"{resolution}. Users were on flash messages from {state.since.isoformat() if state.since else '?'}.",
            "low",
            incident_id=int(incident["id"]),
            limit=hosts or None,
        )


__all__ = ["FallbackState", "FallbackTender", "fallback_state", "websocket_healthy"]
