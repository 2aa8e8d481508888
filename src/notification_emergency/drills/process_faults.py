"""Faults of the process manager: a program supervisord gives up on (a bad command, a removed log directory)
and a killed supervisord whose programs go on as orphans. Each undo leaves the host as it was before the
fault even when the recovery failed: the program definition and the log directory restored, supervisord
running every program, no process of the host outside it, the host's ports held only by its programs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from notification_emergency.drills.sandbox import SandboxHost, Undo
from notification_emergency.errors import BadInput

WEBSOCKET = "notification-websocket"
ASIDE = ".log-removed-by-drill"  # where log_dir_removed keeps the host's logs while the drill runs


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, Z ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return sorted(found)


def supervisord_pid(host: SandboxHost) -> int | None:
    """The pid of the host's supervisord when it answers, else None."""
    answer = host.supervisorctl("pid").strip()
    return int(answer) if answer.isdigit() and answer != "0" else None


def _terminate(pids: list[int], grace: float = 10.0) -> None:
    for number, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = [pid for pid in pids if alive(pid)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
        deadline = time.monotonic() + wait
        while any(alive(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.05)


def _statuses(host: SandboxHost) -> dict[str, str]:
    lines = host.supervisorctl("status").splitlines()
    return {parts[0]: parts[1] for parts in (line.split() for line in lines) if len(parts) >= 2}


def managed_and_running(host: SandboxHost, timeout: float = 60.0) -> None:
    """supervisord running (started when it is not), its definitions applied, every program started and
    RUNNING; raises BadInput naming what is not."""
    if supervisord_pid(host) is None:
        conf = host.root / "etc" / "supervisord.conf"
        subprocess.run([str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)], check=False, timeout=60)
    deadline = time.monotonic() + timeout
    while supervisord_pid(host) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    host.supervisorctl("update")
    host.supervisorctl("start", "all")
    while True:
        states = _statuses(host)
        if states and all(state == "RUNNING" for state in states.values()):
            return
        if time.monotonic() > deadline:
            raise BadInput(f"{host.target.host}: not every program runs after the drill's undo: {states}")
        if any(state in ("FATAL", "STOPPED", "EXITED") for state in states.values()):
            host.supervisorctl("start", "all")
        time.sleep(0.2)


def websocket_crash_loop(host: SandboxHost) -> Undo:
    """The WebSocket program's definition gets a command that exits at once (an option the service does not
    know), applied with supervisorctl update: supervisord retries, then gives up (FATAL "Exited too quickly")."""
    path = host.root / "etc" / "supervisor.d" / f"{WEBSOCKET}.conf"
    original = path.read_bytes()
    bad, count = re.subn(r"(?m)^(command=.*)$", r"\1 --no-such-option", original.decode())
    if count != 1:
        raise BadInput(f"{path} has no command= line to break")
    path.write_text(bad)
    host.supervisorctl("update")

    def undo() -> None:
        if path.read_bytes() != original:  # the recovery did not put it back: do it
            path.write_bytes(original)
        managed_and_running(host)

    return undo


def log_dir_removed(host: SandboxHost) -> Undo:
    """The host's log directory goes away (moved aside, so that the drill can put every line back) and the
    WebSocket program is restarted: supervisord cannot open its log (spawn error, ENOENT) and gives up."""
    log_dir, aside = host.root / "log", host.root / ASIDE
    if os.path.ismount(log_dir) or aside.exists():
        raise BadInput(f"{log_dir} is a mount point or {aside} exists: a previous drill did not finish; mend it")
    log_dir.rename(aside)
    host.supervisorctl("restart", WEBSOCKET)

    def undo() -> None:
        if not log_dir.exists():
            aside.rename(log_dir)
        else:  # re-created by the recovery: the old logs go back, with what was written since after them
            for item in sorted(aside.iterdir()):
                dest = log_dir / item.name
                if dest.is_file() and item.is_file():
                    with item.open("ab") as old:
                        old.write(dest.read_bytes())
                    dest.unlink()
                os.replace(item, dest)
            aside.rmdir()
        pid = supervisord_pid(host)
        if pid is not None:
            os.kill(pid, signal.SIGUSR2)  # supervisord reopens its log and every program's, by path
        managed_and_running(host)

    return undo


def supervisord_killed(host: SandboxHost) -> Undo:
    """SIGKILL to the host's supervisord: its programs go on as orphans, still serving and holding the host's
    ports, and nothing manages them. Only a deep check (the process checks) sees it."""
    pid = supervisord_pid(host)
    if pid is None:
        raise BadInput(f"supervisord of {host.target.host} is not running before the drill")
    children = descendants(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    def undo() -> None:
        running = supervisord_pid(host)
        managed = set(descendants(running)) if running is not None else set()
        orphans = [child for child in children if alive(child) and child not in managed]
        if orphans:  # the recovery did not stop them (or did not run): a new supervisord needs their ports
            if running is not None:
                host.supervisorctl("stop", "all")
            _terminate(orphans)
        managed_and_running(host)

    return undo
