"""Fixtures for the control-node tests: throwaway databases on the shared PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the shared server's ``postgres`` database (skips when unreachable)."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    with admin:
        yield admin


@pytest.fixture
def postgres_url(pg_admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    """A fresh database on the shared PostgreSQL server (a SQLAlchemy psycopg URL), dropped afterwards."""
    name = f"ne_store_test_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
