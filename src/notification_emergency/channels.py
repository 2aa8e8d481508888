"""The notifier's channels and their configuration: ``channels.yml``, Apprise URLs, routing, retries.

Where the configuration comes from (the first that exists): the path given (``--channels``), the file named by
``NOTIFICATION_EMERGENCY_CHANNELS``, ``<state dir>/channels.yml``; channels may also be given one per
environment variable ``NOTIFICATION_EMERGENCY_CHANNEL_<NAME>=<Apprise URL>``. With none of them, every
notification goes to the file channel only (``notifications.log``). The format, routing, fallback order,
retries and masking are described in ``docs/notifications.md``.

Channels:

- ``users``: the application's users, through its own API (``POST /api/notifications``, user ``*``,
  bearer API token) on the WebSocket path when it is healthy, else on the flash path (the API's channel
  ``flash``: a flash message on the next page, needing neither Redis nor the WebSocket process), else, when
  the web process itself is down, straight into the flash store on the host (``notification-service notify``
  run by Ansible).
- any name: an Apprise URL (``mailto://``, ``json://``, ``slack://``, ``pagerduty://`` ...) for operators.
- ``file``: the JSON-lines file ``notifications.log`` in the state directory; it depends on nothing but the
  local disk, so it is also the last resort (see :mod:`notification_emergency.notifier`).

Secrets: a channel URL is never shown as given. :func:`~notification_emergency.redact.mask_url` (the
project's one masker) keeps the scheme and, for the schemes where it is a server name, the host and port;
credentials, path segments (tokens often live there), the fragment and query values other than a few
harmless keys become ``***``. Every error text that leaves the notifier goes through
:meth:`ChannelConfig.scrub`, which replaces each secret fragment of every configured URL (and the API tokens
read) with ``***``. Delivery is :mod:`notification_emergency.delivery`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from notification_emergency.catalogue import CATALOGUE, COMPONENTS, FAILURE_COMPONENT, PRIORITIES
from notification_emergency.errors import BadInput
from notification_emergency.paths import readable_by_others, writable_by_others
from notification_emergency.redact import mask_url, scrub_text

USERS = "users"
FILE = "file"
BUILTIN = (USERS, FILE)
CHANNELS_ENV = "NOTIFICATION_EMERGENCY_CHANNELS"
CHANNEL_ENV_PREFIX = "NOTIFICATION_EMERGENCY_CHANNEL_"
DOCS = "docs/notifications.md"

# PRIORITIES, COMPONENTS, FAILURE_COMPONENT (a failure type given as a failed component names the component it
# takes down) and APP_PRIORITY (the application's priorities for the toolkit's) come from the catalogue.

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


# --------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class RetryPolicy:
    """Each channel: up to ``attempts`` tries, ``backoff_s`` before the second, times ``backoff_factor`` after
    each; one try may take ``timeout_s``; the whole notification (every channel, fallbacks included) must be
    done within ``deadline_s``."""

    attempts: int = 3
    backoff_s: float = 0.5
    backoff_factor: float = 2.0
    timeout_s: float = 10.0
    deadline_s: float = 30.0


@dataclass(frozen=True)
class UsersSettings:
    """How the ``users`` channel reaches the application: through the ``first`` targeted host that takes the
    notification (its hosts share one database) or through ``every`` one (each its own application)."""

    deliver_to: str = "first"
    api_token_env: str | None = None
    api_token_file: Path | None = None
    host_store: bool = True


@dataclass(frozen=True)
class ExternalChannel:
    name: str
    url: str = field(repr=False)
    masked: str
    fallback: str | None = None


@dataclass(frozen=True)
class ChannelConfig:
    source: str  # the file it was read from, or "defaults"
    channels: dict[str, ExternalChannel]
    routing: dict[str, list[str]]
    fallbacks: dict[str, str]  # channel -> the channel tried when it fails
    retry: RetryPolicy = RetryPolicy()
    users: UsersSettings = UsersSettings()
    dedup_window_s: float = 300.0
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    warnings: tuple[str, ...] = ()  # the files' permissions (load_channels), shown by --check-config

    def scrub(self, text: str) -> str:
        return scrub_text(text, self.secrets)

    def chain(self, name: str) -> list[str]:
        """``name`` and its fallbacks, in the order they are tried."""
        chain = [name]
        while chain[-1] in self.fallbacks:
            chain.append(self.fallbacks[chain[-1]])
        return chain

    def describe(self) -> dict[str, Any]:
        """The configuration as it may be shown: URLs masked."""
        return {
            "source": self.source,
            "channels": {
                name: {"url": ch.masked, "fallback": self.fallbacks.get(name)} for name, ch in self.channels.items()
            },
            "routing": {
                priority: [" -> ".join(self.chain(n)) for n in names] for priority, names in self.routing.items()
            },
            "retry": {
                "attempts": self.retry.attempts,
                "backoff_s": self.retry.backoff_s,
                "backoff_factor": self.retry.backoff_factor,
                "timeout_s": self.retry.timeout_s,
                "deadline_s": self.retry.deadline_s,
            },
            "users": {
                "deliver_to": self.users.deliver_to,
                "api_token_env": self.users.api_token_env,
                "api_token_file": str(self.users.api_token_file) if self.users.api_token_file else None,
                "host_store": self.users.host_store,
            },
            "dedup_window_s": self.dedup_window_s,
            "warnings": list(self.warnings),
        }


_TOP_KEYS = ("channels", "routing", "retry", "users", "dedup_window_s")


def channels_path(path: str | Path | None, home: Path) -> tuple[Path, bool]:
    """(the channels file, whether it was asked for explicitly)."""
    if path:
        return Path(path).expanduser(), True
    configured = os.environ.get(CHANNELS_ENV)
    if configured:
        return Path(configured).expanduser(), True
    return home / "channels.yml", False


MAX_CHANNELS_FILE = 1024 * 1024
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
log = logging.getLogger(__name__)


def _read_channels_file(file: Path) -> tuple[str, Any]:
    """(the text, the parsed YAML) of a channels file. Errors name the file, a line and column and the
    problem, never a word of the file: ``--channels /etc/shadow`` must not print a line of it."""
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_CHANNELS_FILE + 1)
    except OSError as exc:
        raise BadInput(f"cannot read the channels file {file}: {exc.strerror}; fix its permissions") from None
    if len(raw) > MAX_CHANNELS_FILE:
        raise BadInput(f"{file}: larger than 1 MiB, not a channels file; point --channels at the right file ({DOCS})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{file}: not UTF-8 text (byte {exc.start}), not a channels file; point --channels at the right file"
        ) from None
    try:
        return text, yaml.safe_load(text)
    except RecursionError:
        raise BadInput(f"{file}: nested too deeply to be a channels file; fix the file ({DOCS})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif getattr(exc, "position", None) is not None:
            where = f" at character {int(getattr(exc, 'position', 0)) + 1}"
        else:
            where = ""
        # The problem without its quotes: PyYAML quotes the file's own text there (a tag, an alias, a token).
        problem = _QUOTED.sub("…", str(getattr(exc, "problem", None) or getattr(exc, "reason", None) or "syntax"))
        raise BadInput(f"{file}: not valid YAML{where}: {problem}; fix the file ({DOCS})") from None


def _key_position(text: str, key: Any) -> str:
    """`` at line L, column C`` of a top-level key of the YAML ``text`` (without showing the key)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ""
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            if str(getattr(key_node, "value", None)) == str(key):
                return f" at line {key_node.start_mark.line + 1}, column {key_node.start_mark.column + 1}"
    return ""


