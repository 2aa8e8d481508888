"""Faults of a resource the service writes to: the sandbox host's private Redis answers PING but refuses
writes (turned into a read-only replica of a master that does not exist, or out of memory under noeviction).
Nothing looks down (the processes run, the ports answer), yet no notification is queued or published live.

Both are runtime settings (REPLICAOF, CONFIG SET): the engine's restart of Redis starts it again with the
deployed command line, which resets them. Each undo resets them itself when the engine did not, so the host
is left as it was found."""

from __future__ import annotations

import contextlib
import socket

import redis

from notification_emergency.drills.sandbox import SandboxHost, Undo
from notification_emergency.errors import BadInput


def _client(host: SandboxHost) -> redis.Redis:
    port = host.variables.get("notification_sandbox_redis_port")
    if not port:
        raise BadInput(
            f"{host.target.host} has no notification_sandbox_redis_port in the inventory: the write-refusal "
            "drills need the sandbox host's private Redis"
        )
    return redis.Redis(
        host="127.0.0.1", port=int(port), socket_timeout=5, socket_connect_timeout=5, decode_responses=True
    )


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: the master a read-only replica waits for in vain."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def redis_read_only(host: SandboxHost) -> Undo:
    """REPLICAOF a master that does not exist: Redis serves reads (stale data allowed) and refuses every
    write with READONLY."""
    client = _client(host)
    client.replicaof("127.0.0.1", _closed_port())

    def undo() -> None:
        with contextlib.closing(client):
            if client.info("replication").get("role") != "master":  # the engine's restart did not reset it
                client.replicaof("NO", "ONE")

    return undo


def redis_out_of_memory(host: SandboxHost) -> Undo:
    """maxmemory far under what Redis uses, with the noeviction policy: every write that may need memory is
    refused with OOM."""
    client = _client(host)
    original = (
        str(client.config_get("maxmemory")["maxmemory"]),
        str(client.config_get("maxmemory-policy")["maxmemory-policy"]),
    )
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")

    def undo() -> None:
        with contextlib.closing(client):
            if client.config_get("maxmemory")["maxmemory"] == "1":  # the engine's restart did not reset it
                client.config_set("maxmemory", original[0])
                client.config_set("maxmemory-policy", original[1])

    return undo
