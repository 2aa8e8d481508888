"""Where the package keeps its state: a module of its own, so that what needs only the path (the API, the
dashboard's users) does not import the event store and SQLAlchemy with it (``status --quick`` never opens the
store)."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "NOTIFICATION_EMERGENCY_STATE_DIR"


def state_dir() -> Path:
    """The package's state directory.

    ``NOTIFICATION_EMERGENCY_STATE_DIR``, else ``$XDG_STATE_HOME/notification-emergency``, else
    ``~/.local/state/notification-emergency``.
    """
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "notification-emergency"
