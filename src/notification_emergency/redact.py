"""Secrets, masked one way everywhere: in URLs, in mappings with secret-looking keys, in free text.

The one secret masker of the project. The Python package imports it as ``notification_emergency.redact``;
Ansible ships the same file to managed hosts as ``ansible.module_utils.notification_redact``
(``module_utils/notification_redact.py`` is a relative symlink to it). So it stays stdlib only, Python 3.8+
syntax, and imports nothing else from the package.

- :func:`mask_url` gives the URL as it may be shown and the fragments that must never be shown. A *service*
  URL (``service=True``: Redis, PostgreSQL, an HTTP health endpoint) keeps its user, host, port and path:
  only its password and secret-looking query values are masked. Any other URL is taken to be a
  *notification channel* URL (Apprise: ``slack://``, ``tgram://``, ``https://hooks...`` ...) and keeps only
  its scheme, its host where that is a server name, and plain query switches: user, password, every path
  segment (tokens, webhook ids) and the other query values are masked.
- :func:`redact` replaces the values under secret-looking keys (``password``, ``api_token`` ...) in a nested
  mapping.
- :func:`scrub` replaces each secret fragment in a text, or in every text of a nested value.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Set, Tuple  # noqa: UP035 (Python 3.8 on managed hosts)
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"

# Keys whose values are secrets (mappings: host variables, channel options, evidence).
SECRET_KEY = re.compile(
    r"(^|[_-])pass$|passw(or)?d|passphrase|secret|token|api[_-]?key|private[_-]?key|credential", re.I
)
# Environment variable names that may hold a secret (a store URL with a password, a notifier credential).
SECRET_ENV_NAME = re.compile(r"(PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|URL|DSN|STORE)", re.I)

# Notification channel URLs whose host part is a server name (kept); in the others (slack://, pagerduty://,
# discord:// ...) the "host" is itself a token.
CHANNEL_HOST_SCHEMES = frozenset(
    {
        *("json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos", "ntfy", "ntfys", "gotify"),
        *("gotifys", "mmost", "mmosts", "rocket", "rockets", "matrix", "matrixs", "apprise", "apprises"),
        *("mqtt", "mqtts", "kodi", "kodis", "xbmc", "xbmcs", "signal", "signals"),
    }
)
# Query keys whose values are shown: addresses and switches, never credentials.
PLAIN_QUERY_KEYS = frozenset(
    {
        *("to", "from", "cc", "bcc", "name", "mode", "format", "method", "region", "smtp", "priority"),
        *("severity", "lang", "overflow", "retry", "wait", "db", "timeout", "sslmode", "ssl_cert_reqs"),
    }
)
# Fragments of a channel URL shorter than this are not scrubbed from free text (a chat id "1" would garble
# every text); a service URL's password is scrubbed whatever its length.
MIN_FRAGMENT = 4


def mask_url(url: str, *, service: bool = False) -> Tuple[str, Set[str]]:  # noqa: UP006 (Python 3.8)
    """``(masked URL, secret fragments)``: the URL as it may be shown, and what must never be shown.

    A text that is not a URL is returned whole with no fragment; one that looks like a URL but cannot be
    parsed (a bad port, a bad IPv6 host) is replaced by ``***`` and is itself the secret."""
    if "://" not in url:
        return url, set()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return MASK, {url} if url else set()
    scheme = parts.scheme.lower()
    secrets: Set[str] = set()  # noqa: UP006

    def hide(value: str, *, always: bool = False) -> str:
        if value and (always or service or len(value) >= MIN_FRAGMENT):
            secrets.update({value, unquote(value)})
        return MASK

    userinfo, at, hostport = parts.netloc.rpartition("@")
    shown_user = ""
    if at:
        user, colon, password = userinfo.partition(":")
        shown_user = (user if service else hide(user)) + (":" + hide(password, always=True) if colon else "") + "@"
    shown_host = hostport if service or scheme in CHANNEL_HOST_SCHEMES or not hostport else hide(hostport)
    path = parts.path if service else "/".join(hide(segment) if segment else "" for segment in parts.path.split("/"))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    shown_query = []
    for key, value in pairs:
        plain = key.lower() in PLAIN_QUERY_KEYS or (service and not SECRET_KEY.search(key))
        shown_query.append(f"{key}={value if plain or not value else hide(value, always=True)}")
    masked = f"{parts.scheme}://{shown_user}{shown_host}{path}"
    if shown_query:
        masked += "?" + "&".join(shown_query)
    if parts.fragment:
        masked += "#" + hide(parts.fragment)
    return masked, {secret for secret in secrets if secret}


def url_secrets(url: str, *, service: bool = False) -> Set[str]:  # noqa: UP006
    """The fragments of ``url`` that must never be shown (see :func:`mask_url`)."""
    return mask_url(url, service=service)[1]


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every secret fragment replaced by ``***``: in a text, or in every text (not the keys)
    of nested mappings and lists."""
    ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    return _scrub(value, ordered)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret fragment replaced by ``***``."""
    return str(scrub(text, secrets))


def _scrub(value: Any, ordered: list[str]) -> Any:
    if isinstance(value, str):
        for secret in ordered:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, ordered) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(item, ordered) for item in value]
    return value


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values under secret-looking keys (at any depth) replaced by ``***``."""
    if isinstance(value, dict):
        return {
            str(key): MASK if SECRET_KEY.search(str(key)) and item not in (None, "") else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def redact_env(env: Dict[str, str], keep: re.Pattern[str]) -> Dict[str, str]:  # noqa: UP006
    """``env`` with every value masked but those whose name matches ``keep`` and looks like no secret."""
    return {
        name: value if keep.match(name) and not SECRET_ENV_NAME.search(name) else MASK
        for name, value in sorted(env.items())
    }
