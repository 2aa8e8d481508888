"""Health checks of the notification service: one call, every component, one structured result.

Used by the ``notification_health`` module; the result shape is the contract in ``docs/health-result.md``.

Every check speaks its protocol itself over a plain socket with the standard library (HTTP, the WebSocket
upgrade with Engine.IO v4 and Socket.IO v5 on top, Redis RESP, supervisord's XML-RPC), so a host needs
nothing but Python, PyYAML to read ``config.yml`` and, for a PostgreSQL database only, psycopg. Checks run
concurrently; each one is bounded by its own timeout (socket timeouts computed from what is left of it,
SQLite's busy timeout, libpq's connect_timeout and statement_timeout, subprocess timeouts) and the call by
its deadline.
Nothing here writes anything: the module is read-only and behaves the same in check mode.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from ansible.module_utils.notification_services import (
    ServiceControlError,
    SupervisorBackend,
    SupervisorUnreachable,
    SystemdBackend,
)

HEALTHY, DEGRADED, FAILED = "healthy", "degraded", "failed"
SEVERITY = {HEALTHY: 0, DEGRADED: 1, FAILED: 2}
KINDS = ("http", "websocket", "redis", "database", "tcp", "process", "disk", "file")
COMPONENTS = ("web", "websocket", "redis", "database", "config", "templates", "disk", "host")
DEFAULT_COMPONENT = {
    "http": "web",
    "websocket": "websocket",
    "redis": "redis",
    "database": "database",
    "tcp": "host",
    "process": "host",
    "disk": "disk",
    "file": "config",
}
# Kinds whose answer time is compared with latency_degraded_ms (the others do not cross the network).
NETWORK_KINDS = frozenset({"http", "websocket", "redis", "database", "tcp"})

PENDING_KEY = "notification:pending"
DEFAULT_QUERY = "SELECT count(*) FROM notifications"
DEFAULT_SERVICES = {"web": "notification-web", "websocket": "notification-websocket"}
MASK = "********"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# How long the call waits for a check past its own timeout before it reports the timeout itself. Every
# check bounds its own waits, so this only matters for a call that ignores timeouts (a hung DNS lookup).
GRACE_S = 0.25
MAX_BODY = 64 * 1024  # bytes of an HTTP body that are read and matched
MAX_HEAD = 16 * 1024  # bytes of HTTP response headers
MAX_MESSAGE = 1024 * 1024  # bytes of one WebSocket message or Redis reply
HASH_LIMIT = 1024 * 1024  # file checks hash files up to this size even without an expected checksum


class HealthArgumentError(Exception):
    """The module's arguments (or the config.yml they point to) are unusable; ``fail_json`` with this text."""


class MissingLibrary(Exception):
    """An optional library is needed by the arguments given; report it with ``missing_required_lib``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.name = name
        self.reason = reason


class CheckProblem(Exception):
    """A check found the component not healthy; ``reason`` is one of the contract's reasons."""

    def __init__(self, reason: str, error: str, status: str = FAILED) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.status = status


class CheckTimeout(Exception):
    """The check used up its own timeout."""


# -- small helpers ---------------------------------------------------------------------------------------


def import_yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise MissingLibrary("PyYAML", "to read config.yml") from exc
    return yaml


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingLibrary("psycopg", "for a PostgreSQL database check") from exc
    return psycopg


class Deadline:
    """What is left of one check's timeout; ``step`` says what the check is doing, for timeout messages."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.step = "starting"

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise CheckTimeout()
        return left

    def timeout_message(self) -> str:
        return f"timeout after {float(self.seconds)}s while {self.step}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ********."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def url_secrets(url: str) -> set[str]:
    """The password of a URL as written and decoded, for scrubbing texts that might echo it."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return set()
    if not password:
        return set()
    return {password, unquote(password)}


def scrub(value: Any, secrets: set[str]) -> Any:
    """``value`` with every secret string replaced by ********, recursively."""
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    return value


