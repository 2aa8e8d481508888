"""Restoring a backup (state=restored): verify it, then put back every file that differs, remove the files it
recorded as absent, make the template sets exactly as they were, and (when asked) the SQLite database.

Part of the ``notification_backup`` module (see ``notification_backup`` for what a backup holds). The services
are stopped by the caller while a database is restored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from typing import Any, Dict, Optional, Tuple  # noqa: UP035 (Python 3.8 on managed hosts)

from ansible.module_utils.notification_backup import (
    ABS_PREFIX,
    CHUNK,
    DATA_MODE,
    PG_DUMP,
    SQLITE_SIDECARS,
    TEMPLATE_SETS,
    BackupError,
    describe_file,
    rel_info,
    safe_rel,
    source_path,
    sqlite_rel,
)
from ansible.module_utils.notification_backup_fs import (
    UnsafePath,
    lstat_at,
    open_dir,
    parent_of,
    remove_empty_dirs,
    unlink_at,
    walk,
    write_at,
)
from ansible.module_utils.notification_backup_list import find, summary, verify_or_fail
from ansible.module_utils.notification_common import HealthArgumentError, MissingLibrary
from ansible.module_utils.notification_service_config import parse_database_url, read_service_config

# -- restoring -------------------------------------------------------------------------------------------

# config.yml and secrets.yml are root's and readable by the service's group (the etc/ directory's group), 0640,
# whatever the backup recorded: a backup taken when the service owned them (or when secrets.yml was 0600) must not
# give them back to the service, nor lock the service out of them.
CONFIG_FILES = ("etc/config.yml", "etc/secrets.yml")
CONFIG_MODE = 0o640


def wanted_mode(rel: str, wanted: dict[str, Any]) -> int:
    return CONFIG_MODE if rel in CONFIG_FILES else int(wanted["mode"], 8)


def _ownership(dest: str) -> tuple[int, int]:
    """The owner a restored extra file (outside the root) gets: the existing file's, else its directory's."""
    for path in (dest, os.path.dirname(dest)):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        return info.st_uid, info.st_gid
    return os.geteuid(), os.getegid()


def _ids_at(rel: str, dir_fd: int, name: str) -> tuple[int, int]:
    """The owner a restored file under the root gets: config.yml and secrets.yml root and the etc/ directory's
    group; others the existing file's (not a link's), else the directory's. (-1, -1) when not root."""
    if os.geteuid() != 0:
        return -1, -1
    directory = os.fstat(dir_fd)
    if rel in CONFIG_FILES:
        return 0, directory.st_gid
    current = lstat_at(dir_fd, name)
    if current is not None and stat.S_ISREG(current.st_mode):
        return current.st_uid, current.st_gid
    return directory.st_uid, directory.st_gid


def _owner_differs(root: str, rel: str) -> bool:
    """Whether config.yml or secrets.yml is not root's with the etc/ directory's group (root runs only)."""
    if rel not in CONFIG_FILES or os.geteuid() != 0:
        return False
    with parent_of(root, rel) as (dir_fd, name):
        current = lstat_at(dir_fd, name)
        return (
            dir_fd is not None
            and current is not None
            and (current.st_uid, current.st_gid) != _ids_at(rel, dir_fd, name)
        )


def _write_atomically(source: str, dest: str, mode: int) -> None:
    """Copy ``source`` over ``dest`` (an extra file, a path the operator gave): a temporary file in dest's
    directory with mode and owner, then os.replace."""
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


def _restore_file(root: str, rel: str, source: str, mode: int) -> None:
    """Put ``source`` (a file of the backup) at ``rel``: under the root through directory descriptors, never
    following a link (a link at ``rel`` is replaced); missing directories are created with their parent's owner."""
    if rel.startswith(ABS_PREFIX):
        _write_atomically(source, source_path(root, rel), mode)
        return
    parts = rel.split("/")
    # Missing directories are created 0755 with their parent's owner.
    dir_fd = open_dir(root, "/".join(parts[:-1]), create=True, mode=0o755, ids=None)
    if dir_fd is None:  # pragma: no cover - create=True
        raise FileNotFoundError(errno.ENOENT, "directory missing", os.path.dirname(os.path.join(root, rel)))
    try:
        with open(source, "rb") as src:
            write_at(
                dir_fd,
                parts[-1],
                lambda handle: shutil.copyfileobj(src, handle, CHUNK),
                mode,
                _ids_at(rel, dir_fd, parts[-1]),
                suffix=".restore.tmp",
            )
    finally:
        os.close(dir_fd)


def _current(root: str, rel: str) -> dict[str, Any] | None:
    """The file at ``rel`` now: its info, ``{"link": target}`` for a link (replaced, not followed), None when
    absent. UnsafePath when a directory on the way is a link; BackupError when it is a directory."""
    try:
        return rel_info(root, rel)
    except UnsafePath as exc:
        with parent_of(root, rel) as (dir_fd, name):
            info = lstat_at(dir_fd, name)
            if info is not None and stat.S_ISLNK(info.st_mode):
                return {"sha256": None, "mode": None, "link": os.readlink(name, dir_fd=dir_fd)}
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise BackupError(
                    f"cannot restore {os.path.join(root, rel)}: it is a directory now; move it away and restore again"
                ) from None
        if info is not None:  # a pipe, a socket...: removed and replaced like a link
            return {"sha256": None, "mode": None, "link": str(exc)}
        raise


