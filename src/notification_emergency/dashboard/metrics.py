"""``/metrics``: the dashboard's view in the Prometheus text exposition format (version 0.0.4).

Two kinds of numbers, never mixed in one metric:

- gauges, what is true now: per host and component, health and latency from the latest direct probe; per
  host, emergency mode and level, the notification mode (one 0/1 series per mode), whether the recovery
  engine's circuit breaker is open; from the event store, the runs running, the open incidents, the
  notifications by delivery state (a pending notification is delivered later, so that count goes down);
- counters, events that happened: they only grow, because they count records of the event store that are
  never deleted and that are counted once they have ended (finished runs by status, incidents, resolved
  incidents, finished recovery actions by failure type, step and outcome, escalations by failure type,
  notifications created, delivery attempts, emergency-mode changes); detection and recovery times (MTTD,
  MTTR) are histograms.

The store is read at each scrape (one read transaction, see :meth:`EventStore.totals
<notification_emergency.store.statistics.Statistics.totals>`); the host part comes from the monitor's
latest probes, so a scrape does no network I/O. docs/dashboard.md lists every metric.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from notification_emergency.catalogue import CATALOGUE
from notification_emergency.engine import Policy
from notification_emergency.errors import ToolkitError
from notification_emergency.fallback import ON_FLASH
from notification_emergency.store import EventStore
from notification_emergency.timeutil import utc_now

log = logging.getLogger("notification_emergency.dashboard")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "notification_emergency_"
MODES = ("websocket", "legacy")
ESCALATE = "escalate"  # the incident action the recovery engine records when it calls operators
# Detection and recovery take seconds (a probe, a restart) to an hour (a human): the histograms' upper bounds.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
# The outcome labels of finished incident actions (recovery_outcome maps the recorded text to one of them).
RECOVERY_OUTCOMES = ("escalated", "recovered", "fallback", "no_effect", "timed_out", "failed", "skipped", "other")
# The statuses of finished runs always shown (at 0 before the first), so increase() sees their first run.
RUN_STATUSES = ("successful", "failed", "timeout", "canceled", "abandoned")


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], Any]]) -> None:
        """One metric family: HELP and TYPE, then its samples (``None`` values are left out)."""
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, Any], value: float | int | bool) -> None:
        label_text = ",".join(f'{key}="{_escape(item)}"' for key, item in labels.items())
        self.lines.append(
            f"{PREFIX}{name}{{{label_text}}} {_number(value)}" if labels else f"{PREFIX}{name} {_number(value)}"
        )

    def histogram(self, name: str, help_text: str, values: Sequence[float], bounds: Sequence[float]) -> None:
        """A histogram family: cumulative ``_bucket`` counts for each upper bound and +Inf, ``_sum``, ``_count``."""
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} histogram")
        ordered = sorted(values)
        at = 0
        for bound in bounds:
            while at < len(ordered) and ordered[at] <= bound:
                at += 1
            self.sample(f"{name}_bucket", {"le": _number(float(bound))}, at)
        self.sample(f"{name}_bucket", {"le": "+Inf"}, len(ordered))
        self.sample(f"{name}_sum", {}, math.fsum(ordered))
        self.sample(f"{name}_count", {}, len(ordered))


def read_store(store: EventStore, policy: Policy | None = None) -> dict[str, Any] | None:
    """The store's totals (:meth:`~notification_emergency.store.statistics.Statistics.totals`, with the incidents
    acted on within the circuit breaker's window), or None when it cannot be read (logged; store_up says 0)."""
    window = (policy or Policy()).breaker_window_s
    try:
        return store.totals(acted_since=utc_now() - timedelta(seconds=window))
    except Exception as exc:  # the store is down or broken: /metrics says so, the hosts' part still shows
        message = exc.message if isinstance(exc, ToolkitError) else f"{type(exc).__name__}: {exc}"
        log.warning("/metrics: cannot read the event store: %s", message.splitlines()[0][:300])
        return None


