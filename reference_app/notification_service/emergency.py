"""The emergency banner state, read from ``emergency.json`` on every use (no Redis, no database)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Emergency:
    """``state`` is ``active``, ``inactive`` (also when the file is missing) or ``unreadable``."""

    state: str
    active: bool = False
    level: int | None = None
    reason: str | None = None
    triggered_by: str | None = None
    since: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state,
            "active": self.active,
            "level": self.level,
            "reason": self.reason,
            "triggered_by": self.triggered_by,
            "since": self.since,
        }
        if self.error:
            data["error"] = self.error
        return data


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def read_emergency(path: Path) -> Emergency:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Emergency(state="inactive")
    except (OSError, UnicodeDecodeError) as exc:
        return Emergency(state="unreadable", error=f"cannot read {path}: {exc}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Emergency(state="unreadable", error=f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return Emergency(state="unreadable", error=f"{path} is not a JSON object")
    active = data.get("active", False)
    if not isinstance(active, bool):
        return Emergency(state="unreadable", error=f"{path}: active is {active!r}, not true or false")
    level = data.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        return Emergency(state="unreadable", error=f"{path}: level is {level!r}, not an integer")
    return Emergency(
        state="active" if active else "inactive",
        active=active,
        level=level,
        reason=_text(data.get("reason")),
        triggered_by=_text(data.get("triggered_by")),
        since=_text(data.get("since")),
    )
