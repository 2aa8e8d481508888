"""What the dashboard knows, kept fresh by one monitor thread and pushed to the pages.

Two parts, each with a version that grows when its content changes:

- ``live``: per host the latest direct probe (health, mode, emergency state, components with latency), the
  last health check the dashboard ran, the open incident; and the dashboard's actions with their progress.
  Probed every ``probe_interval`` seconds, rebuilt at once when an action reports progress.
- ``record``: from the event store: the timeline, statistics, the incidents for the chart, notifications.
  Read every ``probe_interval`` seconds and when an action starts or ends.

The server-sent event stream sends a part whenever its version grows; ``/api/state`` gives both (the
pages' fallback every 30 s). Nothing here goes through the managed service's Redis or WebSocket: the
dashboard works while the notification service is down, and goes on (saying so) while the store is down.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from notification_emergency.api import ActionResult, EmergencyToolkit
from notification_emergency.catalogue import LEVELS
from notification_emergency.dashboard.history import recent_jobs
from notification_emergency.dashboard.jobs import Jobs
from notification_emergency.dashboard.probes import live_probe
from notification_emergency.dashboard.sessions import SESSIONS_FILE, Sessions
from notification_emergency.dashboard.users import UserFile
from notification_emergency.errors import BadInput, ToolkitError
from notification_emergency.inventory import Target
from notification_emergency.paths import readable_by_others, state_dir, writable_by_others, write_private
from notification_emergency.runner import Event
from notification_emergency.store import EVENT_KINDS, EventStore
from notification_emergency.timeutil import iso, parse_iso, utc_now

log = logging.getLogger("notification_emergency.dashboard")

PARTS = ("live", "record")
CHART_INCIDENTS = 60
KEPT_TRANSITIONS = 50
INVENTORY_REFRESH_S = 60.0


def secret_key(home: Path) -> bytes:
    """The key that signs session cookies: ``dashboard-secret.key`` in the state directory (0600), made once,
    so sessions survive a restart of the dashboard. Deleting the file logs everybody out."""
    path = home / "dashboard-secret.key"
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError:
        pass
    else:
        who = writable_by_others(mode) or readable_by_others(mode)
        if who:  # whoever can read it can forge a session of any user; whoever can write it, choose the key
            raise BadInput(
                f"the dashboard's session key {path} can be read or changed by {who} (mode {mode & 0o777:04o}), "
                f"who could forge any user's session; delete it (everyone logs in again) or chmod 600 {path}"
            )
        with suppress(ValueError):
            return bytes.fromhex(text.strip())
    try:
        key = secrets.token_bytes(32)
        write_private(path, key.hex() + "\n")  # never a moment when the key is readable by others
        return key
    except OSError as exc:
        raise BadInput(
            f"cannot write the dashboard's session key {path}: {exc.strerror or exc}; "
            "set NOTIFICATION_EMERGENCY_STATE_DIR to a writable directory"
        ) from None


class Dashboard:
    """The dashboard's state and threads. ``start()`` begins probing; ``stop()`` ends it and cancels actions."""

    def __init__(
        self,
        *,
        inventory: str | Path | Sequence[str | Path] | None = None,
        limit: str | None = None,
        store: EventStore | str | Path | None = None,
        home: Path | None = None,
        users_file: Path | None = None,
        probe_interval: float = 2.0,
        probe_timeout: float = 2.0,
        action_timeout: int | None = 3600,
        events_limit: int = 40,
    ) -> None:
        if probe_interval <= 0 or probe_timeout <= 0:
            raise BadInput("--probe-interval and --probe-timeout must be positive")
        self.home = home or state_dir()
        self.store = store if isinstance(store, EventStore) else EventStore(store)
        self.users = UserFile(users_file)
        self.sessions = Sessions(self.home / SESSIONS_FILE)
        self.inventory_arg = inventory
        self.limit = limit
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.action_timeout = action_timeout
        self.events_limit = events_limit
        self.started_at = utc_now()
        self._load_inventory()
        self.jobs = Jobs(
            toolkit=self._action_toolkit,
            store=self.store,
            hosts=lambda: self.hosts,
            changed=lambda record: self.changed(record=record),
            failing_since=self.failing_since,
            record_health=lambda result, source, at: self.record_health(result, source=source, at=at),
        )
        # The recent actions survive a restart: read back from the audit trail (a store that fails is logged).
        _guard("reading the recent actions", lambda: self.jobs.show_recent(recent_jobs(self.store)))
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._record_due = threading.Event()
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._probes: dict[str, dict[str, Any]] = {}
        self._since: dict[str, str] = {}  # host -> when its probed status last changed
        self._failing: dict[str, str] = {}  # host -> its first failed probe since it was last healthy
        self._checks: dict[str, dict[str, Any]] = {}  # host -> the last health check result the dashboard saw
        self._transitions: deque[dict[str, Any]] = deque(maxlen=KEPT_TRANSITIONS)
        self._record: dict[str, Any] = {"store": {"ok": None, "url": self.store.display_url}}
        self._open_incidents: list[dict[str, Any]] = []
        self._parts: dict[str, tuple[int, str]] = {name: (0, "{}") for name in PARTS}
        self.probe_rounds = 0

    # -- hosts -----------------------------------------------------------------------------------------

    def _load_inventory(self) -> None:
        reader = EmergencyToolkit(inventory=self.inventory_arg, store=self.store, home=self.home)
        self.hosts: list[str] = reader.hosts(self.limit)
        self.targets: dict[str, Target] = {t.host: t for t in reader.fleet.targets(self.limit)}
        self._inventory_read = time.monotonic()

    def _action_toolkit(
        self, *, actor: str, on_event: Callable[[Event], None], cancel: Callable[[], bool]
    ) -> EmergencyToolkit:
        """The facade one dashboard action runs through (see :class:`~.jobs.Jobs`)."""
        return EmergencyToolkit(
            inventory=self.inventory_arg,
            store=self.store,
            actor=actor,
            home=self.home,
            timeout=self.action_timeout,
            on_event=on_event,
            cancel=cancel,
        )

    # -- the monitor thread ----------------------------------------------------------------------------

    def start(self) -> Dashboard:
        """Start the monitor thread (once: a second call changes nothing)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._loop, name="dashboard-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        self.jobs.stop()
        if self._thread is not None:
            self._thread.join(10)

    def changed(self, *, record: bool = False) -> None:
        """Something the pages show changed (an action's progress; ``record``: the event store too)."""
        if record:
            self._record_due.set()
        self._wake.set()

    def _loop(self) -> None:
        sessions: dict[str, requests.Session] = {}
        next_probe = next_record = 0.0
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(self.targets))), thread_name_prefix="probe") as pool:
            while not self.stop_event.is_set():
                now = time.monotonic()
                # Nothing may end this loop but stop(): a step that fails is logged and tried again next time.
                if now - self._inventory_read > INVENTORY_REFRESH_S:
                    self._inventory_read = now  # (a failed read keeps the hosts known so far)
                    _guard("inventory read", self._load_inventory)
                if now >= next_probe:
                    next_probe = now + self.probe_interval
                    _guard("probe", lambda: self._probe_round(pool, sessions))
                if now >= next_record or self._record_due.is_set():
                    next_record = now + self.probe_interval
                    self._record_due.clear()
                    _guard("store read", self._refresh_record)
                _guard("update", lambda: self._publish("live", self.live()))
                self._wake.wait(max(0.0, min(next_probe, next_record) - time.monotonic()))
                if self._wake.is_set():
                    self._wake.clear()
                    self.stop_event.wait(0.2)  # gather a burst of progress events into one update
        for session in sessions.values():
            session.close()

    def _probe_round(self, pool: ThreadPoolExecutor, sessions: dict[str, requests.Session]) -> None:
        targets = list(self.targets.values())
        for target in targets:
            sessions.setdefault(target.host, requests.Session())
        results = list(pool.map(lambda t: live_probe(t, self.probe_timeout, sessions[t.host]), targets))
        with self._lock:
            for row in results:
                host = row["host"]
                before = self._probes.get(host)
                if before is None or before["status"] != row["status"]:
                    self._since[host] = row["probed_at"]
                    if before is not None:
                        problems = "; ".join(row["problems"])
                        self._transitions.append(
                            {
                                "at": row["probed_at"],
                                "kind": "probe",
                                "summary": f"{host} {before['status']} -> {row['status']}"
                                + (f": {problems}" if problems else ""),
                                "ok": row["ok"],
                                "ref": host,
                            }
                        )
                        self._record_due.set()
                self._probes[host] = row
                if row["ok"]:
                    self._failing.pop(host, None)
                else:
                    self._failing.setdefault(host, row["probed_at"])
            self.probe_rounds += 1

    def _refresh_record(self) -> None:
        store: dict[str, Any] = {"ok": True, "url": self.store.display_url, "error": None}
        try:
            # A run whose process died (a killed CLI) is recorded abandoned, not counted running in /metrics.
            self.store.reconcile_runs()
            # The timeline: runs, incidents, actions, emergencies, notifications; of the audit trail only what
            # was done from the dashboard (the toolkit's own start/end records repeat the runs).
            events = self.store.events(limit=self.events_limit, kinds=set(EVENT_KINDS) - {"audit"})
            events += [
                _audit_event(entry)
                for entry in self.store.audit_trail(limit=self.events_limit)
                if entry["action"].startswith("dashboard ")
            ]
            stats = self.store.statistics()
            recent = self.store.incidents(since=utc_now() - timedelta(days=30))[:CHART_INCIDENTS]
            open_incidents = self.store.incidents(open_only=True)
            notifications = self.store.notifications(limit=10)
        except Exception as exc:  # the store is down or broken: say so, keep the last data, keep probing
            message = exc.message if isinstance(exc, ToolkitError) else f"{type(exc).__name__}: {exc}".splitlines()[0]
            store.update(ok=False, error=message[:500])
            with self._lock:
                self._record = {**self._record, "store": store}
            self._publish("record", self._record_with_transitions())
            return
        chart = [
            {
                "id": incident["id"],
                "at": incident["detected_at"],
                "failure_type": incident["failure_type"],
                "level": incident["level"],
                "status": incident["status"],
                "hosts": incident["hosts"],
                "detection_s": incident["detection_seconds"],
                "recovery_s": incident["recovery_seconds"],
            }
            for incident in reversed(recent)
        ]
        with self._lock:
            self._open_incidents = open_incidents
            self._record = {
                "store": store,
                "events": events,
                "stats": stats,
                "chart": chart,
                "notifications": [
                    {key: note[key] for key in ("notification_id", "title", "priority", "at", "status", "delivered_by")}
                    | {"attempts": len(note["attempts"])}
                    for note in notifications
                ],
                "open_incidents": [
                    {k: i[k] for k in ("id", "failure_type", "level", "hosts", "summary", "detected_at")}
                    for i in open_incidents
                ],
            }
        self._publish("record", self._record_with_transitions())

    def _record_with_transitions(self) -> dict[str, Any]:
        with self._lock:
            record = dict(self._record)
            transitions = list(self._transitions)
        merged = sorted([*(record.get("events") or []), *transitions], key=lambda e: e["at"] or "", reverse=True)
        record["events"] = merged[: self.events_limit]
        return record

    def record_health(self, result: ActionResult, *, source: str, at: datetime) -> None:
        """Keep the health rows of a health check (or of the check auto-recover started with) for the page."""
        with self._lock:
            for host, row in result.hosts.items():
                checks = row.get("checks") or {}
                self._checks[host] = {
                    "at": iso(at),
                    "source": source,
                    "status": row.get("status"),
                    "level": row.get("level"),
                    "level_name": row.get("level_name"),
                    "primary": row.get("primary"),
                    "summary": row.get("summary") or row.get("line"),
                    "plan": row.get("plan") or [],
                    "mode": row.get("mode"),
                    "emergency": row.get("emergency"),
                    "checks": [
                        {
                            "name": name,
                            "component": check.get("component"),
                            "status": check.get("status"),
                            "latency_ms": check.get("latency_ms"),
                            "error": check.get("error"),
                            "evidence": _evidence(check.get("evidence")),
                        }
                        for name, check in sorted(checks.items())
                        if isinstance(check, dict)
                    ],
                }
        self.changed()

    def failing_since(self, hosts: list[str]) -> dict[str, datetime]:
        """For each of ``hosts`` that the probes see failing: its first failed probe (the incident's start)."""
        with self._lock:
            return {host: parsed for host in hosts if (parsed := parse_iso(self._failing.get(host))) is not None}

    # -- what the pages get ----------------------------------------------------------------------------

    def host_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            probes = dict(self._probes)
            checks = dict(self._checks)
            since = dict(self._since)
            incidents = list(self._open_incidents)
        rows = []
        for host in self.hosts:
            probe = probes.get(host)
            check = checks.get(host)
            incident = next((i for i in incidents if host in i["hosts"]), None)
            mode = (probe or {}).get("mode")
            emergency = (probe or {}).get("emergency")
            as_of = None
            if (mode is None or emergency is None) and check is not None:  # the web process does not answer
                mode = mode or (check.get("mode") if check.get("mode") != "unknown" else None)
                emergency = emergency or check.get("emergency")
                as_of = check["at"]
            level = incident["level"] if incident else None
            rows.append(
                {
                    "host": host,
                    "status": probe["status"] if probe else "unknown",
                    "ok": bool(probe and probe["ok"]),
                    "since": since.get(host),
                    "probed_at": (probe or {}).get("probed_at"),
                    "latency_ms": (probe or {}).get("latency_ms"),
                    "problems": (probe or {}).get("problems", []),
                    "mode": mode or "unknown",
                    "emergency": _emergency(emergency),
                    "mode_as_of": as_of,
                    "incident": (
                        {k: incident[k] for k in ("id", "failure_type", "level", "summary", "detected_at")}
                        if incident
                        else None
                    ),
                    "level": level,
                    "level_name": LEVELS[level]["name"] if level in LEVELS else None,
                    "components": (probe or {}).get("components", []),
                    "last_check": check,
                    "web_url": self.targets[host].web_url if host in self.targets else None,
                }
            )
        return rows

    def live(self) -> dict[str, Any]:
        return {"hosts": self.host_rows(), "jobs": self.jobs.to_json(), "probe_interval_s": self.probe_interval}

    def record(self) -> dict[str, Any]:
        return self._record_with_transitions()

    def state(self) -> dict[str, Any]:
        versions = {name: self._parts[name][0] for name in PARTS}
        return {"live": self.live(), "record": self.record(), "versions": versions, "at": iso(utc_now())}

    def _publish(self, part: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, sort_keys=True, default=str)
        with self._cond:
            version, current = self._parts[part]
            if text != current:
                self._parts[part] = (version + 1, text)
                self._cond.notify_all()

    def stream(self, heartbeat: float = 15.0, alive: Any = None) -> Iterator[str]:
        """Server-sent events: every part at once, then each part whenever it changes; a comment line every
        ``heartbeat`` seconds keeps proxies from closing the stream. ``alive()`` false ends it."""
        sent = dict.fromkeys(PARTS, -1)
        yield "retry: 3000\n\n"
        while not self.stop_event.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self.stop_event.is_set() or any(self._parts[p][0] > sent[p] for p in PARTS),
                    timeout=heartbeat,
                )
                fresh = [(p, *self._parts[p]) for p in PARTS if self._parts[p][0] > sent[p]]
            if self.stop_event.is_set() or (alive is not None and not alive()):
                return
            if not fresh:
                yield ": keep-alive\n\n"
                continue
            for part, version, text in fresh:
                sent[part] = version
                yield f"event: {part}\nid: {version}\ndata: {text}\n\n"


