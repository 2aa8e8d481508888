"""From the ``notification_health`` module's arguments (and the service's config.yml) to the checks to run.

The default checks are derived from config.yml (docs/health-result.md lists them); the module's ``checks``
adjust, replace, disable or add to them; every check is validated here, so that a bad argument fails the
module with a message naming it before anything runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.notification_checks import (
    DEFAULT_COMPONENT,
    KINDS,
    NETWORK_KINDS,
    CheckSpec,
    Context,
    import_psycopg,
)
from ansible.module_utils.notification_common import DEGRADED, HealthArgumentError, shown_url
from ansible.module_utils.notification_drift import desired_values
from ansible.module_utils.notification_redact import url_secrets
from ansible.module_utils.notification_redis import parse_redis_url
from ansible.module_utils.notification_service_config import (
    connect_host,
    parse_database_url,
    path_in_config,
    port_number,
    read_api_token,
    read_yaml,
    section,
    service_root,
)

DEFAULT_SERVICES = {"web": "notification-web", "websocket": "notification-websocket"}
# Directories under the root that a deployment often mounts on a filesystem of their own (a log volume, a
# backup volume): each one that is gets a disk check of its own, since the root's free space says nothing
# about them.
SEPARATE_VOLUMES = ("log", "backups")
URL_SCHEMES = {
    "http": ("http", "https"),
    "websocket": ("http", "https", "ws", "wss"),
    "redis": ("redis", "rediss", "unix"),
}
KIND_EXAMPLES = {
    "http": "url: http://127.0.0.1:8000/health",
    "websocket": "url: http://127.0.0.1:8001",
    "redis": "url: redis://127.0.0.1:6379/0",
    "database": "url: sqlite:////srv/notification/data/notifications.db",
}


@dataclass
class Plan:
    specs: list[CheckSpec]
    deadline: float
    secrets: set[str] = field(default_factory=set)  # masked wherever they could show up
    context: Context = field(default_factory=Context)


# -- the default checks, from config.yml -----------------------------------------------------------------


def disk_checks(root: str) -> list[dict[str, Any]]:
    """A disk check of the root's filesystem, and of each of SEPARATE_VOLUMES mounted on another one."""
    checks = [{"name": "disk", "kind": "disk", "component": "disk", "path": root}]
    try:
        root_device = os.stat(root).st_dev
    except OSError:
        return checks  # the disk check itself reports the missing root
    for name in SEPARATE_VOLUMES:
        path = os.path.join(root, name)
        try:
            separate = os.path.isdir(path) and os.stat(path).st_dev != root_device
        except OSError:
            separate = False
        if separate:
            checks.append({"name": f"disk_{name}", "kind": "disk", "component": "disk", "path": path})
    return checks


def _services(params: dict[str, Any]) -> dict[str, str]:
    return {**DEFAULT_SERVICES, **{k: v for k, v in (params.get("services") or {}).items() if v}}


def _process_checks(params: dict[str, Any], legacy: bool = False) -> list[dict[str, Any]]:
    """The web and websocket process checks, when the module was told the service manager."""
    if not params.get("manager"):
        return []
    services = _services(params)
    checks: list[dict[str, Any]] = []
    for name, role in (("web_process", "web"), ("websocket_process", "websocket")):
        check: dict[str, Any] = {"name": name, "kind": "process", "component": role, "service": services[role]}
        if legacy:
            check["_disabled"] = role == "websocket"
        checks.append(check)
    return checks