def trim(value: Any, depth: int = 0) -> Any:
    """A JSON value cut down for evidence: short strings, a few items, shallow."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    if isinstance(value, dict):
        if depth >= 4:
            return "{...}"
        items = list(value.items())
        trimmed = {str(key): trim(item, depth + 1) for key, item in items[:50]}
        if len(items) > 50:
            trimmed["..."] = f"{len(items) - 50} more keys"
        return trimmed
    if isinstance(value, list):
        if depth >= 4:
            return "[...]"
        trimmed_list = [trim(item, depth + 1) for item in value[:20]]
        if len(value) > 20:
            trimmed_list.append(f"{len(value) - 20} more items")
        return trimmed_list
    return value


def connect_host(host: str) -> str:
    """Where this host reaches a server bound to ``host`` (a wildcard address means this host)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _host_header(host: str, port: int, default_port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


def _ssl_context(validate_certs: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect(host: str, port: int, deadline: Deadline, tls: bool = False, validate_certs: bool = True) -> socket.socket:
    deadline.step = f"connecting to {host}:{port}"
    sock = socket.create_connection((host, port), timeout=deadline.remaining())
    if tls:
        deadline.step = f"negotiating TLS with {host}:{port}"
        sock.settimeout(deadline.remaining())
        sock = _ssl_context(validate_certs).wrap_socket(sock, server_hostname=host)
    return sock


class _Stream:
    """A socket read through a buffer; every wait is bounded by what is left of the check's timeout."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.remaining())
        self.sock.sendall(data)

    def _fill(self) -> None:
        self.sock.settimeout(self.deadline.remaining())
        chunk = self.sock.recv(65536)
        if not chunk:
            raise CheckProblem("bad_answer", f"the server closed the connection while {self.deadline.step}")
        self.buffer += chunk

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_until(self, separator: bytes, limit: int) -> bytes:
        while True:
            index = self.buffer.find(separator)
            if index >= 0:
                return self.read_exact(index + len(separator))
            if len(self.buffer) > limit:
                raise CheckProblem("bad_answer", f"no {separator!r} within {limit} bytes while {self.deadline.step}")
            self._fill()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- http ------------------------------------------------------------------------------------------------


def _lookup(data: Any, key: str) -> tuple[bool, Any]:
    """``data[key]``, or the dotted path ``a.b.c`` into nested objects."""
    if isinstance(data, dict) and key in data:
        return True, data[key]
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return any(_matches(actual, choice) for choice in expected)
    return actual == expected or (not isinstance(actual, (dict, list)) and str(actual) == str(expected))


def check_http(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    url = opts["url"]
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    evidence.update(url=mask_url(url), status_code=None, json=None)
    if opts.get("body_regex"):
        evidence["body_match"] = None

    headers = {"User-Agent": "notification_health", "Accept": "application/json, */*;q=0.5", "Connection": "close"}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    headers.update({str(key): str(value) for key, value in (opts.get("headers") or {}).items()})

    deadline.step = f"connecting to {host}:{port}"
    if tls:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=deadline.remaining(), context=_ssl_context(opts.get("validate_certs", True))
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline.remaining())
    try:
        conn.connect()
        sock = conn.sock  # the response keeps using it after the connection object lets go of it
        deadline.step = "sending the HTTP request"
        sock.settimeout(deadline.remaining())
        conn.request(opts.get("method") or "GET", target, headers=headers)
        deadline.step = "waiting for the HTTP response"
        sock.settimeout(deadline.remaining())
        response = conn.getresponse()
        evidence["status_code"] = response.status
        deadline.step = "reading the HTTP body"
        body = bytearray()
        while len(body) < MAX_BODY:
            sock.settimeout(deadline.remaining())
            chunk = response.read1(MAX_BODY - len(body))
            if not chunk:
                break
            body += chunk
        content_type = response.getheader("Content-Type") or ""
    finally:
        conn.close()

    text = body.decode("utf-8", errors="replace")
    parsed: Any = None
    is_json = False
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(text)
            is_json = True
            evidence["json"] = trim(parsed)
        except ValueError:
            pass

    expected_status = opts.get("expected_status") or [200]
    if response.status not in expected_status:
        shown = ", ".join(str(code) for code in expected_status)
        raise CheckProblem("bad_status", f"HTTP {response.status} {response.reason}, expected {shown}")

    mismatch = opts.get("mismatch") or FAILED
    if opts.get("json"):
        if not is_json:
            raise CheckProblem("bad_answer", "the body is not JSON, expected keys " + ", ".join(opts["json"]), mismatch)
        for key, expected in opts["json"].items():
            found, actual = _lookup(parsed, key)
            if not found:
                raise CheckProblem("bad_answer", f"JSON key {key} is missing, expected {expected!r}", mismatch)
            if not _matches(actual, expected):
                raise CheckProblem("bad_answer", f"JSON {key} is {actual!r}, expected {expected!r}", mismatch)
    if opts.get("body_regex"):
        evidence["body_match"] = bool(re.search(opts["body_regex"], text))
        if not evidence["body_match"]:
            raise CheckProblem("bad_answer", f"the body does not match {opts['body_regex']!r}", mismatch)


# -- websocket (RFC 6455 + Engine.IO v4 + Socket.IO v5, by hand) ------------------------------------------


class _WebSocket:
    """The client side of a WebSocket over an upgraded stream: masked frames out, text messages in."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def send(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header.append(0x80 | size)
        elif size < 65536:
            header.append(0x80 | 126)
            header += struct.pack("!H", size)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", size)
        mask = os.urandom(4)
        header += mask
        # RFC 6455 5.3: every frame a client sends is masked.
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.stream.send(bytes(header) + masked)

    def send_text(self, text: str) -> None:
        self.send(0x1, text.encode("utf-8"))

    def receive_text(self) -> str:
        """The next complete text message; answers pings, skips binary messages, raises on close."""
        fragments: list[bytes] = []
        message_opcode = 0
        while True:
            first, second = self.stream.read_exact(2)
            fin, opcode = first & 0x80, first & 0x0F
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self.stream.read_exact(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self.stream.read_exact(8))[0]
            if size > MAX_MESSAGE:
                raise CheckProblem("bad_answer", f"WebSocket frame of {size} bytes is larger than expected")
            mask = self.stream.read_exact(4) if second & 0x80 else b""
            payload = self.stream.read_exact(size)
            if mask:
                payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                why = payload[2:].decode("utf-8", errors="replace")
                raise CheckProblem(
                    "bad_answer", f"the server closed the WebSocket (code {code}{': ' + why if why else ''})"
                )
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                message_opcode = opcode
                fragments = [payload]
            elif opcode == 0x0:
                fragments.append(payload)
            else:
                raise CheckProblem("bad_answer", f"unknown WebSocket opcode {opcode}")
            if fin:
                if message_opcode == 0x1:
                    return b"".join(fragments).decode("utf-8", errors="replace")
                fragments = []  # a binary message: not part of this protocol exchange

    def close(self) -> None:
        with contextlib.suppress(OSError, CheckTimeout):
            self.send(0x8, struct.pack("!H", 1000))


@dataclass
class _SocketIOPacket:
    type: int
    namespace: str
    ack_id: int | None
    data: Any


def parse_socketio(text: str) -> _SocketIOPacket:
    """A Socket.IO v5 packet (what follows the Engine.IO message type ``4``)."""
    if not text or not text[0].isdigit():
        raise CheckProblem("bad_answer", f"not a Socket.IO packet: {text[:80]!r}")
    packet_type, index = int(text[0]), 1
    if packet_type in (5, 6):  # binary event/ack: "<attachments>-" comes first
        index = text.index("-", index) + 1
    namespace = "/"
    if index < len(text) and text[index] == "/":
        comma = text.find(",", index)
        end = len(text) if comma < 0 else comma
        namespace = text[index:end]
        index = end + 1
    digits = index
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    ack_id = int(text[index:digits]) if digits > index else None
    rest = text[digits:]
    try:
        data = json.loads(rest) if rest else None
    except ValueError:
        raise CheckProblem("bad_answer", f"Socket.IO packet with a body that is not JSON: {text[:80]!r}") from None
    return _SocketIOPacket(packet_type, namespace, ack_id, data)


def _receive_socketio(ws: _WebSocket) -> _SocketIOPacket:
    """The next Socket.IO packet; Engine.IO pings are answered on the way."""
    while True:
        packet = ws.receive_text()
        if packet.startswith("2"):
            ws.send_text("3" + packet[1:])
        elif packet.startswith("4"):
            return parse_socketio(packet[1:])
        elif packet.startswith("1"):
            raise CheckProblem("bad_answer", "the server closed the Engine.IO session")


def check_websocket(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    url = opts["url"]
    parts = urlsplit(url)
    tls = parts.scheme in ("https", "wss")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    # As in the Socket.IO clients, the Engine.IO path is an option (default /socket.io/), not the URL's path.
    path = "/" + (opts.get("path") or "/socket.io/").strip("/") + "/"
    namespace = opts.get("namespace") or "/"
    roundtrip = bool(opts.get("roundtrip"))
    evidence.update(
        url=mask_url(url),
        namespace=namespace,
        upgrade_status=None,
        engineio_sid=None,
        namespace_connected=False,
        connect_error=None,
    )
    if roundtrip:
        evidence["roundtrip_ms"] = None

    stream = _Stream(_connect(host, port, deadline, tls, opts.get("validate_certs", True)), deadline)
    ws = _WebSocket(stream)
    upgraded = False
    prefix = "" if namespace == "/" else namespace + ","
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        deadline.step = "sending the WebSocket upgrade request"
        stream.send(
            (
                f"GET {path}?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {_host_header(host, port, 443 if tls else 80)}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "User-Agent: notification_health\r\n"
                "\r\n"
            ).encode()
        )
        deadline.step = "waiting for the WebSocket upgrade answer"
        head = stream.read_until(b"\r\n\r\n", MAX_HEAD).decode("iso-8859-1")
        status_line, *header_lines = head.split("\r\n")
        status_parts = status_line.split(" ", 2)
        if len(status_parts) < 2 or not status_parts[1].isdigit():
            raise CheckProblem("bad_answer", f"not an HTTP answer to the upgrade request: {status_line[:80]!r}")
        evidence["upgrade_status"] = int(status_parts[1])
        if evidence["upgrade_status"] != 101:
            raise CheckProblem(
                "bad_status", f"the WebSocket upgrade was answered with HTTP {status_line[9:].strip()}, expected 101"
            )
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise CheckProblem("bad_answer", "the WebSocket upgrade answer has a wrong Sec-WebSocket-Accept")
        upgraded = True

        deadline.step = "waiting for the Engine.IO open packet"
        opening = ws.receive_text()
        try:
            engineio = json.loads(opening[1:]) if opening.startswith("0") else None
        except ValueError:
            engineio = None
        if not isinstance(engineio, dict) or not engineio.get("sid"):
            raise CheckProblem("bad_answer", f"expected the Engine.IO open packet 0{{...}}, got {opening[:80]!r}")
        evidence["engineio_sid"] = engineio["sid"]

        deadline.step = f"waiting for the Socket.IO CONNECT answer on {namespace}"
        auth = opts.get("auth")
        ws.send_text("40" + prefix + (json.dumps(auth) if auth else ""))
        while True:
            packet = _receive_socketio(ws)
            if packet.namespace != namespace:
                continue
            if packet.type == 0:
                evidence["namespace_connected"] = True
                break
            if packet.type == 4:
                data = packet.data
                message = str(data.get("message") if isinstance(data, dict) else data)
                evidence["connect_error"] = message
                note = f"; {opts['auth_note']}" if opts.get("auth_note") else ""
                # What the JavaScript and the Python Socket.IO servers answer for a namespace they do not serve.
                if message in ("Invalid namespace", "Unable to connect"):
                    raise CheckProblem("bad_answer", f"the server has no namespace {namespace} ({message})")
                raise CheckProblem("auth", f"namespace {namespace} refused the connection: {message}{note}")

        if roundtrip:
            event, expect = opts.get("event") or "ping", opts.get("expect") or "pong"
            deadline.step = f"waiting for the acknowledgement of the {event!r} event"
            started = time.monotonic()
            ws.send_text(f"42{prefix}1" + json.dumps([event]))
            while True:
                packet = _receive_socketio(ws)
                if packet.namespace != namespace:
                    continue
                if packet.type == 1:
                    raise CheckProblem("bad_answer", f"the server disconnected the namespace {namespace}")
                if packet.type == 3 and packet.ack_id == 1:
                    break
            evidence["roundtrip_ms"] = round((time.monotonic() - started) * 1000, 1)
            answer = packet.data[0] if isinstance(packet.data, list) and packet.data else packet.data
            if answer != expect:
                raise CheckProblem("bad_answer", f"the {event!r} event was answered {answer!r}, expected {expect!r}")
    finally:
        if upgraded:
            try:
                if evidence["namespace_connected"]:
                    ws.send_text("41" + prefix)
            except (OSError, CheckTimeout):
                pass
            ws.close()
        stream.close()


# -- redis (RESP2 by hand) --------------------------------------------------------------------------------


class _RedisError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


@dataclass
class RedisTarget:
    host: str | None
    port: int
    unix_path: str | None
    tls: bool
    username: str | None
    password: str | None
    db: int


def parse_redis_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db_text = query.get("db", [""])[0] or (parts.path.strip("/") if parts.scheme != "unix" else "") or "0"
    if not db_text.isdigit():
        raise ValueError(f"database number {db_text!r} is not a number")
    return RedisTarget(
        host=(parts.hostname or "127.0.0.1") if parts.scheme != "unix" else None,
        port=parts.port or 6379,
        unix_path=parts.path if parts.scheme == "unix" else None,
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else (query.get("password", [None])[0]),
        db=int(db_text),
    )


class _Resp:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def call(self, *args: str) -> Any:
        command = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            command.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.stream.send(b"".join(command))
        reply = self._read()
        if isinstance(reply, _RedisError):
            raise reply
        return reply

    def _read(self) -> Any:
        line = self.stream.read_until(b"\r\n", MAX_MESSAGE)[:-2]
        kind, rest = line[:1], line[1:].decode("utf-8", errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            return _RedisError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            if size > MAX_MESSAGE:
                raise CheckProblem("bad_answer", f"Redis reply of {size} bytes is larger than expected")
            return self.stream.read_exact(size + 2)[:-2].decode("utf-8", errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise CheckProblem("bad_answer", f"not a Redis reply: {line[:80]!r}")


def _redis_auth_problem(exc: _RedisError) -> CheckProblem | None:
    text = str(exc)
    if text.startswith(("NOAUTH", "WRONGPASS")) or "password" in text.lower():
        return CheckProblem("auth", f"Redis refused the credentials: {text}")
    return None


def check_redis(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    url = opts["url"]
    target = parse_redis_url(url)
    key = opts.get("key") or PENDING_KEY
    evidence.update(url=mask_url(url), ping=None, used_memory=None, pending_queue_length=None)
    evidence["pending_oldest_age_s"] = None

    if target.unix_path:
        deadline.step = f"connecting to {target.unix_path}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(deadline.remaining())
        try:
            sock.connect(target.unix_path)
        except FileNotFoundError:
            sock.close()
            raise CheckProblem("refused", f"no Redis socket at {target.unix_path}") from None
        except OSError:
            sock.close()
            raise
    else:
        sock = _connect(target.host or "127.0.0.1", target.port, deadline, target.tls, opts.get("validate_certs", True))
    stream = _Stream(sock, deadline)
    redis = _Resp(stream)
    try:
        try:
            if target.password:
                deadline.step = "authenticating (AUTH)"
                redis.call("AUTH", *([target.username] if target.username else []), target.password)
            deadline.step = "waiting for PING"
            evidence["ping"] = redis.call("PING")
            if target.db:
                deadline.step = f"selecting database {target.db}"
                redis.call("SELECT", str(target.db))
            deadline.step = "reading INFO memory"
            info = redis.call("INFO", "memory") or ""
            memory = re.search(r"^used_memory:(\d+)", info, re.MULTILINE)
            evidence["used_memory"] = int(memory.group(1)) if memory else None
            deadline.step = f"reading the pending queue {key}"
            length = redis.call("ZCARD", key)
            evidence["pending_queue_length"] = length
            oldest = redis.call("ZRANGE", key, "0", "0", "WITHSCORES") if length else []
        except _RedisError as exc:
            problem = _redis_auth_problem(exc)
            if problem:
                raise problem from None
            raise CheckProblem("bad_answer", f"Redis answered an error while {deadline.step}: {exc}") from None
    finally:
        stream.close()
    if evidence["ping"] != "PONG":
        raise CheckProblem("bad_answer", f"PING was answered {evidence['ping']!r}, expected 'PONG'")
    if oldest:
        evidence["pending_oldest_age_s"] = round(max(0.0, context.now() - float(oldest[1])), 1)

    max_length, max_age = opts.get("pending_max_length"), opts.get("pending_max_age_s")
    if max_length is not None and length > max_length:
        raise CheckProblem("backlog", f"{length} pending notifications in {key}, more than {max_length}", DEGRADED)
    age = evidence["pending_oldest_age_s"]
    if max_age is not None and age is not None and age > max_age:
        raise CheckProblem(
            "backlog", f"the oldest pending notification in {key} waits for {age:g}s, more than {max_age:g}s", DEGRADED
        )


# -- database ---------------------------------------------------------------------------------------------


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


def _first_value(rows: list[Any]) -> Any:
    """What the evidence shows as ``rows``: the value of a one-number answer (a count), else the row count."""
    if len(rows) == 1 and len(rows[0]) == 1 and isinstance(rows[0][0], (int, float)):
        return rows[0][0]
    return len(rows)


def check_database(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    url = opts["url"]
    query = opts.get("query") or DEFAULT_QUERY
    dialect, target = parse_database_url(url, opts.get("base_dir"))
    evidence.update(url=mask_url(url), dialect=dialect, query=query, rows=None)
    if dialect == "sqlite":
        _sqlite_query(target, query, deadline, evidence)
    else:
        _postgresql_query(target, query, deadline, evidence)


def _sqlite_query(path: str, query: str, deadline: Deadline, evidence: dict[str, Any]) -> None:
    if not os.path.exists(path):
        raise CheckProblem("missing", f"SQLite database {path} does not exist")
    deadline.step = f"opening {path} read-only"
    # mode=ro: a health check never creates or writes the database; timeout= is SQLite's busy timeout.
    connection = sqlite3.connect(
        f"file:{quote(path)}?mode=ro", uri=True, timeout=deadline.remaining(), check_same_thread=False
    )
    try:
        deadline.step = "running the query"
        rows = connection.execute(query).fetchmany(1000)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise CheckTimeout() from None
        raise CheckProblem("bad_answer", f"the query failed: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise CheckProblem("bad_answer", f"{path} cannot be read as an SQLite database: {exc}") from None
    finally:
        connection.close()
    evidence["rows"] = _first_value(rows)


def _postgresql_query(uri: str, query: str, deadline: Deadline, evidence: dict[str, Any]) -> None:
    psycopg = import_psycopg()
    deadline.step = "connecting to PostgreSQL"
    statement_ms = max(1, int(deadline.remaining() * 1000))
    try:
        connection = psycopg.connect(
            uri,
            # libpq counts whole seconds (and at least 2); the call's own wait bounds the rest.
            connect_timeout=max(2, math.ceil(deadline.remaining())),
            autocommit=True,
            application_name="notification_health",
            options=f"-c statement_timeout={statement_ms} -c default_transaction_read_only=on",
        )
    except psycopg.OperationalError as exc:
        raise _postgresql_problem(exc) from None
    try:
        deadline.step = "running the query"
        rows = connection.execute(query).fetchmany(1000)
    except psycopg.errors.QueryCanceled:
        raise CheckTimeout() from None
    except psycopg.Error as exc:
        raise CheckProblem("bad_answer", f"the query failed: {_first_line(exc)}") from None
    finally:
        connection.close()
    evidence["rows"] = _first_value(rows)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _postgresql_problem(exc: Exception) -> Exception:
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if "connection refused" in lowered:
        return CheckProblem("refused", f"connection refused: {text}")
    if "timeout" in lowered or "timed out" in lowered:
        return CheckTimeout()
    if "authentication failed" in lowered or "no password supplied" in lowered or "pg_hba.conf" in lowered:
        return CheckProblem("auth", text)
    if "translate host name" in lowered or "no route to host" in lowered or "unreachable" in lowered:
        return CheckProblem("unreachable", text)
    if "does not exist" in lowered:
        return CheckProblem("missing", text)
    return CheckProblem("error", text)


# -- tcp, process, disk, file -----------------------------------------------------------------------------


def check_tcp(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    host, port = spec.options["host"], spec.options["port"]
    evidence.update(host=host, port=port, connected=False)
    sock = _connect(host, port, deadline)
    sock.close()
    evidence["connected"] = True


def check_process(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    manager, service = opts["manager"], opts["service"]
    evidence.update(manager=manager, service=service, state=None, pid=None)
    backend = context.process_backend(opts, deadline)
    deadline.step = f"reading the state of {service} from {manager}"
    try:
        state = backend.status(service)
    except ServiceControlError as exc:
        if isinstance(backend, SupervisorBackend) and _supervisord_down(backend, exc):
            raise CheckProblem(
                "not_running", f"supervisord is not running for {backend.config}, so {service} is not either"
            ) from None
        raise CheckProblem("error", str(exc)) from None
    evidence.update(state=state.state, pid=state.pid)
    if state.state in ("RUNNING", "active"):
        return
    if state.running:  # STARTING, activating, reloading
        raise CheckProblem("bad_status", f"{service} is {state.state}, not running yet", DEGRADED)
    detail = f" ({state.detail})" if state.detail else ""
    raise CheckProblem("not_running", f"{service} is {state.state}{detail}")


def _supervisord_down(backend: SupervisorBackend, error: ServiceControlError) -> bool:
    """Whether ``error`` came from a supervisord that does not run (rather than from a program it runs)."""
    if isinstance(error, SupervisorUnreachable):
        return True
    try:
        return not backend.reachable()
    except ServiceControlError:
        return False  # it answers, but not as asked (credentials, a bad config): report the error itself


def check_disk(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    path = opts["path"]
    evidence.update(path=path, free_bytes=None, free_percent=None, total_bytes=None)
    try:
        usage = shutil.disk_usage(path)
    except FileNotFoundError:
        raise CheckProblem("missing", f"{path} does not exist") from None
    free_percent = round(usage.free / usage.total * 100, 2) if usage.total else 0.0
    evidence.update(free_bytes=usage.free, free_percent=free_percent, total_bytes=usage.total)
    for status, percent, size in (
        (FAILED, opts.get("min_free_percent"), opts.get("min_free_bytes")),
        (DEGRADED, opts.get("warn_free_percent"), opts.get("warn_free_bytes")),
    ):
        if percent is not None and free_percent < percent:
            raise CheckProblem("low_space", f"{free_percent:g}% free on {path}, less than {percent:g}%", status)
        if size is not None and usage.free < size:
            raise CheckProblem("low_space", f"{usage.free} bytes free on {path}, less than {size}", status)


def check_file(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    path = opts["path"]
    expected = (opts.get("sha256") or "").lower() or None
    evidence.update(path=path, exists=False, age_s=None, size=None, sha256=None, expected_sha256=expected)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CheckProblem("missing", f"{path} does not exist") from None
    evidence.update(exists=True, age_s=round(max(0.0, context.now() - info.st_mtime), 1), size=info.st_size)
    regular = os.path.isfile(path)
    if regular and (expected or info.st_size <= HASH_LIMIT):
        deadline.step = f"reading {path}"
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                deadline.remaining()
                digest.update(block)
        evidence["sha256"] = digest.hexdigest()
    min_size, max_age = opts.get("min_size"), opts.get("max_age_s")
    if min_size is not None and info.st_size < min_size:
        raise CheckProblem("bad_answer", f"{path} has {info.st_size} bytes, fewer than {min_size}")
    if max_age is not None and evidence["age_s"] > max_age:
        raise CheckProblem("stale", f"{path} was last modified {evidence['age_s']:g}s ago, more than {max_age:g}s")
    if expected:
        if not regular:
            raise CheckProblem("checksum", f"{path} is not a regular file, so it has no checksum")
        if evidence["sha256"] != expected:
            raise CheckProblem("checksum", f"{path} has sha256 {evidence['sha256']}, expected {expected}")


CHECKS: dict[str, Callable[[CheckSpec, Deadline, dict[str, Any], Context], None]] = {
    "http": check_http,
    "websocket": check_websocket,
    "redis": check_redis,
    "database": check_database,
    "tcp": check_tcp,
    "process": check_process,
    "disk": check_disk,
    "file": check_file,
}


# -- running the checks -----------------------------------------------------------------------------------


@dataclass
class CheckSpec:
    name: str
    kind: str
    component: str
    critical: bool = True
    timeout: float = 2.0
    options: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False  # legacy mode: reported healthy with evidence {"disabled": true}, not run
    setup_error: str | None = None  # what config.yml lacks to set this check up; reported as failed


def find_binary(name: str, bin_dir: str | None) -> str | None:
    """``bin_dir``/name, then next to the Python interpreter running the module, then the PATH."""
    candidates = [os.path.join(bin_dir, name)] if bin_dir else []
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


@dataclass
class Context:
    """What checks need from their surroundings."""

    bin_dir: str | None = None
    now: Callable[[], float] = time.time

    def process_backend(self, opts: dict[str, Any], deadline: Deadline) -> SupervisorBackend | SystemdBackend:
        def run(args: list[str]) -> tuple[int, str, str]:
            # Not AnsibleModule.run_command: it has no timeout, and a hung systemctl (or supervisorctl, for a
            # supervisord config without a socket) must not hold the call past the check's timeout.
            deadline.step = f"running {os.path.basename(args[0])} {' '.join(args[1:])}"
            try:
                done = subprocess.run(
                    args,
                    capture_output=True,
                    text=True,
                    timeout=deadline.remaining(),
                    check=False,
                    env={**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
                )
            except subprocess.TimeoutExpired:
                raise CheckTimeout() from None
            return done.returncode, done.stdout, done.stderr

        if opts["manager"] == "supervisord":
            # supervisord is asked over XML-RPC on its socket, every call bounded by what is left of the check's
            # timeout; supervisorctl is needed only for a config that names no socket and no serverurl.
            ctl = find_binary("supervisorctl", self.bin_dir)
            daemon = find_binary("supervisord", self.bin_dir) or "supervisord"
            return SupervisorBackend(
                run,
                opts["supervisor_config"],
                ctl,
                daemon,
                deadline.seconds,
                call_timeout=deadline.remaining,
                on_timeout=CheckTimeout,
            )
        systemctl = find_binary("systemctl", self.bin_dir)
        if not systemctl:
            raise CheckProblem("error", "systemctl not found; use manager=supervisord on hosts without systemd")
        return SystemdBackend(run, systemctl)


def _os_error_problem(exc: OSError, deadline: Deadline) -> CheckProblem:
    if isinstance(exc, ConnectionRefusedError):
        return CheckProblem("refused", f"connection refused while {deadline.step}")
    if isinstance(exc, socket.gaierror):
        return CheckProblem("unreachable", f"cannot resolve the host name while {deadline.step}: {exc.strerror}")
    if exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return CheckProblem("unreachable", f"no route while {deadline.step}: {exc.strerror}")
    if isinstance(exc, ConnectionResetError):
        return CheckProblem("error", f"connection reset while {deadline.step}")
    if isinstance(exc, ssl.SSLError):
        return CheckProblem("error", f"TLS error while {deadline.step}: {exc.reason or exc}")
    return CheckProblem("error", f"{exc.strerror or exc} while {deadline.step}")


class Probe:
    """One check in flight: its spec, the evidence gathered so far and what is left of its timeout."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.evidence: dict[str, Any] = {}
        self.deadline = Deadline(spec.timeout)
        self.started = time.monotonic()

    def result(self, status: str, reason: str | None = None, error: str | None = None) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "component": spec.component,
            "kind": spec.kind,
            "critical": spec.critical,
            "status": status,
            "latency_ms": None if spec.disabled else round((time.monotonic() - self.started) * 1000, 1),
            "error": error,
            "reason": reason,
            "evidence": dict(self.evidence),
        }


def run_one(probe: Probe, context: Context) -> dict[str, Any]:
    """Run one check; never raises: every problem becomes a failed or degraded result."""
    spec = probe.spec
    if spec.disabled:
        probe.evidence["disabled"] = True
        return probe.result(HEALTHY)
    try:
        if spec.setup_error:
            raise CheckProblem("error", spec.setup_error)
        CHECKS[spec.kind](spec, probe.deadline, probe.evidence, context)
    except CheckProblem as problem:
        return probe.result(problem.status, problem.reason, problem.error)
    except (CheckTimeout, TimeoutError):
        return probe.result(FAILED, "timeout", probe.deadline.timeout_message())
    except OSError as exc:
        mapped = _os_error_problem(exc, probe.deadline)
        return probe.result(FAILED, mapped.reason, mapped.error)
    except Exception as exc:
        return probe.result(FAILED, "error", f"{type(exc).__name__}: {_first_line(exc)}")
    result = probe.result(HEALTHY)
    threshold = spec.options.get("latency_degraded_ms")
    if spec.kind in NETWORK_KINDS and threshold is not None and result["latency_ms"] > threshold:
        result.update(
            status=DEGRADED,
            reason="slow",
            error=f"answered in {result['latency_ms']:g} ms, over the {threshold:g} ms threshold",
        )
    return result


def _start(probe: Probe, context: Context, runner: Callable[[Probe, Context], dict[str, Any]]) -> Future[Any]:
    """Run ``runner`` in a daemon thread.

    Not a ThreadPoolExecutor: its worker threads are joined when the interpreter exits, so one check stuck
    in a call that ignores timeouts (a DNS lookup, a hung network file system) would hold the module's
    process past its deadline. A daemon thread is abandoned instead.
    """
    future: Future[Any] = Future()

    def target() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(runner(probe, context))
            except BaseException as exc:
                future.set_exception(exc)

    threading.Thread(target=target, name=f"health-{probe.spec.name}", daemon=True).start()
    return future


def run_checks(
    specs: list[CheckSpec],
    deadline_s: float,
    context: Context | None = None,
    runner: Callable[[Probe, Context], dict[str, Any]] = run_one,
    secrets: set[str] | None = None,
) -> dict[str, Any]:
    """Run every check concurrently and return the health result (docs/health-result.md)."""
    context = context or Context()
    checked_at = datetime.now(UTC)
    started = time.monotonic()
    call_end = started + deadline_s
    probes = {spec.name: Probe(spec) for spec in specs}
    futures = {name: _start(probe, context, runner) for name, probe in probes.items()}
    # A check is waited for until its own timeout (plus a moment to report it itself), never past the deadline.
    limits = {name: min(probe.started + probe.spec.timeout + GRACE_S, call_end) for name, probe in probes.items()}
    results: dict[str, dict[str, Any]] = {}
    pending = set(probes)
    while pending:
        now = time.monotonic()
        for name in sorted(pending):
            probe, future = probes[name], futures[name]
            if future.done():
                try:
                    results[name] = future.result()
                except Exception as exc:  # a runner that raises is a bug; report it, do not lose the call
                    results[name] = probe.result(FAILED, "error", f"{type(exc).__name__}: {_first_line(exc)}")
                pending.discard(name)
            elif now >= limits[name]:
                if limits[name] >= call_end and call_end < probe.started + probe.spec.timeout + GRACE_S:
                    error = f"timeout: still running at the call's {float(deadline_s)}s deadline"
                else:
                    error = probe.deadline.timeout_message()
                results[name] = probe.result(FAILED, "timeout", error)
                pending.discard(name)
        if pending:
            wait(
                [futures[name] for name in pending],
                timeout=max(0.0, min(limits[name] for name in pending) - time.monotonic()),
                return_when=FIRST_COMPLETED,
            )
    checks = {spec.name: results[spec.name] for spec in specs}
    secrets = {secret for secret in (secrets or set()) if secret}
    for check in checks.values():
        check["error"] = scrub(check["error"], secrets)
        check["evidence"] = scrub(check["evidence"], secrets)
    return summarize(checks, checked_at, time.monotonic() - started, deadline_s)


def summarize(
    checks: dict[str, dict[str, Any]], checked_at: datetime, duration_s: float, deadline_s: float
) -> dict[str, Any]:
    overall = HEALTHY
    counts = {HEALTHY: 0, DEGRADED: 0, FAILED: 0}
    for check in checks.values():
        counts[check["status"]] += 1
        # A non-critical check that fails makes the whole at most degraded.
        weight = check["status"] if check["critical"] or check["status"] == HEALTHY else DEGRADED
        if SEVERITY[weight] > SEVERITY[overall]:
            overall = weight
    return {
        "overall": overall,
        "checked_at": checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_ms": round(duration_s * 1000, 1),
        "deadline_s": float(deadline_s),
        "counts": counts,
        "checks": checks,
        "failed_checks": [name for name, check in checks.items() if check["status"] == FAILED],
        "degraded_checks": [name for name, check in checks.items() if check["status"] == DEGRADED],
    }


# -- from the module's arguments (and config.yml) to the list of checks -----------------------------------


@dataclass
class Plan:
    specs: list[CheckSpec]
    deadline: float
    secrets: set[str] = field(default_factory=set)  # masked wherever they could show up
    context: Context = field(default_factory=Context)


def _read_yaml(path: str, what: str) -> Any:
    yaml = import_yaml()
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
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HealthArgumentError(f"{what}: {path} is not valid YAML{where} ({problem}); fix the file") from None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536 else None


def _config_path(value: Any, base_dir: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    path = os.path.expanduser(value.strip())
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def read_api_token(secrets_file: str | None) -> tuple[str | None, str | None]:
    """(api_token, why not) from the service's secrets file."""
    if not secrets_file:
        return None, "config.yml has no secrets_file, so no api_token was sent"
    try:
        data = _read_yaml(secrets_file, "secrets_file")
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


# Directories under the root that a deployment often mounts on a filesystem of their own (a log volume, a
# backup volume): each one that is gets a disk check of its own, since the root's free space says nothing
# about them.
SEPARATE_VOLUMES = ("log", "backups")


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


def default_checks(config_path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """The default checks (docs/health-result.md) derived from the service's config.yml; and its secrets.

    A config.yml that exists but cannot be used (not YAML, not a mapping) is a finding, not a bad argument:
    the ``config`` check fails with the reason, and the checks that need nothing from config.yml still run
    (process, disk, templates), so the classification sees a configuration error and what else is down."""
    try:
        data = _read_yaml(config_path, "config")
        if not isinstance(data, dict):
            raise HealthArgumentError(
                f"config: {config_path} is not a mapping of keys (mode, web, websocket, redis_url, ...); "
                "pass the service's config.yml (reference_app/README.md shows its format)"
            )
    except HealthArgumentError as exc:
        if not os.path.isfile(config_path) or not os.access(config_path, os.R_OK):
            raise  # a wrong path or no permission: the argument is the problem
        return _checks_without_config(os.path.abspath(config_path), str(exc), params), set()
    config_path = os.path.abspath(config_path)
    etc_dir = os.path.dirname(config_path)
    root = service_root(config_path)
    web, websocket = _section(data, "web"), _section(data, "websocket")
    legacy = data.get("mode") == "legacy" or websocket.get("enabled") is False
    services = {**DEFAULT_SERVICES, **{k: v for k, v in (params.get("services") or {}).items() if v}}
    secrets: set[str] = set()

    def missing(key: str, what: str) -> str:
        return f"config.yml ({config_path}) has no valid {key}, needed for the {what} check; fix config.yml"

    checks: list[dict[str, Any]] = []
    web_host = connect_host(str(web.get("host") or "127.0.0.1"))
    web_port = _port(web.get("port"))
    url_host = f"[{web_host}]" if ":" in web_host else web_host
    checks.append(
        {
            "name": "web",
            "kind": "http",
            "component": "web",
            "url": f"http://{url_host}:{web_port}/health",
            "expected_status": [200],
            # The web process answers 200 with "degraded" when a component it depends on is down (that
            # component's own check fails); the web process itself is then working, but not as it should.
            "json": {"status": "healthy"},
            "mismatch": DEGRADED,
            "_setup_error": None if web_port else missing("web.port", "web"),
        }
    )

    public_url = websocket.get("public_url")
    ws_host = connect_host(str(websocket.get("host") or "127.0.0.1"))
    ws_port = _port(websocket.get("port"))
    if not isinstance(public_url, str) or not public_url.strip():
        public_url = f"http://{'[' + ws_host + ']' if ':' in ws_host else ws_host}:{ws_port}" if ws_port else None
    websocket_check: dict[str, Any] = {
        "name": "websocket",
        "kind": "websocket",
        "component": "websocket",
        "url": public_url,
        "namespace": websocket.get("namespace") or "/notifications",
        "_disabled": legacy,
        "_setup_error": None if public_url else missing("websocket.public_url", "websocket"),
    }
    if not legacy:
        token, why_not = read_api_token(_config_path(data.get("secrets_file"), etc_dir))
        if token:
            websocket_check["auth"] = {"api_token": token}
            secrets.add(token)
        else:
            websocket_check["auth_note"] = why_not
    checks.append(websocket_check)

    redis_url = data.get("redis_url")
    checks.append(
        {
            "name": "redis",
            "kind": "redis",
            "component": "redis",
            "url": redis_url,
            "_setup_error": None if isinstance(redis_url, str) and redis_url else missing("redis_url", "redis"),
        }
    )
    database_url = data.get("database_url")
    checks.append(
        {
            "name": "database",
            "kind": "database",
            "component": "database",
            "url": database_url,
            "base_dir": etc_dir,
            "_setup_error": None
            if isinstance(database_url, str) and database_url
            else missing("database_url", "database"),
        }
    )
    checks.append(
        {
            "name": "web_port",
            "kind": "tcp",
            "component": "web",
            "host": web_host,
            "port": web_port,
            "_setup_error": None if web_port else missing("web.port", "web_port"),
        }
    )
    checks.append(
        {
            "name": "websocket_port",
            "kind": "tcp",
            "component": "websocket",
            "host": ws_host,
            "port": ws_port,
            "_disabled": legacy,
            "_setup_error": None if ws_port or legacy else missing("websocket.port", "websocket_port"),
        }
    )
    if params.get("manager"):
        for name, role in (("web_process", "web"), ("websocket_process", "websocket")):
            checks.append(
                {
                    "name": name,
                    "kind": "process",
                    "component": role,
                    "service": services[role],
                    "_disabled": legacy and role == "websocket",
                }
            )
    checks.extend(disk_checks(root))
    checks.append({"name": "config", "kind": "file", "component": "config", "path": config_path})
    templates_dir = _config_path(data.get("templates_dir"), etc_dir) or os.path.join(root, "templates", "active")
    checks.append(
        {
            "name": "templates",
            "kind": "file",
            "component": "templates",
            "path": os.path.join(templates_dir, "index.html"),
        }
    )
    # The page users see: it renders the active templates, so a template that is broken (not missing)
    # shows here as a 500. Part of the templates component for the classification.
    checks.append(
        {
            "name": "page",
            "kind": "http",
            "component": "templates",
            "url": f"http://{url_host}:{web_port}/",
            "expected_status": [200],
            "_setup_error": None if web_port else missing("web.port", "page"),
        }
    )
    for check in checks:
        if check["kind"] in ("redis", "database") and isinstance(check.get("url"), str):
            secrets |= url_secrets(check["url"])
    return checks, secrets


def _checks_without_config(config_path: str, problem: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks that can run when config.yml is unusable; the config check carries the problem."""
    root = service_root(config_path)
    services = {**DEFAULT_SERVICES, **{k: v for k, v in (params.get("services") or {}).items() if v}}
    checks: list[dict[str, Any]] = []
    if params.get("manager"):
        for name, role in (("web_process", "web"), ("websocket_process", "websocket")):
            checks.append({"name": name, "kind": "process", "component": role, "service": services[role]})
    checks.extend(disk_checks(root))
    checks.append(
        {
            "name": "config",
            "kind": "file",
            "component": "config",
            "path": config_path,
            "_setup_error": problem.removeprefix("config: "),
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


def _label(raw: dict[str, Any]) -> str:
    index = raw.get("_index")
    return f"checks[{index}] ({raw['name']})" if index is not None else f"check {raw['name']} (from config)"


def _positive(value: Any, where: str) -> float:
    if value is None or value <= 0:
        raise HealthArgumentError(f"{where} must be a positive number of seconds, got {value}; set it above 0")
    return float(value)


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
    if spec.disabled or spec.setup_error:
        return spec

    def need(key: str, example: str) -> Any:
        if options.get(key) in (None, ""):
            raise HealthArgumentError(f"{label}: kind {kind} needs {key}; add {example}")
        return options[key]

    if kind in NETWORK_KINDS:
        options.setdefault("latency_degraded_ms", params["latency_degraded_ms"])
    if kind in URL_SCHEMES or kind == "database":
        url = str(need("url", KIND_EXAMPLES[kind]))
        try:
            scheme = urlsplit(url).scheme
            if kind == "database":
                parse_database_url(url)
            elif kind == "redis":
                parse_redis_url(url)
        except ValueError as exc:
            raise HealthArgumentError(
                f"{label}: url {mask_url(url)} is not usable ({exc}); set {KIND_EXAMPLES[kind]}"
            ) from None
        if kind in URL_SCHEMES and scheme not in URL_SCHEMES[kind]:
            raise HealthArgumentError(
                f"{label}: url {mask_url(url)} must start with {' or '.join(s + '://' for s in URL_SCHEMES[kind])}; "
                f"set {KIND_EXAMPLES[kind]}"
            )
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
        need("service", "service: notification-web")
        options.setdefault("manager", params.get("manager"))
        if options.get("manager") not in ("supervisord", "systemd"):
            raise HealthArgumentError(
                f"{label}: kind process needs manager; set the module's manager (or the check's) to supervisord "
                "or systemd"
            )
        if options["manager"] == "supervisord":
            options.setdefault("supervisor_config", params.get("supervisor_config"))
            if not options.get("supervisor_config"):
                raise HealthArgumentError(
                    f"{label}: manager supervisord needs supervisor_config; set supervisor_config to the path of "
                    "supervisord.conf"
                )
    elif kind == "disk":
        need("path", "path: /srv/notification")
        if options.get("min_free_percent") is None:
            options["min_free_percent"] = params["disk_min_free_percent"]
    elif kind == "file":
        need("path", "path: /srv/notification/etc/config.yml")
        digest = options.get("sha256")
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise HealthArgumentError(f"{label}: sha256 {digest!r} is not 64 hex digits; set the file's SHA-256")
    return spec


def build_plan(params: dict[str, Any]) -> Plan:
    """Validate the module's arguments and turn them into the checks to run."""
    _positive(params["timeout"], "timeout")
    deadline = _positive(params["deadline"], "deadline")
    if deadline < params["timeout"]:
        raise HealthArgumentError(
            f"deadline {deadline:g}s is shorter than timeout {params['timeout']:g}s; raise deadline or lower timeout"
        )
    for key in ("latency_degraded_ms", "pending_max_length", "pending_max_age_s", "disk_min_free_percent"):
        if params[key] is not None and params[key] < 0:
            raise HealthArgumentError(f"{key} must not be negative, got {params[key]}; set it to 0 or more")

    raws: dict[str, dict[str, Any]] = {}
    secrets: set[str] = set()
    if params.get("config"):
        defaults, secrets = default_checks(params["config"], params)
        if params.get("manager") == "supervisord" and not params.get("supervisor_config"):
            # Where the notification_service role puts it (notification_service_supervisor_config).
            supervisor_config = os.path.join(service_root(params["config"]), "etc", "supervisord.conf")
            params = {**params, "supervisor_config": supervisor_config}
        raws = {raw["name"]: raw for raw in defaults}

    seen: dict[str, int] = {}
    for index, given in enumerate(params.get("checks") or []):
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
            secrets |= url_secrets(check["url"])
        for value in (check.get("auth") or {}).values():
            if isinstance(value, str):
                secrets.add(value)

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
    specs = [normalize(raw, params) for raw in raws.values()]
    return Plan(specs=specs, deadline=deadline, secrets=secrets, context=Context(bin_dir=params.get("bin_dir")))


def check_health(params: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Validate, run every check, and return (the health result, the secrets the caller must keep hidden)."""
    plan = build_plan(params)
    return run_checks(plan.specs, plan.deadline, plan.context, secrets=plan.secrets), plan.secrets


# -- for the other modules: config.yml and one Redis command, with the readers above ----------------------


class RedisCommandError(Exception):
    """One Redis command could not be run; the message says why (connection, timeout, credentials, error reply)."""


def read_service_config(config_path: str) -> dict[str, Any]:
    """The service's config.yml as a mapping.

    Raises MissingLibrary without PyYAML, HealthArgumentError when the file is missing, unreadable, not YAML
    or not a mapping (the message names the file and the fix).
    """
    data = _read_yaml(config_path, "config")
    if not isinstance(data, dict):
        raise HealthArgumentError(
            f"config: {config_path} is not a mapping of keys (mode, web, websocket, redis_url, ...); fix the file"
        )
    return data


def redis_command(url: str, command: list[str], timeout: float) -> Any:
    """The reply to one Redis command (after AUTH and SELECT as the URL says), within ``timeout`` seconds."""
    deadline = Deadline(timeout)
    try:
        target = parse_redis_url(url)
    except ValueError as exc:
        raise RedisCommandError(f"redis url {mask_url(url)} is not usable: {exc}") from None
    try:
        if target.unix_path:
            deadline.step = f"connecting to {target.unix_path}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(deadline.remaining())
                sock.connect(target.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = _connect(target.host or "127.0.0.1", target.port, deadline, target.tls)
        stream = _Stream(sock, deadline)
        redis = _Resp(stream)
        try:
            if target.password:
                deadline.step = "authenticating (AUTH)"
                redis.call("AUTH", *([target.username] if target.username else []), target.password)
            if target.db:
                deadline.step = f"selecting database {target.db}"
                redis.call("SELECT", str(target.db))
            deadline.step = f"running {command[0]}"
            return redis.call(*command)
        finally:
            stream.close()
    except _RedisError as exc:
        raise RedisCommandError(f"Redis answered an error while {deadline.step}: {exc}") from None
    except (CheckTimeout, TimeoutError):
        raise RedisCommandError(deadline.timeout_message()) from None
    except CheckProblem as exc:
        raise RedisCommandError(exc.error) from None
    except OSError as exc:
        raise RedisCommandError(_os_error_problem(exc, deadline).error) from None
