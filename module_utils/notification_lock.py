"""The host lock: one mutating run at a time on a host.

Shared by the ``notification_lock`` module (and importable by the Python package and the recovery engine,
which take the same lock). The lock is a JSON file, by default ``<root>/state/toolkit.lock``:
``{"run_id", "owner", "playbook", "controller", "controller_pid", "acquired_at", "expires_at"}``.

The protocol, which every user of the lock follows:

- Acquire: write the new content to a temporary file in the lock's directory, then ``os.link`` it to the
  lock path. The link fails when the lock exists, so of any number of runs acquiring at once exactly one
  wins, and a lock file is always complete (never half written).
- Look at, take over or release an existing lock only while holding ``flock(LOCK_EX)`` on the lock file,
  after checking that the file locked is still the one at the lock path (same inode). A takeover then
  replaces the file with ``os.rename`` (atomic), a release unlinks it. A run that waited for the flock of a
  replaced or removed file starts again, so two runs never both take over the same stale lock.

Stale means past ``expires_at``, or ``controller`` is this machine's host name and ``controller_pid`` is no
running process. Takeovers (stale, or forced) append one JSON line to an append-only audit log.
Stdlib only, Python 3.8+ syntax (managed hosts may run an older Python than the controller).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

from ansible.module_utils.notification_timeutil import iso_seconds, parse_iso, utc_now

LOCK_NAME = "toolkit.lock"
AUDIT_NAME = "lock-audit.log"
LOCK_KEYS = ("run_id", "owner", "playbook", "controller", "controller_pid", "acquired_at", "expires_at")
FILE_MODE = 0o644
DIR_MODE = 0o755
# An unreadable lock file this recent may be another implementation's lock being written: not stale yet.
UNREADABLE_GRACE_S = 10
MAX_AUDITED_RAW = 4096
FLOCK_TIMEOUT_S = 10
MAX_ATTEMPTS = 100  # rounds of link / flock / retry; each round loses only to a run that changed the lock


class LockError(Exception):
    """A problem the module reports with ``fail_json``; the message names the parameter and the fix."""


class LockHeld(LockError):
    """Another live run holds the lock."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def service_root_problem(root: str) -> str | None:
    """Why ``root`` is not a service root (a directory holding etc/config.yml), or None."""
    config = os.path.join(root, "etc", "config.yml")
    if os.path.isfile(config):
        return None
    if not os.path.isdir(root):
        return f"root {root} does not exist"
    return f"root {root} is not a notification service root: {config} does not exist"


def resolve_paths(root: str | None, path: str | None, audit_log: str | None) -> tuple[str, str]:
    """(lock path, audit log path) from the module's root / path / audit_log."""
    if root:
        problem = service_root_problem(root)
        if problem:
            raise LockError(
                f"{problem}; set root to the directory that holds etc/config.yml (for example /srv/notification), "
                "or give the lock file's path"
            )
    if path:
        lock_path = os.path.abspath(path)
        if os.path.isdir(lock_path):
            raise LockError(f"path {lock_path} is a directory; give the path of the lock file (.../toolkit.lock)")
    elif root:
        lock_path = os.path.join(os.path.abspath(root), "state", LOCK_NAME)
    else:
        raise LockError("root or path is required; set root to the service root (for example /srv/notification)")
    return lock_path, os.path.abspath(audit_log) if audit_log else os.path.join(os.path.dirname(lock_path), AUDIT_NAME)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def describe(holder: dict[str, Any]) -> str:
    """``<owner> (run <run_id>, playbook <playbook>) since <acquired_at>, expires <expires_at>``."""
    if holder.get("unreadable"):
        return f"an unreadable lock file ({holder['unreadable']})"
    owner, playbook = holder.get("owner") or "unknown", holder.get("playbook") or "unknown"
    return (
        f"{owner} (run {holder.get('run_id')}, playbook {playbook})"
        f" since {holder.get('acquired_at')}, expires {holder.get('expires_at')}"
    )


def held_message(holder: dict[str, Any]) -> str:
    return (
        f"host locked by {describe(holder)}; wait for it to finish, or if that run is dead take the lock over "
        "with -e notification_lock_force=true"
    )


