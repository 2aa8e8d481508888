"""``/metrics``: the dashboard's view in the Prometheus text exposition format (version 0.0.4).

Per host and component: health (1 healthy, 0 not) and latency from the latest direct probe; per host:
emergency mode and level, the notification mode; from the event store: incidents (total, open, by type),
recovery rate, detection and recovery times (summaries with quantiles), runs and notifications by outcome;
and the dashboard's own running actions.
"""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "notification_emergency_"


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, Any], Any]]) -> None:
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

    def summary(self, name: str, help_text: str, values: dict[str, Any], labels: dict[str, Any] | None = None) -> None:
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} summary")
        self.summary_samples(name, values, labels or {})

    def summary_samples(self, name: str, values: dict[str, Any], labels: dict[str, Any]) -> None:
        for quantile, key in (("0.5", "p50"), ("0.9", "p90"), ("0.95", "p95")):
            if values.get(key) is not None:
                self.sample(name, {**labels, "quantile": quantile}, float(values[key]))
        count = int(values.get("count") or 0)
        mean = values.get("mean")
        self.sample(f"{name}_sum", labels, float(mean) * count if mean is not None else 0.0)
        self.sample(f"{name}_count", labels, count)


def render(live: dict[str, Any], record: dict[str, Any]) -> str:
    """The metrics text for the dashboard's ``live`` and ``record`` parts."""
    out = _Writer()
    _hosts(out, live.get("hosts") or [])
    _record(out, record)
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
        "1 when the latest direct probe of the host found it healthy, else 0.",
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
        "1 when emergency mode is on for the host's users.",
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
        "1 for the mode the host delivers notifications in (websocket or legacy flash messages).",
        [({"host": h["host"], "mode": h["mode"]}, 1) for h in hosts if h["mode"] != "unknown"],
    )


def _record(out: _Writer, record: dict[str, Any]) -> None:
    """From the event store: whether it answered, incidents, recovery, runs, notifications, emergencies."""
    stats = record.get("stats")
    store = record.get("store") or {}
    out.family("store_up", "gauge", "1 when the event store answered the latest read.", [({}, bool(store.get("ok")))])
    if stats:
        out.family("incidents_total", "counter", "Incidents in the event store.", [({}, stats["incidents"])])
        out.family("incidents_open", "gauge", "Incidents not resolved yet.", [({}, stats["open"])])
        out.family(
            "incidents_by_type_total",
            "counter",
            "Incidents in the event store by failure type.",
            [({"failure_type": name}, row["incidents"]) for name, row in sorted(stats["by_type"].items())],
        )
        out.family(
            "recovery_rate",
            "gauge",
            "Resolved incidents / incidents (absent with no incident).",
            [({}, stats["recovery_rate"])],
        )
        out.summary(
            "detection_seconds",
            "Time from a failure's start to its detection (MTTD), over the incidents whose start is known.",
            stats["detection_seconds"],
        )
        out.summary(
            "recovery_seconds",
            "Time from detection to resolution (MTTR), over the resolved incidents.",
            stats["recovery_seconds"],
        )
        out.family(
            "mttr_seconds",
            "gauge",
            "Mean time to recovery of the resolved incidents (absent with none).",
            [({}, stats["recovery_seconds"]["mean"])],
        )
        runs = stats["runs"]
        out.family(
            "runs_total",
            "counter",
            "Playbook runs recorded in the event store, by outcome.",
            [({"status": key}, runs[key]) for key in ("successful", "failed", "running")],
        )
        notes = stats["notifications"]
        out.family(
            "notifications_total",
            "counter",
            "Notifications recorded in the event store, by delivery state.",
            [({"state": key}, notes[key]) for key in ("delivered", "failed", "pending")],
        )
        emergencies = stats["emergencies"]
        out.family(
            "emergency_changes_total",
            "counter",
            "Emergency-mode activations and deactivations recorded.",
            [({"action": key}, emergencies[key]) for key in ("activated", "deactivated")],
        )


__all__ = ["CONTENT_TYPE", "render"]
