"""A small Redis client over a plain socket (RESP2 by hand): enough for the health check's PING, INFO and queue
reads and for the one command the backup and mode modules run, with every wait bounded by a deadline.

Standard library only, Python 3.8+: a managed host needs no Redis library.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ansible.module_utils.notification_common import (
    MAX_MESSAGE,
    CheckProblem,
    CheckTimeout,
    Deadline,
    Stream,
    connect,
    os_error_problem,
    shown_url,
)

PENDING_KEY = "notification:pending"


class RedisError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


class RedisCommandError(Exception):
    """One Redis command could not be run; the message says why (connection, timeout, credentials, error reply)."""


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
    """``redis://``, ``rediss://`` or ``unix://`` URL as a target; ValueError names what is wrong."""
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


class Resp:
    """Commands and replies in RESP2 over a bounded stream."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def call(self, *args: str) -> Any:
        command = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            command.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.stream.send(b"".join(command))
        reply = self._read()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def _read(self) -> Any:
        line = self.stream.read_until(b"\r\n", MAX_MESSAGE)[:-2]
        kind, rest = line[:1], line[1:].decode("utf-8", errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest)
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
            return None if count < 0 else [self._read() for _item in range(count)]
        raise CheckProblem("bad_answer", f"not a Redis reply: {line[:80]!r}")

    def close(self) -> None:
        self.stream.close()


def _socket(target: RedisTarget, deadline: Deadline, validate_certs: bool) -> socket.socket:
    if not target.unix_path:
        return connect(target.host or "127.0.0.1", target.port, deadline, target.tls, validate_certs)
    deadline.step = f"connecting to {target.unix_path}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(deadline.remaining())
        sock.connect(target.unix_path)
        deadline.connected = True
    except FileNotFoundError:
        sock.close()
        raise CheckProblem("refused", f"no Redis socket at {target.unix_path}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def open_session(target: RedisTarget, deadline: Deadline, validate_certs: bool = True) -> Resp:
    """A connection to ``target``, authenticated (AUTH) when its URL has a password; the caller closes it.

    Raises CheckProblem, CheckTimeout, OSError, or RedisError for an AUTH the server refuses."""
    redis = Resp(Stream(_socket(target, deadline, validate_certs), deadline))
    try:
        if target.password:
            deadline.step = "authenticating (AUTH)"
            redis.call("AUTH", *([target.username] if target.username else []), target.password)
    except BaseException:
        redis.close()
        raise
    return redis


def select_db(redis: Resp, target: RedisTarget, deadline: Deadline) -> None:
    """SELECT the URL's database (nothing for database 0, the one a connection starts in)."""
    if target.db:
        deadline.step = f"selecting database {target.db}"
        redis.call("SELECT", str(target.db))


def redis_auth_problem(exc: RedisError) -> CheckProblem | None:
    """The ``auth`` problem an error reply means, when it is about credentials."""
    text = str(exc)
    if text.startswith(("NOAUTH", "WRONGPASS")) or "password" in text.lower():
        return CheckProblem("auth", f"Redis refused the credentials: {text}")
    return None


def redis_command(url: str, command: list[str], timeout: float) -> Any:
    """The reply to one Redis command (after AUTH and SELECT as the URL says), within ``timeout`` seconds."""
    deadline = Deadline(timeout)
    try:
        target = parse_redis_url(url)
    except ValueError as exc:
        raise RedisCommandError(f"redis url {shown_url(url)} is not usable: {exc}") from None
    try:
        redis = open_session(target, deadline)
        try:
            select_db(redis, target, deadline)
            deadline.step = f"running {command[0]}"
            return redis.call(*command)
        finally:
            redis.close()
    except RedisError as exc:
        raise RedisCommandError(f"Redis answered an error while {deadline.step}: {exc}") from None
    except (CheckTimeout, TimeoutError):
        raise RedisCommandError(deadline.timeout_message()) from None
    except CheckProblem as exc:
        raise RedisCommandError(exc.error) from None
    except OSError as exc:
        raise RedisCommandError(os_error_problem(exc, deadline).error) from None
