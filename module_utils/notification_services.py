"""Control the notification service's processes under supervisord or systemd.

Shared by the ``notification_services`` module and the health module's process checks. Every backend
answers the same questions: is the manager reachable, what state is each service in, and how to start,
stop or restart one. Nothing here writes files.

supervisord is asked directly over its XML-RPC interface (the unix socket or the HTTP server that the
configuration file names), with the standard library only: no ``supervisorctl`` process per question, and
no need for the ``supervisor`` package in the Python that runs the module. Only a configuration that names
neither a unix socket nor a ``serverurl`` is still driven through ``supervisorctl``, and supervisord itself
is started as a process. systemd commands run through the runner (``AnsibleModule.run_command`` in the
module), so the module's check mode, logging and environment apply.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import xmlrpc.client
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, List, Tuple  # noqa: UP035 (Python 3.8 on managed hosts)
from xml.parsers.expat import ExpatError

from ansible.module_utils.notification_resume import continue_program

# Re-exported for the module, the health checks and the tests, which import them from here.
from ansible.module_utils.notification_supervisor_endpoint import (
    ServiceControlError,
    SupervisorEndpoint,
    SupervisorTransport,
    SupervisorUnreachable,
    read_endpoint,
)

# run_command(args) -> (rc, stdout, stderr)
# A runtime alias: typing's generics, since list[str] fails on Python 3.8 (managed hosts).
Runner = Callable[[List[str]], Tuple[int, str, str]]  # noqa: UP006

RUNNING_STATES = frozenset({"RUNNING", "STARTING"})
SUPERVISOR_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<rest>.*)$")
PID_RE = re.compile(r"pid (\d+)")

# supervisord's XML-RPC fault codes (supervisor.xmlrpc.Faults).
SHUTDOWN_STATE = 6
BAD_NAME = 10
NO_FILE = 20
NOT_EXECUTABLE = 21
FAILED = 30
ABNORMAL_TERMINATION = 40
SPAWN_ERROR = 50
ALREADY_STARTED = 60
NOT_RUNNING = 70
ALREADY_ADDED = 90
STILL_RUNNING = 91
CANT_REREAD = 92
# What supervisorctl prints for a fault: "<name>: ERROR (<text>)".
FAULT_TEXT = {
    SHUTDOWN_STATE: "supervisor shutting down",
    BAD_NAME: "no such process",
    NO_FILE: "no such file",
    NOT_EXECUTABLE: "file is not executable",
    ABNORMAL_TERMINATION: "abnormal termination",
    SPAWN_ERROR: "spawn error",
    ALREADY_STARTED: "already started",
    NOT_RUNNING: "not running",
    STILL_RUNNING: "still running",
}
RPC_PATH = "/RPC2"
STDERR_TAIL_BYTES = 1600  # what supervisorctl tail shows


class SupervisorTimeout(ServiceControlError):
    """supervisord accepted the connection but did not answer in time."""


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
    """One private supervisord (per sandbox host or container), asked over XML-RPC.

    ``timeout`` bounds the wait for a started supervisord and each quick question (state, reread, pid);
    starting and stopping wait as long as supervisord takes (its startsecs, stopwaitsecs), as supervisorctl
    does. A caller with its own deadline passes ``call_timeout`` (seconds left, asked before every call) and
    ``on_timeout`` (the exception to raise when a call runs out of it). ``run`` runs ``supervisord`` and, for
    a config that names no socket and no serverurl, ``supervisorctl``.
    """

    def __init__(
        self,
        run: Runner,
        config: str,
        supervisorctl: str | None,
        supervisord: str | None,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        call_timeout: Callable[[], float] | None = None,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> None:
        self.run = run
        self.config = config
        self.supervisorctl = supervisorctl
        self.supervisord = supervisord
        self.timeout = timeout
        self.sleep = sleep
        self.call_timeout = call_timeout
        self.on_timeout = on_timeout
        self._endpoint: SupervisorEndpoint | None = None
        self._endpoint_read = False

    # -- where and how to ask ------------------------------------------------------------------------------

    def endpoint(self) -> SupervisorEndpoint | None:
        """The XML-RPC endpoint of ``config`` (read once); None when only supervisorctl can find supervisord."""
        if not self._endpoint_read:
            self._endpoint = read_endpoint(self.config)
            self._endpoint_read = True
        return self._endpoint

    def rpc(self, method: str, *args: Any, wait: bool = False) -> Any:
        """Call ``method`` on supervisord; faults are raised as ``xmlrpc.client.Fault`` for the caller to read.

        ``wait``: the call lasts as long as a process takes to start or stop.
        """
        endpoint = self.endpoint()
        if endpoint is None:
            raise ServiceControlError(f"{self.config} names no supervisord socket; cannot call {method}")
        if self.call_timeout is not None:
            timeout: float | None = self.call_timeout()
        else:
            timeout = None if wait else self.timeout
        transport = SupervisorTransport(endpoint, timeout)
        proxy = xmlrpc.client.ServerProxy(f"http://localhost{RPC_PATH}", transport=transport)
        try:
            return getattr(proxy, method)(*args)
        except xmlrpc.client.Fault:
            raise
        except TimeoutError:  # socket.timeout
            if self.on_timeout is not None:
                raise self.on_timeout() from None
            within = f" within {timeout:g}s" if timeout is not None else ""
            raise SupervisorTimeout(
                f"supervisord at {endpoint.url} did not answer {method}{within}; see its logfile"
            ) from None
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorUnreachable(
                f"supervisord is not running for {self.config}: cannot connect to {endpoint.url} ({exc.strerror})"
            ) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                raise ServiceControlError(
                    f"supervisord at {endpoint.url} refused the credentials; set username and password in the "
                    f"[supervisorctl] section of {self.config}"
                ) from None
            raise ServiceControlError(
                f"supervisord at {endpoint.url} answered {method} with HTTP {exc.errcode} {exc.errmsg}"
            ) from None
        except (OSError, http.client.HTTPException, ExpatError, xmlrpc.client.ResponseError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ServiceControlError(f"cannot talk to supervisord at {endpoint.url} ({method}): {detail}") from None
        finally:
            transport.close()

    def ctl(self, *args: str) -> tuple[int, str, str]:
        """``supervisorctl -c <config> args`` (only for a config that names no socket and no serverurl)."""
        if not self.supervisorctl:
            raise ServiceControlError(
                f"{self.config} names no supervisord socket ([unix_http_server] file or [supervisorctl] serverurl) "
                "and supervisorctl not found; install supervisor or set bin_dir"
            )
        return self.run([self.supervisorctl, "-c", self.config, *args])

    # -- the daemon -------------------------------------------------------------------------------------------

    def reachable(self) -> bool:
        """Whether supervisord answers (``supervisorctl pid``); False when its socket is missing or refuses."""
        try:
            endpoint = self.endpoint()
        except SupervisorUnreachable:
            return False
        if endpoint is None:
            rc, out, _err = self.ctl("pid")
            return rc == 0 and out.strip().isdigit()
        try:
            self.rpc("supervisor.getPID")
        except SupervisorUnreachable:
            return False
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == SHUTDOWN_STATE:  # on its way out
                return False
            raise ServiceControlError(
                f"supervisord at {endpoint.url} does not answer supervisor.getPID: {_fault_text(fault)}; "
                f"does {self.config} have the [rpcinterface:supervisor] section?"
            ) from None
        return True

    def start_daemon(self) -> None:
        if not os.path.exists(self.config):
            raise ServiceControlError(
                f"supervisor_config {self.config} does not exist; deploy the supervisord configuration first"
            )
        if not self.supervisord:
            raise ServiceControlError("supervisord not found; install supervisor or set bin_dir to its directory")
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

    # -- program definitions ---------------------------------------------------------------------------------

    def _reload_config(self, verb: str) -> tuple[list[str], list[str], list[str]]:
        try:
            result = self.rpc("supervisor.reloadConfig")
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == CANT_REREAD:
                raise ServiceControlError(
                    f"supervisord {verb} failed: ERROR: {fault.faultString}; fix the program files"
                ) from None
            raise ServiceControlError(f"supervisord {verb} failed: {_fault_text(fault)}") from None
        added, changed, removed = result[0]
        return list(added), list(changed), list(removed)

    def pending_updates(self) -> list[str]:
        """Program definitions that changed on disk (supervisorctl reread); read-only for processes."""
        if self.endpoint() is None:
            rc, out, err = self.ctl("reread")
            if rc != 0:
                raise ServiceControlError(f"supervisorctl reread failed: {(err or out).strip()}")
            lines = [line.strip() for line in out.splitlines() if line.strip()]
            return [line for line in lines if line != "No config updates to processes"]
        added, changed, removed = self._reload_config("reread")
        changes: dict[str, str] = {}
        for names, word in ((added, "available"), (changed, "changed"), (removed, "disappeared")):
            changes.update(dict.fromkeys(names, word))
        return [f"{name}: {changes[name]}" for name in sorted(changes)]

    def update(self) -> list[str]:
        """Apply changed program definitions (supervisorctl update); returns the lines supervisorctl prints."""
        if self.endpoint() is None:
            rc, out, err = self.ctl("update")
            if rc != 0:
                raise ServiceControlError(f"supervisorctl update failed: {(err or out).strip()}")
            return [line.strip() for line in out.splitlines() if line.strip()]
        added, changed, removed = self._reload_config("update")
        lines: list[str] = []
        for group in removed:
            results = self._update_step("stopProcessGroup", group, lines)
            lines.append(f"{group}: stopped")
            fails = [result for result in results if result.get("status") == FAILED]
            if fails:
                detail = "; ".join(str(result.get("description", "")) for result in fails)
                raise ServiceControlError(
                    f"supervisord update failed: {group}: has problems; not removing ({detail}); "
                    f"done so far: {', '.join(lines)}"
                )
            self._update_step("removeProcessGroup", group, lines)
            lines.append(f"{group}: removed process group")
        for group in changed:
            self._update_step("stopProcessGroup", group, lines)
            lines.append(f"{group}: stopped")
            self._update_step("removeProcessGroup", group, lines)
            self._update_step("addProcessGroup", group, lines)
            lines.append(f"{group}: updated process group")
        for group in added:
            self._update_step("addProcessGroup", group, lines)
            lines.append(f"{group}: added process group")
        return lines

    def _update_step(self, method: str, group: str, lines: list[str]) -> Any:
        try:
            # stopProcessGroup waits (its default, as in supervisorctl) until the group's processes stopped.
            return self.rpc(f"supervisor.{method}", group, wait=True)
        except xmlrpc.client.Fault as fault:
            if method == "stopProcessGroup" and fault.faultCode == NOT_RUNNING:
                return []
            done = f"; done so far: {', '.join(lines)}" if lines else ""
            raise ServiceControlError(
                f"supervisord update failed: {method} {group}: {_fault_text(fault, group)}{done}"
            ) from None

    # -- processes -------------------------------------------------------------------------------------------

    def _not_defined(self, name: str) -> ServiceControlError:
        return ServiceControlError(
            f"service {name} is not defined in {self.config}; check the services list or deploy its program file"
        )

    def status(self, name: str) -> ServiceState:
        if self.endpoint() is None:
            return self._ctl_status(name)
        try:
            info = self.rpc("supervisor.getProcessInfo", name)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == BAD_NAME:
                raise self._not_defined(name) from None
            raise ServiceControlError(
                f"cannot read the state of {name} from supervisord: {_fault_text(fault, name)}"
            ) from None
        state = str(info.get("statename", ""))
        return ServiceState(
            name=name,
            state=state,
            running=state in RUNNING_STATES,
            pid=int(info.get("pid") or 0) or None,
            detail=str(info.get("description", "")).strip(),
        )

    def _ctl_status(self, name: str) -> ServiceState:
        rc, out, err = self.ctl("status", name)
        text = (out or err).strip()
        if "no such process" in text.lower() or "no such group" in text.lower():
            raise self._not_defined(name)
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

    def stderr_tail(self, name: str, lines: int = 5) -> list[str]:
        """The last lines of the program's stderr log (supervisorctl tail name stderr); empty when there is none."""
        try:
            text = self.rpc("supervisor.readProcessStderrLog", name, -STDERR_TAIL_BYTES, 0)
        except (xmlrpc.client.Fault, ServiceControlError):
            return []
        return [line for line in str(text).strip().splitlines() if line.strip()][-lines:]

    def _signal(self, verb: str, name: str) -> None:
        """startProcess or stopProcess, waiting for the outcome; already started / not running are no errors."""
        method = "supervisor.startProcess" if verb == "start" else "supervisor.stopProcess"
        try:
            self.rpc(method, name, True, wait=True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode in (ALREADY_STARTED, NOT_RUNNING):
                return
            tail = self.stderr_tail(name)
            hint = ("; last stderr lines: " + " | ".join(tail)) if tail else ""
            raise ServiceControlError(
                f"supervisord could not {verb} {name}: {_fault_text(fault, name)}{hint}"
            ) from None

    def _act(self, verb: str, name: str) -> None:
        if self.endpoint() is None:
            self._ctl_act(verb, name)
        elif verb == "restart":
            self._signal("stop", name)
            self._signal("start", name)
        else:
            self._signal(verb, name)

    def _ctl_act(self, verb: str, name: str) -> None:
        rc, out, err = self.ctl(verb, name)
        text = (out + err).strip()
        if rc != 0 and "already started" not in text and "not running" not in text:
            tail = self.ctl("tail", name, "stderr")[1].strip().splitlines()[-5:]
            hint = ("; last stderr lines: " + " | ".join(tail)) if tail else ""
            raise ServiceControlError(f"supervisorctl {verb} {name} failed: {text}{hint}")

    def start(self, name: str) -> None:
        self._act("start", name)

    def stop(self, name: str) -> None:
        continue_program(self, name)  # a SIGSTOPped program handles no SIGTERM (notification_resume)
        self._act("stop", name)

    def restart(self, name: str) -> None:
        continue_program(self, name)
        self._act("restart", name)


def _fault_text(fault: xmlrpc.client.Fault, name: str = "") -> str:
    """A fault as supervisorctl words it (``ERROR (spawn error)``), with what supervisord adds to it."""
    text = FAULT_TEXT.get(fault.faultCode)
    detail = str(fault.faultString or "").strip()
    code_name, _sep, rest = detail.partition(": ")
    if rest and re.fullmatch(r"[A-Z_]+", code_name):
        detail = rest.strip()  # "SPAWN_ERROR: crasher" -> "crasher"
    if detail == name:
        detail = ""
    if text and detail:
        return f"ERROR ({text}: {detail})"
    return f"ERROR ({text or detail or f'fault {fault.faultCode}'})"


class SystemdBackend:
    """systemd through ``systemctl`` (production hosts)."""

    def __init__(self, run: Runner, systemctl: str) -> None:
        self.run = run
        self.systemctl = systemctl

    def reachable(self) -> bool:
        rc, out, _err = self.run([self.systemctl, "is-system-running"])
        # rc 1 with "degraded" still means systemd answers; "offline" (no bus: systemd is not running) does not.
        return rc in (0, 1) and out.strip() not in ("", "offline", "unknown")

    def daemon_reload(self) -> None:
        rc, out, err = self.run([self.systemctl, "daemon-reload"])
        if rc != 0:
            raise ServiceControlError(f"systemctl daemon-reload failed: {(err or out).strip()}")

    def status(self, name: str) -> ServiceState:
        rc, out, _err = self.run(
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
                    if not isinstance(backend, SystemdBackend):
                        raise TypeError("enable and disable are systemd actions")
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
