"""After a drill: is the sandbox host as the drill found it? Its supervisord runs, every program of it is
RUNNING, no process of the host runs outside that supervisord (an orphan: its root in the command line), and
the host's ports are held by its managed processes only. Read from supervisorctl and /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

from notification_emergency.drills.process_faults import descendants
from notification_emergency.drills.sandbox import SandboxHost


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process (zombies hold nothing and are left out)."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields and fields[0] not in ("Z", "X"):  # a zombie holds nothing
                found[int(entry)] = int(fields[1])
    return found


def _command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _listeners(ports: set[int]) -> dict[int, int]:
    """Socket inode -> port, for the sockets listening on ``ports``."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                found[int(fields[9])] = port
    return found


def _holders(ports: set[int], pids: set[int]) -> dict[int, int]:
    """pid -> port, for the processes among ``pids`` that hold a listening socket on one of ``ports``."""
    inodes = _listeners(ports)
    holders: dict[int, int] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                holders[pid] = inodes[int(link[8:-1])]
    return holders


def left_as_found(host: SandboxHost, ports: set[int]) -> list[str]:
    """What is not as it should be on the host after a drill (empty when all is well)."""
    answer = host.supervisorctl("pid").strip()
    if not answer.isdigit() or answer == "0":
        return [f"supervisord does not run ({answer or 'no answer'})"]
    problems = [
        f"program {parts[0]} is {parts[1]}"
        for parts in (line.split() for line in host.supervisorctl("status").splitlines())
        if len(parts) >= 2 and parts[1] != "RUNNING"
    ]
    parents = _parents()
    managed = {int(answer), *descendants(int(answer))}
    prefix = str(host.root).rstrip("/") + "/"
    own = {pid for pid in parents if any(arg.startswith(prefix) for arg in _command(pid))}
    problems += [f"orphan {pid}: {' '.join(_command(pid))[:120]}" for pid in sorted(own - managed)]
    for pid, port in sorted(_holders(ports, set(parents) - managed).items()):
        problems.append(f"port {port} held by {pid} outside supervisord: {' '.join(_command(pid))[:120]}")
    return problems


__all__ = ["left_as_found"]
