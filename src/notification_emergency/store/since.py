"""A user's "since" for the store's queries: a duration ago (``24h``, ``7d``) or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ..errors import BadInput
from ..text import shown
from ..timeutil import UTC, as_utc, utc_now

_DURATION = re.compile(r"^(\d{1,15})\s*([smhdw])$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest "since" a query takes: ten years (a longer one is a typo, and 99999999d overflows datetime).
MAX_SINCE = timedelta(days=3650)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def parse_since(value: str | None, *, name: str = "--since") -> datetime | None:
    """A user's "since" (``24h``, ``7d``, ``30m`` ago, or an ISO 8601 time) for the store's queries; None for
    everything. ``name`` is the option or parameter named in the error (the CLI's, the dashboard's).

    A duration is at most :data:`MAX_SINCE` (ten years); an ISO time is after 1970 and has at most the
    precision of a second's fraction; one without an offset is UTC. Anything else is :class:`BadInput`
    naming ``name`` and the value."""
    if value is None or value == "":
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds > MAX_SINCE.total_seconds():
            raise BadInput(
                f"{name} {shown(value)} is longer than 10 years; give at most 3650d (or 520w, 87600h), "
                "or an ISO time (2026-11-27T10:00:00Z)"
            )
        return utc_now() - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadInput(
            f"{name} {shown(value)} is neither a duration (30m, 24h, 7d) nor an ISO time (2026-11-27T10:00:00Z)"
        )
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        in_utc = as_utc(moment)
    except OverflowError:  # an offset that moves the time out of datetime's range (year 1 or 9999)
        in_utc = None
    if in_utc is None or in_utc < _EARLIEST:
        raise BadInput(f"{name} {shown(value)} is out of range; give an ISO time after 1970 or a duration (7d)")
    return moment
