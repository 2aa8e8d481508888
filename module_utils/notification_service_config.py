"""The notification service's own configuration as a host reads it: config.yml, its secrets file, the paths and
the database URL it names.

Shipped with ``notification_health``, ``notification_backup`` and ``notification_mode``. Standard library only,
Python 3.8+: config.yml is read with PyYAML when the module's Python has it, else with
``notification_yaml``'s reader of the plain form the deploy role writes (a bare host's Python has no PyYAML).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote

from ansible.module_utils.notification_common import HealthArgumentError
from ansible.module_utils.notification_yaml import YAML_ERRORS, YamlSubsetError, safe_load


def read_yaml(path: str, what: str) -> Any:
    """The YAML file ``path``; HealthArgumentError names ``what`` (the argument), the file and the fix."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise HealthArgumentError(
            f"{what}: {path} does not exist; pass the path of the service's config.yml "
            "(for example /srv/notification/etc/config.yml)"
        ) from None
    except IsADirectoryError:
        raise HealthArgumentError(f"{what}: {path} is a directory; pass the path of config.yml itself") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HealthArgumentError(
            f"{what}: {path} cannot be read ({reason}); fix its permissions or run the task with become"
        ) from None
    try:
        return safe_load(text)
    except YamlSubsetError as exc:
        raise HealthArgumentError(
            f"{what}: {path} {exc} and this host's Python has no PyYAML; install PyYAML for it (python3-yaml) "
            "or keep the file in the plain form the deploy role writes"
        ) from None
    except YAML_ERRORS as exc:  # PyYAML's
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HealthArgumentError(f"{what}: {path} is not valid YAML{where} ({problem}); fix the file") from None


def read_service_config(config_path: str) -> dict[str, Any]:
    """The service's config.yml as a mapping.

    Raises HealthArgumentError when the file is missing, unreadable, not YAML
    or not a mapping (the message names the file and the fix).
    """
    data = read_yaml(config_path, "config")
    if not isinstance(data, dict):
        raise HealthArgumentError(
            f"config: {config_path} is not a mapping of keys (mode, web, websocket, redis_url, ...); fix the file"
        )
    return data


def section(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a mapping (``web``, ``websocket``), else an empty one."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def port_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536 else None


def path_in_config(value: Any, base_dir: str) -> str | None:
    """A path given in config.yml, made absolute (relative paths are relative to ``base_dir``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    path = os.path.expanduser(value.strip())
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def read_api_token(secrets_file: str | None) -> tuple[str | None, str | None]:
    """(api_token, why not) from the service's secrets file."""
    if not secrets_file:
        return None, "config.yml has no secrets_file, so no api_token was sent"
    try:
        data = read_yaml(secrets_file, "secrets_file")
    except HealthArgumentError as exc:
        return None, f"no api_token was sent: {exc}"
    token = data.get("api_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token.strip():
        return None, f"secrets_file {secrets_file} has no api_token, so none was sent"
    return token.strip(), None


def service_root(config_path: str) -> str:
    """The service's root: the parent of the etc/ directory holding config.yml (else config.yml's directory)."""
    etc_dir = os.path.dirname(os.path.abspath(config_path))
    return os.path.dirname(etc_dir) if os.path.basename(etc_dir) == "etc" else etc_dir


def connect_host(host: str) -> str:
    """Where this host reaches a server bound to ``host`` (a wildcard address means this host)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def parse_database_url(url: str, base_dir: str | None = None) -> tuple[str, str]:
    """(dialect, target): for SQLite the file path, for PostgreSQL a libpq URI."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("it has no scheme://")
    driver = scheme.lower().split("+", 1)[0]
    if driver == "sqlite":
        path = unquote(rest.split("?", 1)[0])
        if not path.startswith("/") or path in ("/", "/:memory:"):
            raise ValueError("it is not an SQLite file URL like sqlite:////absolute/path.db")
        path = path[1:]  # sqlite:////abs/path.db -> /abs/path.db; sqlite:///rel.db -> rel.db
        if not os.path.isabs(path) and base_dir:
            path = os.path.join(base_dir, path)
        return "sqlite", path
    if driver in ("postgresql", "postgres"):
        return "postgresql", "postgresql://" + rest
    raise ValueError(f"its driver {scheme!r} is not sqlite or postgresql")
