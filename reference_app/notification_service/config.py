"""Loading and validating ``config.yml`` and the secrets file it names.

Every problem is reported as a :class:`ConfigError` whose message names the key, the bad value, what is
allowed and the file, in one line, so that the command line can print it without a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

log = logging.getLogger(__name__)

MODES = ("websocket", "legacy")
DEFAULT_NAMESPACE = "/notifications"
DEFAULT_WEB_WORKERS = 2
DEFAULT_WEB_THREADS = 4
DATABASE_DRIVERS = ("sqlite", "postgresql+psycopg")
REDIS_SCHEMES = ("redis", "rediss", "unix")
KNOWN_KEYS = frozenset(
    {
        "mode",
        "websocket",
        "web",
        "redis_url",
        "database_url",
        "templates_dir",
        "emergency_file",
        "secrets_file",
        "log_dir",
    }
)


class ConfigError(Exception):
    """The configuration (or the secrets file it names) is unusable; the message says why and how to fix."""


@dataclass(frozen=True)
class WebsocketSettings:
    enabled: bool
    host: str
    port: int
    namespace: str
    public_url: str


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    workers: int
    threads: int


@dataclass(frozen=True)
class Secrets:
    api_token: str = field(repr=False)
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class Config:
    path: Path
    mode: str
    websocket: WebsocketSettings
    web: WebSettings
    redis_url: str
    database_url: str
    templates_dir: Path
    emergency_file: Path
    secrets_file: Path
    log_dir: Path | None
    secrets: Secrets

    @property
    def delivery_channel(self) -> str:
        """The channel new deliveries get: ``websocket`` in WebSocket mode, ``flash`` in legacy mode."""
        return "websocket" if self.mode == "websocket" and self.websocket.enabled else "flash"

    @property
    def web_base_url(self) -> str:
        return f"http://{_connect_host(self.web.host)}:{self.web.port}"

    @property
    def websocket_base_url(self) -> str:
        """Where this host reaches the websocket process directly (its own /health)."""
        return f"http://{_connect_host(self.websocket.host)}:{self.websocket.port}"

    def cors_origins(self) -> list[str]:
        """Origins allowed to open a Socket.IO connection: the web process and the public URL."""
        origins: list[str] = []
        hosts = [self.web.host]
        if self.web.host in ("0.0.0.0", "::", "127.0.0.1", "localhost", "::1"):
            hosts += ["127.0.0.1", "localhost"]
        for host in hosts:
            shown = f"[{host}]" if ":" in host else host
            origins.append(f"http://{shown}:{self.web.port}")
        public = urlsplit(self.websocket.public_url)
        if public.scheme and public.netloc:
            origins.append(f"{public.scheme}://{public.netloc}")
        return list(dict.fromkeys(origins))


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Validator:
    """Reads typed values out of the parsed YAML and turns every problem into one clear ConfigError."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, key: str, value: Any, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.path.name}: {key} {_show(value)} {problem}; {fix} in {self.path}")

    def missing(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.path.name}: required key {key} is missing; add {key}: <{what}> to {self.path}")

    def lookup(self, key: str) -> tuple[bool, Any]:
        node: Any = self.data
        parts = key.split(".")
        for index, part in enumerate(parts):
            if not isinstance(node, dict):
                parent = ".".join(parts[:index])
                raise self.fail(parent, node, "is not a mapping", f"write {parent}: as a mapping of keys")
            if part not in node or node[part] is None:
                return False, None
            node = node[part]
        return True, node

    def string(self, key: str, what: str, default: str | None = None) -> str:
        present, value = self.lookup(key)
        if not present:
            if default is not None:
                return default
            raise self.missing(key, what)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, f"is not a {what}", f"set {key} to a {what}")
        return value.strip()

    def boolean(self, key: str) -> bool:
        present, value = self.lookup(key)
        if not present:
            raise self.missing(key, "true or false")
        if not isinstance(value, bool):
            raise self.fail(key, value, "is not true or false", f"set {key}: true or {key}: false")
        return value

    def integer(self, key: str, low: int, high: int, what: str, default: int | None = None) -> int:
        present, value = self.lookup(key)
        if not present:
            if default is not None:
                return default
            raise self.missing(key, f"{what}, an integer {low}..{high}")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                key, value, f"is not {what} (an integer {low}..{high})", f"set {key} to an integer {low}..{high}"
            )
        return value

    def path_value(self, key: str, what: str) -> Path:
        raw = self.string(key, what)
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self.path.parent / candidate
        return candidate


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"({type(value).__name__})"
    return str(value)


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; create it or pass the right --config path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a file; pass the file's path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{what} {path} cannot be read ({reason}); fix its permissions or content") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path.name}: invalid YAML{where} ({problem}); fix the syntax in {path}") from None


