"""Taking a backup (state=present): the service's files, a consistent database copy and the pending queue,
built in a ``.partial`` directory and renamed when complete; or the newest backup again when nothing changed.

Part of the ``notification_backup`` module (see ``notification_backup`` for what a backup holds). config.yml and
Redis are read with the health module's readers (its raw RESP client).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ansible.module_utils.notification_backup import (
    ABS_PREFIX,
    CHUNK,
    DATA_MODE,
    DIR_MODE,
    IN_PROGRESS,
    MANIFEST,
    MANIFEST_VERSION,
    PARTIAL,
    PG_DUMP,
    QUEUE_FILE,
    SQLITE_COPY,
    STAMP,
    TEMPLATE_SETS,
    BackupError,
    current_files,
    file_info,
    fsync_dir,
    rel_info,
    source_path,
    sqlite_rel,
)
from ansible.module_utils.notification_backup_fs import UnsafePath, open_file, parent_of
from ansible.module_utils.notification_backup_list import latest, list_backups, problem_text, summary, verify
from ansible.module_utils.notification_common import HealthArgumentError, MissingLibrary, shown_url
from ansible.module_utils.notification_redact import scrub, url_secrets
from ansible.module_utils.notification_redis import PENDING_KEY, RedisCommandError, redis_command
from ansible.module_utils.notification_service_config import parse_database_url, read_service_config
from ansible.module_utils.notification_timeutil import iso_seconds, utc_now

# -- making a backup -------------------------------------------------------------------------------------


def _copy(root: str, rel: str, dest: str) -> dict[str, Any] | None:
    """Copy the file recorded as ``rel`` (under the root: opened without following a link), hashing what was
    copied; the copy gets the source's mode. Returns its info, None when the file is gone."""
    digest = hashlib.sha256()
    size = 0
    if rel.startswith(ABS_PREFIX):
        try:
            source_fd: int | None = os.open(source_path(root, rel), os.O_RDONLY)
        except FileNotFoundError:
            return None
    else:
        with parent_of(root, rel) as (dir_fd, name):
            source_fd = None if dir_fd is None else open_file(dir_fd, name, os.path.join(root, rel))
    if source_fd is None:
        return None
    with os.fdopen(source_fd, "rb") as src:
        mode = os.fstat(src.fileno()).st_mode & 0o7777
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, DATA_MODE)
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
    userinfo, _at, hostinfo = parts.netloc.rpartition("@")
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
        message = scrub(
            " ".join(done.stderr.split()) or f"exit status {done.returncode}", url_secrets(url, service=True)
        )
        raise _Skip(f"pg_dump failed: {message}")
    os.chmod(dest, DATA_MODE)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"pg_dump": version}


class _Skip(Exception):
    """A part of the backup that cannot be made; the backup goes on without it and the module warns."""


def _database(
    root: str, config: dict[str, Any] | None, config_error: str | None, partial: str, timeout: float
) -> dict[str, Any]:
    if config is None:
        raise _Skip(f"config.yml could not be read ({config_error})")
    url = config.get("database_url")
    if not isinstance(url, str) or not url:
        raise _Skip("config.yml has no database_url")
    etc_dir = os.path.join(root, "etc")  # relative database paths are relative to config.yml's directory
    try:
        dialect, target = parse_database_url(url, etc_dir)
    except ValueError as exc:
        raise _Skip(f"database_url {shown_url(url)} is not usable: {exc}") from None
    os.makedirs(os.path.join(partial, "database"), DIR_MODE, exist_ok=True)
    if dialect == "sqlite":
        try:
            rel = sqlite_rel(root, target)  # inside the root, no link (checked before anything was written too)
        except UnsafePath as exc:
            raise BackupError(f"no backup taken: {exc}") from None
        if rel_info(root, rel) is None:
            raise _Skip(f"the SQLite database {target} does not exist")
        dest = os.path.join(partial, SQLITE_COPY)
        try:
            extra = _sqlite_copy(os.path.join(root, rel), dest, timeout)
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
    return {"dialect": "postgresql", "source": shown_url(url), "file": PG_DUMP, **file_info(dest), **extra}  # type: ignore[dict-item]


def check_database_path(root: str, config: dict[str, Any] | None) -> None:
    """BackupError before anything is written when config.yml's SQLite database is not a file root may read:
    outside the root, or a link (see ``sqlite_rel``)."""
    url = (config or {}).get("database_url")
    try:
        dialect, target = parse_database_url(str(url), os.path.join(root, "etc"))
    except ValueError:
        return  # no usable URL: the database part is skipped with the reason
    if dialect == "sqlite":
        try:
            sqlite_rel(root, target)
        except UnsafePath as exc:
            raise BackupError(f"no backup taken: {exc}") from None


