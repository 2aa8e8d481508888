"""Helpers of the event store tests: a fixed clock to write records at, and the times they read back as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``seconds`` after :data:`T0`."""
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    """``at(seconds)`` as the store gives it back (whole seconds)."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
