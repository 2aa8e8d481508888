"""Fixtures for the event store tests: a fresh store on each backend (SQLite, and PostgreSQL through the
``postgres_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notification_emergency.store import EventStore, store_url

# postgres_url is asked for at run time here, so the collection hook of tests/conftest.py cannot see it in
# the test's fixtures: the PostgreSQL case carries its marker itself.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, not yet created store: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return store_url(tmp_path / "state" / "events.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(target_url: str) -> Iterator[EventStore]:
    """An event store opened (so created and migrated) at ``target_url``, closed afterwards."""
    with EventStore(target_url) as opened:
        yield opened
