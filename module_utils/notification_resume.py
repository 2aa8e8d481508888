"""Continue a stopped program before a graceful stop.

A process frozen by SIGSTOP never handles the SIGTERM of a graceful stop: supervisord waits its
``stopwaitsecs``, then SIGKILLs it. Continued first (SIGCONT), it stops gracefully at once. A process that
hangs otherwise (a deadlock) is still killed after ``stopwaitsecs``. systemd needs none of this: it sends
SIGCONT after the stop signal itself. Shipped with ``notification_services``; standard library only, Python 3.8+.
"""

from __future__ import annotations

import os
import signal
from typing import Any


def continue_if_stopped(pid: int) -> bool:
    """SIGCONT to ``pid``'s process group (supervisord makes each program a group leader: a gunicorn master and
    its workers) when the process is stopped (state T in /proc). True when it was; False otherwise (no /proc,
    not stopped, gone, not ours)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        if state != "T":
            return False
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGCONT)
        else:
            os.kill(pid, signal.SIGCONT)
    except (OSError, IndexError):
        return False
    return True


def continue_program(backend: Any, name: str) -> bool:
    """Continue the program ``name`` of a supervisord backend when it is stopped; True when it was. Never
    raises: a program whose state cannot be read is left to the stop that follows (which reports it)."""
    try:
        pid = backend.status(name).pid
    except Exception:  # a ServiceControlError (not defined, supervisord down): the stop reports it
        return False
    return bool(pid) and continue_if_stopped(pid)
