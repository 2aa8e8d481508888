"""The backups in a backup directory: list them, find one, verify it against its manifest, prune old ones.

Part of the ``notification_backup`` module (see ``notification_backup`` for what a backup holds).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from datetime import datetime
from typing import Any

from ansible.module_utils.notification_backup import (
    IN_PROGRESS,
    MANIFEST,
    MANIFEST_VERSION,
    NAME_RE,
    PARTIAL,
    BackupError,
    name_ok,
    safe_rel,
    sha256_file,
)
from ansible.module_utils.notification_timeutil import parse_iso, utc_now

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
        if not safe_rel(rel) or not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            return None, f"{MANIFEST} lists {rel!r}, which is not a relative path with a sha256"
        if not isinstance(info.get("mode"), str) or not re.fullmatch(r"[0-7]{3,4}", info["mode"]):
            return None, f"{MANIFEST} gives {rel} the mode {info.get('mode')!r}, not an octal mode"
    for section in ("database", "queue"):
        file = (data.get(section) or {}).get("file")
        if file is not None and (not safe_rel(file) or not file.startswith(section + "/")):
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
    if not name_ok(name):
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