def load_secrets(secrets_path: Path, config_path: Path) -> Secrets:
    data = _read_yaml(secrets_path, f"secrets file (secrets_file in {config_path})")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{secrets_path.name}: the secrets file is not a mapping with api_token and secret_key; "
            f"write api_token: <token> and secret_key: <key> in {secrets_path}"
        )
    values: dict[str, str] = {}
    for key in ("api_token", "secret_key"):
        value = data.get(key)
        if value is None:
            raise ConfigError(
                f"{secrets_path.name}: required key {key} is missing; add {key}: <a long random string> "
                f"to {secrets_path}"
            )
        if not isinstance(value, str) or len(value.strip()) < 8:
            raise ConfigError(
                f"{secrets_path.name}: {key} is not a string of at least 8 characters; set {key} to a long "
                f"random string in {secrets_path}"
            )
        values[key] = value.strip()
    try:
        mode = secrets_path.stat().st_mode
        # Group read is how the service reads a secrets file that root owns (root:<service group> 0640, what the
        # toolkit's deploy writes): only others' access and a group write bit are worth a warning.
        if mode & 0o027:
            log.warning(
                "secrets file %s is writable by its group or open to others (mode %o); use 0640 (root's, the "
                "service's group) or 0600",
                secrets_path,
                mode & 0o777,
            )
    except OSError:  # pragma: no cover - it was just read
        pass
    return Secrets(api_token=values["api_token"], secret_key=values["secret_key"])


