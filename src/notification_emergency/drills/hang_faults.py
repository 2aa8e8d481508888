"""Hung processes: a program frozen with SIGSTOP (the gunicorn master and its workers, or redis-server). Its
port still accepts connections (the kernel completes the handshake) and nothing answers: the most common
real-world failure of a Socket.IO server, and the one a port check cannot see. supervisord still shows it
RUNNING; a restart must stop it with SIGKILL after a bounded wait (it never handles SIGTERM). The undo sends
SIGCONT to whichever of the frozen processes still exist and are stopped (the engine's restart replaced them
when it worked)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from notification_emergency.drills.process_faults import descendants
from notification_emergency.drills.sandbox import SandboxHost, Undo


def frozen_pids(pid: int) -> list[int]:
    """``pid`` and every process below it (a gunicorn master's workers)."""
    return [pid, *descendants(pid)]


def stopped(pid: int) -> bool:
    """The process exists and is stopped (state T: SIGSTOP, or t: traced)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def _freeze(program: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        pids = frozen_pids(host.pid(program))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

        def undo() -> None:
            for pid in pids:
                if stopped(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)

        return undo

    return inject


websocket_hung = _freeze("notification-websocket")
redis_hung = _freeze("redis")
web_hung = _freeze("notification-web")
