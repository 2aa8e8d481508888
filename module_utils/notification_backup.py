"""Backups of a notification service host: make, verify, restore, prune and list them.

Shared by the ``notification_backup`` module. A backup is a directory ``<backup_dir>/<UTC stamp>-<label>``
(``backup_dir`` defaults to ``<root>/backups``, mode 0700) holding ``manifest.json``, ``files/`` (the
service's configuration, secrets, service definitions, template sets and emergency state, modes kept),
``database/`` (a consistent SQLite copy through the online backup API, or a ``pg_dump``) and ``queue/``
(the Redis sorted set ``notification:pending`` with its scores). It is built in ``<name>.partial`` and
renamed when complete, so an interrupted run never leaves a half backup that looks whole.

config.yml and Redis are read with ``notification_health``'s readers (its raw RESP client), so a host
needs Python, PyYAML and, for PostgreSQL, the ``pg_dump`` binary; nothing else.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ansible.module_utils.notification_health import (
    PENDING_KEY,
    HealthArgumentError,
    MissingLibrary,
    RedisCommandError,
    mask_url,
    parse_database_url,
    read_service_config,
    redis_command,
    scrub,
    url_secrets,
)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
PARTIAL = ".partial"
IN_PROGRESS = ".in-progress"  # in a .partial directory: {"pid", "host"} of the run building it
STAMP = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^\d{8}T\d{6}Z-[a-z0-9_-]+$")
LABEL_RE = re.compile(r"^[a-z0-9_-]+$")
MAX_LABEL = 64
# What a backup holds, relative to the service root. Single files are recorded as absent when missing (a
# restore then removes them); the template sets are restored exactly (files not in the backup removed).
SINGLE_FILES = ("etc/config.yml", "etc/secrets.yml", "state/emergency.json")
SERVICE_DEFINITIONS = "etc/supervisor.d/*.conf"
TEMPLATE_SETS = ("templates/websocket", "templates/legacy", "templates/active")
ABS_PREFIX = "_abs/"  # extra_files (absolute paths) are stored under files/_abs/<path>
SQLITE_COPY = "database/notifications.db"
PG_DUMP = "database/dump.sql"
QUEUE_FILE = "queue/pending.json"
DIR_MODE = 0o700
DATA_MODE = 0o600
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A problem the module reports with ``fail_json``; the message names the parameter and the fix."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


# -- small helpers ---------------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (kept like the other module_utils)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)  # noqa: UP017
    except ValueError:
        return None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_info(path: str) -> dict[str, Any] | None:
    """``{"sha256", "size", "mode"}`` of a regular file (following symlinks), None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path):
        return None
    return {"sha256": sha256_file(path), "size": info.st_size, "mode": f"{info.st_mode & 0o7777:04o}"}


def describe_file(path: str, info: dict[str, Any] | None) -> str:
    return f"{path} sha256={info['sha256']} mode={info['mode']}" if info else f"{path} (absent)"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def service_root_problem(root: str) -> str | None:
    config = os.path.join(root, "etc", "config.yml")
    if os.path.isfile(config):
        return None
    if not os.path.isdir(root):
        return f"root {root} does not exist"
    return f"root {root} is not a notification service root: {config} does not exist"


def validate(params: dict[str, Any]) -> None:
    """Check the module's arguments beyond their types; BackupError names the parameter and the fix."""
    root = params["root"]
    problem = service_root_problem(root)
    if problem:
        raise BackupError(
            f"{problem}; set root to the directory that holds etc/config.yml (for example /srv/notification)"
        )
    label = params["label"]
    if not LABEL_RE.match(label or "") or len(label) > MAX_LABEL:
        raise BackupError(
            f"label {label!r} is not usable in a backup name; use 1 to {MAX_LABEL} lower-case letters, digits, "
            "'_' or '-' (for example pre-rollback)"
        )
    if params["state"] in ("verified", "restored") and not params.get("name"):
        raise BackupError(
            f"name is required with state={params['state']}; give a backup's name (state=query lists them) or latest"
        )
    if params["retention_count"] < 1:
        raise BackupError(
            f"retention_count must be 1 or more (the newest backup is always kept), got {params['retention_count']}; "
            "set retention_count: 10"
        )
    if params["retention_days"] < 0:
        raise BackupError(f"retention_days must be 0 or more, got {params['retention_days']}; set retention_days: 14")
    for key in ("redis_timeout", "database_timeout"):
        if params[key] <= 0:
            raise BackupError(f"{key} must be a positive number of seconds, got {params[key]}; set {key}: 5")
    for path in params.get("extra_files") or []:
        if not os.path.isabs(path):
            raise BackupError(
                f"extra_files: {path!r} is not an absolute path; give absolute paths such as "
                "/etc/systemd/system/notification-web.service"
            )
        if os.path.isdir(path):
            raise BackupError(f"extra_files: {path} is a directory; list the files in it one by one")


