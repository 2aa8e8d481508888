"""Stopping a command: Ctrl-C, SIGTERM and SIGHUP cancel a playbook run cleanly (exit 130)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from notification_emergency.cli.render import err

# The signals that mean "stop": Ctrl-C, and what `timeout`, systemd, CI cancels and a closed terminal send.
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def cancellable() -> Iterator[threading.Event]:
    """While a playbook runs, Ctrl-C, SIGTERM or SIGHUP ask ansible-runner to cancel it: ansible-playbook is
    stopped, the run is recorded ``canceled`` and the command exits 130. A second signal stops waiting.

    (SIGKILL cannot be caught: then the project's notification_guard callback stops ansible-playbook, and the
    run shows as ``abandoned`` in the record once this process is gone.)"""
    cancelled = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in CANCEL_SIGNALS}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if cancelled.is_set():  # a second signal: stop waiting
            raise KeyboardInterrupt
        cancelled.set()
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        err.print(f"cancelling: waiting for ansible-playbook to stop ({again} again to abandon)")

    for signum in CANCEL_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield cancelled
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextmanager
def stopping(
    stop: Callable[[], None], signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """While a long-running command (the watch) runs, these signals call ``stop()``: it ends after the round
    in progress instead of being interrupted in the middle of one."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