def _file_access(file: Path, what: str, *, secret: bool) -> str | None:
    """Refuse a file that others than its owner may change (:class:`BadInput`, exit 2); when it holds
    credentials (``secret``) and others may read it, the warning to give."""
    mode = file.stat().st_mode & 0o777
    who = writable_by_others(mode)
    if who:
        raise BadInput(
            f"{what} {file} is writable by {who} (mode {mode:04o}), who could redirect the notifications or "
            f"steal the credentials; chmod 600 {file} (owned by the user who runs notification-emergency)"
        )
    who = readable_by_others(mode)
    if secret and who:
        return f"{what} {file} holds credentials and is readable by {who} (mode {mode:04o}); chmod 600 {file}"
    return None


def load_channels(path: str | Path | None, home: Path) -> ChannelConfig:
    """Read and check the channel configuration; anything wrong is a :class:`BadInput` naming the file, the
    entry and the fix, so that it shows when the notifier is created, not when an emergency needs it.

    A channels file (or the API token file it names) that others may write is refused; one with credentials
    that others may read is used with a warning (logged, and in :attr:`ChannelConfig.warnings`)."""
    file, explicit = channels_path(path, home)
    data: Any = {}
    text = ""
    source = "defaults"
    if file.is_file():
        source = str(file)
        text, data = _read_channels_file(file)
        data = {} if data is None else data
    elif explicit:
        raise BadInput(
            f"channels file {file} does not exist; write it ({DOCS}) or point --channels / {CHANNELS_ENV} at another"
        )
    if not isinstance(data, dict):
        raise BadInput(f"{source}: the channels file must be a mapping with {', '.join(_TOP_KEYS)}; see {DOCS}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise BadInput(
            f"{source}: unknown key{_key_position(text, unknown[0])}; the keys are {', '.join(_TOP_KEYS)} ({DOCS})"
        )

    secrets: set[str] = set()
    in_file: set[str] = set()  # the credentials written in the file itself
    channels: dict[str, ExternalChannel] = {}
    fallbacks: dict[str, str] = {}
    raw = data.get("channels") or {}
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: channels must be a mapping of name: Apprise URL; see {DOCS}")
    entries: list[tuple[str, str, Any]] = [(source, str(name), value) for name, value in raw.items()]
    for variable, value in sorted(os.environ.items()):
        if variable.startswith(CHANNEL_ENV_PREFIX) and variable != CHANNELS_ENV:
            name = variable[len(CHANNEL_ENV_PREFIX) :].lower().replace("_", "-")
            entries = [e for e in entries if e[1] != name]  # the environment overrides the file
            entries.append((f"environment variable {variable}", name, value))
    for where, name, value in entries:
        entry = f"{where}: channels.{name}" if where == source else where
        if name in BUILTIN:
            raise BadInput(f"{entry}: {name!r} is a built-in channel; give this channel another name")
        if not _NAME.match(name):
            raise BadInput(
                f"{entry}: channel name {name!r} must be 1-40 lower-case letters, digits, '-' or '_'; rename it"
            )
        spec = value if isinstance(value, dict) else {"url": value}
        extra = sorted(str(k) for k in spec if k not in ("url", "url_env", "fallback"))
        if extra:
            raise BadInput(f"{entry}: unknown key {extra[0]!r}; a channel has url (or url_env) and fallback")
        url = spec.get("url")
        if spec.get("url_env"):
            url = os.environ.get(str(spec["url_env"]))
            if not url:
                raise BadInput(f"{entry}: url_env names {spec['url_env']}, which is not set; export it or write url:")
        if not isinstance(url, str) or not url.strip():
            raise BadInput(f"{entry}: no URL; write an Apprise URL such as json://host/path or mailto://... ({DOCS})")
        url = url.strip()
        masked, fragments = mask_url(url)
        secrets |= fragments
        if where == source and not spec.get("url_env"):
            in_file |= fragments
        _check_apprise_url(entry, url, masked)
        channels[name] = ExternalChannel(name, url, masked)
        if spec.get("fallback"):
            fallbacks[name] = str(spec["fallback"])
    known = set(channels) | set(BUILTIN)
    for name, target in fallbacks.items():
        if target not in known:
            raise BadInput(
                f"{source}: channels.{name}.fallback names {target!r}, which is no channel; "
                f"use one of {', '.join(sorted(known - {name}))}"
            )
    for name in fallbacks:
        seen = [name]
        while seen[-1] in fallbacks:
            nxt = fallbacks[seen[-1]]
            if nxt in seen:
                raise BadInput(
                    f"{source}: channels.{name}.fallback makes a loop ({' -> '.join([*seen, nxt])}); break it"
                )
            seen.append(nxt)

    # By default every channel that is no other channel's fallback is routed (a fallback gets its turn).
    operators = [name for name in channels if name not in fallbacks.values()]
    routing = _routing(source, data.get("routing"), operators, known, configured=source != "defaults" or bool(channels))
    retry = _retry(source, data.get("retry"))
    users = _users(source, data.get("users"))
    dedup = data.get("dedup_window_s", 300.0)
    if isinstance(dedup, bool) or not isinstance(dedup, int | float) or not 0 <= dedup <= 30 * 86400:
        raise BadInput(f"{source}: dedup_window_s must be a number of seconds from 0 to 2592000 (30 days)")
    warnings = []
    if source != "defaults":
        warnings.append(_file_access(file, "the channels file", secret=bool(in_file)))
    if users.api_token_file is not None and users.api_token_file.exists():
        warnings.append(_file_access(users.api_token_file, "the API token file", secret=True))
    for warning in filter(None, warnings):
        log.warning("warning: %s", warning)
    return ChannelConfig(
        source,
        channels,
        routing,
        fallbacks,
        retry,
        users,
        float(dedup),
        frozenset(secrets),
        tuple(filter(None, warnings)),
    )