def _name_ok(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and "\0" not in name


# -- what a backup holds ---------------------------------------------------------------------------------


def source_path(root: str, rel: str) -> str:
    """Where the file recorded as ``rel`` lives on the host."""
    if rel.startswith(ABS_PREFIX):
        return "/" + rel[len(ABS_PREFIX) :]
    return os.path.join(root, rel)


def _safe_rel(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def collect(root: str, extra_files: list[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(relpath -> path of every file to back up, relpaths of the single files that are absent)."""
    files: dict[str, str] = {}
    absent: list[str] = []
    singles = list(SINGLE_FILES)
    for path in extra_files or []:
        singles.append(ABS_PREFIX + os.path.normpath(path).lstrip("/"))
    for rel in singles:
        path = source_path(root, rel)
        if os.path.isfile(path):
            files[rel] = path
        else:
            absent.append(rel)
    for path in sorted(glob.glob(os.path.join(root, SERVICE_DEFINITIONS))):
        if os.path.isfile(path):
            files[os.path.relpath(path, root)] = path
    for rel_dir in TEMPLATE_SETS:
        top = os.path.join(root, rel_dir)
        for directory, subdirs, names in os.walk(top):
            subdirs.sort()
            for name in sorted(names):
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    files[os.path.relpath(path, root)] = path
    return files, sorted(set(absent))


def current_files(root: str, extra_files: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    files, absent = collect(root, extra_files)
    infos = {}
    for rel, path in files.items():
        info = file_info(path)
        if info is None:  # removed since it was listed
            absent.append(rel)
        else:
            infos[rel] = info
    return infos, sorted(set(absent))


# -- listing ---------------------------------------------------------------------------------------------


def read_manifest(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the manifest, or None and why it is unusable)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None, f"{MANIFEST} is missing"
    except (OSError, ValueError) as exc:
        return None, f"{MANIFEST} cannot be read: {exc}"
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or not isinstance(data.get("files"), dict):
        return None, f"{MANIFEST} is not a version {MANIFEST_VERSION} manifest with files"
    for rel, info in data["files"].items():
        if not _safe_rel(rel) or not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            return None, f"{MANIFEST} lists {rel!r}, which is not a relative path with a sha256"
        if not isinstance(info.get("mode"), str) or not re.fullmatch(r"[0-7]{3,4}", info["mode"]):
            return None, f"{MANIFEST} gives {rel} the mode {info.get('mode')!r}, not an octal mode"
    for section in ("database", "queue"):
        file = (data.get(section) or {}).get("file")
        if file is not None and (not _safe_rel(file) or not file.startswith(section + "/")):
            return None, f"{MANIFEST} names {file!r} as the {section} copy, not a file under {section}/"
    return data, None


def _suffix(name: str, label: Any) -> int:
    """N of a name ``<stamp>-<label>-N`` (two backups with one label in one second), else 1."""
    rest = name[len("20261127T100000Z-") :]
    if isinstance(label, str) and rest.startswith(label + "-") and rest[len(label) + 1 :].isdigit():
        return int(rest[len(label) + 1 :])
    return 1


def list_backups(backup_dir: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(complete backups newest first, names of .partial directories). A backup: name, path, manifest, error."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise BackupError(
            f"backup_dir {backup_dir} cannot be read ({exc.strerror}); fix permissions or run with become"
        ) from None
    backups, partials = [], []
    for name in names:
        path = os.path.join(backup_dir, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if name.endswith(PARTIAL) and NAME_RE.match(name[: -len(PARTIAL)]):
            partials.append(name)
            continue
        if not NAME_RE.match(name):
            continue
        manifest, error = read_manifest(path)
        created = parse_iso(manifest.get("created_at")) if manifest else None
        stamp = created.timestamp() if created else os.stat(path).st_mtime
        order = (stamp, (manifest or {}).get("created_ns") or 0, _suffix(name, (manifest or {}).get("label")), name)
        backups.append({"name": name, "path": path, "manifest": manifest, "error": error, "order": order})
    backups.sort(key=lambda entry: entry["order"], reverse=True)
    return backups, sorted(partials)


def latest(backups: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((entry for entry in backups if entry["manifest"]), None)


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What the module returns about one backup."""
    manifest = entry["manifest"] or {}
    size = 0
    for directory, _subdirs, names in os.walk(entry["path"]):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(directory, name)).st_size
    queue = dict(manifest.get("queue") or {})
    return {
        "name": entry["name"],
        "path": entry["path"],
        "valid": entry["manifest"] is not None,
        "error": entry["error"],
        "created_at": manifest.get("created_at"),
        "label": manifest.get("label"),
        "run_id": manifest.get("run_id"),
        "host": manifest.get("host"),
        "mode": manifest.get("mode"),
        "files": len(manifest.get("files") or {}),
        "size_bytes": size,
        "database": manifest.get("database"),
        "queue": queue,
    }


def available(backups: list[dict[str, Any]]) -> str:
    names = [entry["name"] for entry in backups if entry["manifest"]]
    return ", ".join(names) if names else "none (take one with state=present)"


def find(backup_dir: str, name: str) -> dict[str, Any]:
    """The backup called ``name`` (or the newest complete one for ``latest``); BackupError lists the others."""
    backups, partials = list_backups(backup_dir)
    if name == "latest":
        entry = latest(backups)
        if entry is None:
            raise BackupError(f"name=latest: there is no complete backup in {backup_dir}; take one with state=present")
        return entry
    if not _name_ok(name):
        raise BackupError(f"name {name!r} is not a backup name; give a name that state=query lists, or latest")
    for entry in backups:
        if entry["name"] == name:
            if entry["manifest"] is None:
                raise BackupError(f"backup {name} cannot be used: {entry['error']}; pick another: {available(backups)}")
            return entry
    base = name[: -len(PARTIAL)] if name.endswith(PARTIAL) else name
    if base + PARTIAL in partials:
        raise BackupError(
            f"backup {base} is incomplete (an interrupted run left {base}{PARTIAL}) and cannot be used; "
            f"available backups, newest first: {available(backups)}"
        )
    raise BackupError(
        f"name: there is no backup {name} in {backup_dir}; available backups, newest first: {available(backups)} "
        "(or name=latest)"
    )


# -- verification ----------------------------------------------------------------------------------------


def expected_files(manifest: dict[str, Any]) -> dict[str, str]:
    """relpath in the backup directory -> sha256, for everything the manifest vouches for."""
    expected = {f"files/{rel}": info["sha256"] for rel, info in manifest["files"].items()}
    for section in ("database", "queue"):
        info = manifest.get(section) or {}
        if info.get("file"):
            expected[info["file"]] = info.get("sha256")
    return expected


def verify(entry: dict[str, Any], only_files: bool = False) -> tuple[list[dict[str, Any]], int]:
    """(problems, files checked): every file listed is there with its checksum, and nothing else is."""
    expected = expected_files(entry["manifest"])
    if only_files:
        expected = {rel: digest for rel, digest in expected.items() if rel.startswith("files/")}
    problems: list[dict[str, Any]] = []
    found: dict[str, str] = {}
    for directory, _subdirs, names in os.walk(entry["path"]):
        for name in names:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, entry["path"])
            if rel == MANIFEST or (only_files and not rel.startswith("files/")):
                continue
            found[rel] = sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else "not a file"
    for rel, digest in sorted(expected.items()):
        got = found.get(rel)
        if got is None:
            problems.append({"path": rel, "problem": "missing", "expected": digest, "got": None})
        elif got != digest:
            problems.append({"path": rel, "problem": "changed", "expected": digest, "got": got})
    for rel in sorted(set(found) - set(expected)):
        problems.append({"path": rel, "problem": "extra", "expected": None, "got": found[rel]})
    return problems, len(expected)


def problem_text(problem: dict[str, Any]) -> str:
    if problem["problem"] == "extra":
        return f"{problem['path']} sha256 is {problem['got']}, the manifest does not list it"
    if problem["problem"] == "missing":
        return f"{problem['path']} is missing, the manifest says sha256 {problem['expected']}"
    return f"{problem['path']} sha256 is {problem['got']}, the manifest says {problem['expected']}"


def _more(problems: list[dict[str, Any]]) -> str:
    return f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""


def verify_or_fail(entry: dict[str, Any]) -> int:
    problems, checked = verify(entry)
    if problems:
        raise BackupError(
            f"backup {entry['name']} is corrupt: {problem_text(problems[0])}{_more(problems)}; it will not be "
            "restored. List the backups with state=query and pick another",
            problems=problems,
        )
    return checked


# -- making a backup -------------------------------------------------------------------------------------


def _copy(source: str, dest: str) -> dict[str, Any]:
    """Copy one file, hashing what was copied; the copy gets the source's mode. Returns its info."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src:
        mode = os.fstat(src.fileno()).st_mode & 0o7777
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATA_MODE)
        with os.fdopen(fd, "wb") as dst:
            for block in iter(lambda: src.read(CHUNK), b""):
                digest.update(block)
                size += len(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
            os.fchmod(dst.fileno(), mode)
    return {"sha256": digest.hexdigest(), "size": size, "mode": f"{mode:04o}"}


def _reserve(backup_dir: str, stamp: str, label: str) -> tuple[str, str]:
    """(name, path of its .partial directory), created 0700. Same second and label: -2, -3... appended."""
    for number in range(1, 1000):
        name = f"{stamp}-{label}" if number == 1 else f"{stamp}-{label}-{number}"
        final = os.path.join(backup_dir, name)
        if os.path.exists(final):
            continue
        partial = final + PARTIAL
        try:
            os.mkdir(partial, DIR_MODE)
        except FileExistsError:
            continue
        # Another run may have renamed its <name>.partial to <name> between our two looks: give it up.
        if os.path.exists(final):
            os.rmdir(partial)
            continue
        os.chmod(partial, DIR_MODE)
        return name, partial
    raise BackupError(f"no free backup name for {stamp}-{label} in {backup_dir}; prune old backups")


def _ensure_backup_dir(backup_dir: str) -> None:
    if os.path.isdir(backup_dir):
        return
    try:
        os.makedirs(backup_dir, DIR_MODE)
        os.chmod(backup_dir, DIR_MODE)
    except OSError as exc:
        raise BackupError(f"backup_dir {backup_dir} cannot be created ({exc.strerror}); fix permissions") from None


def _sqlite_copy(source: str, dest: str, timeout: float) -> dict[str, Any]:
    """A consistent copy of a live SQLite database through the online backup API (one step, one snapshot)."""
    src = sqlite3.connect(f"file:{quote(source)}?mode=ro", uri=True, timeout=timeout)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            # A rollback-journal copy: reading it creates no -wal/-shm files next to it (the service switches
            # a restored database back to WAL when it connects).
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(dest, DATA_MODE)
    check = sqlite3.connect(f"file:{quote(dest)}?mode=ro", uri=True)
    try:
        integrity = check.execute("PRAGMA quick_check").fetchone()[0]
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = {
            table: check.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in ("users", "notifications", "deliveries")
            if table in tables
        }
    finally:
        check.close()
    if integrity != "ok":
        raise sqlite3.DatabaseError(f"the copy fails PRAGMA quick_check: {integrity}")
    return {"integrity": integrity, "rows": rows}


def libpq_target(url: str) -> tuple[str, str | None]:
    """(a libpq URI without the password, the password) from a postgresql[+driver]:// URL."""
    uri = parse_database_url(url)[1]
    parts = urlsplit(uri)
    password = unquote(parts.password) if parts.password else None
    if password is None:
        return uri, None
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}" if user else hostinfo)), password


def _pg_dump(url: str, dest: str, timeout: float) -> dict[str, Any]:
    binary = shutil.which("pg_dump")
    if not binary:
        raise _Skip("pg_dump not found")
    target, password = libpq_target(url)
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(2, math.ceil(timeout))), "PGAPPNAME": "notification_backup"}
    if password:
        env["PGPASSWORD"] = password
    command = [
        binary,
        "--no-password",
        "--format=plain",
        f"--lock-wait-timeout={max(1, int(timeout * 1000))}",
        f"--file={dest}",
        f"--dbname={target}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        message = scrub(" ".join(done.stderr.split()) or f"exit status {done.returncode}", url_secrets(url))
        raise _Skip(f"pg_dump failed: {message}")
    os.chmod(dest, DATA_MODE)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"pg_dump": version}