def _guard(what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception:
        log.exception("dashboard monitor: %s failed; trying again next round", what)


def _audit_event(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit record of the dashboard as a timeline event (ok: succeeded True, failed or refused False)."""
    action = entry["action"]
    failed = action.endswith((" failed", " refused", " canceled"))
    ok = True if action.endswith(" succeeded") else False if failed else None
    return {
        "at": entry["at"],
        "kind": "audit",
        "summary": f"{entry['actor']} {action} {entry['target']}",
        "ok": ok,
        "ref": entry["id"],
    }


def _emergency(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("state") == "unknown":
        return None
    level = value.get("level")
    return {
        "active": bool(value.get("active")),
        "level": level,
        "level_name": LEVELS[level]["name"] if level in LEVELS else None,
        "reason": value.get("reason"),
        "triggered_by": value.get("triggered_by"),
        "since": value.get("since"),
    }


def _evidence(value: Any) -> str:
    """A short line of a check's evidence (the keys docs/health-result.md lists), without secrets."""
    if not isinstance(value, dict):
        return ""
    parts = []
    for key, item in value.items():
        if key in ("json",) or isinstance(item, dict | list):
            continue
        parts.append(f"{key}={item}")
    return ", ".join(parts)[:300]


__all__ = ["PARTS", "Dashboard", "secret_key"]
