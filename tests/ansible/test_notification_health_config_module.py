"""notification_health as a whole: checks run concurrently within the deadline, the overall status, check mode,
the default checks derived from config.yml, and the refusal of bad arguments."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils import notification_health as nh

from tests.ansible.health_servers import (
    API_TOKEN,
    NAMESPACE,
    Blackhole,
    HTTPServer,
    RedisServer,
    SocketIOServer,
    health,
    sqlite_db,
)
from tests.conftest import VENV_BIN

# The servers (http_server, sio_server, redis_server, ...): one of each per test module.
pytest_plugins = ["tests.ansible.health_fixtures"]

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
    for name in "abcd":  # each connection accepted, nothing answered
        assert result["checks"][name]["reason"] == "hung"
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