def _check_database_url(v: _Validator, url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    allowed = "sqlite:////absolute/path.db or postgresql+psycopg://user@host/db"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise v.fail(
            "database_url", url, f"is not a database URL (allowed: {allowed})", "set database_url to one of those"
        ) from None
    driver = parsed.drivername
    if driver == "sqlite+pysqlite":
        driver = "sqlite"
    if driver not in DATABASE_DRIVERS:
        raise v.fail(
            "database_url",
            parsed.render_as_string(hide_password=True),
            f"uses driver {driver!r}, which is not one of {', '.join(DATABASE_DRIVERS)}",
            f"set database_url to {allowed}",
        )
    if driver == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise v.fail(
                "database_url",
                url,
                "is not an SQLite file (several processes share the database)",
                "set database_url to sqlite:////absolute/path/notifications.db",
            )
        db_path = Path(database).expanduser()
        if not db_path.is_absolute():
            db_path = v.path.parent / db_path
            return parsed.set(database=str(db_path)).render_as_string(hide_password=False)
    return url


def load_config(path: str | os.PathLike[str], *, check_database: bool = True) -> Config:
    """Read and validate ``config.yml`` and its secrets file; raise ConfigError on any problem.

    ``check_database=False`` keeps ``database_url`` as written, unchecked: for a command that never opens the
    database (the probe), since checking it loads SQLAlchemy, most of such a command's start-up."""
    config_path = Path(path).expanduser()
    if not config_path.is_absolute():
        config_path = Path.cwd() / config_path
    data = _read_yaml(config_path, "config file")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{config_path.name}: the file is not a mapping of keys (mode, websocket, web, ...); "
            f"see the reference_app README for the format of {config_path}"
        )
    v = _Validator(config_path, data)
    unknown = sorted(str(key) for key in data if key not in KNOWN_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown keys %s", config_path, ", ".join(unknown))

    present, mode = v.lookup("mode")
    if not present:
        raise v.missing("mode", "websocket or legacy")
    if mode not in MODES:
        raise v.fail("mode", mode, f"is not one of {', '.join(MODES)}", "set mode: websocket or mode: legacy")

    ws_present, ws_section = v.lookup("websocket")
    if not ws_present:
        raise v.missing("websocket", "a mapping with enabled, host, port, namespace, public_url")
    if not isinstance(ws_section, dict):
        raise v.fail("websocket", ws_section, "is not a mapping", "write websocket: as a mapping of keys")
    enabled = v.boolean("websocket.enabled")
    if mode == "websocket" and not enabled:
        raise v.fail(
            "websocket.enabled",
            enabled,
            "is not allowed with mode websocket (it needs websocket.enabled: true)",
            "set websocket.enabled: true or mode: legacy",
        )
    if enabled:
        ws_host = v.string("websocket.host", "host name or address")
        ws_port = v.integer("websocket.port", 1, 65535, "a port number")
        public_url = v.string("websocket.public_url", "http(s) URL")
    else:
        ws_host = v.string("websocket.host", "host name or address", default="127.0.0.1")
        ws_port = v.integer("websocket.port", 1, 65535, "a port number", default=18001)
        public_url = v.string("websocket.public_url", "http(s) URL", default=f"http://{ws_host}:{ws_port}")
    split = urlsplit(public_url)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise v.fail(
            "websocket.public_url",
            public_url,
            "is not an http:// or https:// URL",
            "set websocket.public_url to the URL browsers use, e.g. http://host:18001",
        )
    namespace = v.string("websocket.namespace", "Socket.IO namespace", default=DEFAULT_NAMESPACE)
    if not namespace.startswith("/") or any(ch.isspace() for ch in namespace):
        raise v.fail(
            "websocket.namespace",
            namespace,
            "is not a namespace starting with /",
            "set websocket.namespace: /notifications",
        )

    web_present, web_section = v.lookup("web")
    if not web_present:
        raise v.missing("web", "a mapping with host, port, workers, threads")
    if not isinstance(web_section, dict):
        raise v.fail("web", web_section, "is not a mapping", "write web: as a mapping of keys")
    web = WebSettings(
        host=v.string("web.host", "host name or address"),
        port=v.integer("web.port", 1, 65535, "a port number"),
        workers=v.integer("web.workers", 1, 64, "a worker count", default=DEFAULT_WEB_WORKERS),
        threads=v.integer("web.threads", 1, 256, "a thread count", default=DEFAULT_WEB_THREADS),
    )
    if enabled and (web.host, web.port) == (ws_host, ws_port):
        raise v.fail(
            "websocket.port",
            ws_port,
            "is the same address as web.port",
            "give the web and websocket processes different ports",
        )

    redis_url = v.string("redis_url", "redis:// URL")
    if urlsplit(redis_url).scheme not in REDIS_SCHEMES:
        raise v.fail(
            "redis_url",
            redis_url,
            f"is not a Redis URL (scheme one of {', '.join(REDIS_SCHEMES)})",
            "set redis_url: redis://127.0.0.1:6379/0",
        )

    database_url = v.string("database_url", "database URL")
    if check_database:
        database_url = _check_database_url(v, database_url)

    templates_dir = v.path_value("templates_dir", "directory of the active template set")
    if not (templates_dir / "index.html").is_file():
        problem = "has no index.html" if templates_dir.is_dir() else "is not a directory"
        raise v.fail(
            "templates_dir",
            str(templates_dir),
            f"{problem} (it must hold the active template set)",
            "set templates_dir to a directory holding base.html and index.html",
        )

    emergency_file = v.path_value("emergency_file", "path of emergency.json")
    secrets_file = v.path_value("secrets_file", "path of secrets.yml")
    log_present, _ = v.lookup("log_dir")
    log_dir = v.path_value("log_dir", "log directory") if log_present else None

    return Config(
        path=config_path,
        mode=str(mode),
        websocket=WebsocketSettings(
            enabled=enabled, host=ws_host, port=ws_port, namespace=namespace, public_url=public_url.rstrip("/")
        ),
        web=web,
        redis_url=redis_url,
        database_url=database_url,
        templates_dir=templates_dir,
        emergency_file=emergency_file,
        secrets_file=secrets_file,
        log_dir=log_dir,
        secrets=load_secrets(secrets_file, config_path),
    )


# A file changed this recently may change again within the file system's timestamp granularity, with the
# same size and a recycled inode number: its key then includes a digest of its content (as git does for
# "racily clean" files), so two quick rewrites are never mistaken for one.
RACY_SECONDS = 2.0


def _file_key(path: Path) -> tuple[int, int, int, str | None] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    digest = None
    if time.time() - st.st_mtime < RACY_SECONDS:
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, digest)


class ConfigHolder:
    """The current configuration of a long-running process, re-read when config.yml or secrets change.

    A change that does not validate is logged and the previous configuration stays in force (a
    half-written file must not take the site down); ``last_error`` says why.
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._key = self._keys(config)
        self.last_error: str | None = None

    @staticmethod
    def _keys(config: Config) -> tuple[object, ...]:
        return (_file_key(config.path), _file_key(config.secrets_file))

    @property
    def current(self) -> Config:
        return self._config

    def refresh(self) -> Config:
        config = self._config
        key = self._keys(config)
        if key == self._key:
            return config
        with self._lock:
            config = self._config
            key = self._keys(config)
            if key == self._key:
                return config
            self._key = key
            try:
                fresh = load_config(config.path)
            except ConfigError as exc:
                self.last_error = str(exc)
                log.error("config reload failed, keeping the previous configuration: %s", exc)
                return config
            self.last_error = None
            self._key = self._keys(fresh)
            if fresh != config:
                log.info(
                    "config reloaded from %s: mode %s, websocket enabled %s, templates %s",
                    fresh.path,
                    fresh.mode,
                    fresh.websocket.enabled,
                    fresh.templates_dir,
                )
            self._config = fresh
            return fresh
