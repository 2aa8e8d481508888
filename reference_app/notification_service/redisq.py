"""The Redis side: the ``notification:pending`` sorted set and short-timeout clients.

Redis is never the arbiter (the database is); every call here is best effort and callers log failures.
"""

from __future__ import annotations

import time
from typing import Any

import redis

PENDING_KEY = "notification:pending"
# Short timeouts so that a Redis outage slows a request by at most a couple of seconds.
CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
# The Socket.IO pub/sub listener blocks on the socket for as long as nothing is published, so it gets a
# connect timeout and TCP keepalive but no read timeout.
LISTENER_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_keepalive": True}


# The health checks' write probe: a key of its own that expires by itself (never the pending queue).
PROBE_KEY = "notification:health:probe"
PROBE_TTL_MS = 10000


def ping_and_write(conn: redis.Redis) -> None:
    """PING, then write the probe key: a Redis that answers but refuses writes (a read-only replica, out of
    memory under noeviction, MISCONF) raises its own error here, so /health reports it failed while live
    delivery cannot work."""
    conn.ping()
    conn.set(PROBE_KEY, repr(time.time()), px=PROBE_TTL_MS)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **CLIENT_OPTIONS)


def member(notification_id: int, user: str) -> str:
    return f"{notification_id}:{user}"


def add_pending(conn: redis.Redis, notification_id: int, users: list[str], score: float) -> None:
    if users:
        conn.zadd(PENDING_KEY, {member(notification_id, user): score for user in users})


def remove_pending(conn: redis.Redis, notification_id: int, user: str) -> None:
    conn.zrem(PENDING_KEY, member(notification_id, user))


def clear_pending(conn: redis.Redis) -> None:
    conn.delete(PENDING_KEY)


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
