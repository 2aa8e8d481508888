"""The health checks of the notification service, one function per kind, each bounded by its own deadline.

Every check speaks its protocol itself with the standard library (HTTP, Socket.IO through
``notification_socketio``, Redis RESP through ``notification_redis``, SQLite, supervisord's XML-RPC through
``notification_services``), so a host needs nothing but Python and, for a PostgreSQL database only, psycopg.
A check fills ``evidence`` as it goes and raises CheckProblem (or CheckTimeout, OSError) when the component is
not healthy; ``notification_health`` runs them and turns that into the result. Nothing here writes anything the
service reads: the write probes write a Redis key of their own that expires by itself, and open a database write
transaction that is rolled back.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ansible.module_utils.notification_common import (
    DEGRADED,
    FAILED,
    CheckProblem,
    CheckTimeout,
    Deadline,
    MissingLibrary,
    Stream,
    connect,
    first_line,
    shown_url,
    ssl_context,
    trim,
)
from ansible.module_utils.notification_drift import check_drift
from ansible.module_utils.notification_redis import (
    PENDING_KEY,
    RedisError,
    Resp,
    open_session,
    parse_redis_url,
    redis_auth_problem,
    select_db,
)
from ansible.module_utils.notification_service_config import parse_database_url
from ansible.module_utils.notification_services import (
    ServiceControlError,
    SupervisorBackend,
    SupervisorUnreachable,
    SystemdBackend,
)
from ansible.module_utils.notification_socketio import SocketIOClient

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

DEFAULT_QUERY = "SELECT count(*) FROM notifications"
PROBE_KEY = "notification:health:probe"  # the redis write probe's own key (expires after PROBE_TTL_MS)
PROBE_TTL_MS = 10000
# Error replies of a Redis that answers but refuses writes (a read-only replica, out of memory, a failed save).
WRITE_REFUSALS = ("READONLY", "OOM", "MISCONF", "NOREPLICAS")
MAX_BODY = 64 * 1024  # bytes of an HTTP body that are read and matched
HASH_LIMIT = 1024 * 1024  # file checks hash files up to this size even without an expected checksum


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingLibrary("psycopg", "for a PostgreSQL database check") from exc
    return psycopg


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
    evidence.update(url=shown_url(url), status_code=None, json=None)
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
            host, port, timeout=deadline.remaining(), context=ssl_context(opts.get("validate_certs", True))
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline.remaining())
    try:
        conn.connect()
        deadline.connected = True
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
        # Python 3.13's read1 closes the response (and the socket) once the body is complete: stop there.
        while len(body) < MAX_BODY and not response.isclosed():
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


# -- websocket (Socket.IO over a WebSocket) ---------------------------------------------------------------


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
        url=shown_url(url),
        namespace=namespace,
        upgrade_status=None,
        engineio_sid=None,
        namespace_connected=False,
        connect_error=None,
    )
    if roundtrip:
        evidence["roundtrip_ms"] = None

    client = SocketIOClient(
        Stream(connect(host, port, deadline, tls, opts.get("validate_certs", True)), deadline), namespace
    )
    try:
        evidence["upgrade_status"], status_text = client.upgrade(host, port, tls, path)
        if evidence["upgrade_status"] != 101:
            raise CheckProblem(
                "bad_status", f"the WebSocket upgrade was answered with HTTP {status_text}, expected 101"
            )
        evidence["engineio_sid"] = client.open()
        refused = client.connect(opts.get("auth"))
        evidence.update(namespace_connected=client.connected, connect_error=refused)
        if refused is not None:
            # What the JavaScript and the Python Socket.IO servers answer for a namespace they do not serve.
            if refused in ("Invalid namespace", "Unable to connect"):
                raise CheckProblem("bad_answer", f"the server has no namespace {namespace} ({refused})")
            note = f"; {opts['auth_note']}" if opts.get("auth_note") else ""
            raise CheckProblem("auth", f"namespace {namespace} refused the connection: {refused}{note}")
        if roundtrip:
            event, expect = opts.get("event") or "ping", opts.get("expect") or "pong"
            started = time.monotonic()
            answer = client.call(event)
            evidence["roundtrip_ms"] = round((time.monotonic() - started) * 1000, 1)
            if answer != expect:
                raise CheckProblem("bad_answer", f"the {event!r} event was answered {answer!r}, expected {expect!r}")
    finally:
        client.close()


# -- redis -----------------------------------------------------------------------------------------------


def check_redis(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    opts = spec.options
    url = opts["url"]
    target = parse_redis_url(url)
    key = opts.get("key") or PENDING_KEY
    evidence.update(url=shown_url(url), ping=None, used_memory=None, pending_queue_length=None, write=None)
    evidence["pending_oldest_age_s"] = None
    try:
        redis = open_session(target, deadline, opts.get("validate_certs", True))
        try:
            deadline.step = "waiting for PING"
            try:
                evidence["ping"] = redis.call("PING")
            except RedisError as exc:
                # After a failed save (MISCONF) Redis refuses PING as it refuses writes; it does answer.
                if not str(exc).startswith(WRITE_REFUSALS):
                    raise
                evidence["ping"] = trim(str(exc))
            select_db(redis, target, deadline)
            deadline.step = "reading INFO memory"
            info = redis.call("INFO", "memory") or ""
            memory = re.search(r"^used_memory:(\d+)", info, re.MULTILINE)
            evidence["used_memory"] = int(memory.group(1)) if memory else None
            deadline.step = f"reading the pending queue {key}"
            length = redis.call("ZCARD", key)
            evidence["pending_queue_length"] = length
            oldest = redis.call("ZRANGE", key, "0", "0", "WITHSCORES") if length else []
            refused = _redis_write_probe(redis, opts, deadline, evidence, context)
        finally:
            redis.close()
    except RedisError as exc:
        problem = redis_auth_problem(exc)
        if problem:
            raise problem from None
        raise CheckProblem("bad_answer", f"Redis answered an error while {deadline.step}: {exc}") from None
    if refused:
        raise CheckProblem("write_refused", f"Redis answers but refuses writes: {refused}")
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


def _redis_write_probe(
    redis: Resp, opts: dict[str, Any], deadline: Deadline, evidence: dict[str, Any], context: Context
) -> str | None:
    """Write a key of the check's own that expires by itself (never the pending queue): a Redis that answers
    PING but refuses writes (a read-only replica, out of memory with noeviction, MISCONF after a failed save)
    stops live delivery. Returns the server's error reply when it refuses, None when it writes (or when
    write_probe is off)."""
    if opts.get("write_probe") is False:
        return None
    deadline.step = f"writing the probe key {PROBE_KEY}"
    try:
        redis.call("SET", PROBE_KEY, str(round(context.now(), 3)), "PX", str(PROBE_TTL_MS))
    except RedisError as exc:
        evidence["write"] = "refused"
        evidence["write_error"] = trim(str(exc))
        return str(exc)
    evidence["write"] = "ok"
    return None


# -- database ---------------------------------------------------------------------------------------------


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
    evidence.update(url=shown_url(url), dialect=dialect, query=query, rows=None, write=None)
    if dialect == "sqlite":
        _sqlite_query(target, query, deadline, evidence, opts)
    else:
        _postgresql_query(target, query, deadline, evidence, opts)


def _sqlite_query(path: str, query: str, deadline: Deadline, evidence: dict[str, Any], opts: dict[str, Any]) -> None:
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
    if opts.get("write_probe") is not False:
        _sqlite_write_probe(path, deadline, evidence)


def _sqlite_write_probe(path: str, deadline: Deadline, evidence: dict[str, Any]) -> None:
    """A write transaction that is rolled back, on a read-write connection of its own: a read-only file or
    filesystem, or a database another connection holds locked for writes, refuses it (reason write_refused).
    SQLite opens a file it cannot write read-only without a word, so the probe writes (the user_version it
    reads back, in the transaction it rolls back) rather than only taking the write lock."""
    deadline.step = f"opening {path} read-write for the write probe"
    connection = sqlite3.connect(
        # Half of what is left waiting for another writer: a write lock held longer than that is a refusal.
        f"file:{quote(path)}?mode=rw",
        uri=True,
        timeout=max(0.05, deadline.remaining() / 2),
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        deadline.step = "the write probe (BEGIN IMMEDIATE, a write, ROLLBACK)"
        connection.execute("BEGIN IMMEDIATE")
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        connection.execute(f"PRAGMA user_version = {version}")
        evidence["write"] = "ok"
    except sqlite3.DatabaseError as exc:
        evidence["write"] = "refused"
        evidence["write_error"] = trim(str(exc))
        raise CheckProblem("write_refused", f"the database answers queries but refuses writes: {exc}") from None
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()


def _postgresql_query(uri: str, query: str, deadline: Deadline, evidence: dict[str, Any], opts: dict[str, Any]) -> None:
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
        if opts.get("write_probe") is not False:
            # The session is read-only on purpose; a server in recovery (a standby) refuses every write.
            deadline.step = "the write probe (pg_is_in_recovery())"
            in_recovery = connection.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            evidence["write"] = "refused" if in_recovery else "ok"
    except psycopg.errors.QueryCanceled:
        raise CheckTimeout() from None
    except psycopg.Error as exc:
        raise CheckProblem("bad_answer", f"the query failed: {first_line(exc)}") from None
    finally:
        connection.close()
    evidence["rows"] = _first_value(rows)
    if evidence.get("write") == "refused":
        evidence["write_error"] = "the server is in recovery (a standby): it refuses writes"
        raise CheckProblem("write_refused", "the database answers queries but refuses writes: it is a standby")


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
    sock = connect(host, port, deadline)
    sock.close()
    evidence["connected"] = True


# Process states in which the manager gave up on a program (or keeps failing to start it): a restart alone does
# not help, the program's definition, directories or files need repair first (failure type crash_loop).
GAVE_UP_STATES = frozenset({"FATAL", "BACKOFF", "failed"})
STARTING_WAIT_S = 1.5


def check_process(spec: CheckSpec, deadline: Deadline, evidence: dict[str, Any], context: Context) -> None:
    """The program's state from its manager. Reasons: ``not_running`` (stopped, exited), ``crash_loop`` (the
    manager gave up on it or cannot start it: FATAL, BACKOFF, a spawn error, a systemd unit that failed),
    ``not_defined`` (the manager has no such program), ``manager_down`` (supervisord or systemd itself does
    not answer: nothing it should run is managed)."""
    opts = spec.options
    manager, service = opts["manager"], opts["service"]
    evidence.update(manager=manager, service=service, state=None, pid=None, detail=None)
    backend = context.process_backend(opts, deadline)
    deadline.step = f"reading the state of {service} from {manager}"
    try:
        state = backend.status(service)
        # A program caught between two attempts of a crash loop is STARTING: wait (within the check's deadline,
        # at most STARTING_WAIT_S) to see whether it settles RUNNING or falls back (BACKOFF, FATAL).
        settle = time.monotonic() + STARTING_WAIT_S
        while state.state == "STARTING" and time.monotonic() < settle and deadline.remaining() > 0.4:
            time.sleep(0.1)
            state = backend.status(service)
    except ServiceControlError as exc:
        if _manager_down(backend, exc):
            evidence["state"] = "MANAGER_DOWN"
            which = "systemd does not answer"
            if isinstance(backend, SupervisorBackend):
                which = f"supervisord is not running for {backend.config}"
            raise CheckProblem("manager_down", f"{which}: {service} is not managed") from None
        if "is not defined" in str(exc) or "is not installed" in str(exc):
            raise CheckProblem("not_defined", str(exc)) from None
        raise CheckProblem("error", str(exc)) from None
    evidence.update(state=state.state, pid=state.pid, detail=state.detail or None)
    if state.state in ("RUNNING", "active"):
        return
    if state.state in GAVE_UP_STATES:
        detail = f" ({state.detail})" if state.detail else ""
        raise CheckProblem("crash_loop", f"{manager} gave up on {service}: {state.state}{detail}")
    if state.running:  # STARTING, activating, reloading
        raise CheckProblem("bad_status", f"{service} is {state.state}, not running yet", DEGRADED)
    detail = f" ({state.detail})" if state.detail else ""
    raise CheckProblem("not_running", f"{service} is {state.state}{detail}")


def _manager_down(backend: SupervisorBackend | SystemdBackend, error: ServiceControlError) -> bool:
    if isinstance(backend, SupervisorBackend):
        return _supervisord_down(backend, error)
    try:
        return not backend.reachable()
    except (ServiceControlError, OSError):
        return True


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
    if opts.get("desired"):
        check_drift(path, opts["desired"], evidence)


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


# -- what the checks need ------------------------------------------------------------------------------


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
