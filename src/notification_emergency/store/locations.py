"""Where the event store lives: a SQLAlchemy URL from a URL, a path, the environment or the state directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..paths import state_dir

STORE_ENV = "NOTIFICATION_EMERGENCY_STORE"
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def default_store_url() -> str:
    """``NOTIFICATION_EMERGENCY_STORE`` (a URL or a SQLite file path), else SQLite ``state_dir()/events.db``."""
    configured = os.environ.get(STORE_ENV)
    if configured:
        return store_url(configured)
    return store_url(state_dir() / "events.db")


def store_url(value: str | Path | None) -> str:
    """Normalise a store location to a SQLAlchemy URL.

    ``None`` -> :func:`default_store_url`; a filesystem path -> ``sqlite:////absolute/path``; a URL is kept
    as given, except that ``postgresql://`` and ``postgres://`` get the psycopg (3) driver the package uses.
    """
    if value is None:
        return default_store_url()
    text = str(value)
    if isinstance(value, str) and _URL_SCHEME.match(text):
        for prefix in ("postgresql://", "postgres://"):
            if text.startswith(prefix):
                return "postgresql+psycopg://" + text[len(prefix) :]
        return text
    return "sqlite:///" + str(Path(text).expanduser().absolute())