class _Skip(Exception):
    """A part of the backup that cannot be made; the backup goes on without it and the module warns."""


def _database(
    config: dict[str, Any] | None, config_error: str | None, etc_dir: str, partial: str, timeout: float
) -> dict[str, Any]:
    if config is None:
        raise _Skip(f"config.yml could not be read ({config_error})")
    url = config.get("database_url")
    if not isinstance(url, str) or not url:
        raise _Skip("config.yml has no database_url")
    try:
        dialect, target = parse_database_url(url, etc_dir)
    except ValueError as exc:
        raise _Skip(f"database_url {mask_url(url)} is not usable: {exc}") from None
    os.makedirs(os.path.join(partial, "database"), DIR_MODE, exist_ok=True)
    if dialect == "sqlite":
        if not os.path.isfile(target):
            raise _Skip(f"the SQLite database {target} does not exist")
        dest = os.path.join(partial, SQLITE_COPY)
        try:
            extra = _sqlite_copy(target, dest, timeout)
        except sqlite3.Error as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise _Skip(f"the SQLite database {target} could not be copied: {exc}") from None
        return {"dialect": "sqlite", "source": target, "file": SQLITE_COPY, **file_info(dest), **extra}  # type: ignore[dict-item]
    dest = os.path.join(partial, PG_DUMP)
    try:
        extra = _pg_dump(url, dest, timeout)
    except _Skip:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise
    return {"dialect": "postgresql", "source": mask_url(url), "file": PG_DUMP, **file_info(dest), **extra}  # type: ignore[dict-item]


