"""The health module tells a hung server (the connection accepted, no answer within the timeout: reason hung)
from a refused connection (refused), a connection that cannot even be opened in time (timeout) and a slow
answer (slow). Real servers: a SIGSTOPped redis-server, a listening socket that never answers, a listening
socket whose accept queue is full (the kernel drops new connections), a slow HTTP server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.health_servers import Blackhole, HTTPServer, RedisServer, closed_port, health, one

pytest_plugins = ["tests.ansible.health_fixtures"]


def test_a_sigstopped_redis_is_hung(module_runner: Any, tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            check = one(module_runner, {"kind": "redis", "url": server.url(), "timeout": 1})
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert (check["status"], check["reason"]) == ("failed", "hung"), check
        assert "PING" in check["error"]
        assert elapsed < 1.6
        assert one(module_runner, {"kind": "redis", "url": server.url()})["status"] == "healthy"
    finally:
        server.stop()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full and never drained: the kernel drops new connection attempts, so a
    client's connect times out (as with a firewall that drops packets)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_a_connection_not_accepted_in_time_is_a_timeout_not_hung(module_runner: Any, full_backlog: int) -> None:
    check = one(module_runner, {"kind": "http", "url": f"http://127.0.0.1:{full_backlog}/health", "timeout": 1})
    assert (check["status"], check["reason"]) == ("failed", "timeout"), check
    assert "connecting" in check["error"]


def test_down_hung_and_slow_side_by_side(module_runner: Any, blackhole: Blackhole, http_server: HTTPServer) -> None:
    checks = [
        {"name": "down", "kind": "http", "url": f"http://127.0.0.1:{closed_port()}/health"},
        {"name": "hung", "kind": "websocket", "url": f"http://127.0.0.1:{blackhole.port}"},
        {"name": "slow", "kind": "http", "url": http_server.url("/slow?s=0.3"), "latency_degraded_ms": 100},
        # A port check only connects: a hung server's port is open.
        {"name": "port", "kind": "tcp", "host": "127.0.0.1", "port": blackhole.port},
    ]
    result = health(module_runner, checks, timeout=1, deadline=1.5)
    reasons = {name: (check["status"], check["reason"]) for name, check in result["checks"].items()}
    assert reasons == {
        "down": ("failed", "refused"),
        "hung": ("failed", "hung"),
        "slow": ("degraded", "slow"),
        "port": ("healthy", None),
    }