def _check_apprise_url(entry: str, url: str, masked: str) -> None:
    match = _SCHEME.match(url)
    if not match:
        raise BadInput(
            f"{entry}: the value is not a URL (no scheme://); write an Apprise URL such as "
            f"json://host/path, mailto://user:password@smtp.host?to=you@example.com or slack://... ({DOCS})"
        )
    scheme = match.group(1).lower()
    if scheme not in _known_schemes():
        raise BadInput(
            f"{entry}: unknown scheme {scheme!r} in {masked}; use one of Apprise's services "
            "(mailto, mailtos, json, jsons, slack, pagerduty, msteams, discord, ntfy ...) or fix the typo"
        )
    with apprise_quiet():
        plugin = instantiate(url)
    if plugin is None:
        raise BadInput(
            f"{entry}: {masked} is not a valid {scheme}:// URL (Apprise cannot parse it: a host, token or "
            f"address is missing or malformed); see the {scheme} page of Apprise's documentation"
        )


_SCHEMES: frozenset[str] | None = None


def _known_schemes() -> frozenset[str]:
    global _SCHEMES
    if _SCHEMES is None:
        from apprise.manager_plugins import NotificationManager

        _SCHEMES = frozenset(str(s).lower() for s in NotificationManager().schemas())  # type: ignore[no-untyped-call]
    return _SCHEMES


