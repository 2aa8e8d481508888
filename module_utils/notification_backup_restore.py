"""Restoring a backup (state=restored): verify it, then put back every file that differs, remove the files it
recorded as absent, make the template sets exactly as they were, and (when asked) the SQLite database.

Part of the ``notification_backup`` module (see ``notification_backup`` for what a backup holds). The services
are stopped by the caller while a database is restored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Tuple  # noqa: UP035 (Python 3.8 on managed hosts)

from ansible.module_utils.notification_backup import (
    CHUNK,
    DATA_MODE,
    PG_DUMP,
    TEMPLATE_SETS,
    BackupError,
    describe_file,
    file_info,
    safe_rel,
    source_path,
)
from ansible.module_utils.notification_backup_list import find, summary, verify_or_fail
from ansible.module_utils.notification_common import HealthArgumentError, MissingLibrary
from ansible.module_utils.notification_service_config import parse_database_url, read_service_config

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


Write = Tuple[str, str, Dict[str, Any], Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (rel, dest, wanted, current)
Removal = Tuple[str, Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (dest, current)
DatabaseChange = Tuple[str, Dict[str, Any], Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (target, section, current)


def _file_changes(root: str, manifest: dict[str, Any]) -> tuple[list[Write], list[Removal]]:
    """The files to write back (missing, changed or with another mode) and the files to remove."""
    writes: list[Write] = []
    removals: list[Removal] = []
    for rel, wanted in sorted(manifest["files"].items()):
        dest = source_path(root, rel)
        current = file_info(dest)
        if current is None or current["sha256"] != wanted["sha256"] or current["mode"] != wanted["mode"]:
            if os.path.isdir(dest):
                raise BackupError(f"cannot restore {dest}: it is a directory now; move it away and restore again")
            writes.append((rel, dest, wanted, current))
    for rel in manifest.get("absent") or []:
        dest = source_path(root, rel)
        if safe_rel(rel) and os.path.isfile(dest):
            removals.append((dest, file_info(dest)))
    for rel_dir in exact_dirs(manifest):
        top = os.path.join(root, rel_dir)
        for directory, _subdirs, names in os.walk(top):
            for file_name in names:
                path = os.path.join(directory, file_name)
                if os.path.relpath(path, root) not in manifest["files"]:
                    removals.append((path, file_info(path) if os.path.isfile(path) else None))
    return writes, removals


def _database_change(root: str, entry: dict[str, Any]) -> DatabaseChange | None:
    target, database = _database_target(root, entry)
    current_db = file_info(target)
    sidecars = [path for path in _sidecars(target) if os.path.getsize(path) > 0]
    if current_db is None or current_db["sha256"] != database["sha256"] or sidecars:
        return target, database, current_db
    return None


def _diff(
    root: str, entry: dict[str, Any], writes: list[Write], removals: list[Removal], database: DatabaseChange | None
) -> dict[str, str]:
    """One line per changed path (the callbacks diff text, not lists)."""
    before = [describe_file(dest, current) for _rel, dest, _wanted, current in writes]
    after = [describe_file(dest, wanted) for _rel, dest, wanted, _current in writes]
    before += [describe_file(dest, current) for dest, current in removals]
    after += [describe_file(dest, None) for dest, _current in removals]
    if database:
        target, section, current_db = database
        before.append(describe_file(target, current_db))
        mode = current_db["mode"] if current_db else f"{DATA_MODE:04o}"
        after.append(describe_file(target, {"sha256": section["sha256"], "mode": mode}))
    return {
        "before": "".join(line + "\n" for line in before),
        "after": "".join(line + "\n" for line in after),
        "before_header": root,
        "after_header": f"backup {entry['name']}",
    }


def _apply(
    root: str, entry: dict[str, Any], writes: list[Write], removals: list[Removal], database: DatabaseChange | None
) -> None:
    done: list[str] = []
    try:
        for rel, dest, wanted, _current in writes:
            _write_atomically(os.path.join(entry["path"], "files", rel), dest, int(wanted["mode"], 8))
            done.append(dest)
        for dest, _current in removals:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            done.append(dest)
        for rel_dir in exact_dirs(entry["manifest"]):
            top = os.path.join(root, rel_dir)
            for directory, _subdirs, _names in os.walk(top, topdown=False):
                if directory != top and not os.listdir(directory):
                    os.rmdir(directory)
        if database:
            target, section, current_db = database
            # The services are stopped (the caller's part): drop the old WAL and journal first, so that they
            # are never applied to the restored file, then put the copy in place.
            for sidecar in _sidecars(target):
                os.unlink(sidecar)
            mode = int(current_db["mode"], 8) if current_db else DATA_MODE
            _write_atomically(os.path.join(entry["path"], section["file"]), target, mode)
            done.append(target)
    except OSError as exc:
        raise BackupError(
            f"restoring backup {entry['name']} stopped at {exc.filename or 'a file'} ({exc.strerror}); "
            f"{len(done)} path(s) were already restored; fix the cause (permissions: run with become) and "
            "restore again",
            restored_files=done,
        ) from None


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
    writes, removals = _file_changes(root, entry["manifest"])
    database = _database_change(root, entry) if restore_database else None
    result: dict[str, Any] = {
        "changed": bool(writes or removals or database),
        "backup": summary(entry),
        "restored_files": [dest for _rel, dest, _wanted, _current in writes],
        "removed_files": [dest for dest, _current in removals],
        "database_restored": bool(database),
        "diff": _diff(root, entry, writes, removals, database),
    }
    if not check_mode and result["changed"]:
        _apply(root, entry, writes, removals, database)
    return result