class ServiceConfig:
    """What the default checks need from a usable config.yml, and the desired state (the inventory's, from the
    module's ``desired``): where it says the service answers wins over config.yml, so the checks look where the
    direct probes and the dashboard look, and the ``drift`` check reports config.yml's difference."""

    def __init__(self, config_path: str, data: dict[str, Any], desired: dict[str, Any] | None = None) -> None:
        self.path = config_path
        self.data = data
        self.desired = {key: value for key, value in (desired or {}).items() if value not in (None, "")}
        self.etc_dir = os.path.dirname(config_path)
        self.root = service_root(config_path)
        self.web, self.websocket = section(data, "web"), section(data, "websocket")
        self.legacy = data.get("mode") == "legacy" or self.websocket.get("enabled") is False
        want = self.desired.get
        self.web_host = connect_host(str(want("web_host") or self.web.get("host") or "127.0.0.1"))
        self.web_port = port_number(want("web_port") or self.web.get("port"))
        self.ws_host = connect_host(str(want("websocket_host") or self.websocket.get("host") or "127.0.0.1"))
        self.ws_port = port_number(want("websocket_port") or self.websocket.get("port"))

    def missing(self, key: str, what: str) -> str:
        return f"config.yml ({self.path}) has no valid {key}, needed for the {what} check; fix config.yml"

    def web_url(self, path: str) -> str:
        host = f"[{self.web_host}]" if ":" in self.web_host else self.web_host
        return f"http://{host}:{self.web_port}{path}"


def _web_checks(config: ServiceConfig) -> list[dict[str, Any]]:
    return [
        {
            "name": "web",
            "kind": "http",
            "component": "web",
            "url": config.web_url("/health"),
            "expected_status": [200],
            # The web process answers 200 with "degraded" when a component it depends on is down (that
            # component's own check fails); the web process itself is then working, but not as it should.
            "json": {"status": "healthy"},
            "mismatch": DEGRADED,
            "_setup_error": None if config.web_port else config.missing("web.port", "web"),
        }
    ]


def _websocket_check(config: ServiceConfig, secrets: set[str]) -> dict[str, Any]:
    public_url = config.desired.get("websocket_public_url")
    if not public_url and not (config.desired.get("websocket_host") or config.desired.get("websocket_port")):
        public_url = config.websocket.get("public_url")
    if not isinstance(public_url, str) or not public_url.strip():
        host = f"[{config.ws_host}]" if ":" in config.ws_host else config.ws_host
        public_url = f"http://{host}:{config.ws_port}" if config.ws_port else None
    check: dict[str, Any] = {
        "name": "websocket",
        "kind": "websocket",
        "component": "websocket",
        "url": public_url,
        "namespace": config.websocket.get("namespace") or "/notifications",
        "_disabled": config.legacy,
        "_setup_error": None if public_url else config.missing("websocket.public_url", "websocket"),
    }
    if not config.legacy:
        token, why_not = read_api_token(path_in_config(config.data.get("secrets_file"), config.etc_dir))
        if token:
            check["auth"] = {"api_token": token}
            secrets.add(token)
        else:
            check["auth_note"] = why_not
    return check


def _store_checks(config: ServiceConfig) -> list[dict[str, Any]]:
    redis_url, database_url = config.data.get("redis_url"), config.data.get("database_url")
    return [
        {
            "name": "redis",
            "kind": "redis",
            "component": "redis",
            "url": redis_url,
            "_setup_error": None if isinstance(redis_url, str) and redis_url else config.missing("redis_url", "redis"),
        },
        {
            "name": "database",
            "kind": "database",
            "component": "database",
            "url": database_url,
            "base_dir": config.etc_dir,
            "_setup_error": None
            if isinstance(database_url, str) and database_url
            else config.missing("database_url", "database"),
        },
    ]


def _port_checks(config: ServiceConfig) -> list[dict[str, Any]]:
    return [
        {
            "name": "web_port",
            "kind": "tcp",
            "component": "web",
            "host": config.web_host,
            "port": config.web_port,
            "_setup_error": None if config.web_port else config.missing("web.port", "web_port"),
        },
        {
            "name": "websocket_port",
            "kind": "tcp",
            "component": "websocket",
            "host": config.ws_host,
            "port": config.ws_port,
            "_disabled": config.legacy,
            "_setup_error": None
            if config.ws_port or config.legacy
            else config.missing("websocket.port", "websocket_port"),
        },
    ]


