"""Fixtures for the reference notification service tests: running stacks shared where safe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import throwaway_database

from .harness import Stack, kill_leftovers, running_stack


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One shared stack (SQLite) for the tests that do not change its configuration; one user per test."""
    with running_stack(tmp_path_factory.mktemp("shared")) as stack:
        yield stack


@pytest.fixture(scope="module")
def switch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose config.yml the tests rewrite (mode switches).

    One web worker: each gunicorn worker reloads config.yml on its own next request, so with several a
    worker that served no request between two quick rewrites still holds the older configuration, and a
    test of "an invalid rewrite keeps the previous configuration" would see that older one.
    """
    with running_stack(tmp_path_factory.mktemp("switch"), web_workers=1) as stack:
        yield stack


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose Redis the tests stop."""
    with running_stack(tmp_path_factory.mktemp("outage"), web_workers=1) as stack:
        yield stack


@pytest.fixture(scope="module")
def pg_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> Iterator[Stack]:
    """A stack whose notifications live in a throwaway PostgreSQL database."""
    with (
        throwaway_database(pg_admin, "notif_test") as database_url,
        running_stack(tmp_path_factory.mktemp("postgres"), database_url=database_url, web_workers=1) as stack,
    ):
        yield stack


@pytest.fixture
def new_stack(tmp_path: Path) -> Callable[..., Stack]:
    """``new_stack(**options)``: a stack of the test's own in its directory, not started yet (the test starts the
    processes it needs and stops the stack)."""

    def make(**options: Any) -> Stack:
        return Stack(tmp_path, **options)

    return make