def _database_target(root: str, entry: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(the SQLite file to restore, its path relative to the root, the backup's database section); BackupError
    when that is not possible."""
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
    try:
        rel = sqlite_rel(root, target)
    except UnsafePath as exc:
        raise BackupError(
            f"restore_database refused, nothing was restored: {exc} (database_url of backup {entry['name']}'s "
            "config.yml)"
        ) from None
    return target, rel, database


def exact_dirs(manifest: dict[str, Any]) -> list[str]:
    """The directories a restore makes exactly as in the backup: the template sets (whatever else it lists)."""
    return [rel_dir for rel_dir in manifest.get("exact_dirs") or [] if rel_dir in TEMPLATE_SETS]


def _sidecars(root: str, rel: str) -> list[str]:
    """The journal files of the SQLite file at ``rel`` (relative paths), links included (never followed)."""
    found = []
    with parent_of(root, rel) as (dir_fd, name):
        for suffix in SQLITE_SIDECARS:
            if lstat_at(dir_fd, name + suffix) is not None:
                found.append(rel + suffix)
    return found


Write = Tuple[str, str, Dict[str, Any], Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (rel, dest, wanted, current)
Removal = Tuple[str, str, Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (rel, dest, current)
DatabaseChange = Tuple[str, str, Dict[str, Any], Optional[Dict[str, Any]]]  # noqa: UP006 UP045 (target, rel, section, current)


def _file_changes(root: str, manifest: dict[str, Any]) -> tuple[list[Write], list[Removal]]:
    """The files to write back (missing, changed, with another mode or owner) and the files to remove. A link
    where a directory is expected fails the restore here, before anything is written."""
    writes: list[Write] = []
    removals: list[Removal] = []
    try:
        for rel, wanted in sorted(manifest["files"].items()):
            dest = source_path(root, rel)
            current = _current(root, rel)
            if (
                current is None
                or current["sha256"] != wanted["sha256"]
                or current["mode"] != f"{wanted_mode(rel, wanted):04o}"
                or _owner_differs(root, rel)
            ):
                writes.append((rel, dest, wanted, current))
        for rel in manifest.get("absent") or []:
            if not safe_rel(rel):
                continue
            current = _current(root, rel)
            if current is not None:
                removals.append((rel, source_path(root, rel), current))
        for rel_dir in exact_dirs(manifest):
            files, others = walk(root, rel_dir)
            for rel, why in others:
                if rel == rel_dir:  # the set's directory itself is a link
                    raise UnsafePath(os.path.join(root, rel), why)
            for rel in files + [rel for rel, _why in others]:
                if rel not in manifest["files"]:
                    removals.append((rel, os.path.join(root, rel), _current(root, rel)))
    except UnsafePath as exc:
        raise BackupError(f"nothing was restored: {exc}") from None
    return writes, removals


def _database_change(root: str, entry: dict[str, Any]) -> DatabaseChange | None:
    target, rel, database = _database_target(root, entry)
    current_db = rel_info(root, rel)
    sidecars = [side for side in _sidecars(root, rel) if (rel_info(root, side) or {}).get("size")]
    if current_db is None or current_db["sha256"] != database["sha256"] or sidecars:
        return target, rel, database, current_db
    return None


def _diff(
    root: str, entry: dict[str, Any], writes: list[Write], removals: list[Removal], database: DatabaseChange | None
) -> dict[str, str]:
    """One line per changed path (the callbacks diff text, not lists)."""
    before = [describe_file(dest, current) for _rel, dest, _wanted, current in writes]
    after = [
        describe_file(dest, {**wanted, "mode": f"{wanted_mode(rel, wanted):04o}"}) for rel, dest, wanted, _c in writes
    ]
    before += [describe_file(dest, current) for _rel, dest, current in removals]
    after += [describe_file(dest, None) for _rel, dest, _current in removals]
    if database:
        target, _rel, section, current_db = database
        before.append(describe_file(target, current_db))
        mode = current_db["mode"] if current_db else f"{DATA_MODE:04o}"
        after.append(describe_file(target, {"sha256": section["sha256"], "mode": mode}))
    return {
        "before": "".join(line + "\n" for line in before),
        "after": "".join(line + "\n" for line in after),
        "before_header": root,
        "after_header": f"backup {entry['name']}",
    }


def _remove(root: str, rel: str) -> None:
    if rel.startswith(ABS_PREFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source_path(root, rel))
        return
    with parent_of(root, rel) as (dir_fd, name):
        if dir_fd is not None:
            unlink_at(dir_fd, name)  # a link is removed itself, never followed


def _apply(
    root: str, entry: dict[str, Any], writes: list[Write], removals: list[Removal], database: DatabaseChange | None
) -> None:
    done: list[str] = []
    try:
        for rel, dest, wanted, _current in writes:
            _restore_file(root, rel, os.path.join(entry["path"], "files", rel), wanted_mode(rel, wanted))
            done.append(dest)
        for rel, dest, _current in removals:
            _remove(root, rel)
            done.append(dest)
        for rel_dir in exact_dirs(entry["manifest"]):
            remove_empty_dirs(root, rel_dir)
        if database:
            target, rel, section, current_db = database
            # The services are stopped (the caller's part): drop the old WAL and journal first, so that they
            # are never applied to the restored file, then put the copy in place.
            for sidecar in _sidecars(root, rel):
                _remove(root, sidecar)
            mode = int(current_db["mode"], 8) if current_db else DATA_MODE
            _restore_file(root, rel, os.path.join(entry["path"], section["file"]), mode)
            done.append(target)
    except UnsafePath as exc:  # a link planted while the restore ran
        raise BackupError(
            f"restoring backup {entry['name']} stopped: {exc}; {len(done)} path(s) were already restored",
            restored_files=done,
        ) from None
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
        "removed_files": [dest for _rel, dest, _current in removals],
        "database_restored": bool(database),
        "diff": _diff(root, entry, writes, removals, database),
    }
    if not check_mode and result["changed"]:
        _apply(root, entry, writes, removals, database)
    return result