def _file_checks(config: ServiceConfig) -> list[dict[str, Any]]:
    templates_dir = path_in_config(config.data.get("templates_dir"), config.etc_dir) or os.path.join(
        config.root, "templates", "active"
    )
    checks: list[dict[str, Any]] = [{"name": "config", "kind": "file", "component": "config", "path": config.path}]
    drift = desired_values(config.desired)
    if drift:  # config.yml against the desired state (reason drift), when the module was given one
        checks.append({"name": "drift", "kind": "file", "component": "config", "path": config.path, "desired": drift})
    return [
        *checks,
        {
            "name": "templates",
            "kind": "file",
            "component": "templates",
            "path": os.path.join(templates_dir, "index.html"),
        },
        # The page users see: it renders the active templates, so a template that is broken (not missing)
        # shows here as a 500. Part of the templates component for the classification.
        {
            "name": "page",
            "kind": "http",
            "component": "templates",
            "url": config.web_url("/"),
            "expected_status": [200],
            "_setup_error": None if config.web_port else config.missing("web.port", "page"),
        },
    ]


def default_checks(config_path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """The default checks (docs/health-result.md) derived from the service's config.yml; and its secrets.

    A config.yml that exists but cannot be used (not YAML, not a mapping) is a finding, not a bad argument:
    the ``config`` check fails with the reason, and the checks that need nothing from config.yml still run
    (process, disk, templates), so the classification sees a configuration error and what else is down."""
    try:
        data = read_yaml(config_path, "config")
        if not isinstance(data, dict):
            raise HealthArgumentError(
                f"config: {config_path} is not a mapping of keys (mode, web, websocket, redis_url, ...); "
                "pass the service's config.yml (reference_app/README.md shows its format)"
            )
    except HealthArgumentError as exc:
        if not os.path.isfile(config_path) or not os.access(config_path, os.R_OK):
            raise  # a wrong path or no permission: the argument is the problem
        return _checks_without_config(os.path.abspath(config_path), str(exc), params), set()
    config = ServiceConfig(os.path.abspath(config_path), data, params.get("desired"))
    secrets: set[str] = set()
    checks = _web_checks(config)
    checks.append(_websocket_check(config, secrets))
    checks += _store_checks(config) + _port_checks(config) + _process_checks(params, config.legacy)
    checks += disk_checks(config.root) + _file_checks(config)
    for check in checks:
        if check["kind"] in ("redis", "database") and isinstance(check.get("url"), str):
            secrets |= url_secrets(check["url"], service=True)
    return checks, secrets


def _checks_without_config(config_path: str, problem: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks that can run when config.yml is unusable; the config check carries the problem."""
    root = service_root(config_path)
    checks = _process_checks(params) + disk_checks(root)
    prefix = "config: "
    checks.append(
        {
            "name": "config",
            "kind": "file",
            "component": "config",
            "path": config_path,
            "_setup_error": problem[len(prefix) :] if problem.startswith(prefix) else problem,
        }
    )
    checks.append(
        {
            "name": "templates",
            "kind": "file",
            "component": "templates",
            "path": os.path.join(root, "templates", "active", "index.html"),
        }
    )
    return checks


# -- one check, validated --------------------------------------------------------------------------------


def _label(raw: dict[str, Any]) -> str:
    index = raw.get("_index")
    return f"checks[{index}] ({raw['name']})" if index is not None else f"check {raw['name']} (from config)"


def _positive(value: Any, where: str) -> float:
    if value is None or value <= 0:
        raise HealthArgumentError(f"{where} must be a positive number of seconds, got {value}; set it above 0")
    return float(value)


def normalize(raw: dict[str, Any], params: dict[str, Any]) -> CheckSpec:
    """A check from the module arguments (or the config defaults) as a CheckSpec; bad values raise."""
    label = _label(raw)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise HealthArgumentError(f"{label}: kind {kind!r} is not one of {', '.join(KINDS)}; set kind to one of them")
    component = raw.get("component") or DEFAULT_COMPONENT[kind]
    timeout = _positive(raw.get("timeout") if raw.get("timeout") is not None else params["timeout"], f"{label}.timeout")
    if timeout > params["deadline"]:
        raise HealthArgumentError(
            f"{label}.timeout {timeout:g}s is longer than deadline {params['deadline']:g}s; "
            "lower the timeout or raise deadline"
        )
    options = {key: value for key, value in raw.items() if not key.startswith("_") and value is not None}
    for key in ("name", "kind", "component", "critical", "timeout", "enabled"):
        options.pop(key, None)
    spec = CheckSpec(
        name=raw["name"],
        kind=kind,
        component=component,
        critical=raw.get("critical") is not False,
        timeout=timeout,
        options=options,
        disabled=bool(raw.get("_disabled")),
        setup_error=raw.get("_setup_error"),
    )
    if not (spec.disabled or spec.setup_error):
        _check_options(kind, label, options, params)
    return spec


def _check_url(kind: str, label: str, url: str) -> None:
    try:
        scheme = urlsplit(url).scheme
        if kind == "database":
            parse_database_url(url)
        elif kind == "redis":
            parse_redis_url(url)
    except ValueError as exc:
        raise HealthArgumentError(
            f"{label}: url {shown_url(url)} is not usable ({exc}); set {KIND_EXAMPLES[kind]}"
        ) from None
    if kind in URL_SCHEMES and scheme not in URL_SCHEMES[kind]:
        raise HealthArgumentError(
            f"{label}: url {shown_url(url)} must start with {' or '.join(s + '://' for s in URL_SCHEMES[kind])}; "
            f"set {KIND_EXAMPLES[kind]}"
        )


def _check_options(kind: str, label: str, options: dict[str, Any], params: dict[str, Any]) -> None:
    """Validate one check's kind-specific options and fill in the module-wide defaults (in place)."""

    def need(key: str, example: str) -> Any:
        if options.get(key) in (None, ""):
            raise HealthArgumentError(f"{label}: kind {kind} needs {key}; add {example}")
        return options[key]

    if kind in NETWORK_KINDS:
        options.setdefault("latency_degraded_ms", params["latency_degraded_ms"])
    if kind in URL_SCHEMES or kind == "database":
        _check_url(kind, label, str(need("url", KIND_EXAMPLES[kind])))
    if kind == "http":
        options.setdefault("expected_status", [200])
        if options.get("body_regex"):
            try:
                re.compile(options["body_regex"])
            except re.error as exc:
                raise HealthArgumentError(
                    f"{label}: body_regex is not a valid regular expression ({exc}); fix the pattern"
                ) from None
    elif kind == "websocket":
        if "roundtrip" not in options:
            options["roundtrip"] = params["websocket_roundtrip"]
        namespace = options.get("namespace") or "/"
        if not namespace.startswith("/") or "," in namespace or any(ch.isspace() for ch in namespace):
            raise HealthArgumentError(
                f"{label}: namespace {namespace!r} is not a Socket.IO namespace; set namespace: /notifications"
            )
    elif kind == "redis":
        options.setdefault("pending_max_length", params["pending_max_length"])
        options.setdefault("pending_max_age_s", params["pending_max_age_s"])
    elif kind == "database":
        if parse_database_url(options["url"])[0] == "postgresql":
            import_psycopg()
    elif kind == "tcp":
        need("host", "host: 127.0.0.1")
        port = need("port", "port: 8000")
        if not 0 < port < 65536:
            raise HealthArgumentError(f"{label}: port {port} is not a port number; set port to 1..65535")
    elif kind == "process":
        _check_process_options(label, need, options, params)
    elif kind == "disk":
        need("path", "path: /srv/notification")
        if options.get("min_free_percent") is None:
            options["min_free_percent"] = params["disk_min_free_percent"]
    elif kind == "file":
        need("path", "path: /srv/notification/etc/config.yml")
        digest = options.get("sha256")
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise HealthArgumentError(f"{label}: sha256 {digest!r} is not 64 hex digits; set the file's SHA-256")


def _check_process_options(label: str, need: Any, options: dict[str, Any], params: dict[str, Any]) -> None:
    need("service", "service: notification-web")
    options.setdefault("manager", params.get("manager"))
    if options.get("manager") not in ("supervisord", "systemd"):
        raise HealthArgumentError(
            f"{label}: kind process needs manager; set the module's manager (or the check's) to supervisord or systemd"
        )
    if options["manager"] == "supervisord":
        options.setdefault("supervisor_config", params.get("supervisor_config"))
        if not options.get("supervisor_config"):
            raise HealthArgumentError(
                f"{label}: manager supervisord needs supervisor_config; set supervisor_config to the path of "
                "supervisord.conf"
            )


# -- the whole plan --------------------------------------------------------------------------------------


def _check_limits(params: dict[str, Any]) -> float:
    """The module-wide numbers, validated; the deadline."""
    _positive(params["timeout"], "timeout")
    deadline = _positive(params["deadline"], "deadline")
    if deadline < params["timeout"]:
        raise HealthArgumentError(
            f"deadline {deadline:g}s is shorter than timeout {params['timeout']:g}s; raise deadline or lower timeout"
        )
    for key in ("latency_degraded_ms", "pending_max_length", "pending_max_age_s", "disk_min_free_percent"):
        if params[key] is not None and params[key] < 0:
            raise HealthArgumentError(f"{key} must not be negative, got {params[key]}; set it to 0 or more")
    return deadline


def _merge_given(raws: dict[str, dict[str, Any]], given_checks: list[dict[str, Any]], secrets: set[str]) -> None:
    """Apply the module's ``checks`` to the defaults (in place): adjust, replace, disable or add; collect their
    secrets."""
    seen: dict[str, int] = {}
    for index, given in enumerate(given_checks):
        check = {key: value for key, value in given.items() if value is not None}
        name = check.get("name")
        if not name:
            raise HealthArgumentError(f"checks[{index}]: name is missing; give every check a unique name")
        if name in seen:
            raise HealthArgumentError(
                f"checks: name {name!r} is used twice (checks[{seen[name]}] and checks[{index}]); "
                "give each check a unique name"
            )
        seen[name] = index
        check["_index"] = index
        if check.get("enabled") is False:
            raws.pop(name, None)
        elif "kind" not in check and name in raws:
            # Without a kind, a check named like a default adjusts that default (its timeout, thresholds...);
            # giving what config.yml lacked (url, host, port...) makes it usable again.
            merged = {**raws[name], **check}
            if any(key in check for key in ("url", "host", "port", "path", "service")):
                merged.pop("_setup_error", None)
            raws[name] = merged
        elif "kind" not in check:
            raise HealthArgumentError(
                f"checks[{index}] ({name}): kind is missing; set kind to one of {', '.join(KINDS)}"
            )
        else:
            raws[name] = check
        if isinstance(check.get("url"), str):
            secrets |= url_secrets(check["url"], service=True)
        for value in (check.get("auth") or {}).values():
            if isinstance(value, str):
                secrets.add(value)


def _select(raws: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checks left after ``include`` and ``exclude``; at least one."""
    for option in ("include", "exclude"):
        unknown = [name for name in params.get(option) or [] if name not in raws]
        if unknown:
            raise HealthArgumentError(
                f"{option}: no check named {', '.join(unknown)}; known checks: {', '.join(raws) or 'none'}"
            )
    if params.get("include"):
        raws = {name: raw for name, raw in raws.items() if name in params["include"]}
    raws = {name: raw for name, raw in raws.items() if name not in (params.get("exclude") or [])}
    if not raws:
        raise HealthArgumentError(
            "no checks left to run; pass config or checks, and do not exclude or disable every check"
        )
    return raws


def build_plan(params: dict[str, Any]) -> Plan:
    """Validate the module's arguments and turn them into the checks to run."""
    deadline = _check_limits(params)
    raws: dict[str, dict[str, Any]] = {}
    secrets: set[str] = set()
    if params.get("config"):
        defaults, secrets = default_checks(params["config"], params)
        if params.get("manager") == "supervisord" and not params.get("supervisor_config"):
            # Where the notification_service role puts it (notification_service_supervisor_config).
            supervisor_config = os.path.join(service_root(params["config"]), "etc", "supervisord.conf")
            params = {**params, "supervisor_config": supervisor_config}
        raws = {raw["name"]: raw for raw in defaults}
    _merge_given(raws, params.get("checks") or [], secrets)
    specs = [normalize(raw, params) for raw in _select(raws, params).values()]
    return Plan(specs=specs, deadline=deadline, secrets=secrets, context=Context(bin_dir=params.get("bin_dir")))
