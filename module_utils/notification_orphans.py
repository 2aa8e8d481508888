"""Find and stop the processes of a host that no process manager owns (orphans), read from /proc.

When a host's supervisord dies (killed, crashed), its programs go on running as orphans: nobody restarts them,
and they keep the host's ports, so a new supervisord's programs cannot start. Before a manager is started again
these processes are found and stopped (SIGTERM, a bounded wait, then SIGKILL).

A process belongs to the host when its command line names the host's root directory (the path itself or a
path under it, as every program of the host is started with ``--config <root>/etc/config.yml``, ``--dir
<root>/data`` or ``-c <root>/etc/supervisord.conf``), when it listens on one of the host's ports, or when a
pid file of the host names it and its command line names the root. It is an orphan unless it is the running
manager or one of its descendants. Never counted: this process and its ancestors (the Ansible worker and
whatever started it), zombies, kernel threads, processes of other users (unless running as root), and
processes with a controlling terminal that hold no port of the host (an operator's ``tail -f`` of a log).

Linux only (/proc). Shared by the ``notification_services`` module and the drills' tests. Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable  # noqa: UP035 (Python 3.8 on managed hosts)

PROC = "/proc"
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass
class ProcessInfo:
    pid: int
    ppid: int
    state: str  # R, S, D, Z, T ...
    uid: int
    tty: int
    argv: list[str]

    @property
    def command(self) -> str:
        return " ".join(self.argv)


@dataclass
class Orphan:
    pid: int
    command: str
    why: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.pid} {self.command[:200]} ({', '.join(self.why)})"


def read_process(pid: int, proc: str = PROC) -> ProcessInfo | None:
    """One process from /proc, or None when it is gone (or unreadable)."""
    try:
        with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
        uid = os.stat(f"{proc}/{pid}").st_uid
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session tty_nr ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return ProcessInfo(pid, int(fields[1]), fields[0], uid, int(fields[4]), argv)
    except (IndexError, ValueError):
        return None


def processes(proc: str = PROC) -> dict[int, ProcessInfo]:
    found: dict[int, ProcessInfo] = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            info = read_process(int(entry), proc)
            if info is not None:
                found[info.pid] = info
    return found


def alive(pid: int, proc: str = PROC) -> bool:
    """Whether ``pid`` still runs (a zombie does not: it holds nothing and waits for its parent to reap it)."""
    info = read_process(pid, proc)
    return info is not None and info.state not in ("Z", "X")


def listening_ports(ports: Iterable[int], proc: str = PROC) -> dict[str, int]:
    """Socket inodes listening on one of ``ports`` (TCP, IPv4 and IPv6): inode -> port."""
    wanted = {int(port) for port in ports}
    inodes: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{table}", encoding="ascii") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != LISTEN:
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                inodes[parts[9]] = port
    return inodes


def port_holders(ports: Iterable[int], pids: Iterable[int], proc: str = PROC) -> dict[int, list[int]]:
    """Which of ``pids`` hold a listening socket on one of ``ports``: pid -> ports."""
    inodes = listening_ports(ports, proc)
    holders: dict[int, list[int]] = {}
    if not inodes:
        return holders
    for pid in pids:
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holders.setdefault(pid, []).append(inodes[target[8:-1]])
    return {pid: sorted(set(found)) for pid, found in holders.items()}


def names_root(argv: list[str], root: str) -> bool:
    """Whether a command line names ``root`` or a path under it (``/srv/a`` does not name ``/srv/ab``)."""
    root = root.rstrip("/") or "/"
    pattern = re.compile(r"(^|[=:'\"\s])" + re.escape(root) + r"(/|$|[\s'\"])")
    return any(pattern.search(arg) for arg in argv)


def read_pid_files(paths: Iterable[str]) -> dict[int, str]:
    """pid -> the pid file naming it (files that are missing or hold no number are skipped)."""
    found: dict[int, str] = {}
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            found[int(text)] = path
    return found


def _ancestors(pid: int, table: dict[int, ProcessInfo]) -> list[int]:
    chain: list[int] = []
    while pid in table and pid not in chain and pid > 1:
        chain.append(pid)
        pid = table[pid].ppid
    return chain


def find_orphans(
    root: str,
    ports: Iterable[int] = (),
    pid_files: Iterable[str] = (),
    managers: Iterable[int] = (),
    proc: str = PROC,
) -> list[Orphan]:
    """The host's processes that none of ``managers`` (the pids of the running process managers) owns."""
    table = processes(proc)
    me = os.getpid()
    protected = set(_ancestors(me, table)) | {me, os.getppid()}
    owners = {int(pid) for pid in managers}
    my_uid = os.geteuid()
    candidates = [
        info
        for info in table.values()
        if info.pid not in protected
        and info.argv  # kernel threads have no command line
        and info.state not in ("Z", "X")
        and (my_uid == 0 or info.uid == my_uid)
    ]
    holders = port_holders(ports, [info.pid for info in candidates], proc)
    pid_file_of = read_pid_files(pid_files)
    orphans: list[Orphan] = []
    for info in candidates:
        if owners & set(_ancestors(info.pid, table)):
            continue  # the manager itself, or a process it runs
        named = names_root(info.argv, root)
        held = holders.get(info.pid, [])
        if not held and (not named or info.tty != 0):
            continue
        why = []
        if named:
            why.append(f"command line names {root}")
        if held:
            why.append("listens on port " + ", ".join(str(port) for port in held))
        if info.pid in pid_file_of:
            why.append(f"pid file {pid_file_of[info.pid]}")
        orphans.append(Orphan(info.pid, info.command, why, held))
    return sorted(orphans, key=lambda orphan: orphan.pid)


