"""Control the notification service's processes under supervisord or systemd.

Shared by the ``notification_services`` module (and later the health and recovery modules).
Every backend answers the same questions: is the manager reachable, what state is each service in,
and how to start, stop or restart one. Commands run through ``AnsibleModule.run_command`` so the
module's check mode, logging and environment apply; nothing here writes files.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# run_command(args) -> (rc, stdout, stderr)
Runner = Callable[[list[str]], tuple[int, str, str]]

RUNNING_STATES = frozenset({"RUNNING", "STARTING"})
SUPERVISOR_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<rest>.*)$")
PID_RE = re.compile(r"pid (\d+)")


class ServiceControlError(Exception):
    """A failure that the module reports with ``fail_json``; the message says what to do."""


@dataclass
class ServiceState:
    name: str
    state: str  # RUNNING, STOPPED, FATAL ... (supervisord) or active, inactive, failed (systemd)
    running: bool
    pid: int | None = None
    enabled: bool | None = None
    detail: str = ""
    actions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SupervisorBackend:
    """supervisord through ``supervisorctl -c <config>`` (one private supervisord per sandbox host)."""

    def __init__(
        self,
        run: Runner,
        config: str,
        supervisorctl: str,
        supervisord: str,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run = run
        self.config = config
        self.supervisorctl = supervisorctl
        self.supervisord = supervisord
        self.timeout = timeout
        self.sleep = sleep

    def ctl(self, *args: str) -> tuple[int, str, str]:
        return self.run([self.supervisorctl, "-c", self.config, *args])

    def reachable(self) -> bool:
        rc, out, _ = self.ctl("pid")
        return rc == 0 and out.strip().isdigit()

    def start_daemon(self) -> None:
        if not os.path.exists(self.config):
            raise ServiceControlError(
                f"supervisor_config {self.config} does not exist; deploy the supervisord configuration first"
            )
        rc, out, err = self.run([self.supervisord, "-c", self.config])
        if rc != 0:
            raise ServiceControlError(f"supervisord -c {self.config} failed (rc={rc}): {(err or out).strip()}")
        deadline = time.monotonic() + self.timeout
        while not self.reachable():
            if time.monotonic() > deadline:
                raise ServiceControlError(
                    f"supervisord started with {self.config} but did not answer within {self.timeout:g}s; "
                    "see its logfile"
                )
            self.sleep(0.1)

    def pending_updates(self) -> list[str]:
        """Program definitions that changed on disk (supervisorctl reread); read-only for processes."""
        rc, out, err = self.ctl("reread")
        if rc != 0:
            raise ServiceControlError(f"supervisorctl reread failed: {(err or out).strip()}")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return [line for line in lines if line != "No config updates to processes"]

    def update(self) -> list[str]:
        rc, out, err = self.ctl("update")
        if rc != 0:
            raise ServiceControlError(f"supervisorctl update failed: {(err or out).strip()}")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def status(self, name: str) -> ServiceState:
        rc, out, err = self.ctl("status", name)
        text = (out or err).strip()
        if "no such process" in text.lower() or "no such group" in text.lower():
            raise ServiceControlError(
                f"service {name} is not defined in {self.config}; check the services list or deploy its program file"
            )
        match = SUPERVISOR_STATUS.match(text.splitlines()[0] if text else "")
        if not match:
            raise ServiceControlError(f"cannot read the state of {name} from supervisorctl (rc={rc}): {text}")
        state = match.group("state")
        pid = PID_RE.search(match.group("rest"))
        return ServiceState(
            name=name,
            state=state,
            running=state in RUNNING_STATES,
            pid=int(pid.group(1)) if pid else None,
            detail=match.group("rest").strip(),
        )

    def _act(self, verb: str, name: str) -> None:
        rc, out, err = self.ctl(verb, name)
        text = (out + err).strip()
        if rc != 0 and "already started" not in text and "not running" not in text:
            tail = self.ctl("tail", name, "stderr")[1].strip().splitlines()[-5:]
            hint = ("; last stderr lines: " + " | ".join(tail)) if tail else ""
            raise ServiceControlError(f"supervisorctl {verb} {name} failed: {text}{hint}")

    def start(self, name: str) -> None:
        self._act("start", name)

    def stop(self, name: str) -> None:
        self._act("stop", name)

    def restart(self, name: str) -> None:
        self._act("restart", name)


class SystemdBackend:
    """systemd through ``systemctl`` (production hosts)."""

    def __init__(self, run: Runner, systemctl: str) -> None:
        self.run = run
        self.systemctl = systemctl

    def reachable(self) -> bool:
        rc, _, _ = self.run([self.systemctl, "is-system-running"])
        # rc 1 with "degraded" still means systemd answers.
        return rc in (0, 1)

    def daemon_reload(self) -> None:
        rc, out, err = self.run([self.systemctl, "daemon-reload"])
        if rc != 0:
            raise ServiceControlError(f"systemctl daemon-reload failed: {(err or out).strip()}")

    def status(self, name: str) -> ServiceState:
        rc, out, _ = self.run(
            [self.systemctl, "show", name, "--property=LoadState,ActiveState,SubState,MainPID,UnitFileState"]
        )
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if rc != 0 or props.get("LoadState") == "not-found":
            raise ServiceControlError(
                f"unit {name} is not installed; deploy its unit file (notification_service role) first"
            )
        active = props.get("ActiveState", "unknown")
        pid = int(props.get("MainPID", "0") or 0)
        return ServiceState(
            name=name,
            state=active,
            running=active in ("active", "activating", "reloading"),
            pid=pid or None,
            enabled=props.get("UnitFileState") in ("enabled", "enabled-runtime", "static"),
            detail=props.get("SubState", ""),
        )

    def _act(self, verb: str, name: str) -> None:
        rc, out, err = self.run([self.systemctl, verb, name])
        if rc != 0:
            raise ServiceControlError(
                f"systemctl {verb} {name} failed: {(err or out).strip()}; see journalctl -u {name}"
            )

    def start(self, name: str) -> None:
        self._act("start", name)

    def stop(self, name: str) -> None:
        self._act("stop", name)

    def restart(self, name: str) -> None:
        self._act("restart", name)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._act("enable" if enabled else "disable", name)


def wait_running(
    backend: SupervisorBackend | SystemdBackend,
    name: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> ServiceState:
    """Wait until ``name`` leaves STARTING/activating; fail with its state if it does not run."""
    deadline = time.monotonic() + timeout
    while True:
        current = backend.status(name)
        if current.state in ("RUNNING", "active"):
            return current
        if current.state in ("FATAL", "BACKOFF", "EXITED", "failed") or time.monotonic() > deadline:
            raise ServiceControlError(
                f"service {name} did not reach running within {timeout:g}s (state {current.state} "
                f"{current.detail}); see its log"
            )
        sleep(0.1)


def converge(
    backend: SupervisorBackend | SystemdBackend,
    services: list[str],
    state: str,
    enabled: bool | None,
    check_mode: bool,
    wait_timeout: float,
    update: bool = True,
    start_daemon: bool = False,
) -> tuple[bool, dict[str, dict[str, Any]], list[str]]:
    """Bring ``services`` to ``state``; returns (changed, per-service result, manager actions)."""
    changed = False
    manager_actions: list[str] = []

    if isinstance(backend, SupervisorBackend):
        if not backend.reachable():
            if state == "stopped":
                # Nothing runs without its supervisord: already in the wanted state.
                return (
                    False,
                    {n: ServiceState(n, "STOPPED", False).as_dict() for n in services},
                    ["supervisord not running"],
                )
            if not start_daemon:
                raise ServiceControlError(
                    f"supervisord is not running for {backend.config}; start it or set supervisord_start=true"
                )
            changed = True
            manager_actions.append("started supervisord")
            if check_mode:
                return (
                    True,
                    {n: ServiceState(n, "STOPPED", False, actions=["start"]).as_dict() for n in services},
                    (manager_actions),
                )
            backend.start_daemon()
        if update:
            pending = backend.pending_updates()
            if pending:
                changed = True
                manager_actions.extend(pending)
                if not check_mode:
                    backend.update()

    results: dict[str, dict[str, Any]] = {}
    for name in services:
        try:
            current = backend.status(name)
        except ServiceControlError:
            if check_mode and manager_actions:
                # The program is added by the pending update; in check mode it does not exist yet.
                results[name] = ServiceState(name, "ABSENT", False, actions=["add", state]).as_dict()
                continue
            raise
        actions: list[str] = []
        if state == "started" and not current.running:
            actions.append("start")
        elif state == "stopped" and (current.running or current.state == "BACKOFF"):
            actions.append("stop")
        elif state == "restarted":
            actions.append("restart" if current.running else "start")
        if isinstance(backend, SystemdBackend) and enabled is not None and current.enabled != enabled:
            actions.append("enable" if enabled else "disable")

        if actions and not check_mode:
            for action in actions:
                if action in ("enable", "disable"):
                    assert isinstance(backend, SystemdBackend)
                    backend.set_enabled(name, action == "enable")
                else:
                    getattr(backend, action)(name)
            if state in ("started", "restarted"):
                current = wait_running(backend, name, wait_timeout)
            else:
                current = backend.status(name)
        elif state in ("started", "restarted") and not check_mode and current.state in ("STARTING", "activating"):
            # Started by a program update or by someone else a moment ago: report it once it runs.
            current = wait_running(backend, name, wait_timeout)
        current.actions = actions
        changed = changed or bool(actions)
        results[name] = current.as_dict()
    return changed, results, manager_actions