_capture = threading.local()
_sink_lock = threading.Lock()


class _AppriseSink(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_capture, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


def _install_sink() -> None:
    with _sink_lock:
        logger = logging.getLogger("apprise")
        if not any(isinstance(handler, _AppriseSink) for handler in logger.handlers):
            logger.addHandler(_AppriseSink())
        logger.propagate = False


@contextmanager
def apprise_quiet() -> Iterator[list[str]]:
    _install_sink()
    lines: list[str] = []
    previous = getattr(_capture, "lines", None)
    _capture.lines = lines
    try:
        yield lines
    finally:
        _capture.lines = previous


def instantiate(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def _routing(source: str, raw: Any, operators: list[str], known: set[str], *, configured: bool) -> dict[str, list[str]]:
    if not configured:
        defaults: dict[str, list[str]] = {priority: [] for priority in PRIORITIES}  # the file only
    else:
        defaults = {
            "critical": [USERS, *operators],
            "high": [USERS, *operators],
            "medium": [USERS, *operators],
            "low": operators[:1],
        }
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: routing must map each priority ({', '.join(PRIORITIES)}) to a list of channels")
    routing = dict(defaults)
    for priority, names in raw.items():
        if priority not in PRIORITIES:
            raise BadInput(
                f"{source}: routing.{priority}: unknown priority {priority!r}; the priorities are "
                f"{', '.join(PRIORITIES)}"
            )
        listed = [names] if isinstance(names, str) else names
        if listed is None:
            listed = []
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise BadInput(f"{source}: routing.{priority} must be a list of channel names, e.g. [users, chat]")
        for name in listed:
            if name not in known:
                raise BadInput(
                    f"{source}: routing.{priority} names {name!r}, which is no channel; "
                    f"the channels are {', '.join(sorted(known))}"
                )
        routing[priority] = list(dict.fromkeys(listed))
    return routing


def _number(source: str, key: str, value: Any, *, minimum: float, integer: bool = False) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < minimum
        or (integer and not isinstance(value, int))
    ):
        kind = "a whole number" if integer else "a number"
        raise BadInput(f"{source}: {key} must be {kind} >= {minimum:g}; got {value!r}")
    return value


def _retry(source: str, raw: Any) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    if not isinstance(raw, dict):
        raise BadInput(
            f"{source}: retry must be a mapping (attempts, backoff_s, backoff_factor, timeout_s, deadline_s)"
        )
    names = ("attempts", "backoff_s", "backoff_factor", "timeout_s", "deadline_s")
    unknown = sorted(str(k) for k in raw if k not in names)
    if unknown:
        raise BadInput(f"{source}: retry.{unknown[0]} is unknown; retry takes {', '.join(names)}")
    values: dict[str, Any] = {}
    for name in names:
        if name in raw:
            minimum = {"attempts": 1, "backoff_factor": 1, "timeout_s": 0.1, "deadline_s": 0.1}.get(name, 0)
            values[name] = _number(source, f"retry.{name}", raw[name], minimum=minimum, integer=name == "attempts")
    return RetryPolicy(**values)


def _users(source: str, raw: Any) -> UsersSettings:
    if raw is None:
        return UsersSettings()
    names = ("deliver_to", "api_token_env", "api_token_file", "host_store")
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: users must be a mapping ({', '.join(names)})")
    unknown = sorted(str(k) for k in raw if k not in names)
    if unknown:
        raise BadInput(f"{source}: users.{unknown[0]} is unknown; users takes {', '.join(names)}")
    deliver_to = raw.get("deliver_to", "first")
    if deliver_to not in ("first", "every"):
        raise BadInput(
            f"{source}: users.deliver_to must be first (hosts share one database) or every (each host its own "
            f"application); got {deliver_to!r}"
        )
    host_store = raw.get("host_store", True)
    if not isinstance(host_store, bool):
        raise BadInput(f"{source}: users.host_store must be true or false")
    token_file = raw.get("api_token_file")
    return UsersSettings(
        deliver_to=deliver_to,
        api_token_env=str(raw["api_token_env"]) if raw.get("api_token_env") else None,
        api_token_file=Path(str(token_file)).expanduser() if token_file else None,
        host_store=host_store,
    )


def failed_components(names: Any) -> set[str]:
    """Components (web, websocket, redis, database) from component or catalogue failure-type names. A failure
    type that takes no component down (configuration_error, unknown, ...) adds none: every channel stays usable."""
    found: set[str] = set()
    for name in names or ():
        text = str(name)
        if text in COMPONENTS:
            found.add(text)
        elif text in CATALOGUE:
            found.update([FAILURE_COMPONENT[text]] if text in FAILURE_COMPONENT else [])
        else:
            raise BadInput(
                f"failed component {text!r} is not one of {', '.join(COMPONENTS)} "
                f"(or a failure type: {', '.join(CATALOGUE)})"
            )
    return found


__all__ = [
    "BUILTIN",
    "COMPONENTS",
    "FILE",
    "PRIORITIES",
    "USERS",
    "ChannelConfig",
    "ExternalChannel",
    "RetryPolicy",
    "UsersSettings",
    "failed_components",
    "load_channels",
    "mask_url",
]