def _queue(config: dict[str, Any] | None, config_error: str | None, partial: str, timeout: float) -> dict[str, Any]:
    if config is None:
        raise _Skip(f"config.yml could not be read ({config_error})")
    url = config.get("redis_url")
    if not isinstance(url, str) or not url:
        raise _Skip("config.yml has no redis_url")
    try:
        reply = redis_command(url, ["ZRANGE", PENDING_KEY, "0", "-1", "WITHSCORES"], timeout)
    except RedisCommandError as exc:
        raise _Skip(
            f"Redis ({shown_url(url)}) could not be read: {scrub(str(exc), url_secrets(url, service=True))}"
        ) from None
    if not isinstance(reply, list) or len(reply) % 2:
        raise _Skip(f"Redis answered ZRANGE with {type(reply).__name__}, not a list of members and scores")
    items = []
    for member, score in zip(reply[::2], reply[1::2]):  # noqa: B905 (an even count was checked; strict= is 3.10+)
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
    return {"key": PENDING_KEY, "source": shown_url(url), "count": len(items), "file": QUEUE_FILE, **file_info(dest)}  # type: ignore[dict-item]


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


def _copy_files(root: str, rels: list[str], partial: str, absent: list[str]) -> dict[str, dict[str, Any]]:
    """Copy the service's files under ``partial``/files; a file removed meanwhile is added to ``absent``."""
    files: dict[str, dict[str, Any]] = {}
    for rel in rels:
        dest = os.path.join(partial, "files", rel)
        os.makedirs(os.path.dirname(dest), DIR_MODE, exist_ok=True)
        try:
            info = _copy(root, rel, dest)
        except UnsafePath as exc:  # replaced by a link since it was listed
            raise BackupError(str(exc)) from None
        except OSError as exc:
            raise BackupError(
                f"cannot back up {source_path(root, rel)} ({exc.strerror}); run the task with become or fix its "
                "permissions"
            ) from None
        if info is None:
            absent.append(rel)  # removed while the backup ran
        else:
            files[rel] = info
    return files


def _warn_refused(refused: list[tuple[str, str]], warn: Callable[[str], None]) -> None:
    for _rel, why in refused:
        warn(f"not backed up: {why}")


def _part(
    name: str, section: str, wanted: bool, build: Callable[[], dict[str, Any]], warn: Callable[[str], None]
) -> dict[str, Any]:
    """The manifest's section for the database or queue copy: what was copied, or why it was skipped."""
    if not wanted:
        return {"skipped": f"include_{section} is false"}
    try:
        return build()
    except _Skip as exc:
        warn(f"backup {name}: no {section} copy: {exc}")
        return {"skipped": str(exc)}


def _write_manifest(partial: str, manifest: dict[str, Any]) -> None:
    fd = os.open(os.path.join(partial, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATA_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


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
    infos, absent, refused = current_files(root, extra_files)
    config, config_error = load_config(root)
    if include_database:
        check_database_path(root, config)
    backups, _partials = list_backups(backup_dir)
    newest = latest(backups)
    if reuse_unchanged and newest and same_files(newest["manifest"], infos, absent):
        problems, _checked = verify(newest, only_files=True)
        if not problems:
            _warn_refused(refused, warn)
            return {"changed": False, "created": False, "reused": True, "backup": summary(newest)}
        warn(
            f"the newest backup {newest['name']} holds the current files but is damaged "
            f"({problem_text(problems[0])}); taking a new one"
        )
    _warn_refused(refused, warn)
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
        files = _copy_files(root, sorted(infos), partial, absent)
        builders: list[tuple[str, bool, Callable[[], dict[str, Any]]]] = [
            ("database", include_database, lambda: _database(root, config, config_error, partial, database_timeout)),
            ("queue", include_queue, lambda: _queue(config, config_error, partial, redis_timeout)),
        ]
        parts = {section: _part(name, section, wanted, build, warn) for section, wanted, build in builders}
        manifest = {
            "version": MANIFEST_VERSION,
            "name": name,
            "host": socket.gethostname(),
            "root": root,
            "created_at": iso_seconds(now),
            "created_ns": time.time_ns(),
            "label": label,
            "run_id": run_id,
            "mode": (config or {}).get("mode"),
            "files": files,
            "absent": sorted(set(absent)),
            "refused": [rel for rel, _why in refused],
            "exact_dirs": list(TEMPLATE_SETS),
            "database": parts["database"],
            "queue": parts["queue"],
        }
        _write_manifest(partial, manifest)
        os.unlink(marker)
        fsync_dir(partial)
        final = os.path.join(backup_dir, name)
        os.rename(partial, final)
        fsync_dir(backup_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    entry = {"name": name, "path": final, "manifest": manifest, "error": None}
    return {"changed": True, "created": True, "reused": False, "backup": summary(entry)}