def _parse(raw: bytes, mtime: float, now: datetime) -> dict[str, Any]:
    """The holder from the lock file's bytes; an unreadable file gives ``{"unreadable": why, "content": ...}``."""
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError as exc:
        why = "empty" if not text.strip() else f"not valid JSON: {exc}"
    else:
        if isinstance(data, dict) and isinstance(data.get("run_id"), str) and data["run_id"]:
            return {key: data.get(key) for key in LOCK_KEYS}
        why = "not a lock (a JSON object with run_id)"
    content = text if len(text) <= MAX_AUDITED_RAW else text[:MAX_AUDITED_RAW] + "..."
    return {"unreadable": why, "content": content, "age_s": max(0, int(now.timestamp() - mtime))}


def stale_reason(holder: dict[str, Any], now: datetime, hostname: str) -> str | None:
    """Why the holder's lock may be taken over without force, or None while it is live."""
    if holder.get("unreadable"):
        if holder["age_s"] < UNREADABLE_GRACE_S:
            return None
        return f"the lock file is {holder['unreadable']}"
    expires = parse_iso(holder.get("expires_at"))
    if expires is None:
        return f"its expires_at {holder.get('expires_at')!r} is not a UTC time like 2026-11-27T10:00:00Z"
    if now >= expires:
        return f"it expired at {holder['expires_at']}"
    pid = holder.get("controller_pid")
    mine = holder.get("controller") == hostname and isinstance(pid, int) and not isinstance(pid, bool)
    if mine and not pid_alive(pid):
        return f"its controller process {pid} on {hostname} is not running"
    return None


# The lock's directory (<root>/state) belongs to the service: a link planted at the lock path is never followed
# (root would read, and report, whatever file it names).
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


