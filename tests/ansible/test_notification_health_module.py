"""notification_health against real servers: HTTP, Socket.IO, Redis, SQLite, PostgreSQL, supervisord, files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils import notification_health as nh

from tests.ansible.health_servers import (
    NAMESPACE,
    Blackhole,
    HTTPServer,
    RedisServer,
    SocketIOServer,
    closed_port,
    start_supervisord,
    stop_supervisord,
    supervisor_conf,
)
from tests.conftest import VENV_BIN

API_TOKEN = "health-test-token-4f1c9b"
REDIS_PASSWORD = "s3cret-redis-pw"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


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


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"notif_health_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE notifications (id serial PRIMARY KEY, title text)")
        conn.execute("INSERT INTO notifications (title) VALUES ('a'), ('b'), ('c')")
    yield url
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def sqlite_db(path: Path, rows: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notifications (id INTEGER PRIMARY KEY, title TEXT)")
        conn.executemany("INSERT INTO notifications (title) VALUES (?)", [(f"n{i}",) for i in range(rows)])
    conn.close()
    return path


def health(module_runner: Any, checks: list[dict[str, Any]], **args: Any) -> dict[str, Any]:
    """Run the module with ``checks``; it must not fail (unhealthy components do not fail it)."""
    result, failed = module_runner("notification_health", {"checks": checks, **args})
    assert not failed, result.get("msg")
    assert result["changed"] is False
    return result


def one(module_runner: Any, check: dict[str, Any], **args: Any) -> dict[str, Any]:
    result = health(module_runner, [{"name": "it", **check}], **args)
    return result["checks"]["it"]


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


def test_http_timeout_returns_within_the_timeout(module_runner: Any, blackhole: Blackhole) -> None:
    started = time.monotonic()
    check = one(module_runner, {"kind": "http", "url": f"http://127.0.0.1:{blackhole.port}/health", "timeout": 1})
    elapsed = time.monotonic() - started
    assert (check["status"], check["reason"]) == ("failed", "timeout")
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
    assert (check["status"], check["reason"]) == ("failed", "timeout")
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
    assert check["evidence"]["url"] == f"redis://:********@127.0.0.1:{redis_with_password.port}/0"

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


def test_postgresql(module_runner: Any, postgres_url: str) -> None:
    check = one(module_runner, {"kind": "database", "url": postgres_url})
    assert check["status"] == "healthy", check["error"]
    assert check["evidence"]["dialect"] == "postgresql" and check["evidence"]["rows"] == 3
    wrong = one(module_runner, {"kind": "database", "url": postgres_url + "_nope"})
    assert wrong["status"] == "failed" and wrong["reason"] == "missing" and "does not exist" in wrong["error"]


def test_postgresql_password_is_masked(module_runner: Any, postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:pg-pass-9876@")  # trust auth ignores it
    result = health(module_runner, [{"name": "db", "kind": "database", "url": url}])
    assert result["checks"]["db"]["status"] == "healthy"
    assert "pg-pass-9876" not in json.dumps(result) and ":********@" in result["checks"]["db"]["evidence"]["url"]


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
    assert (check["status"], check["reason"]) == ("failed", "not_running")
    assert "supervisord is not running" in check["error"]


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


# -- concurrency, deadline, classification ---------------------------------------------------------------------


def test_timeouts_run_concurrently(module_runner: Any, blackhole: Blackhole) -> None:
    hung = f"127.0.0.1:{blackhole.port}"
    checks = [
        {"name": "a", "kind": "http", "url": f"http://{hung}/"},
        {"name": "b", "kind": "websocket", "url": f"http://{hung}"},
        {"name": "c", "kind": "redis", "url": f"redis://{hung}/0"},
        {"name": "d", "kind": "http", "url": f"http://{hung}/other"},
    ]
    started = time.monotonic()
    result = health(module_runner, checks, timeout=1, deadline=1)
    elapsed = time.monotonic() - started
    assert elapsed < 1.6, f"took {elapsed:.2f}s"
    for name in "abcd":
        assert result["checks"][name]["reason"] == "timeout"
    assert result["overall"] == "failed" and result["failed_checks"] == ["a", "b", "c", "d"]


def test_slow_checks_overlap(module_runner: Any, http_server: HTTPServer) -> None:
    checks = [{"name": f"slow{i}", "kind": "http", "url": http_server.url("/slow?s=1")} for i in range(3)]
    started = time.monotonic()
    result = health(module_runner, checks, timeout=3, latency_degraded_ms=5000)
    elapsed = time.monotonic() - started
    assert result["overall"] == "healthy"
    assert elapsed < 1.8, f"3 checks of 1s took {elapsed:.2f}s"
    assert result["duration_ms"] < 1800


def test_a_check_stuck_past_its_timeout_is_cut_at_the_deadline() -> None:
    """The safety net for calls that ignore timeouts (a hung DNS lookup): the call still returns in time."""

    def stuck(probe: nh.Probe, context: nh.Context) -> dict[str, Any]:
        time.sleep(30)
        return probe.result("healthy")

    specs = [nh.CheckSpec(name="stuck", kind="tcp", component="host", timeout=5.0)]
    started = time.monotonic()
    result = nh.run_checks(specs, deadline_s=0.5, runner=stuck)
    assert time.monotonic() - started < 1.0
    assert result["checks"]["stuck"]["reason"] == "timeout"
    assert "deadline" in result["checks"]["stuck"]["error"]
    slow_own = nh.run_checks([nh.CheckSpec("stuck", "tcp", "host", timeout=0.3)], deadline_s=5, runner=stuck)
    assert slow_own["checks"]["stuck"]["error"].startswith("timeout after 0.3s")
    assert slow_own["duration_ms"] < 1000


def test_non_critical_failure_only_degrades(module_runner: Any, http_server: HTTPServer) -> None:
    result = health(
        module_runner,
        [
            {"name": "web", "kind": "http", "url": http_server.url("/health")},
            {"name": "extra", "kind": "http", "url": http_server.url("/error"), "critical": False},
        ],
    )
    assert result["overall"] == "degraded" and result["failed_checks"] == ["extra"]
    assert result["counts"] == {"healthy": 1, "degraded": 0, "failed": 1}


def test_fail_on_unhealthy(module_runner: Any, http_server: HTTPServer) -> None:
    bad = [{"name": "web", "kind": "http", "url": http_server.url("/error")}]
    result, failed = module_runner("notification_health", {"checks": bad, "fail_on_unhealthy": True})
    assert failed and "web: bad_status" in result["msg"] and result["overall"] == "failed"
    good = [{"name": "web", "kind": "http", "url": http_server.url("/health")}]
    result, failed = module_runner("notification_health", {"checks": good, "fail_on_unhealthy": True})
    assert not failed and result["overall"] == "healthy"


def test_check_mode_is_the_same(module_runner: Any, http_server: HTTPServer, tmp_path: Path) -> None:
    checks = [
        {"name": "web", "kind": "http", "url": http_server.url("/health")},
        {"name": "db", "kind": "database", "url": f"sqlite:///{tmp_path}/absent.db"},
    ]
    normal, _ = module_runner("notification_health", {"checks": checks})
    checked, failed = module_runner("notification_health", {"checks": checks}, check_mode=True)
    assert not failed and checked["changed"] is False
    assert {n: c["status"] for n, c in checked["checks"].items()} == {
        n: c["status"] for n, c in normal["checks"].items()
    }
    assert checked["overall"] == normal["overall"] == "failed"
    assert not (tmp_path / "absent.db").exists()


# -- derived from config.yml -----------------------------------------------------------------------------------


def service_root(
    tmp: Path, http_server: HTTPServer, sio_server: SocketIOServer, redis_server: RedisServer, mode: str = "websocket"
) -> Path:
    root = tmp / "srv"
    (root / "etc").mkdir(parents=True)
    (root / "templates" / "active").mkdir(parents=True)
    (root / "templates" / "active" / "index.html").write_text("<html></html>")
    sqlite_db(root / "data" / "notifications.db")
    secrets = root / "etc" / "secrets.yml"
    secrets.write_text(yaml.safe_dump({"api_token": API_TOKEN, "secret_key": "k" * 32}))
    secrets.chmod(0o600)
    config = {
        "mode": mode,
        "websocket": {
            "enabled": mode == "websocket",
            "host": "127.0.0.1",
            "port": sio_server.port,
            "namespace": NAMESPACE,
            "public_url": sio_server.url,
        },
        "web": {"host": "0.0.0.0", "port": http_server.port, "workers": 2, "threads": 4},
        "redis_url": redis_server.url(db=5),
        "database_url": f"sqlite:///{root}/data/notifications.db",
        "templates_dir": f"{root}/templates/active",
        "emergency_file": f"{root}/state/emergency.json",
        "secrets_file": str(secrets),
        "log_dir": f"{root}/log",
    }
    (root / "etc" / "config.yml").write_text(yaml.safe_dump(config))
    return root


DEFAULT_NAMES = [
    "web",
    "websocket",
    "redis",
    "database",
    "web_port",
    "websocket_port",
    "web_process",
    "websocket_process",
    "disk",
    "config",
    "templates",
    "page",
]


def test_defaults_from_config(
    module_runner: Any,
    tmp_path: Path,
    http_server: HTTPServer,
    sio_server: SocketIOServer,
    redis_server: RedisServer,
    supervisor: Path,
) -> None:
    root = service_root(tmp_path, http_server, sio_server, redis_server)
    args = {
        "config": str(root / "etc" / "config.yml"),
        "manager": "supervisord",
        "supervisor_config": str(supervisor),
        "bin_dir": str(VENV_BIN),
        "disk_min_free_percent": 0,
    }
    started = time.monotonic()
    result, failed = module_runner("notification_health", args)
    elapsed = time.monotonic() - started
    assert not failed, result.get("msg")
    assert list(result["checks"]) == DEFAULT_NAMES
    not_healthy = {name: check["error"] for name, check in result["checks"].items() if check["status"] != "healthy"}
    assert not not_healthy and result["overall"] == "healthy"
    assert elapsed < 1.5
    checks = result["checks"]
    assert checks["web"]["evidence"]["url"] == f"http://127.0.0.1:{http_server.port}/health"
    assert checks["websocket"]["evidence"]["roundtrip_ms"] is not None
    assert checks["database"]["evidence"]["rows"] == 2
    assert checks["disk"]["evidence"]["path"] == str(root)
    assert checks["templates"]["component"] == "templates"
    assert checks["config"]["evidence"]["path"] == str(root / "etc" / "config.yml")
    assert checks["websocket_process"]["evidence"]["service"] == "notification-websocket"
    assert API_TOKEN not in json.dumps(result)


def test_config_checks_adjust_replace_and_disable_defaults(
    module_runner: Any, tmp_path: Path, http_server: HTTPServer, sio_server: SocketIOServer, redis_server: RedisServer
) -> None:
    root = service_root(tmp_path, http_server, sio_server, redis_server)
    args = {
        "config": str(root / "etc" / "config.yml"),
        "exclude": ["disk"],
        "checks": [
            {"name": "web", "kind": "http", "url": http_server.url("/error")},  # replaced
            {"name": "redis", "timeout": 1.5, "pending_max_length": 0},  # adjusted
            {"name": "templates", "enabled": False},
            {"name": "extra", "kind": "tcp", "host": "127.0.0.1", "port": http_server.port},
        ],
    }
    result = health(module_runner, **args)
    assert list(result["checks"]) == [
        "web",
        "websocket",
        "redis",
        "database",
        "web_port",
        "websocket_port",
        "config",
        "page",
        "extra",
    ]
    assert result["checks"]["web"]["reason"] == "bad_status"
    assert result["checks"]["redis"]["status"] == "healthy"
    only = health(module_runner, [], config=args["config"], include=["redis", "config"])
    assert list(only["checks"]) == ["redis", "config"]


def test_legacy_mode_disables_the_websocket_checks(
    module_runner: Any, tmp_path: Path, http_server: HTTPServer, sio_server: SocketIOServer, redis_server: RedisServer
) -> None:
    root = service_root(tmp_path, http_server, sio_server, redis_server, mode="legacy")
    args = {"config": str(root / "etc" / "config.yml"), "manager": "systemd", "disk_min_free_percent": 0}
    result = health(module_runner, [], **args)
    for name in ("websocket", "websocket_port", "websocket_process"):
        check = result["checks"][name]
        assert check["status"] == "healthy" and check["evidence"] == {"disabled": True}
    assert result["checks"]["web"]["status"] == "healthy"


def test_config_without_a_key_fails_only_the_checks_that_need_it(
    module_runner: Any, tmp_path: Path, http_server: HTTPServer, sio_server: SocketIOServer, redis_server: RedisServer
) -> None:
    root = service_root(tmp_path, http_server, sio_server, redis_server)
    config = root / "etc" / "config.yml"
    data = yaml.safe_load(config.read_text())
    del data["redis_url"]
    config.write_text(yaml.safe_dump(data))
    result = health(module_runner, [], config=str(config), disk_min_free_percent=0)
    assert result["failed_checks"] == ["redis"]
    assert result["checks"]["redis"]["reason"] == "error" and "redis_url" in result["checks"]["redis"]["error"]


# -- bad arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "one of the following is required: config, checks"),
        ({"checks": [{"name": "x", "kind": "ftp"}]}, "kind"),
        ({"checks": [{"name": "x", "kind": "http"}]}, "checks[0] (x): kind http needs url"),
        ({"checks": [{"name": "x", "kind": "http", "url": "ftp://h/"}]}, "url ftp://h/ must start with http://"),
        (
            {"checks": [{"name": "x", "kind": "tcp", "host": "h", "port": 1}], "timeout": 0},
            "timeout must be a positive",
        ),
        ({"checks": [{"name": "x", "kind": "tcp", "host": "h", "port": 1, "timeout": -1}]}, "checks[0] (x).timeout"),
        ({"checks": [{"name": "x", "kind": "tcp", "host": "h", "port": 1}], "deadline": 1}, "deadline 1s is shorter"),
        ({"checks": [{"name": "x", "kind": "tcp", "host": "h", "port": 1, "timeout": 20}]}, "longer than deadline"),
        (
            {
                "checks": [
                    {"name": "x", "kind": "tcp", "host": "h", "port": 1},
                    {"name": "x", "kind": "disk", "path": "/"},
                ]
            },
            "checks: name 'x' is used twice",
        ),
        ({"checks": [{"name": "x", "kind": "process", "service": "s"}]}, "needs manager"),
        (
            {"checks": [{"name": "x", "kind": "tcp", "host": "h", "port": 1}], "include": ["y"]},
            "include: no check named y",
        ),
        ({"checks": [{"name": "x", "kind": "file", "path": "/f", "sha256": "abc"}]}, "sha256"),
        ({"checks": [{"name": "x", "kind": "http", "url": "http://h/", "body_regex": "("}]}, "body_regex"),
        ({"checks": [{"name": "x", "kind": "redis", "url": "redis://h/zero"}]}, "checks[0] (x): url"),
        ({"checks": [{"name": "x", "kind": "database", "url": "mysql://h/db"}]}, "checks[0] (x): url"),
        ({"checks": [{"name": "x"}]}, "checks[0] (x): kind is missing"),
        ({"config": "/nonexistent/etc/config.yml"}, "config: /nonexistent/etc/config.yml does not exist"),
    ],
)
def test_bad_arguments_name_the_parameter(module_runner: Any, args: dict[str, Any], message: str) -> None:
    result, failed = module_runner("notification_health", args)
    assert failed and message in result["msg"], result["msg"]


def test_a_config_that_is_not_yaml_is_a_failed_config_check(module_runner: Any, tmp_path: Path) -> None:
    """A broken config.yml is what the operator needs to hear about, not a module error: the config check
    fails with the parser's message and the checks that need nothing from config.yml still run."""
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "config.yml"
    config.write_text(textwrap.dedent("mode: websocket\nweb: [unclosed\n"))
    result, failed = module_runner("notification_health", {"config": str(config), "disk_min_free_percent": 0})
    assert not failed, result.get("msg")
    assert list(result["checks"]) == ["disk", "config", "templates"]
    assert result["overall"] == "failed" and "config" in result["failed_checks"]
    assert result["checks"]["config"]["error"].startswith(f"{config} is not valid YAML at line")
    assert result["checks"]["disk"]["status"] == "healthy"
    config.write_text("- a list\n")
    result, failed = module_runner("notification_health", {"config": str(config)})
    assert not failed and "is not a mapping" in result["checks"]["config"]["error"]
    result, failed = module_runner("notification_health", {"config": str(tmp_path / "etc" / "absent.yml")})
    assert failed and "does not exist" in result["msg"], "a wrong path is still a bad argument"
