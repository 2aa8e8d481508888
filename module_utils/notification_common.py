"""What every host-side reader of the notification service shares: statuses, errors, one check's deadline, a
bounded socket stream.

Shipped with ``notification_health``, ``notification_backup`` and ``notification_mode`` (through
``notification_redis``, ``notification_service_config`` and ``notification_checks``). Standard library only,
Python 3.8+.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import Any

from ansible.module_utils.notification_redact import mask_url

HEALTHY, DEGRADED, FAILED = "healthy", "degraded", "failed"
SEVERITY = {HEALTHY: 0, DEGRADED: 1, FAILED: 2}
MAX_MESSAGE = 1024 * 1024  # bytes of one WebSocket message or Redis reply


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


class Deadline:
    """What is left of one check's timeout; ``step`` says what the check is doing, for timeout messages;
    ``connected`` whether the server accepted the check's connection (a timeout after it is a hung server)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.step = "starting"
        self.connected = False

    def timeout_reason(self) -> str:
        """``hung`` when the connection was accepted and no answer came in time, else ``timeout`` (the
        connection itself could not be opened in time, or the check is not a network one)."""
        return "hung" if self.connected else "timeout"

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise CheckTimeout()
        return left

    def timeout_message(self) -> str:
        return f"timeout after {float(self.seconds)}s while {self.step}"


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


def shown_url(url: str) -> str:
    """A service URL (Redis, database, HTTP) as it may be shown: its password and secret query values masked."""
    return mask_url(url, service=True)[0]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- sockets, every wait bounded by a Deadline -----------------------------------------------------------


def ssl_context(validate_certs: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(host: str, port: int, deadline: Deadline, tls: bool = False, validate_certs: bool = True) -> socket.socket:
    """A TCP connection (TLS when asked) to ``host:port`` within what is left of ``deadline``."""
    deadline.step = f"connecting to {host}:{port}"
    sock = socket.create_connection((host, port), timeout=deadline.remaining())
    deadline.connected = True
    if tls:
        deadline.step = f"negotiating TLS with {host}:{port}"
        sock.settimeout(deadline.remaining())
        sock = ssl_context(validate_certs).wrap_socket(sock, server_hostname=host)
    return sock


class Stream:
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


def os_error_problem(exc: OSError, deadline: Deadline) -> CheckProblem:
    """What a network error means for a check, in the contract's reasons."""
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
