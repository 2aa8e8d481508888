"""/health answers within a bounded time whatever hangs, and says per component down, hung or slow.

Real processes: Redis and the websocket process are frozen with SIGSTOP (their ports accept connections, the
kernel completes the handshake, nothing answers), a listening socket that never answers stands in for a
hung Redis, and a stopped Redis is down (connection refused).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from notification_emergency.inventory import Target
from notification_emergency.probes import probe

from .harness import Stack, free_port, running_stack, wait_until

# The web's checks have a 1 s deadline each and run concurrently; what the toolkit allows /health is 2 s.
BOUND_S = 2.0


@pytest.fixture(scope="module")
def hang_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("hang"), web_workers=1) as stack:
        yield stack


def timed_health(url: str) -> tuple[float, int, dict[str, Any]]:
    started = time.monotonic()
    response = requests.get(f"{url}/health", timeout=10)
    return time.monotonic() - started, response.status_code, response.json()


@contextmanager
def frozen(pgid: int) -> Iterator[None]:
    """SIGSTOP a process group (a gunicorn master and its worker, or redis-server) for the block."""
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def healthy_again(stack: Stack) -> bool:
    def check() -> bool:
        try:
            return stack.health()[1]["status"] == "healthy"
        except requests.RequestException:
            return False

    return wait_until(check, 15, 0.2)


def test_healthy_components_have_no_reason(hang_stack: Stack) -> None:
    elapsed, status, health = timed_health(hang_stack.web_url)
    assert (status, health["status"]) == (200, "healthy")
    assert elapsed < BOUND_S
    for name in ("web", "database", "redis", "websocket"):
        assert health["components"][name]["status"] == "healthy"
        assert health["components"][name]["reason"] in (None, "slow")


def test_a_hung_websocket_process_is_reported_hung_within_the_bound(hang_stack: Stack) -> None:
    stack = hang_stack
    with frozen(stack.procs["websocket"].pid):
        elapsed, status, health = timed_health(stack.web_url)
    assert elapsed < BOUND_S, elapsed
    assert (status, health["status"]) == (200, "degraded")
    websocket = health["components"]["websocket"]
    assert (websocket["status"], websocket["reason"]) == ("failed", "hung"), websocket
    assert websocket["latency_ms"] < BOUND_S * 1000
    assert health["components"]["redis"]["status"] == "healthy"
    assert health["components"]["database"]["status"] == "healthy"
    assert healthy_again(stack)


def test_a_hung_redis_is_reported_hung_by_both_processes(hang_stack: Stack) -> None:
    stack = hang_stack
    assert stack.redis.proc is not None
    with frozen(stack.redis.proc.pid):
        elapsed, _status, health = timed_health(stack.web_url)
        ws_elapsed, _ws_status, ws_health = timed_health(stack.ws_url)
    assert elapsed < BOUND_S, elapsed
    assert ws_elapsed < 1.0, ws_elapsed  # under the web's deadline for it, so the websocket is not called hung
    redis = health["components"]["redis"]
    assert (redis["status"], redis["reason"]) == ("failed", "hung"), redis
    assert (ws_health["components"]["redis"]["status"], ws_health["components"]["redis"]["reason"]) == (
        "failed",
        "hung",
    )
    # The websocket process answers: it reports its Redis, it is not hung itself.
    assert health["components"]["websocket"]["status"] == "degraded"
    assert health["components"]["websocket"]["reason"] != "hung"
    assert health["status"] == "degraded"
    assert healthy_again(stack)


def test_a_stopped_redis_is_down_not_hung(hang_stack: Stack) -> None:
    stack = hang_stack
    stack.redis.stop()
    try:
        elapsed, _status, health = timed_health(stack.web_url)
    finally:
        stack.redis.start()
    assert elapsed < BOUND_S
    redis = health["components"]["redis"]
    assert (redis["status"], redis["reason"]) == ("failed", "down"), redis
    assert healthy_again(stack)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_redis_that_accepts_and_never_answers_is_hung(new_stack: Callable[..., Stack], silent_listener: int) -> None:
    stack = new_stack(web_workers=1)
    stack.settings["redis_url"] = f"redis://127.0.0.1:{silent_listener}/0"
    stack.settings["websocket"]["port"] = free_port()  # no websocket process: down (refused)
    stack.write_config()
    try:
        stack.start_process("web")
        stack.wait_ready("web")
        for _ in range(3):  # abandoned checks do not pile up into a slower /health
            elapsed, status, health = timed_health(stack.web_url)
            assert elapsed < BOUND_S, elapsed
        assert (status, health["status"]) == (200, "degraded")
        assert (health["components"]["redis"]["status"], health["components"]["redis"]["reason"]) == ("failed", "hung")
        websocket = health["components"]["websocket"]
        assert (websocket["status"], websocket["reason"]) == ("failed", "down"), websocket
    finally:
        stack.stop()


# -- the toolkit's direct probe reads the reasons (and times the WebSocket /health itself) ------------------------


def target(stack: Stack) -> Target:
    return Target("hang-host", stack.web_url, stack.ws_url)


def test_the_probe_tells_a_hung_websocket_process(hang_stack: Stack) -> None:
    with frozen(hang_stack.procs["websocket"].pid):
        result = probe(target(hang_stack), timeout=1.0)
    assert (result.ok, result.status) == (False, "failed")
    assert result.components["websocket"] == "hung", result
    assert result.components["redis"] in ("healthy", "slow")
    assert result.components["database"] in ("healthy", "slow")
    assert healthy_again(hang_stack)
    assert probe(target(hang_stack), timeout=1.0).components["websocket"] in ("healthy", "slow")


def test_the_probe_tells_a_hung_redis_from_a_down_one(hang_stack: Stack) -> None:
    stack = hang_stack
    assert stack.redis.proc is not None
    with frozen(stack.redis.proc.pid):
        hung = probe(target(stack), timeout=1.0)
    assert not hung.ok
    assert hung.components["redis"] == "hung", hung
    assert hung.components["websocket"] != "hung"  # it answers (late, its own Redis check waits 0.5 s)
    assert healthy_again(stack)
    stack.redis.stop()
    try:
        down = probe(target(stack), timeout=1.0)
    finally:
        stack.redis.start()
    assert down.components["redis"] == "down", down
    assert healthy_again(stack)


def test_the_probe_tells_a_hung_web_process(hang_stack: Stack) -> None:
    started = time.monotonic()
    with frozen(hang_stack.procs["web"].pid):
        result = probe(target(hang_stack), timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert (result.ok, result.status) == (False, "unreachable")
    assert result.components == {"web": "hung"}, result
    assert healthy_again(hang_stack)
