"""notification_health with the inventory's desired state: the derived checks look where it says the service
is (not where config.yml says), and a drift check compares config.yml with it (reason drift)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.ansible.health_servers import HTTPServer, closed_port

pytest_plugins = ["tests.ansible.health_fixtures"]


def _config(tmp_path: Path, web_port: int, ws_port: int, public_url: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "config.yml"
    data = {
        "mode": "websocket",
        "web": {"host": "0.0.0.0", "port": web_port},
        "websocket": {"enabled": True, "host": "127.0.0.1", "port": ws_port, "public_url": public_url},
        "redis_url": "redis://127.0.0.1:1/0",
        "database_url": f"sqlite:///{tmp_path}/data/notifications.db",
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _run(module_runner: Any, args: dict[str, Any]) -> dict[str, Any]:
    result, failed = module_runner("notification_health", args)
    assert not failed, result.get("msg")
    return result


def test_the_checks_look_where_the_inventory_says_and_drift_is_a_failed_check(
    module_runner: Any, http_server: HTTPServer, tmp_path: Path
) -> None:
    drifted, ws_port = closed_port(), closed_port()
    config = _config(tmp_path, drifted, ws_port, f"http://127.0.0.1:{ws_port}/")
    desired = {
        "web_host": "0.0.0.0",
        "web_port": http_server.port,
        "websocket_host": "127.0.0.1",
        "websocket_port": ws_port,
        "websocket_public_url": f"http://127.0.0.1:{ws_port}",  # the same URL, without the trailing slash
    }
    result = _run(module_runner, {"config": str(config), "desired": desired, "include": ["web_port", "drift"]})
    web_port = result["checks"]["web_port"]
    assert web_port["status"] == "healthy" and web_port["evidence"]["port"] == http_server.port
    drift = result["checks"]["drift"]
    assert (drift["status"], drift["reason"]) == ("failed", "drift")
    assert (drift["component"], drift["kind"]) == ("config", "file")
    assert drift["evidence"]["drift"] == {"web.port": {"config": drifted, "desired": http_server.port}}
    assert f"web.port is {drifted}" in drift["error"]

    same = dict(desired, web_port=drifted)
    agreed = _run(module_runner, {"config": str(config), "desired": same, "include": ["web_port", "drift"]})
    assert agreed["checks"]["drift"]["status"] == "healthy" and agreed["checks"]["drift"]["evidence"]["drift"] == {}
    assert agreed["checks"]["web_port"]["reason"] == "refused"  # config.yml's port, where nothing listens

    without = _run(module_runner, {"config": str(config), "exclude": ["websocket", "redis", "database", "page"]})
    assert "drift" not in without["checks"]
    assert without["checks"]["web_port"]["evidence"]["port"] == drifted  # config.yml alone decides