def _queue(config: dict[str, Any] | None, config_error: str | None, partial: str, timeout: float) -> dict[str, Any]:
    if config is None:
        raise _Skip(f"config.yml could not be read ({config_error})")
    url = config.get("redis_url")
    if not isinstance(url, str) or not url:
        raise _Skip("config.yml has no redis_url")
    try:
        reply = redis_command(url, ["ZRANGE", PENDING_KEY, "0", "-1", "WITHSCORES"], timeout)
    except RedisCommandError as exc:
        raise _Skip(f"Redis ({mask_url(url)}) could not be read: {scrub(str(exc), url_secrets(url))}") from None
    if not isinstance(reply, list) or len(reply) % 2:
        raise _Skip(f"Redis answered ZRANGE with {type(reply).__name__}, not a list of members and scores")
    items = []
    for member, score in zip(reply[::2], reply[1::2], strict=True):
        number = float(score)
        items.append({"member": member, "score": number if math.isfinite(number) else score})
    os.makedirs(os.path.join(partial, "queue"), DIR_MODE, exist_ok=True)
    dest = os.path.join(partial, QUEUE_FILE)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATA_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"key": PENDING_KEY, "count": len(items), "items": items}, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return {"key": PENDING_KEY, "source": mask_url(url), "count": len(items), "file": QUEUE_FILE, **file_info(dest)}  # type: ignore[dict-item]


