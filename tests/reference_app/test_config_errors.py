"""Bad configuration: exit status 2 and one clear line on stderr, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness import API_TOKEN, SECRET_KEY, run_cli


def _config(tmp_path: Path, **changes: Any) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "index.html").write_text("<html></html>")
    secrets = tmp_path / "secrets.yml"
    if not secrets.exists():
        secrets.write_text(yaml.safe_dump({"api_token": API_TOKEN, "secret_key": SECRET_KEY}))
        secrets.chmod(0o600)
    settings: dict[str, Any] = {
        "mode": "websocket",
        "websocket": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": 1,
            "namespace": "/notifications",
            "public_url": "http://127.0.0.1:1",
        },
        "web": {"host": "127.0.0.1", "port": 2, "workers": 1, "threads": 1},
        "redis_url": "redis://127.0.0.1:3/0",
        "database_url": f"sqlite:///{tmp_path / 'n.db'}",
        "templates_dir": str(templates),
        "emergency_file": str(tmp_path / "emergency.json"),
        "secrets_file": str(secrets),
    }
    for dotted, value in changes.items():
        node = settings
        *parents, leaf = dotted.split("__")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _assert_clean_error(result: Any, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line: str = lines[0]
    assert line.startswith("notification-service: error: ")
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@pytest.mark.parametrize("command", ["web", "websocket", "check-config"])
def test_unknown_mode_exits_2_naming_key_value_and_choices(tmp_path: Path, command: str) -> None:
    path = _config(tmp_path, mode="flash")
    result = run_cli(command, "--config", str(path), timeout=20)
    _assert_clean_error(result, "mode", "'flash'", "websocket, legacy", str(path))
    if command == "check-config":
        answer = json.loads(result.stdout)
        assert answer["ok"] is False and "mode" in answer["error"]


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"web__port": 70000}, ("web.port", "70000", "1..65535")),
        ({"websocket__port": "8001"}, ("websocket.port", "'8001'", "1..65535")),
        ({"websocket__enabled": False}, ("websocket.enabled", "false", "mode websocket")),
        ({"redis_url": None}, ("redis_url", "missing")),
        ({"database_url": "mysql://x@y/z"}, ("database_url", "mysql", "postgresql+psycopg")),
        ({"secrets_file": "/nonexistent/secrets.yml"}, ("/nonexistent/secrets.yml", "does not exist")),
    ],
)
def test_check_config_names_the_problem(tmp_path: Path, changes: dict[str, Any], needles: tuple[str, ...]) -> None:
    path = _config(tmp_path, **changes)
    _assert_clean_error(run_cli("check-config", "--config", str(path)), *needles)


def test_secrets_without_api_token(tmp_path: Path) -> None:
    (tmp_path / "secrets.yml").write_text(yaml.safe_dump({"secret_key": SECRET_KEY}))
    (tmp_path / "secrets.yml").chmod(0o600)
    path = _config(tmp_path)
    _assert_clean_error(run_cli("check-config", "--config", str(path)), "api_token", "secrets.yml")


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("mode: [websocket\n")
    _assert_clean_error(run_cli("check-config", "--config", str(path)), "invalid YAML", "line")
    _assert_clean_error(run_cli("stats", "--config", str(tmp_path / "missing.yml")), "does not exist")


def test_valid_config_passes_and_websocket_refuses_when_disabled(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] is True and answer["mode"] == "websocket" and answer["database"] == "sqlite"

    disabled = _config(tmp_path, mode="legacy", websocket__enabled=False)
    _assert_clean_error(run_cli("websocket", "--config", str(disabled)), "websocket.enabled")


def test_probe_leaves_the_database_url_alone_and_never_loads_sqlalchemy(tmp_path: Path) -> None:
    """The probe never opens the database, so its config check skips database_url (checking it loads
    SQLAlchemy, most of a probe's start-up; the toolkit runs one probe per host it switches)."""
    import subprocess
    import sys

    from notification_service.config import ConfigError, load_config

    path = _config(tmp_path, database_url="mysql://x@y/z")
    with pytest.raises(ConfigError, match="database_url"):
        load_config(path)
    assert load_config(path, check_database=False).database_url == "mysql://x@y/z"

    # The probe's path, imported in a fresh interpreter: no SQLAlchemy (the web process is not running, so
    # the probe itself fails at its first request; what matters here is what it imported and that it got
    # past the config check).
    script = (
        "import sys\n"
        "from notification_service import cli\n"
        f"try:\n    cli.main(['probe', '--config', {str(path)!r}, '--user', 'u1', '--timeout', '1'])\n"
        "except SystemExit as exc:\n    print('exit', exc.code)\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "False", (done.stdout, done.stderr)
    assert lines[-2] == "exit 1", (done.stdout, done.stderr)  # a run-time failure, not a config error (2)
    assert "database_url" not in done.stderr