def stop_processes(
    pids: Iterable[int],
    grace: float,
    kill_wait: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    proc: str = PROC,
) -> dict[str, list[int]]:
    """SIGTERM to every pid, up to ``grace`` seconds for them to end, then SIGKILL to the ones left and up
    to ``kill_wait`` more. Returns the pids that ended on ``terminated``, were ``killed``, and ``survived``."""
    pending = [pid for pid in pids if alive(pid, proc)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    if _wait_gone(pending, grace, sleep, proc):
        return {"terminated": pending, "killed": [], "survived": []}
    left = [pid for pid in pending if alive(pid, proc)]
    for pid in left:
        _signal(pid, signal.SIGKILL)
    _wait_gone(left, kill_wait, sleep, proc)
    survived = [pid for pid in left if alive(pid, proc)]
    return {
        "terminated": [pid for pid in pending if pid not in left],
        "killed": [pid for pid in left if pid not in survived],
        "survived": survived,
    }


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _wait_gone(pids: list[int], seconds: float, sleep: Callable[[float], None], proc: str) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(pid, proc) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        sleep(0.05)
    return True


def orphan_diff(orphans: list[Orphan], root: str) -> dict[str, str]:
    """Ansible's diff: the orphans before, none after."""
    before = "".join(orphan.line() + "\n" for orphan in orphans)
    return {"before_header": f"processes of {root} outside a manager", "before": before, "after": ""}


def programs_to_run(backend: Any) -> list[str]:
    """The programs a supervisord starts by itself (autostart), by the name its process calls take."""
    names = []
    for config in backend.rpc("supervisor.getAllConfigInfo"):
        if config.get("autostart"):
            group, name = str(config["group"]), str(config["name"])
            names.append(name if group == name else f"{group}:{name}")
    return sorted(names)


def program_states(backend: Any) -> dict[str, tuple[str, str]]:
    """Every program's (state, description), by the name its process calls take."""
    states = {}
    for info in backend.rpc("supervisor.getAllProcessInfo"):
        group, name = str(info["group"]), str(info["name"])
        states[name if group == name else f"{group}:{name}"] = (
            str(info.get("statename")),
            str(info.get("description") or ""),
        )
    return states


def start_stopped(backend: Any, check_mode: bool) -> list[str]:
    """Start (without waiting) the programs supervisord should run but does not: FATAL ones (it never retries
    them by itself), STOPPED and EXITED ones. Returns their names; in check mode nothing is started."""
    import xmlrpc.client

    states = program_states(backend)
    names = [name for name in programs_to_run(backend) if states.get(name, ("",))[0] in ("FATAL", "STOPPED", "EXITED")]
    for name in [] if check_mode else names:
        try:
            backend.rpc("supervisor.startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != 60:  # ALREADY_STARTED: started by someone else meanwhile
                raise
    return names


def wait_all_running(backend: Any, timeout: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """Wait until every program supervisord starts by itself is RUNNING; program -> state. Raises
    ``ServiceControlError`` naming the programs that are not, when one gave up (FATAL) or time ran out."""
    from ansible.module_utils.notification_services import ServiceControlError

    wanted = programs_to_run(backend)
    deadline = time.monotonic() + timeout
    while True:
        states = program_states(backend)
        bad = {name: states.get(name, ("ABSENT", "")) for name in wanted if states.get(name, ("",))[0] != "RUNNING"}
        if not bad:
            return {name: states[name][0] for name in wanted}
        gave_up = any(state == "FATAL" for state, _detail in bad.values())
        if gave_up or time.monotonic() > deadline:
            shown = "; ".join(
                f"{name} {state}" + (f" ({text})" if text else "") for name, (state, text) in sorted(bad.items())
            )
            why = "supervisord gave up" if gave_up else f"after {timeout:g}s"
            raise ServiceControlError(f"not every program of {backend.config} runs ({why}): {shown}")
        sleep(0.2)


def missing_logs(backend: Any) -> list[str]:
    """The log files of running programs that no longer exist (their directory was removed and re-created):
    supervisord goes on writing into the deleted files until it reopens its logs."""
    missing = []
    for info in backend.rpc("supervisor.getAllProcessInfo"):
        if info.get("statename") != "RUNNING":
            continue
        for key in ("stdout_logfile", "stderr_logfile"):
            path = str(info.get(key) or "")
            if path.startswith("/") and not os.path.exists(path):
                missing.append(path)
    return sorted(set(missing))


def reopen_logs(backend: Any) -> None:
    """SIGUSR2 to supervisord: it closes and reopens its own log and every program's, by path."""
    os.kill(int(backend.rpc("supervisor.getPID")), signal.SIGUSR2)
