"""Where the package keeps its state: a module of its own, so that what needs only the path (the API, the
dashboard's users) does not import the event store and SQLAlchemy with it (``status --quick`` never opens the
store)."""

from __future__ import annotations

import os
from pathlib import Path

from notification_emergency.errors import ToolkitError

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


def _who(mode: int, group_bit: int, other_bit: int) -> str | None:
    names = [name for bit, name in ((group_bit, "its group"), (other_bit, "every user")) if mode & bit]
    return " and ".join(names) or None


def writable_by_others(mode: int) -> str | None:
    """Who besides its owner may change a file of this ``st_mode`` ("its group", "every user", both), or None.

    Files the toolkit trusts (the dashboard's users, its session key, a channels file, an API token file) are
    refused when this is not None: whoever can write them can make themselves an operator or redirect alerts."""
    return _who(mode, 0o020, 0o002)


def readable_by_others(mode: int) -> str | None:
    """Who besides its owner may read a file of this ``st_mode``, or None (for files holding secrets)."""
    return _who(mode, 0o040, 0o004)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by this user only (0600 from its first byte): a new
    file in the same directory (created 0700 if missing), renamed over ``path``, so that nobody ever reads a
    half-written file or one with looser permissions. Raises OSError."""
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ProjectNotFound(ToolkitError):
    """The playbooks could not be found; set NOTIFICATION_EMERGENCY_PROJECT to the project directory."""


def project_root() -> Path:
    """The directory holding ``ansible.cfg`` and ``playbooks/``.

    ``NOTIFICATION_EMERGENCY_PROJECT`` wins (AWX execution environments, installed packages); otherwise the
    source tree this package is installed from.
    """
    configured = os.environ.get("NOTIFICATION_EMERGENCY_PROJECT")
    candidates = [Path(configured)] if configured else list(Path(__file__).resolve().parents)
    for candidate in candidates:
        if (candidate / "ansible.cfg").is_file() and (candidate / "playbooks").is_dir():
            return candidate
    raise ProjectNotFound(
        "cannot find the notification-emergency project (ansible.cfg and playbooks/); "
        "set NOTIFICATION_EMERGENCY_PROJECT to its directory"
    )
