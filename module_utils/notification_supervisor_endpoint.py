"""Where supervisord answers XML-RPC, read from its configuration file as supervisorctl reads it, and the transport
that reaches it (a unix socket or HTTP, basic auth), with the standard library only (managed hosts, Python 3.8+).

Split from ``notification_services`` (which re-exports these names); the errors live here because reading the
configuration raises them.
"""

from __future__ import annotations

import base64
import configparser
import http.client
import os
import socket
import xmlrpc.client
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


class ServiceControlError(Exception):
    """A failure that the module reports with ``fail_json``; the message says what to do."""


class SupervisorUnreachable(ServiceControlError):
    """No supervisord answers: its socket is missing or refuses connections (or its config file is missing)."""


@dataclass(frozen=True)
class SupervisorEndpoint:
    """Where supervisord answers XML-RPC, as ``supervisorctl -c <config>`` would find it."""

    url: str  # unix:///path/to/socket or http://host:port, for messages
    socket_path: str | None = None
    host: str = "localhost"
    port: int = 80
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _normalize_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def read_endpoint(config: str) -> SupervisorEndpoint | None:
    """The XML-RPC endpoint that a supervisord configuration file names, read as supervisor reads it.

    ``[supervisorctl] serverurl`` (``unix://`` or ``http://``) when set, else ``[unix_http_server] file``;
    credentials from ``[supervisorctl] username``/``password``, else (for the unix socket) from
    ``[unix_http_server]`` unless its password is a hash. Values expand ``%(here)s`` (the directory of the
    file) and ``%(ENV_NAME)s``. None when the file names neither (then only ``supervisorctl`` knows).
    """
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        with open(config, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise SupervisorUnreachable(
            f"supervisor_config {config} does not exist; deploy the supervisord configuration first"
        ) from None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ServiceControlError(f"cannot read supervisor_config {config}: {exc}") from None
    expansions = {f"ENV_{name}": value for name, value in os.environ.items()}
    expansions["here"] = os.path.dirname(_normalize_path(config))

    def get(section: str, option: str) -> str | None:
        if not parser.has_option(section, option):
            return None
        value = parser.get(section, option)
        try:
            return (value % expansions).strip()
        except KeyError as exc:
            raise ServiceControlError(
                f"{config}: [{section}] {option} = {value} names {exc} which cannot be expanded"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ServiceControlError(f"{config}: [{section}] {option} = {value} is badly formatted: {exc}") from None

    server_file = get("unix_http_server", "file")
    server_socket = _normalize_path(server_file) if server_file else None
    username, password = get("supervisorctl", "username"), get("supervisorctl", "password")
    serverurl = get("supervisorctl", "serverurl")
    if serverurl:
        if serverurl.startswith("unix://"):
            socket_path = _normalize_path(serverurl[len("unix://") :])
            endpoint = SupervisorEndpoint(f"unix://{socket_path}", socket_path=socket_path)
        elif serverurl.startswith("http://"):
            parts = urlsplit(serverurl)
            try:
                port = parts.port or 80
            except ValueError:
                raise ServiceControlError(f"{config}: [supervisorctl] serverurl {serverurl} has a bad port") from None
            host = parts.hostname or "localhost"
            endpoint = SupervisorEndpoint(f"http://{host}:{port}", host=host, port=port)
        else:
            raise ServiceControlError(
                f"{config}: [supervisorctl] serverurl {serverurl} is neither unix:// nor http://; fix the serverurl"
            )
    elif server_socket:
        endpoint = SupervisorEndpoint(f"unix://{server_socket}", socket_path=server_socket)
    else:
        return None
    if username is None and password is None and endpoint.socket_path and endpoint.socket_path == server_socket:
        server_password = get("unix_http_server", "password")
        if server_password and not server_password.startswith("{SHA}"):
            username, password = get("unix_http_server", "username"), server_password
    return SupervisorEndpoint(
        endpoint.url, endpoint.socket_path, endpoint.host, endpoint.port, username=username, password=password
    )


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over an AF_UNIX stream socket (supervisord's ``[unix_http_server]``), with a timeout."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class SupervisorTransport(xmlrpc.client.Transport):
    """``xmlrpc.client`` transport to one endpoint: a fresh connection per call, basic auth when configured."""

    def __init__(self, endpoint: SupervisorEndpoint, timeout: float | None) -> None:
        headers: list[tuple[str, str]] = []
        if endpoint.username is not None and endpoint.password is not None:
            token = base64.b64encode(f"{endpoint.username}:{endpoint.password}".encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {token}"))
        super().__init__(headers=headers)
        self.endpoint = endpoint
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self.endpoint.socket_path:
            connection: http.client.HTTPConnection = UnixHTTPConnection(self.endpoint.socket_path, self.timeout)
        else:
            connection = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
        self._connection = (host, connection)  # so that close() closes it
        return connection
