"""The health module's write probes against real servers: a Redis that answers PING but refuses writes (a
read-only replica, out of memory under noeviction, MISCONF after a failed save) and an SQLite database that
answers queries but refuses writes (a read-only filesystem, a write lock held by another connection) fail with
reason write_refused and the server's own error; and the catalogue classifies them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notification_emergency.catalogue import classify
from tests.ansible.health_servers import RedisServer, closed_port, one, sqlite_db


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own: the refusals below are server-wide settings."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    yield server
    server.client().config_set("save", "")  # a Redis that cannot save would refuse to shut down
    server.stop()


def _redis_check(module_runner: Any, server: RedisServer) -> dict[str, Any]:
    return one(module_runner, {"kind": "redis", "component": "redis", "url": server.url(db=1)})


def test_a_writable_redis_takes_the_probe_in_a_key_of_its_own_that_expires(
    module_runner: Any, private_redis: RedisServer
) -> None:
    client = private_redis.client()
    client.select(1)
    client.zadd("notification:pending", {"7:alice": time.time()})
    check = _redis_check(module_runner, private_redis)
    assert check["status"] == "healthy", check["error"]
    assert check["evidence"]["write"] == "ok"
    assert 0 < client.pttl("notification:health:probe") <= 10000
    assert client.zrange("notification:pending", 0, -1) == [b"7:alice"]  # the queue is not touched
    assert sorted(client.keys("*")) == [b"notification:health:probe", b"notification:pending"]


def _make_read_only(client: redis.Redis, tmp: Path) -> None:
    client.execute_command("REPLICAOF", "127.0.0.1", str(closed_port()))


def _make_out_of_memory(client: redis.Redis, tmp: Path) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")


def _make_misconf(client: redis.Redis, tmp: Path) -> None:
    shutil.rmtree(tmp / "redis")  # its working directory: the next save cannot write its file
    client.config_set("save", "3600 1")  # Redis refuses writes after a failed save only when it saves at all
    client.config_set("stop-writes-on-bgsave-error", "yes")
    client.bgsave()
    deadline = time.monotonic() + 10
    while client.info("persistence")["rdb_last_bgsave_status"] != "err":
        assert time.monotonic() < deadline, "the background save did not fail"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("make", "error"),
    [(_make_read_only, "READONLY"), (_make_out_of_memory, "OOM"), (_make_misconf, "MISCONF")],
    ids=["read_only_replica", "out_of_memory", "misconf"],
)
def test_a_redis_that_answers_ping_but_refuses_writes_is_write_refused(
    module_runner: Any, private_redis: RedisServer, tmp_path: Path, make: Any, error: str
) -> None:
    client = private_redis.client()
    client.select(1)
    client.zadd("notification:pending", {"7:alice": time.time()})
    make(client, tmp_path)
    check = _redis_check(module_runner, private_redis)
    assert (check["status"], check["reason"]) == ("failed", "write_refused")
    # It answers (after a failed save Redis refuses PING too, with the same MISCONF) and reads work.
    assert check["evidence"]["ping"] == "PONG" or check["evidence"]["ping"].startswith("MISCONF")
    assert check["evidence"]["pending_queue_length"] == 1
    assert check["evidence"]["write"] == "refused"
    assert check["evidence"]["write_error"].startswith(error) and error in check["error"]
    # Its own type, not "Redis unavailable" (which would restart what answers) nor an unclaimed check.
    result = classify({"checks": {"redis": check}})
    assert result["primary"] == "redis_write_refused" and [f["type"] for f in result["failures"]] == [
        "redis_write_refused"
    ]
    assert [step["id"] for step in result["plan"]] == ["restart_redis", "enable_flash_fallback", "escalate"]
    assert error in result["failures"][0]["detail"]


def test_the_redis_write_probe_can_be_turned_off(module_runner: Any, private_redis: RedisServer) -> None:
    client = private_redis.client()
    _make_out_of_memory(client, Path("."))
    check = one(module_runner, {"kind": "redis", "url": private_redis.url(), "write_probe": False})
    assert check["status"] == "healthy" and check["evidence"]["write"] is None


# -- the database -------------------------------------------------------------------------------------------------


def test_a_writable_sqlite_database_is_left_unchanged_by_the_probe(module_runner: Any, tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "data" / "notifications.db", rows=3)
    before = db.read_bytes()
    check = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}"})
    assert check["status"] == "healthy", check["error"]
    assert check["evidence"]["write"] == "ok" and check["evidence"]["rows"] == 3
    assert db.read_bytes() == before and sorted(os.listdir(db.parent)) == ["notifications.db"]  # no journal left


def test_an_sqlite_database_locked_for_writes_is_write_refused(module_runner: Any, tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "notifications.db", rows=2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another connection keeps the write lock
    try:
        started = time.monotonic()
        check = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}", "timeout": 2})
        assert time.monotonic() - started < 2.5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (check["status"], check["reason"]) == ("failed", "write_refused")
    assert check["evidence"]["rows"] == 2 and "locked" in check["evidence"]["write_error"]
    result = classify({"checks": {"database": check}})
    assert result["primary"] == "database_unavailable"
    assert "database_refuses_writes" in result["failures"][0]["evidence"]["signals"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a filesystem needs root")
def test_an_sqlite_database_on_a_read_only_filesystem_is_write_refused(module_runner: Any, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "write-probe-test", str(volume)], check=True)
    try:
        db = sqlite_db(volume / "notifications.db", rows=4)
        subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
        check = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}"})
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)
    assert (check["status"], check["reason"]) == ("failed", "write_refused")
    assert check["evidence"]["rows"] == 4  # it still answers queries
    assert "readonly" in check["evidence"]["write_error"]
