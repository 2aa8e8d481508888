"""The notification_health tests' servers as fixtures, one of each per test module (``pytest_plugins`` in the
test modules loads this file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ansible.health_servers import (
    API_TOKEN,
    REDIS_PASSWORD,
    Blackhole,
    HTTPServer,
    RedisServer,
    SocketIOServer,
    start_supervisord,
    stop_supervisord,
    supervisor_conf,
)

# -- servers, started once for the whole file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def blackhole() -> Iterator[Blackhole]:
    server = Blackhole()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sio_server() -> Iterator[SocketIOServer]:
    server = SocketIOServer(API_TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=REDIS_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("supervisor")
    conf = supervisor_conf(tmp, {"notification-web": True, "notification-websocket": True, "idle": False})
    start_supervisord(conf, ["notification-web", "notification-websocket"])
    yield conf
    stop_supervisord(conf)


@pytest.fixture
def notifications_pg(postgres_url: str) -> str:
    """The fresh database of ``postgres_url`` with a notifications table of three rows."""
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE notifications (id serial PRIMARY KEY, title text)")
        conn.execute("INSERT INTO notifications (title) VALUES ('a'), ('b'), ('c')")
    return postgres_url
