"""Times, one way everywhere: aware UTC datetimes, written as ISO 8601 with ``Z``.

The one time helper of the project. The Python package imports it as ``notification_emergency.timeutil``;
Ansible ships the same file to managed hosts as ``ansible.module_utils.notification_timeutil``
(``module_utils/notification_timeutil.py`` is a relative symlink to it). So it stays stdlib only, Python 3.8+
syntax, and imports nothing else from the package.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

UTC = timezone.utc  # noqa: UP017 (datetime.UTC is Python 3.11+; managed hosts may run 3.8)
ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def utc_now(*, whole_seconds: bool = False) -> datetime:
    """Now, aware, in UTC (without the microseconds when ``whole_seconds``)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=0) if whole_seconds else now


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: Optional[datetime]) -> Optional[str]:  # noqa: UP045 (Python 3.8 on managed hosts)
    """``moment`` as ISO 8601 in UTC with ``Z`` (microseconds kept when it has them); None stays None."""
    if moment is None:
        return None
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def iso_seconds(moment: datetime) -> str:
    """``moment`` in UTC to the second: ``2026-12-04T05:27:19Z`` (what the host modules write)."""
    return as_utc(moment).strftime(ISO_SECONDS)


def parse_iso(text: Any) -> Optional[datetime]:  # noqa: UP045
    """An ISO 8601 time with ``Z`` or an offset as an aware datetime; None for anything else (None, a number,
    a naive time, a malformed text)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def seconds_between(start: Optional[datetime], end: Optional[datetime]) -> Optional[float]:  # noqa: UP045
    """``end - start`` in seconds; None when either is missing."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
