# notification-emergency: stop a run when the program that started it dies.
from __future__ import annotations

DOCUMENTATION = """
name: notification_guard
type: aggregate
short_description: Stop the run when the notification-emergency process that started it dies
version_added: "1.0.0"
description:
  - The C(notification-emergency) command line, its dashboard and its watch start C(ansible-playbook) through
    ansible-runner, which runs it in a session of its own that ignores hang-ups. When the starting process was
    killed outright (C(kill -9), the out-of-memory killer), the playbook used to go on as an orphan and finish
    a rollback nobody was watching, while its run stayed C(running) in the event store.
  - When the environment variable E(NOTIFICATION_EMERGENCY_PARENT_PID) names the starting process, this plugin
    asks the Linux kernel to send C(ansible-playbook) a SIGTERM the moment that process dies
    (C(PR_SET_PDEATHSIG)); Ansible then stops its workers and itself as on any SIGTERM. If the process is gone
    already when the plugin loads, the run stops at once.
  - Without that variable (AWX, ansible-rulebook, a plain C(ansible-playbook)) it does nothing.
  - It is loaded automatically from the project's C(callback_plugins) directory; it prints nothing.
requirements:
  - Linux (C(prctl)); elsewhere it does nothing.
"""

import ctypes
import os
import signal
import sys

from ansible.plugins.callback import CallbackBase

PR_SET_PDEATHSIG = 1
PARENT_VARIABLE = "NOTIFICATION_EMERGENCY_PARENT_PID"


def guard(parent: str | None) -> bool:
    """Tie this process to ``parent``'s life; stop now if ``parent`` is gone. True when the guard is set."""
    if not parent or not parent.isdigit() or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(parent):  # it died before the guard was set: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
    return True


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "notification_guard"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self.guarded = guard(os.environ.get(PARENT_VARIABLE))
