"""Fixtures for the reference notification service tests: running stacks shared where safe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from .harness import Stack, kill_leftovers, running_stack

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


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
def postgres_url() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL server, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"notif_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("postgres"), database_url=postgres_url, web_workers=1) as stack:
        yield stack
