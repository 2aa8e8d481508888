"""Names and values every part of the service agrees on, without importing the database layer.

The CLI's light commands (probe, notify) check their input with these; importing ``db`` for them would load
SQLAlchemy, which is most of a probe's start-up (the emergency toolkit runs one probe per host it switches).
"""

from __future__ import annotations

import re
from typing import TypeGuard

PRIORITIES = ("low", "normal", "high", "critical")
CHANNELS = ("websocket", "flash")
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
USER_RULE = "1-64 characters: letters, digits, '_', '.', '@', '-', starting with a letter or digit"


def valid_user(user: object) -> TypeGuard[str]:
    return isinstance(user, str) and USER_PATTERN.fullmatch(user) is not None
