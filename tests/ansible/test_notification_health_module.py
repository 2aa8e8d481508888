"""notification_health against real servers: HTTP, Socket.IO, Redis, SQLite, PostgreSQL, supervisord, files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.health_servers import (
    API_TOKEN,
    NAMESPACE,
    REDIS_PASSWORD,
    Blackhole,
    HTTPServer,
    RedisServer,
    SocketIOServer,
    closed_port,
    health,
    one,
    program,
    sqlite_db,
    start_supervisord,
    stop_supervisord,
    supervisor_conf,
    write_conf,
)
from tests.conftest import VENV_BIN

# The servers (http_server, sio_server, redis_server, ...): one of each per test module.
pytest_plugins = ["tests.ansible.health_fixtures"]

# -- http ------------------------------------------------------------------------------------------------------


def test_http_healthy_json(module_runner: Any, http_server: HTTPServer) -> None:
    result = health(
        module_runner,
        [{"name": "web", "kind": "http", "url": http_server.url("/health"), "json": {"status": "healthy"}}],
    )
    check = result["checks"]["web"]
    assert result["overall"] == "healthy" and result["counts"] == {"healthy": 1, "degraded": 0, "failed": 0}
    assert check["status"] == "healthy" and check["reason"] is None and check["error"] is None
    assert check["component"] == "web" and check["kind"] == "http" and check["critical"] is True
    assert check["evidence"]["status_code"] == 200
    assert check["evidence"]["json"]["status"] == "healthy"
    assert result["failed_checks"] == [] and result["degraded_checks"] == []
    assert result["checked_at"].endswith("Z") and result["deadline_s"] == 10.0


def test_http_bad_status(module_runner: Any, http_server: HTTPServer) -> None:
    check = one(module_runner, {"kind": "http", "url": http_server.url("/error")})
    assert (check["status"], check["reason"]) == ("failed", "bad_status")
    assert "500" in check["error"] and check["evidence"]["status_code"] == 500
    accepted = one(module_runner, {"kind": "http", "url": http_server.url("/error"), "expected_status": [200, 500]})
    assert accepted["status"] == "healthy"


def test_http_slow_answer_is_degraded(module_runner: Any, http_server: HTTPServer) -> None:
    check = one(module_runner, {"kind": "http", "url": http_server.url("/slow?s=0.3")}, latency_degraded_ms=100)
    assert (check["status"], check["reason"]) == ("degraded", "slow")
    assert check["latency_ms"] >= 300


def test_http_wrong_json(module_runner: Any, http_server: HTTPServer) -> None:
    check = one(module_runner, {"kind": "http", "url": http_server.url("/degraded"), "json": {"status": "healthy"}})
    assert (check["status"], check["reason"]) == ("failed", "bad_answer")
    assert "degraded" in check["error"]
    dotted = {"status": ["healthy", "degraded"], "components.redis.status": "failed"}
    assert one(module_runner, {"kind": "http", "url": http_server.url("/degraded"), "json": dotted})["status"] == (
        "healthy"
    )
    softer = one(
        module_runner,
        {"kind": "http", "url": http_server.url("/degraded"), "json": {"status": "healthy"}, "mismatch": "degraded"},
    )
    assert (softer["status"], softer["reason"]) == ("degraded", "bad_answer")


def test_http_body_regex(module_runner: Any, http_server: HTTPServer) -> None:
    matched = one(module_runner, {"kind": "http", "url": http_server.url("/text"), "body_regex": "notification w"})
    assert matched["status"] == "healthy" and matched["evidence"]["body_match"] is True
    missed = one(module_runner, {"kind": "http", "url": http_server.url("/text"), "body_regex": "^goodbye"})
    assert (missed["reason"], missed["evidence"]["body_match"]) == ("bad_answer", False)


def test_http_refused(module_runner: Any) -> None:
    check = one(module_runner, {"kind": "http", "url": f"http://127.0.0.1:{closed_port()}/health"})
    assert (check["status"], check["reason"]) == ("failed", "refused")
    assert "connection refused" in check["error"]


def test_http_hung_server_returns_within_the_timeout(module_runner: Any, blackhole: Blackhole) -> None:
    started = time.monotonic()
    check = one(module_runner, {"kind": "http", "url": f"http://127.0.0.1:{blackhole.port}/health", "timeout": 1})
    elapsed = time.monotonic() - started
    # The connection was accepted and nothing answered: hung, not a connect timeout.
    assert (check["status"], check["reason"]) == ("failed", "hung")
    assert check["error"].startswith("timeout after 1.0s")
    assert 0.9 < elapsed < 1.6


# -- websocket -------------------------------------------------------------------------------------------------


def ws_check(server: SocketIOServer, **options: Any) -> dict[str, Any]:
    return {"kind": "websocket", "url": server.url, "namespace": NAMESPACE, "auth": {"api_token": API_TOKEN}, **options}


def test_websocket_handshake_and_round_trip(module_runner: Any, sio_server: SocketIOServer) -> None:
    check = one(module_runner, ws_check(sio_server))
    assert check["status"] == "healthy", check["error"]
    evidence = check["evidence"]
    assert evidence["upgrade_status"] == 101 and evidence["engineio_sid"]
    assert evidence["namespace_connected"] is True and evidence["connect_error"] is None
    assert evidence["namespace"] == NAMESPACE and evidence["roundtrip_ms"] >= 0
    assert check["component"] == "websocket"


def test_websocket_without_round_trip(module_runner: Any, sio_server: SocketIOServer) -> None:
    check = one(module_runner, ws_check(sio_server), websocket_roundtrip=False)
    assert check["status"] == "healthy" and "roundtrip_ms" not in check["evidence"]


def test_websocket_wrong_auth(module_runner: Any, sio_server: SocketIOServer) -> None:
    check = one(module_runner, ws_check(sio_server, auth={"api_token": "wrong-token-123"}))
    assert (check["status"], check["reason"]) == ("failed", "auth")
    # The server is alive: it upgraded, opened an Engine.IO session and refused the namespace.
    assert check["evidence"]["upgrade_status"] == 101 and check["evidence"]["engineio_sid"]
    assert check["evidence"]["connect_error"] == "invalid api token"
    assert check["evidence"]["namespace_connected"] is False
    assert "wrong-token-123" not in json.dumps(check)


def test_websocket_unknown_namespace(module_runner: Any, sio_server: SocketIOServer) -> None:
    check = one(module_runner, ws_check(sio_server, namespace="/nope"))
    assert (check["status"], check["reason"]) == ("failed", "bad_answer")


def test_websocket_refused(module_runner: Any) -> None:
    check = one(module_runner, {"kind": "websocket", "url": f"http://127.0.0.1:{closed_port()}"})
    assert (check["status"], check["reason"]) == ("failed", "refused")


def test_websocket_server_that_never_answers(module_runner: Any, blackhole: Blackhole) -> None:
    started = time.monotonic()
    check = one(module_runner, {"kind": "websocket", "url": f"ws://127.0.0.1:{blackhole.port}", "timeout": 1})
    assert time.monotonic() - started < 1.6
    assert (check["status"], check["reason"]) == ("failed", "hung")
    assert "upgrade" in check["error"]


def test_websocket_an_http_server_is_not_a_websocket(module_runner: Any, http_server: HTTPServer) -> None:
    check = one(module_runner, {"kind": "websocket", "url": http_server.url("")})
    assert (check["status"], check["reason"]) == ("failed", "bad_status")
    assert check["evidence"]["upgrade_status"] == 404


# -- redis -----------------------------------------------------------------------------------------------------


def test_redis_ping_memory_and_empty_queue(module_runner: Any, redis_server: RedisServer) -> None:
    check = one(module_runner, {"kind": "redis", "url": redis_server.url(db=2)})
    assert check["status"] == "healthy", check["error"]
    evidence = check["evidence"]
    assert evidence["ping"] == "PONG" and evidence["used_memory"] > 0
    assert evidence["pending_queue_length"] == 0 and evidence["pending_oldest_age_s"] is None


def test_redis_backlog(module_runner: Any, redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.select(3)
    client.zadd("notification:pending", {"1:alice": time.time() - 900, "2:bob": time.time() - 10})
    old = one(module_runner, {"kind": "redis", "url": redis_server.url(db=3)})
    assert (old["status"], old["reason"]) == ("degraded", "backlog")
    assert old["evidence"]["pending_queue_length"] == 2
    assert 899 <= old["evidence"]["pending_oldest_age_s"] <= 910
    long = one(
        module_runner, {"kind": "redis", "url": redis_server.url(db=3), "pending_max_age_s": 3600}, pending_max_length=1
    )
    assert (long["status"], long["reason"]) == ("degraded", "backlog") and "more than 1" in long["error"]
    fine = one(module_runner, {"kind": "redis", "url": redis_server.url(db=3)}, pending_max_age_s=3600)
    assert fine["status"] == "healthy"


def test_redis_refused(module_runner: Any) -> None:
    check = one(module_runner, {"kind": "redis", "url": f"redis://127.0.0.1:{closed_port()}/0"})
    assert (check["status"], check["reason"]) == ("failed", "refused")


def test_redis_password(module_runner: Any, redis_with_password: RedisServer) -> None:
    with_password = health(
        module_runner, [{"name": "redis", "kind": "redis", "url": redis_with_password.url(password=REDIS_PASSWORD)}]
    )
    check = with_password["checks"]["redis"]
    assert check["status"] == "healthy", check["error"]
    assert REDIS_PASSWORD not in json.dumps(with_password)
    assert check["evidence"]["url"] == f"redis://:***@127.0.0.1:{redis_with_password.port}/0"

    without = one(module_runner, {"kind": "redis", "url": redis_with_password.url()})
    assert (without["status"], without["reason"]) == ("failed", "auth")
    wrong = one(module_runner, {"kind": "redis", "url": redis_with_password.url(password="not-the-password")})
    assert (wrong["status"], wrong["reason"]) == ("failed", "auth")
    assert "not-the-password" not in json.dumps(wrong)


# -- database --------------------------------------------------------------------------------------------------


def test_sqlite(module_runner: Any, tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "data" / "notifications.db", rows=3)
    check = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}"})
    assert check["status"] == "healthy", check["error"]
    assert check["evidence"] == {
        "url": f"sqlite:///{db}",
        "dialect": "sqlite",
        "query": "SELECT count(*) FROM notifications",
        "rows": 3,
        "write": "ok",
    }
    custom = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}", "query": "SELECT id FROM notifications"})
    assert custom["evidence"]["rows"] == 3


def test_sqlite_missing_file_is_not_created(module_runner: Any, tmp_path: Path) -> None:
    check = one(module_runner, {"kind": "database", "url": f"sqlite:///{tmp_path}/none.db"})
    assert (check["status"], check["reason"]) == ("failed", "missing")
    assert not (tmp_path / "none.db").exists()


def test_sqlite_query_error(module_runner: Any, tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    check = one(module_runner, {"kind": "database", "url": f"sqlite:///{db}"})
    assert (check["status"], check["reason"]) == ("failed", "bad_answer")
    assert "no such table" in check["error"]


def test_postgresql(module_runner: Any, notifications_pg: str) -> None:
    check = one(module_runner, {"kind": "database", "url": notifications_pg})
    assert check["status"] == "healthy", check["error"]
    assert check["evidence"]["dialect"] == "postgresql" and check["evidence"]["rows"] == 3
    assert check["evidence"]["write"] == "ok"  # a primary, not a standby in recovery
    wrong = one(module_runner, {"kind": "database", "url": notifications_pg + "_nope"})
    assert wrong["status"] == "failed" and wrong["reason"] == "missing" and "does not exist" in wrong["error"]


def test_postgresql_password_is_masked(module_runner: Any, notifications_pg: str) -> None:
    url = notifications_pg.replace("postgres@", "postgres:pg-pass-9876@")  # trust auth ignores it
    result = health(module_runner, [{"name": "db", "kind": "database", "url": url}])
    assert result["checks"]["db"]["status"] == "healthy"
    assert "pg-pass-9876" not in json.dumps(result) and ":***@" in result["checks"]["db"]["evidence"]["url"]


def test_postgresql_without_psycopg_fails_with_missing_lib(module_runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    result, failed = module_runner(
        "notification_health", {"checks": [{"name": "db", "kind": "database", "url": "postgresql://x@h/db"}]}
    )
    assert failed and "psycopg" in result["msg"] and "Failed to import" in result["msg"]


# -- tcp, process, disk, file ----------------------------------------------------------------------------------


def test_tcp(module_runner: Any, http_server: HTTPServer) -> None:
    check = one(module_runner, {"kind": "tcp", "host": "127.0.0.1", "port": http_server.port})
    assert check["status"] == "healthy" and check["evidence"]["connected"] is True
    assert check["component"] == "host"
    refused = one(module_runner, {"kind": "tcp", "host": "127.0.0.1", "port": closed_port()})
    assert (refused["reason"], refused["evidence"]["connected"]) == ("refused", False)


def test_process_under_supervisord(module_runner: Any, supervisor: Path) -> None:
    args = {"manager": "supervisord", "supervisor_config": str(supervisor), "bin_dir": str(VENV_BIN)}
    result = health(
        module_runner,
        [
            {"name": "web_process", "kind": "process", "service": "notification-web"},
            {"name": "idle", "kind": "process", "service": "idle"},
            {"name": "ghost", "kind": "process", "service": "ghost"},
        ],
        **args,
    )
    running, idle, ghost = (result["checks"][name] for name in ("web_process", "idle", "ghost"))
    assert running["status"] == "healthy" and running["evidence"]["state"] == "RUNNING"
    assert running["evidence"]["pid"] > 0 and running["evidence"]["manager"] == "supervisord"
    assert (idle["status"], idle["reason"], idle["evidence"]["state"]) == ("failed", "not_running", "STOPPED")
    assert ghost["status"] == "failed" and "not defined" in ghost["error"]


def test_process_when_supervisord_is_down(module_runner: Any, tmp_path: Path) -> None:
    conf = supervisor_conf(tmp_path, {"notification-web": True})
    check = one(
        module_runner,
        {"kind": "process", "service": "notification-web"},
        manager="supervisord",
        supervisor_config=str(conf),
        bin_dir=str(VENV_BIN),
    )
    assert (check["status"], check["reason"], check["evidence"]["state"]) == ("failed", "manager_down", "MANAGER_DOWN")
    assert "supervisord is not running" in check["error"] and "is not managed" in check["error"]


def supervisorctl_states(conf: Path) -> dict[str, str]:
    done = subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "status"], capture_output=True, text=True)
    return dict(line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2)


def test_a_program_supervisord_gave_up_on_is_a_crash_loop_not_a_stopped_one(module_runner: Any, tmp_path: Path) -> None:
    """A command that exits at once (FATAL "Exited too quickly") and a log directory that does not exist (a
    spawn error, ENOENT) are crash loops; a program stopped on purpose is not_running."""
    conf = write_conf(tmp_path)
    (tmp_path / "conf.d" / "crasher.conf").write_text(program("crasher", "/bin/false", autostart=True))
    nolog = program("nolog", startsecs=0).replace("%(here)s/nolog.log", "%(here)s/gone/nolog.log")
    (tmp_path / "conf.d" / "nolog.conf").write_text(nolog)
    (tmp_path / "conf.d" / "idle.conf").write_text(program("idle"))
    (tmp_path / "conf.d" / "gone").mkdir()  # supervisord refuses a config whose log directory is missing
    start_supervisord(conf, [])
    try:
        (tmp_path / "conf.d" / "gone").rmdir()  # ... but not a program whose log directory went away later
        subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "start", "nolog"], capture_output=True, check=False)
        for _ in range(100):  # until supervisord gave up on both
            states = supervisorctl_states(conf)
            if states.get("crasher") == "FATAL" and states.get("nolog") == "FATAL":
                break
            time.sleep(0.1)
        result = health(
            module_runner,
            [{"name": name, "kind": "process", "service": name} for name in ("crasher", "nolog", "idle")],
            manager="supervisord",
            supervisor_config=str(conf),
            bin_dir=str(VENV_BIN),
        )
    finally:
        stop_supervisord(conf)
    crasher, nolog_check, idle = (result["checks"][name] for name in ("crasher", "nolog", "idle"))
    assert (crasher["status"], crasher["reason"], crasher["evidence"]["state"]) == ("failed", "crash_loop", "FATAL")
    assert "Exited too quickly" in crasher["evidence"]["detail"] and "gave up on crasher" in crasher["error"]
    assert (nolog_check["reason"], nolog_check["evidence"]["state"]) == ("crash_loop", "FATAL")
    assert "ENOENT" in nolog_check["evidence"]["detail"], nolog_check
    assert (idle["reason"], idle["evidence"]["state"]) == ("not_running", "STOPPED")


def test_disk(module_runner: Any, tmp_path: Path) -> None:
    ok = one(module_runner, {"kind": "disk", "path": str(tmp_path)}, disk_min_free_percent=0)
    assert ok["status"] == "healthy" and ok["component"] == "disk"
    assert ok["evidence"]["total_bytes"] > ok["evidence"]["free_bytes"] > 0
    full = one(module_runner, {"kind": "disk", "path": str(tmp_path), "min_free_percent": 100})
    assert (full["status"], full["reason"]) == ("failed", "low_space")
    warn = one(module_runner, {"kind": "disk", "path": str(tmp_path), "min_free_percent": 0, "warn_free_percent": 100})
    assert (warn["status"], warn["reason"]) == ("degraded", "low_space")


def test_file(module_runner: Any, tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    target.write_text("<html>ok</html>")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    ok = one(module_runner, {"kind": "file", "path": str(target), "sha256": digest, "max_age_s": 60, "min_size": 5})
    assert ok["status"] == "healthy", ok["error"]
    assert ok["evidence"]["exists"] is True and ok["evidence"]["sha256"] == digest == ok["evidence"]["expected_sha256"]
    assert ok["evidence"]["size"] == 15 and ok["evidence"]["age_s"] < 60

    missing = one(module_runner, {"kind": "file", "path": str(tmp_path / "gone.html")})
    assert (missing["status"], missing["reason"], missing["evidence"]["exists"]) == ("failed", "missing", False)

    os.utime(target, (time.time() - 7200, time.time() - 7200))
    stale = one(module_runner, {"kind": "file", "path": str(target), "max_age_s": 3600})
    assert (stale["status"], stale["reason"]) == ("failed", "stale") and stale["evidence"]["age_s"] >= 7199

    changed = one(module_runner, {"kind": "file", "path": str(target), "sha256": "0" * 64})
    assert (changed["status"], changed["reason"]) == ("failed", "checksum")
    small = one(module_runner, {"kind": "file", "path": str(target), "min_size": 1000})
    assert small["status"] == "failed"
