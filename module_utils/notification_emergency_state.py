"""Emergency mode of a host: the ``emergency.json`` flag the service shows as a banner, and its audit log.

Shared by the ``notification_emergency_state`` module (and importable by the Python package's tests).
Needs neither Redis nor the database: emergency mode must work while either is down. The module owns the
file: a state is ``{"active", "level", "reason", "triggered_by", "since"}`` plus, once deactivated,
``"resolved_by"`` and ``"resolved_at"``. Every change appends one JSON line to an append-only audit log.
Stdlib only (PyYAML only to read ``emergency_file`` from config.yml), Python 3.8+ syntax.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.notification_yaml import YAML_ERRORS, YamlSubsetError, safe_load

LEVELS = (1, 2, 3, 4)
MAX_REASON = 500
MAX_AUDITED_RAW = 65536  # characters of an unreadable previous file kept in the audit line
FILE_MODE = 0o644
AUDIT_NAME = "emergency-audit.log"
STATE_KEYS = ("active", "level", "reason", "triggered_by", "since", "resolved_by", "resolved_at")
INACTIVE: dict[str, Any] = {"active": False, "level": None, "reason": "", "triggered_by": "", "since": None}


class EmergencyStateError(Exception):
    """A problem the module reports with ``fail_json``; the message names the parameter and the fix."""


def utc_now() -> str:
    # timezone.utc, not datetime.UTC (3.11+): managed hosts may run Python 3.8.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def emergency_file_from_config(config: str) -> str:
    """The ``emergency_file`` of the service's config.yml (relative paths are relative to config.yml)."""
    try:
        with open(config, encoding="utf-8") as handle:
            data = safe_load(handle.read())
    except FileNotFoundError:
        raise EmergencyStateError(f"config {config} does not exist; pass the service's config.yml, or path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EmergencyStateError(f"config {config} cannot be read ({exc}); fix its permissions or use path") from None
    except YamlSubsetError as exc:
        raise EmergencyStateError(
            f"config {config} {exc} and this host's Python has no PyYAML; install PyYAML for it or use path"
        ) from None
    except YAML_ERRORS as exc:
        raise EmergencyStateError(f"config {config} is not valid YAML ({exc}); fix it or use path") from None
    value = data.get("emergency_file") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise EmergencyStateError(
            f"config {config} has no emergency_file; add emergency_file: <path of emergency.json> or use path"
        )
    candidate = os.path.expanduser(value.strip())
    if not os.path.isabs(candidate):
        candidate = os.path.join(os.path.dirname(os.path.abspath(config)), candidate)
    return os.path.normpath(candidate)


def check_directory(path: str, what: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise EmergencyStateError(
            f"{what}: directory {directory} does not exist; create it (the notification_service role does) "
            f"or fix {what}"
        )
    if os.path.isdir(path):
        raise EmergencyStateError(f"{what}: {path} is a directory; give the path of a file")


def _problem(data: Any) -> str | None:
    """Why a parsed emergency.json is not a usable state (the reference service's rules), or None."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    if not isinstance(data.get("active", False), bool):
        return f"active is {data.get('active')!r}, not true or false"
    level = data.get("level")
    if level is not None and (isinstance(level, bool) or level not in LEVELS):
        return f"level is {level!r}, not 1-4 or null"
    return None


def _what(path: str) -> str:
    try:
        return f"a symbolic link to {os.readlink(path)}"
    except OSError:
        return "not a regular file"


def read_state(path: str) -> dict[str, Any]:
    """``{"exists", "readable", "state", "raw", "error"}``; a missing file is a readable inactive state."""
    try:
        # Not through a link, nor a pipe: the service owns the directory (state/), root reads here.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, encoding="utf-8") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {"exists": False, "readable": True, "state": dict(INACTIVE), "raw": None, "error": None}
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EINVAL):
            error = f"{path} is {_what(path)}, not read (root does not follow links in the service's directories)"
            return {"exists": True, "readable": False, "state": None, "raw": None, "error": error}
        return {"exists": True, "readable": False, "state": None, "raw": None, "error": f"cannot read {path}: {exc}"}
    except UnicodeDecodeError as exc:
        return {"exists": True, "readable": False, "state": None, "raw": None, "error": f"cannot read {path}: {exc}"}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        error = f"{path} is not valid JSON: {exc}"
        return {"exists": True, "readable": False, "state": None, "raw": raw, "error": error}
    problem = _problem(data)
    if problem:
        return {"exists": True, "readable": False, "state": None, "raw": raw, "error": f"{path}: {problem}"}
    state = {key: data.get(key, INACTIVE.get(key)) for key in STATE_KEYS if key in data or key in INACTIVE}
    return {"exists": True, "readable": True, "state": state, "raw": raw, "error": None}


def validate_activation(level: Any, reason: Any, triggered_by: Any) -> None:
    if isinstance(level, bool) or level not in LEVELS:
        raise EmergencyStateError(f"level must be 1 (critical) to 4 (low) to activate emergency mode, got {level!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise EmergencyStateError("reason must be a non-empty text to activate emergency mode (the banner shows it)")
    if len(reason) > MAX_REASON:
        raise EmergencyStateError(f"reason is {len(reason)} characters long; keep it to {MAX_REASON} at most")
    if not isinstance(triggered_by, str) or not triggered_by.strip():
        raise EmergencyStateError("triggered_by must name who or what activates emergency mode")


def plan_change(
    current: dict[str, Any],
    state: str,
    now: str,
    level: int | None = None,
    reason: str | None = None,
    triggered_by: str | None = None,
    resolved_by: str | None = None,
) -> tuple[str | None, dict[str, Any] | None]:
    """(action, new state) for the wanted state; (None, None) when nothing changes.

    Actions: ``activate`` (a new emergency, ``since`` = now), ``update`` (still active, new level, reason
    or trigger; ``since`` kept), ``deactivate`` (resolved; also what repairs an unreadable file).
    """
    old = current["state"] if current["readable"] else None
    if state == "active":
        validate_activation(level, reason, triggered_by)
        wanted = {"level": level, "reason": reason, "triggered_by": triggered_by}
        if old and old.get("active"):
            if all(old.get(key) == value for key, value in wanted.items()):
                return None, None
            return "update", {"active": True, **wanted, "since": old.get("since") or now}
        return "activate", {"active": True, **wanted, "since": now}
    if state == "inactive":
        if not resolved_by or not resolved_by.strip():
            raise EmergencyStateError("resolved_by must name who or what deactivates emergency mode")
        if not current["exists"] or (old is not None and not old.get("active")):
            return None, None
        previous = old or {}
        return "deactivate", {
            "active": False,
            "level": None,
            "reason": previous.get("reason") or "",
            "triggered_by": previous.get("triggered_by") or "",
            "since": None,
            "resolved_by": resolved_by,
            "resolved_at": now,
        }
    raise EmergencyStateError(f"state must be active, inactive or query, got {state!r}")


def render(state: dict[str, Any]) -> str:
    return json.dumps(state, indent=2, ensure_ascii=False) + "\n"


def diff_text(current: dict[str, Any]) -> str:
    if not current["exists"]:
        return ""
    if not current["readable"]:
        return current["raw"] or ""
    return render(current["state"])


def audit_record(
    action: str, path: str, current: dict[str, Any], after: dict[str, Any], by: str, now: str
) -> dict[str, Any]:
    if current["readable"]:
        before: Any = current["state"] if current["exists"] else None
    else:
        raw = current["raw"]
        before = {
            "readable": False,
            "error": current["error"],
            "content": raw if raw is None or len(raw) <= MAX_AUDITED_RAW else raw[:MAX_AUDITED_RAW] + "...",
        }
    return {"timestamp": now, "action": action, "path": path, "before": before, "after": after, "by": by}


def open_audit_log(path: str) -> int:
    """An append-only descriptor of the audit log, opened before the state is written (fail early)."""
    check_directory(path, "audit_log")
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EmergencyStateError(
                f"audit_log {path} is {_what(path)}: root does not follow links in the service's directories "
                f"(whoever can write {os.path.dirname(path)} planted it); remove it (rm {path}) and run again"
            ) from None
        raise EmergencyStateError(f"audit_log {path} cannot be opened for appending ({exc}); fix permissions") from None


def append_audit(fd: int, record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True) + "\n"
    os.write(fd, line.encode("utf-8"))  # one write on an O_APPEND descriptor: lines never interleave


def write_state(path: str, state: dict[str, Any], move: Callable[[str, str], None]) -> None:
    """Write atomically: a temporary file in the same directory, mode 0644, moved over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".emergency.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render(state))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        move(tmp, path)
        # atomic_move keeps an existing file's mode; the service needs 0644. On a descriptor of the file now at path,
        # not through a link planted there since (the service owns the directory): a link is left alone.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        else:
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fchmod(fd, FILE_MODE)
            finally:
                os.close(fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply(
    path: str,
    state: str,
    audit_log: str,
    move: Callable[[str, str], None],
    check_mode: bool = False,
    now: str | None = None,
    level: int | None = None,
    reason: str | None = None,
    triggered_by: str | None = None,
    resolved_by: str | None = None,
) -> dict[str, Any]:
    """Bring emergency.json to ``state`` (or just read it for ``query``); the module's whole result."""
    check_directory(path, "path")
    now = now or utc_now()
    current = read_state(path)
    result: dict[str, Any] = {
        "changed": False,
        "action": None,
        # Not "path": AnsibleModule.exit_json adds file attributes for a "path" key and overwrites "state".
        "emergency_file": path,
        "audit_log": audit_log,
        "exists": current["exists"],
        "readable": current["readable"],
        "state": current["state"],
        "before": current["state"],
    }
    if current["error"]:
        result["error"] = current["error"]
    if state == "query":
        return result
    action, after = plan_change(current, state, now, level, reason, triggered_by, resolved_by)
    if action is None or after is None:
        return result
    result.update(changed=True, action=action, state=after, readable=True, exists=True)
    result["diff"] = {"before": diff_text(current), "after": render(after), "before_header": path, "after_header": path}
    if check_mode:
        return result
    by = triggered_by if state == "active" else resolved_by
    fd = open_audit_log(audit_log)
    try:
        write_state(path, after, move)
        append_audit(fd, audit_record(action, path, current, after, str(by), now))
    finally:
        os.close(fd)
    return result