def load_config(root: str) -> tuple[dict[str, Any] | None, str | None]:
    """(config.yml as a mapping, or None and why not)."""
    try:
        return read_service_config(os.path.join(root, "etc", "config.yml")), None
    except HealthArgumentError as exc:
        return None, str(exc)
    except MissingLibrary as exc:
        return None, f"{exc.name} is not installed on this host ({exc.reason})"


def same_files(manifest: dict[str, Any], infos: dict[str, dict[str, Any]], absent: list[str]) -> bool:
    recorded = {rel: (info or {}).get("sha256") for rel, info in manifest["files"].items()}
    return recorded == {rel: info["sha256"] for rel, info in infos.items()} and sorted(
        manifest.get("absent") or []
    ) == sorted(absent)


def make(
    root: str,
    backup_dir: str,
    label: str,
    run_id: str | None,
    extra_files: list[str] | None,
    include_database: bool,
    include_queue: bool,
    reuse_unchanged: bool,
    database_timeout: float,
    redis_timeout: float,
    check_mode: bool,
    warn: Callable[[str], None],
    now: datetime | None = None,
) -> dict[str, Any]:
    """state=present: a new backup, or the newest one when its files are the current ones."""
    now = now or utc_now()
    infos, absent = current_files(root, extra_files)
    backups, _partials = list_backups(backup_dir)
    newest = latest(backups)
    if reuse_unchanged and newest and same_files(newest["manifest"], infos, absent):
        problems, _checked = verify(newest, only_files=True)
        if not problems:
            return {"changed": False, "created": False, "reused": True, "backup": summary(newest)}
        warn(
            f"the newest backup {newest['name']} holds the current files but is damaged "
            f"({problem_text(problems[0])}); taking a new one"
        )
    stamp = now.strftime(STAMP)
    if check_mode:
        name = f"{stamp}-{label}"
        return {
            "changed": True,
            "created": True,
            "reused": False,
            "backup": {"name": name, "path": os.path.join(backup_dir, name), "files": len(infos), "label": label},
        }

    _ensure_backup_dir(backup_dir)
    name, partial = _reserve(backup_dir, stamp, label)
    try:
        marker = os.path.join(partial, IN_PROGRESS)
        with open(marker, "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, handle)
        files: dict[str, dict[str, Any]] = {}
        source_files, _ = collect(root, extra_files)
        for rel, source in source_files.items():
            dest = os.path.join(partial, "files", rel)
            os.makedirs(os.path.dirname(dest), DIR_MODE, exist_ok=True)
            try:
                files[rel] = _copy(source, dest)
            except FileNotFoundError:
                absent.append(rel)  # removed while the backup ran
            except OSError as exc:
                raise BackupError(
                    f"cannot back up {source} ({exc.strerror}); run the task with become or fix its permissions"
                ) from None
        config, config_error = load_config(root)
        etc_dir = os.path.join(root, "etc")  # relative database paths are relative to config.yml's directory
        parts: dict[str, dict[str, Any]] = {}
        builders: list[tuple[str, bool, Callable[[], dict[str, Any]]]] = [
            ("database", include_database, lambda: _database(config, config_error, etc_dir, partial, database_timeout)),
            ("queue", include_queue, lambda: _queue(config, config_error, partial, redis_timeout)),
        ]
        for section, wanted, build in builders:
            if not wanted:
                parts[section] = {"skipped": f"include_{section} is false"}
                continue
            try:
                parts[section] = build()
            except _Skip as exc:
                parts[section] = {"skipped": str(exc)}
                warn(f"backup {name}: no {section} copy: {exc}")
        manifest = {
            "version": MANIFEST_VERSION,
            "name": name,
            "host": socket.gethostname(),
            "root": root,
            "created_at": iso(now),
            "created_ns": time.time_ns(),
            "label": label,
            "run_id": run_id,
            "mode": (config or {}).get("mode"),
            "files": files,
            "absent": sorted(set(absent)),
            "exact_dirs": list(TEMPLATE_SETS),
            "database": parts["database"],
            "queue": parts["queue"],
        }
        fd = os.open(os.path.join(partial, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATA_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.unlink(marker)
        _fsync_dir(partial)
        final = os.path.join(backup_dir, name)
        os.rename(partial, final)
        _fsync_dir(backup_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    entry = {"name": name, "path": final, "manifest": manifest, "error": None}
    return {"changed": True, "created": True, "reused": False, "backup": summary(entry)}


# -- restoring -------------------------------------------------------------------------------------------


def _ownership(dest: str) -> tuple[int, int]:
    """The owner a restored file gets: the existing file's, else its directory's."""
    for path in (dest, os.path.dirname(dest)):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        return info.st_uid, info.st_gid
    return os.geteuid(), os.getegid()


def _write_atomically(source: str, dest: str, mode: int) -> None:
    """Copy ``source`` over ``dest``: a temporary file in dest's directory with mode and owner, then os.replace."""
    directory = os.path.dirname(dest)
    os.makedirs(directory, exist_ok=True)
    uid, gid = _ownership(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".restore.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle, open(source, "rb") as src:
            shutil.copyfileobj(src, handle, CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
            info = os.fstat(handle.fileno())
            if (info.st_uid, info.st_gid) != (uid, gid):
                with contextlib.suppress(PermissionError):  # not root: the file stays ours
                    os.fchown(handle.fileno(), uid, gid)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _database_target(root: str, entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the SQLite file to restore, the backup's database section); BackupError when that is not possible."""
    database = entry["manifest"].get("database") or {}
    if database.get("skipped") or not database.get("file"):
        raise BackupError(
            f"restore_database: backup {entry['name']} has no database copy "
            f"({database.get('skipped') or 'none recorded'}); pick another backup or set restore_database: false"
        )
    if database.get("dialect") != "sqlite":
        raise BackupError(
            f"restore_database supports SQLite only; backup {entry['name']} holds a PostgreSQL dump "
            f"({os.path.join(entry['path'], PG_DUMP)}): load it with psql yourself, or set restore_database: false"
        )
    # The database the service will use once its files are restored: the backup's config.yml.
    config_copy = os.path.join(entry["path"], "files", "etc", "config.yml")
    try:
        config = read_service_config(config_copy)
    except (HealthArgumentError, MissingLibrary) as exc:
        raise BackupError(f"restore_database: the backup's config.yml cannot be read ({exc})") from None
    url = config.get("database_url")
    try:
        dialect, target = parse_database_url(str(url), os.path.join(root, "etc"))
    except ValueError as exc:
        raise BackupError(f"restore_database: the backup's config.yml has no usable database_url ({exc})") from None
    if dialect != "sqlite":
        raise BackupError("restore_database supports SQLite only; the backup's config.yml names a PostgreSQL database")
    return target, database


def exact_dirs(manifest: dict[str, Any]) -> list[str]:
    """The directories a restore makes exactly as in the backup: the template sets (whatever else it lists)."""
    return [rel_dir for rel_dir in manifest.get("exact_dirs") or [] if rel_dir in TEMPLATE_SETS]


def _sidecars(path: str) -> list[str]:
    return [path + suffix for suffix in ("-wal", "-shm", "-journal") if os.path.exists(path + suffix)]


def restore(
    root: str,
    backup_dir: str,
    name: str,
    restore_database: bool,
    check_mode: bool,
) -> dict[str, Any]:
    """state=restored: verify the backup, then put back every file that differs (and the database if asked)."""
    entry = find(backup_dir, name)
    verify_or_fail(entry)
    manifest = entry["manifest"]
    writes: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = []  # rel, dest, wanted, current
    removals: list[tuple[str, dict[str, Any] | None]] = []  # dest, current
    for rel, wanted in sorted(manifest["files"].items()):
        dest = source_path(root, rel)
        current = file_info(dest)
        if current is None or current["sha256"] != wanted["sha256"] or current["mode"] != wanted["mode"]:
            if os.path.isdir(dest):
                raise BackupError(f"cannot restore {dest}: it is a directory now; move it away and restore again")
            writes.append((rel, dest, wanted, current))
    for rel in manifest.get("absent") or []:
        dest = source_path(root, rel)
        if _safe_rel(rel) and os.path.isfile(dest):
            removals.append((dest, file_info(dest)))
    for rel_dir in exact_dirs(manifest):
        top = os.path.join(root, rel_dir)
        for directory, _subdirs, names in os.walk(top):
            for file_name in names:
                path = os.path.join(directory, file_name)
                if os.path.relpath(path, root) not in manifest["files"]:
                    removals.append((path, file_info(path) if os.path.isfile(path) else None))

    database_change = None
    if restore_database:
        target, database = _database_target(root, entry)
        current_db = file_info(target)
        sidecars = [path for path in _sidecars(target) if os.path.getsize(path) > 0]
        if current_db is None or current_db["sha256"] != database["sha256"] or sidecars:
            database_change = (target, database, current_db)

    before = [describe_file(dest, current) for _rel, dest, _wanted, current in writes]
    after = [describe_file(dest, wanted) for _rel, dest, wanted, _current in writes]
    before += [describe_file(dest, current) for dest, current in removals]
    after += [describe_file(dest, None) for dest, _current in removals]
    if database_change:
        target, database, current_db = database_change
        before.append(describe_file(target, current_db))
        mode = current_db["mode"] if current_db else f"{DATA_MODE:04o}"
        after.append(describe_file(target, {"sha256": database["sha256"], "mode": mode}))
    restored = [dest for _rel, dest, _wanted, _current in writes]
    removed = [dest for dest, _current in removals]
    result: dict[str, Any] = {
        "changed": bool(writes or removals or database_change),
        "backup": summary(entry),
        "restored_files": restored,
        "removed_files": removed,
        "database_restored": bool(database_change),
        # One line per changed path (the callbacks diff text, not lists).
        "diff": {
            "before": "".join(line + "\n" for line in before),
            "after": "".join(line + "\n" for line in after),
            "before_header": root,
            "after_header": f"backup {entry['name']}",
        },
    }
    if check_mode or not result["changed"]:
        return result

    done: list[str] = []
    try:
        for rel, dest, wanted, _current in writes:
            _write_atomically(os.path.join(entry["path"], "files", rel), dest, int(wanted["mode"], 8))
            done.append(dest)
        for dest, _current in removals:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            done.append(dest)
        for rel_dir in exact_dirs(manifest):
            top = os.path.join(root, rel_dir)
            for directory, _subdirs, _names in os.walk(top, topdown=False):
                if directory != top and not os.listdir(directory):
                    os.rmdir(directory)
        if database_change:
            target, database, current_db = database_change
            # The services are stopped (the caller's part): drop the old WAL and journal first, so that they
            # are never applied to the restored file, then put the copy in place.
            for sidecar in _sidecars(target):
                os.unlink(sidecar)
            mode = int(current_db["mode"], 8) if current_db else DATA_MODE
            _write_atomically(os.path.join(entry["path"], database["file"]), target, mode)
            done.append(target)
    except OSError as exc:
        raise BackupError(
            f"restoring backup {entry['name']} stopped at {exc.filename or 'a file'} ({exc.strerror}); "
            f"{len(done)} path(s) were already restored; fix the cause (permissions: run with become) and "
            "restore again",
            restored_files=done,
        ) from None
    return result


# -- pruning ---------------------------------------------------------------------------------------------


def _in_progress(partial_path: str) -> bool:
    """Whether a run on this host is still building this .partial directory."""
    try:
        with open(os.path.join(partial_path, IN_PROGRESS), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return False
    pid = marker.get("pid") if isinstance(marker, dict) else None
    if marker.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(path: str) -> None:
    """Remove a backup: first renamed to <name>.partial (atomic), so a removal cut short is never taken for whole."""
    doomed = path if path.endswith(PARTIAL) else path + PARTIAL
    if doomed != path:
        if os.path.exists(doomed):  # a .partial of that name is being built: another name, still a .partial
            doomed = f"{path}-deleting{os.getpid()}{PARTIAL}"
        os.rename(path, doomed)
    shutil.rmtree(doomed)


def prune(
    backup_dir: str,
    retention_count: int,
    retention_days: int,
    protect: list[str],
    check_mode: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """state=pruned: keep the newest ``retention_count``; delete the rest older than ``retention_days``."""
    now = now or utc_now()
    backups, partials = list_backups(backup_dir)
    newest = latest(backups)
    protected = set(protect or [])
    if "latest" in protected and newest:
        protected.add(newest["name"])
    pruned, kept = [], []
    for index, entry in enumerate(backups):
        age_days = (now.timestamp() - entry["order"][0]) / 86400
        if index < retention_count or entry is newest or entry["name"] in protected or age_days <= retention_days:
            kept.append(entry["name"])
        else:
            pruned.append(entry["name"])
    leftovers = [name for name in partials if not _in_progress(os.path.join(backup_dir, name))]
    unknown = sorted(protected - {entry["name"] for entry in backups} - {"latest"})
    if not check_mode:
        for name in leftovers + pruned:
            _remove_tree(os.path.join(backup_dir, name))
    return {
        "changed": bool(pruned or leftovers),
        "pruned": pruned,
        "kept": kept,
        "removed_partials": leftovers,
        "unknown_protected": unknown,
    }


def query(backup_dir: str) -> dict[str, Any]:
    backups, partials = list_backups(backup_dir)
    newest = latest(backups)
    return {
        "changed": False,
        "backups": [summary(entry) for entry in backups],
        "latest": newest["name"] if newest else None,
        "partials": partials,
    }
