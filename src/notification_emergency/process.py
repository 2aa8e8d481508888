"""Who runs a playbook, and whether that process still lives: so a run whose command line was killed is
not shown ``running`` forever.

An owner is ``node:pid:start`` (the host name, the process id and its start time in clock ticks since boot,
from ``/proc``): a pid reused by a later process does not pass for the owner.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of ``/proc/PID/stat``), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its closing one
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def current_owner() -> str:
    """This process, as recorded with each run it starts."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or '?'}"


def owner_alive(owner: str | None) -> bool | None:
    """True when ``owner`` still runs, False when it is gone, None when it cannot be told from here (another
    control node, sharing a PostgreSQL store, or a run recorded before owners were)."""
    if not owner or owner.count(":") < 2:
        return None
    node, pid, start = owner.rsplit(":", 2)
    if node != socket.gethostname() or not pid.isdigit():
        return None
    ticks = _start_ticks(int(pid))
    return ticks is not None and (start == "?" or ticks == start)