def render(live: dict[str, Any], totals: dict[str, Any] | None, policy: Policy | None = None) -> str:
    """The metrics text for the dashboard's ``live`` part and the store's ``totals`` (None: the store is down)."""
    out = _Writer()
    hosts = live.get("hosts") or []
    _hosts(out, hosts)
    out.family(
        "store_up", "gauge", "1 when the event store answered this scrape's read, else 0.", [({}, totals is not None)]
    )
    if totals is not None:
        _breakers(out, [h["host"] for h in hosts], totals["acted"], policy or Policy())
        _gauges(out, totals)
        _counters(out, totals)
    jobs = live.get("jobs") or []
    out.family(
        "dashboard_actions_running",
        "gauge",
        "Dashboard actions running now.",
        [({}, sum(1 for job in jobs if job["state"] == "running"))],
    )
    return "\n".join(out.lines) + "\n"


def _hosts(out: _Writer, hosts: list[dict[str, Any]]) -> None:
    """Per host and component, from the latest direct probe: health, latency, emergency mode, the mode."""
    out.family(
        "host_healthy",
        "gauge",
        "1 when the latest direct probe of the host found it healthy, else 0 (absent before the first probe).",
        [({"host": h["host"]}, h["ok"]) for h in hosts if h["status"] != "unknown"],
    )
    out.family(
        "host_probe_latency_seconds",
        "gauge",
        "Wall time of the latest direct probe of the host.",
        [({"host": h["host"]}, h["latency_ms"] / 1000 if h["latency_ms"] is not None else None) for h in hosts],
    )
    out.family(
        "component_healthy",
        "gauge",
        "1 when the component answered healthy (or is disabled in legacy mode) in the latest probe, else 0.",
        [
            ({"host": h["host"], "component": c["name"]}, c["status"] in ("healthy", "disabled"))
            for h in hosts
            for c in h.get("components") or []
        ],
    )
    out.family(
        "component_latency_seconds",
        "gauge",
        "Latency of the component's check in the latest probe.",
        [
            (
                {"host": h["host"], "component": c["name"]},
                c["latency_ms"] / 1000 if c["latency_ms"] is not None else None,
            )
            for h in hosts
            for c in h.get("components") or []
        ],
    )
    out.family(
        "emergency_active",
        "gauge",
        "1 when emergency mode is on for the host's users, else 0.",
        [({"host": h["host"]}, h["emergency"]["active"]) for h in hosts if h.get("emergency")],
    )
    out.family(
        "emergency_level",
        "gauge",
        "Level of the active emergency mode (1 critical .. 4 low); absent when off.",
        [
            ({"host": h["host"]}, h["emergency"]["level"])
            for h in hosts
            if h.get("emergency") and h["emergency"]["active"] and h["emergency"]["level"] is not None
        ],
    )
    out.family(
        "notification_mode",
        "gauge",
        "1 for the mode the host delivers notifications in, 0 for the other (websocket, legacy flash messages); "
        "0 for both while the mode is unknown.",
        [({"host": h["host"], "mode": mode}, h["mode"] == mode) for h in hosts for mode in MODES],
    )


def _breakers(out: _Writer, hosts: list[str], acted: dict[str, list[int]], policy: Policy) -> None:
    out.family(
        "circuit_breaker_open",
        "gauge",
        f"1 when the recovery engine's circuit breaker is open for the host: {policy.breaker_max} or more incidents "
        f"had automatic recovery within {policy.breaker_window_s:.0f} s, so a new failure gets none (escalated).",
        [({"host": host}, len(acted.get(host, ())) >= policy.breaker_max) for host in hosts],
    )


def _gauges(out: _Writer, totals: dict[str, Any]) -> None:
    """What is true now in the store: it goes up and down."""
    out.family(
        "runs",
        "gauge",
        "Playbook runs recorded in the event store that are running now.",
        [({"status": "running"}, totals["runs_running"])],
    )
    out.family("incidents_open", "gauge", "Incidents not resolved yet.", [({}, totals["incidents_open"])])
    out.family(
        "notifications",
        "gauge",
        "Notifications in the event store by delivery state now: delivered, failed (attempted, never delivered) "
        "or pending (not attempted).",
        [({"state": state}, count) for state, count in totals["notifications"].items()],
    )
    incidents = totals["incidents"]
    out.family(
        "recovery_rate",
        "gauge",
        "Resolved incidents / incidents, all time (absent with no incident).",
        [({}, totals["incidents_resolved"] / incidents if incidents else None)],
    )


