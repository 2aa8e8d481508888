"""Backups of a notification service host: what a backup holds, its names, and the module's arguments.

A backup is a directory ``<backup_dir>/<UTC stamp>-<label>`` (``backup_dir`` defaults to ``<root>/backups``,
mode 0700) holding ``manifest.json``, ``files/`` (the service's configuration, secrets, service definitions,
template sets and emergency state, modes kept), ``database/`` (a consistent SQLite copy through the online
backup API, or a ``pg_dump``) and ``queue/`` (the Redis sorted set ``notification:pending`` with its scores). It
is built in ``<name>.partial`` and renamed when complete, so an interrupted run never leaves a half backup that
looks whole.

The ``notification_backup`` module's work is split by what it does: ``notification_backup_make`` (take one),
``notification_backup_list`` (list, verify, prune), ``notification_backup_restore`` (put one back); this module
is what they share. A host needs Python, PyYAML and, for PostgreSQL, the ``pg_dump`` binary; nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from typing import Any

from ansible.module_utils.notification_backup_fs import (
    UnsafePath,
    inside_root,
    lstat_at,
    opened,
    parent_of,
    refusal,
    walk,
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
SERVICE_DEFINITIONS_DIR = "etc/supervisor.d"  # its *.conf files
TEMPLATE_SETS = ("templates/websocket", "templates/legacy", "templates/active")
ABS_PREFIX = "_abs/"  # extra_files (absolute paths) are stored under files/_abs/<path>
SQLITE_COPY = "database/notifications.db"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
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


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_info(path: str) -> dict[str, Any] | None:
    """``{"sha256", "size", "mode"}`` of a regular file (following symlinks), None when there is none. For paths
    the operator gives (extra_files) and root's own files; files under the root are read with ``rel_info``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path):
        return None
    return {"sha256": sha256_file(path), "size": info.st_size, "mode": f"{info.st_mode & 0o7777:04o}"}


def handle_info(handle: Any) -> dict[str, Any]:
    """``{"sha256", "size", "mode"}`` of an open file, read from its start."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(CHUNK), b""):
        digest.update(block)
    info = os.fstat(handle.fileno())
    return {"sha256": digest.hexdigest(), "size": info.st_size, "mode": f"{info.st_mode & 0o7777:04o}"}


def rel_info(root: str, rel: str) -> dict[str, Any] | None:
    """The info of the file recorded as ``rel``: under the root read without following any link (UnsafePath for a
    link or another non-regular file), None when absent; an extra file (``_abs/``) as ``file_info`` does."""
    if rel.startswith(ABS_PREFIX):
        return file_info(source_path(root, rel))
    with opened(root, rel) as handle:
        return None if handle is None else handle_info(handle)


def describe_file(path: str, info: dict[str, Any] | None) -> str:
    if info and info.get("link") is not None:
        return f"{path} (symbolic link to {info['link']})"
    return f"{path} sha256={info['sha256']} mode={info['mode']}" if info else f"{path} (absent)"


def fsync_dir(path: str) -> None:
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


def name_ok(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and "\0" not in name


# -- what a backup holds ---------------------------------------------------------------------------------


def source_path(root: str, rel: str) -> str:
    """Where the file recorded as ``rel`` lives on the host."""
    if rel.startswith(ABS_PREFIX):
        return "/" + rel[len(ABS_PREFIX) :]
    return os.path.join(root, rel)


def safe_rel(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def collect(
    root: str, extra_files: list[str] | None = None
) -> tuple[dict[str, dict[str, Any]], list[str], list[tuple[str, str]]]:
    """(relpath -> info of every file to back up, relpaths of the single files that are absent, [(relpath, why)]
    of what is refused: a link or another non-regular file where a file is expected, not followed; a single
    file refused is also recorded as absent, so a restore of this backup removes the link)."""
    files: dict[str, dict[str, Any]] = {}
    absent: list[str] = []
    refused: list[tuple[str, str]] = []
    singles = list(SINGLE_FILES)
    for path in extra_files or []:
        singles.append(ABS_PREFIX + os.path.normpath(path).lstrip("/"))
    listed: list[str] = []
    definitions, odd = walk(root, SERVICE_DEFINITIONS_DIR)
    listed += [rel for rel in definitions if _is_definition(rel)]
    refused += [(rel, why) for rel, why in odd if _is_definition(rel)]
    for rel_dir in TEMPLATE_SETS:
        found, odd = walk(root, rel_dir)
        listed += found
        refused += odd
    for rel in singles + listed:
        try:
            info = rel_info(root, rel)
        except UnsafePath as exc:
            refused.append((rel, str(exc)))
            info = None
        if info is not None:
            files[rel] = info
        elif rel in singles:
            absent.append(rel)
    return files, sorted(set(absent)), sorted(set(refused))


def _is_definition(rel: str) -> bool:
    return "/" not in rel[len(SERVICE_DEFINITIONS_DIR) + 1 :] and rel.endswith(".conf")


def sqlite_rel(root: str, target: str) -> str:
    """The path relative to the root of the SQLite file ``target`` that config.yml's database_url names, checked
    before root reads or writes it: inside the root, and neither it nor its journal files a link (UnsafePath)."""
    rel = inside_root(
        root, target, "database_url", f"database_url: sqlite:///{os.path.join(root, 'data', 'notifications.db')}"
    )
    with parent_of(root, rel) as (dir_fd, name):
        for entry in (name, *(name + suffix for suffix in SQLITE_SIDECARS)):
            info = lstat_at(dir_fd, entry)
            if info is not None and not stat.S_ISREG(info.st_mode):
                raise refusal(os.path.join(root, os.path.dirname(rel), entry), dir_fd, entry, "a regular file")  # type: ignore[arg-type]
    return rel


def current_files(
    root: str, extra_files: list[str] | None = None
) -> tuple[dict[str, dict[str, Any]], list[str], list[tuple[str, str]]]:
    """``collect``: what a backup of the root now would hold."""
    return collect(root, extra_files)