def _open_lock(path: str) -> int:
    """A read descriptor of the lock file at ``path``, not through a link nor of anything but a regular file."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(_not_a_file(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockError(_not_a_file(path))
    return fd


def _not_a_file(path: str) -> str:
    try:
        what = f"a symbolic link to {os.readlink(path)}"
    except OSError:
        what = "not a regular file"
    return (
        f"path {path} is {what}: the lock is a file root writes in a directory the service can write, and root does "
        f"not follow links there (whoever can write {os.path.dirname(path)} planted it); remove it (rm {path}) and "
        "run again"
    )


def read_lock(path: str, now: datetime | None = None) -> dict[str, Any] | None:
    """The holder of the lock at ``path`` without locking it (query, check mode); None when free."""
    now = now or utc_now(whole_seconds=True)
    try:
        with os.fdopen(_open_lock(path), "rb") as handle:
            raw = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"path {path} cannot be read ({exc.strerror}); fix permissions or run with become") from None
    return _parse(raw, mtime, now)


def _flock(fd: int, path: str) -> None:
    """An exclusive flock on ``fd``. Runs hold it for a moment only, so waiting long means something is wrong."""
    deadline = time.monotonic() + FLOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LockError(
                    f"another process has held flock on {path} for over {FLOCK_TIMEOUT_S} s (the lock protocol holds "
                    "it for a moment only); find it with fuser or lsof, then try again"
                ) from None
            time.sleep(0.002)


def _open_current(path: str) -> int | None:
    """A descriptor of the file now at ``path``, with an exclusive flock on it; None when there is none."""
    while True:
        try:
            fd = _open_lock(path)
        except FileNotFoundError:
            return None
        try:
            _flock(fd, path)
            locked = os.fstat(fd)
            try:
                current = os.lstat(path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
            return fd
        os.close(fd)  # replaced or released while we waited: look again


def _read_fd(fd: int, now: datetime) -> dict[str, Any]:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return _parse(b"".join(chunks), os.fstat(fd).st_mtime, now)


def _write_temp(directory: str, content: dict[str, Any]) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _open_audit(path: str) -> int:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise LockError(f"audit_log: directory {directory} does not exist; create it or set audit_log elsewhere")
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(_not_a_file(path).replace("path ", "audit_log ", 1)) from None
        raise LockError(f"audit_log {path} cannot be opened for appending ({exc.strerror}); fix permissions") from None


def _audit(fd: int, record: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))  # one O_APPEND write per line


def _prepare_directory(lock_path: str, create: bool) -> None:
    directory = os.path.dirname(lock_path)
    if os.path.isdir(directory):
        return
    if not create:
        raise LockError(f"path: directory {directory} does not exist; create it or give another lock path")
    try:
        os.makedirs(directory, DIR_MODE)
    except OSError as exc:
        raise LockError(f"cannot create {directory} for the lock ({exc.strerror}); fix permissions") from None


def _result(lock_path: str, audit_log: str, **values: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "changed": False,  # the lock is transient bookkeeping: it never counts as a change (see the module doc)
        "lock_path": lock_path,
        "audit_log": audit_log,
        "action": None,
        "locked": False,
        "held": False,
        "holder": None,
        "previous_holder": None,
        "took_over": False,
        "stale": None,
    }
    result.update(values)
    return result


def new_lock(
    run_id: str,
    owner: str | None,
    playbook: str | None,
    controller: str | None,
    controller_pid: int | None,
    ttl: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "owner": owner,
        "playbook": playbook,
        "controller": controller,
        "controller_pid": controller_pid,
        "acquired_at": iso_seconds(now),
        "expires_at": iso_seconds(now + timedelta(seconds=ttl)),
    }


def validate(state: str, run_id: str | None, ttl: int, controller_pid: int | None) -> None:
    if state in ("acquired", "released") and (not run_id or not run_id.strip()):
        verb = "acquire" if state == "acquired" else "release"
        raise LockError(
            f"run_id is required to {verb} the lock; give the id of this run (the AWX job id or a UUID), "
            "the same for acquired and released"
        )
    if ttl <= 0:
        raise LockError(f"ttl must be a positive number of seconds, got {ttl}; set ttl longer than a run (1800)")
    if controller_pid is not None and controller_pid <= 0:
        raise LockError(f"controller_pid must be a process id above 0, got {controller_pid}; pass the controller's pid")


def take(
    lock_path: str,
    audit_log: str,
    lock: dict[str, Any],
    check_mode: bool = False,
    create_directory: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Validate and acquire the lock described by ``lock`` (run_id, owner, playbook, controller,
    controller_pid, ttl, force: the options of M(notification_lock) and of M(notification_mode)'s ``lock``),
    stamped now. The one entry point of both modules; see :func:`acquire` for the result."""
    validate("acquired", lock["run_id"], lock["ttl"], lock.get("controller_pid"))
    wanted = new_lock(
        lock["run_id"],
        lock.get("owner"),
        lock.get("playbook"),
        lock.get("controller"),
        lock.get("controller_pid"),
        lock["ttl"],
        utc_now(whole_seconds=True),
    )
    return acquire(
        lock_path,
        audit_log,
        wanted,
        force=bool(lock.get("force")),
        check_mode=check_mode,
        create_directory=create_directory,
    )