def _counters(out: _Writer, totals: dict[str, Any]) -> None:
    """Events: counts of store records that are never deleted, each counted once it has ended."""
    finished = totals["runs_finished"]
    out.family(
        "runs_finished_total",
        "counter",
        "Playbook runs that ended, by status (successful, failed, timeout, canceled, abandoned...).",
        [({"status": status}, finished.get(status, 0)) for status in sorted({*RUN_STATUSES, *finished})],
    )
    out.family("incidents_total", "counter", "Incidents detected.", [({}, totals["incidents"])])
    out.family("incidents_resolved_total", "counter", "Incidents resolved.", [({}, totals["incidents_resolved"])])
    out.family(
        "incidents_by_type_total",
        "counter",
        "Incidents detected, by failure type.",
        [({"failure_type": name}, count) for name, count in totals["incidents_by_type"].items()],
    )
    outcomes: dict[tuple[str, str, str], int] = {}
    for action in totals["actions"]:
        key = (action["failure_type"], action["action"], recovery_outcome(action["action"], action["outcome"]))
        outcomes[key] = outcomes.get(key, 0) + action["count"]
    out.family(
        "recovery_actions_total",
        "counter",
        "Recovery actions that ended, by failure type, step and outcome ("
        + ", ".join(RECOVERY_OUTCOMES)
        + "); outcome escalated: automatic recovery stopped and operators were called.",
        [
            ({"failure_type": failure_type, "action": action, "outcome": outcome}, count)
            for (failure_type, action, outcome), count in sorted(outcomes.items())
        ],
    )
    escalations = {name: 0 for name in CATALOGUE}  # every failure type at 0 first, so increase() sees the first
    for action in totals["actions"]:
        if action["action"] == ESCALATE:
            escalations[action["failure_type"]] = escalations.get(action["failure_type"], 0) + action["count"]
    out.family(
        "escalations_total",
        "counter",
        "Incidents escalated to operators by the recovery engine (automatic recovery stopped without restoring "
        "health, or could not run), by failure type.",
        [({"failure_type": name}, count) for name, count in sorted(escalations.items())],
    )
    out.histogram(
        "detection_seconds",
        "Time from a failure's start to its detection (MTTD = _sum / _count), over the incidents whose start is known.",
        totals["detection_seconds"],
        DURATION_BUCKETS,
    )
    out.histogram(
        "recovery_seconds",
        "Time from an incident's detection to its resolution (MTTR = _sum / _count), over the resolved incidents.",
        totals["recovery_seconds"],
        DURATION_BUCKETS,
    )
    out.family(
        "notifications_created_total",
        "counter",
        "Notifications sent to the on-call (recorded in the event store).",
        [({}, totals["notifications_created"])],
    )
    out.family(
        "delivery_attempts_total",
        "counter",
        "Attempts to deliver a notification through a channel, by outcome (delivered, failed, kept).",
        [({"outcome": outcome}, count) for outcome, count in sorted(totals["delivery_attempts"].items())],
    )
    out.family(
        "emergency_changes_total",
        "counter",
        "Emergency-mode activations and deactivations recorded.",
        [({"action": action}, count) for action, count in totals["emergencies"].items()],
    )


def recovery_outcome(action: str, outcome: str) -> str:
    """The outcome label (one of :data:`RECOVERY_OUTCOMES`) of a finished incident action: the engine's and the
    fallback tender's free-text outcomes ("failed (timeout)", "skipped: circuit breaker open: ...") in a few
    words a query can match."""
    text = outcome.strip().lower()
    if action == ESCALATE:
        return "escalated"
    if text == "recovered":
        return "recovered"
    if text == ON_FLASH:
        return "fallback"
    if text == "no effect":
        return "no_effect"
    if text.startswith("timed out"):
        return "timed_out"
    if text.startswith("failed"):
        return "failed"
    if text.startswith("skipped"):
        return "skipped"
    return "other"


__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "RECOVERY_OUTCOMES", "read_store", "recovery_outcome", "render"]