def acquire(
    lock_path: str,
    audit_log: str,
    wanted: dict[str, Any],
    force: bool = False,
    check_mode: bool = False,
    create_directory: bool = False,
    now: datetime | None = None,
    hostname: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Take the lock for ``wanted['run_id']``: (the module's result, warnings).

    Raises LockHeld when another live run holds it (and ``force`` is false).
    """
    now = now or utc_now(whole_seconds=True)
    hostname = hostname or socket.gethostname()
    warnings: list[str] = []
    run_id = wanted["run_id"]

    def decide(holder: dict[str, Any]) -> tuple[str, str | None]:
        """(action, stale reason) for an existing lock; raises LockHeld when it must be left alone."""
        if not holder.get("unreadable") and holder.get("run_id") == run_id:
            return "kept", None
        reason = stale_reason(holder, now, hostname)
        if reason:
            return "took_over", reason
        if force:
            return "forced", None
        raise LockHeld(held_message(holder), holder)

    def takeover_warning(action: str, holder: dict[str, Any], reason: str | None, done: bool) -> str:
        verb = "took over" if done else "would take over (check mode)"
        why = f": {reason}" if reason else " with force, while it was live"
        return f"{verb} the lock of {describe(holder)}{why}; recorded in {audit_log}"

    if check_mode:
        if not create_directory and not os.path.isdir(os.path.dirname(lock_path)):
            _prepare_directory(lock_path, create=False)  # raises: the same error as without check mode
        holder = read_lock(lock_path, now)
        if holder is None:
            return _result(lock_path, audit_log, action="acquired", locked=True, held=True, holder=wanted), warnings
        action, reason = decide(holder)
        if action == "kept":
            return _result(lock_path, audit_log, action="kept", locked=True, held=True, holder=holder), warnings
        warnings.append(takeover_warning(action, holder, reason, done=False))
        return _result(
            lock_path,
            audit_log,
            action=action,
            locked=True,
            held=True,
            holder=wanted,
            previous_holder=holder,
            took_over=True,
            stale=reason,
        ), warnings

    _prepare_directory(lock_path, create=create_directory)
    tmp: str | None = _write_temp(os.path.dirname(lock_path), wanted)
    try:
        for _attempt in range(MAX_ATTEMPTS):
            try:
                os.link(tmp, lock_path)  # type: ignore[arg-type]
            except FileExistsError:
                pass
            else:
                return _result(lock_path, audit_log, action="acquired", locked=True, held=True, holder=wanted), warnings
            fd = _open_current(lock_path)
            if fd is None:
                continue  # released in the meantime: link again
            try:
                holder = _read_fd(fd, now)
                action, reason = decide(holder)
                if action == "kept":
                    return _result(lock_path, audit_log, action="kept", locked=True, held=True, holder=holder), warnings
                audit_fd = _open_audit(audit_log)  # before the takeover: no takeover without its audit line
                try:
                    os.rename(tmp, lock_path)  # type: ignore[arg-type]
                    tmp = None
                    _audit(
                        audit_fd,
                        {
                            "timestamp": iso_seconds(now),
                            "action": action,
                            "lock_path": lock_path,
                            "reason": reason or "force: true",
                            "previous": holder,
                            "new": wanted,
                            "host": hostname,
                        },
                    )
                finally:
                    os.close(audit_fd)
                warnings.append(takeover_warning(action, holder, reason, done=True))
                return _result(
                    lock_path,
                    audit_log,
                    action=action,
                    locked=True,
                    held=True,
                    holder=wanted,
                    previous_holder=holder,
                    took_over=True,
                    stale=reason,
                ), warnings
            finally:
                os.close(fd)
        raise LockError(f"the lock {lock_path} kept changing under {MAX_ATTEMPTS} attempts to acquire it; try again")
    finally:
        if tmp is not None:
            os.unlink(tmp)


def release(
    lock_path: str, audit_log: str, run_id: str, check_mode: bool = False, now: datetime | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Remove the lock when ``run_id`` holds it; leave another run's lock in place (with a warning)."""
    now = now or utc_now(whole_seconds=True)
    warnings: list[str] = []
    fd = None
    if check_mode:
        holder = read_lock(lock_path, now)
    else:
        fd = _open_current(lock_path)
        holder = _read_fd(fd, now) if fd is not None else None
    try:
        if holder is None:
            return _result(lock_path, audit_log), warnings
        if holder.get("unreadable") or holder.get("run_id") != run_id:
            warnings.append(
                f"the lock is held by {describe(holder)}, not by run {run_id}; left in place"
                + ("" if holder.get("unreadable") else " (this run may have lost it to a takeover)")
            )
            return _result(lock_path, audit_log, locked=True, holder=holder), warnings
        if fd is not None:
            os.unlink(lock_path)  # under the flock, after checking that this file is the one at lock_path
        return _result(lock_path, audit_log, action="released", previous_holder=holder), warnings
    finally:
        if fd is not None:
            os.close(fd)


def query(lock_path: str, audit_log: str, run_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    now = now or utc_now(whole_seconds=True)
    holder = read_lock(lock_path, now)
    if holder is None:
        return _result(lock_path, audit_log)
    held = bool(run_id) and not holder.get("unreadable") and holder.get("run_id") == run_id
    return _result(
        lock_path,
        audit_log,
        locked=True,
        held=held,
        holder=holder,
        stale=stale_reason(holder, now, socket.gethostname()),
    )
