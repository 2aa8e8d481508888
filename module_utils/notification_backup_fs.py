"""Files under a service root as root reads and writes them: never through a symbolic link.

The service owns directories under its root (``data/``, ``log/``, ``state/``, ``templates/``) and may put a
symbolic link anywhere in them. The toolkit's modules run as root: a backup that followed
``data/notifications.db -> /etc/shadow`` would copy that file into root's backups (and a restore would hand it to
the service); a restore or a mode switch that followed ``templates/active -> /etc`` would write, and remove,
files there. So every path below the root is reached one directory at a time from a descriptor of the root
(``os.open`` with ``dir_fd`` and ``O_NOFOLLOW``), a file is opened with ``O_NOFOLLOW`` and checked to be a
regular file on its descriptor, and a file is written as a new file in its directory's descriptor renamed over
the old name (which replaces a link, never follows it). A link found where a directory or a file is expected
is refused with ``UnsafePath``, which names the path, what it points to and the fix.

The root itself is the operator's (a module parameter), so it may be reached through links; paths named by
service-writable data (``database_url`` in config.yml) must resolve inside it (``inside_root``).

Part of the ``notification_backup`` module, also used by ``notification_mode``. Standard library only, Python 3.8+.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO planted where a file is expected must not hang the open (it is refused on its fstat).
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePath(Exception):
    """A path root must not use: a symbolic link (or another non-regular file) where a directory or a regular
    file is expected, or a path from service-writable data that resolves outside the service root."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def split_rel(rel: str) -> list[str]:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise ValueError(f"{rel!r} is not a plain relative path")
    return parts


def _link_text(dir_fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "?"


def refusal(path: str, dir_fd: int, name: str, expected: str) -> UnsafePath:
    """Why ``path`` (``name`` in ``dir_fd``) is not usable as ``expected`` ("a directory", "a regular file")."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return UnsafePath(path, f"{path} changed while it was read; run again")
    if stat.S_ISLNK(info.st_mode):
        return UnsafePath(
            path,
            f"{path} is a symbolic link (to {_link_text(dir_fd, name)}), not {expected}: root does not follow links "
            f"in directories the service can write (whoever can write {os.path.dirname(path)} planted it); "
            f"remove the link (rm {path}), check the host for what else was changed, and run again",
        )
    return UnsafePath(path, f"{path} is not {expected} ({_kind(info.st_mode)}); move it away and run again")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_root(root: str) -> int:
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))


def open_dir(
    root: str, rel_dir: str, create: bool = False, mode: int = 0o755, ids: tuple[int, int] | None = (-1, -1)
) -> int | None:
    """A descriptor of ``root/rel_dir`` reached without following a link below ``root`` ("" is the root);
    None when a directory on the way does not exist (and ``create`` is false). Created ones get ``mode``
    and ``ids`` (None: their parent's owner, when this runs as root)."""
    fd = open_root(root)
    if not rel_dir:
        return fd
    path = root
    try:
        for part in split_rel(rel_dir):
            path = os.path.join(path, part)
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
                    owner = ids
                    if owner is None:
                        parent = os.fstat(fd)
                        owner = (parent.st_uid, parent.st_gid) if os.geteuid() == 0 else (-1, -1)
                    if owner != (-1, -1):
                        os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise refusal(path, fd, part, "a directory") from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise refusal(path, fd, part, "a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def parent_of(
    root: str, rel: str, create: bool = False, mode: int = 0o755, ids: tuple[int, int] | None = (-1, -1)
) -> Iterator[tuple[int | None, str]]:
    """(descriptor of the directory holding ``root/rel`` or None when it does not exist, the file's name)."""
    parts = split_rel(rel)
    fd = open_dir(root, "/".join(parts[:-1]), create, mode, ids)
    try:
        yield fd, parts[-1]
    finally:
        if fd is not None:
            os.close(fd)


def lstat_at(dir_fd: int | None, name: str) -> os.stat_result | None:
    if dir_fd is None:
        return None
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def open_file(dir_fd: int, name: str, path: str) -> int | None:
    """A read descriptor of the regular file ``name`` (None when absent); UnsafePath for a link or a non-file."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            if exc.errno == errno.EISDIR:
                raise UnsafePath(
                    path, f"{path} is a directory, not a regular file; move it away and run again"
                ) from None
            raise refusal(path, dir_fd, name, "a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refusal(path, dir_fd, name, "a regular file")
    os.set_blocking(fd, True)
    return fd


@contextlib.contextmanager
def opened(root: str, rel: str) -> Iterator[BinaryIO | None]:
    """The regular file ``root/rel`` open for reading, reached without following a link (UnsafePath for a link
    or another non-regular file); None when it (or its directory) does not exist."""
    with parent_of(root, rel) as (dir_fd, name):
        fd = None if dir_fd is None else open_file(dir_fd, name, os.path.join(root, rel))
        if fd is None:
            yield None
            return
        with os.fdopen(fd, "rb") as handle:
            yield handle


def read_bytes(root: str, rel: str) -> bytes | None:
    """The content of the regular file ``root/rel``, None when it (or its directory) does not exist."""
    with opened(root, rel) as handle:
        return None if handle is None else handle.read()


def write_at(
    dir_fd: int,
    name: str,
    fill: Any,
    mode: int,
    ids: tuple[int, int] = (-1, -1),
    suffix: str = ".tmp",
) -> None:
    """Write ``name`` in ``dir_fd`` atomically: a new file (O_EXCL, O_NOFOLLOW) filled by ``fill(handle)``,
    given ``mode`` and ``ids`` on its descriptor, synced, then renamed over ``name`` (a link there is replaced,
    not followed)."""
    for _attempt in range(100):
        temp = f".{name}.{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(temp, CREATE_FLAGS, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random names taken
        raise OSError(errno.EEXIST, "no free temporary name", name)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if ids != (-1, -1):
                os.fchown(handle.fileno(), *ids)
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def unlink_at(dir_fd: int, name: str) -> bool:
    """Remove the entry ``name`` (a link is removed itself); False when it was not there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def walk(root: str, rel_dir: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(relative paths of the regular files under ``root/rel_dir``, [(relative path, why) of what is neither a
    regular file nor a directory: links, pipes...]), without following links; both empty when it is missing."""
    files: list[str] = []
    others: list[tuple[str, str]] = []
    try:
        fd = open_dir(root, rel_dir)
    except UnsafePath as exc:
        return [], [(rel_dir, str(exc))]
    if fd is None:
        return [], []
    _walk_fd(root, fd, rel_dir, files, others)
    return sorted(files), sorted(others)


def _walk_fd(root: str, fd: int, rel_dir: str, files: list[str], others: list[tuple[str, str]]) -> None:
    try:
        entries = sorted(os.scandir(fd), key=lambda entry: entry.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}"
            if entry.is_symlink() or not (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)):
                others.append((rel, str(refusal(os.path.join(root, rel), fd, entry.name, "a regular file"))))
            elif entry.is_dir(follow_symlinks=False):
                try:
                    child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # replaced by a link meanwhile
                        others.append((rel, str(refusal(os.path.join(root, rel), fd, entry.name, "a directory"))))
                        continue
                    raise
                _walk_fd(root, child, rel, files, others)
            else:
                files.append(rel)
    finally:
        os.close(fd)


def remove_empty_dirs(root: str, rel_dir: str) -> None:
    """Remove the empty directories below ``root/rel_dir`` (not itself), deepest first, following no link."""
    fd = open_dir(root, rel_dir)
    if fd is not None:
        _remove_empty(fd)


def _remove_empty(fd: int) -> None:
    try:
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False) and not entry.is_symlink():
                try:
                    child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                _remove_empty(child)
                with contextlib.suppress(OSError):  # not empty: files of the backup are in it
                    os.rmdir(entry.name, dir_fd=fd)
    finally:
        os.close(fd)


def inside_root(root: str, path: str, key: str, example: str) -> str:
    """The path relative to ``root`` of ``path``, which ``key`` (service-writable data, such as config.yml's
    database_url) names; UnsafePath when it resolves outside the root. Its directories are resolved (the
    operator's root may be reached through a link); its last component is not, a link there is refused where it
    is opened."""
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(path)
    directory = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for candidate in (resolved, directory + "/x"):
        if not candidate.startswith(real_root.rstrip("/") + "/"):
            shown = f"{path}, which resolves to {resolved}" if resolved != path else path
            raise UnsafePath(
                path,
                f"{key} names {shown}, outside the service root {root}: root does not read or write files that "
                f"service-writable data names outside the root (the service could name /etc/passwd); set {key} "
                f"to a file under {root} ({example}) in the deploy's inventory and deploy again",
            )
    return os.path.relpath(os.path.join(directory, os.path.basename(path)), real_root)


# -- whole files, for notification_mode ------------------------------------------------------------------------


def read_under(root: str, rel: str | None, path: str) -> tuple[bytes | None, os.stat_result | None, str | None]:
    """(content, stat, why not usable) of the file ``path`` (``rel`` under the root, None when it is not under it:
    read as it is). Under the root without following a link: a link (or another non-regular file) is not read, its
    content is None and ``why`` says what it is. UnsafePath when a directory on the way is a link."""
    if rel is None:
        try:
            with open(path, "rb") as handle:
                return handle.read(), os.fstat(handle.fileno()), None
        except FileNotFoundError:
            return None, None, None
    with parent_of(root, rel) as (dir_fd, name):
        if dir_fd is None:
            return None, None, None
        try:
            fd = open_file(dir_fd, name, path)
        except UnsafePath as exc:
            return None, lstat_at(dir_fd, name), str(exc)
        if fd is None:
            return None, None, None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()), None


def names_under(root: str, rel_dir: str) -> list[str] | None:
    """The names in ``root/rel_dir`` (None when it does not exist), reached following no link."""
    fd = open_dir(root, rel_dir)
    if fd is None:
        return None
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def write_under(
    root: str, rel: str, content: bytes | None, mode: int, ids: tuple[int, int], dir_mode: int = 0o755
) -> None:
    """Write ``content`` at ``rel`` atomically (None: remove it), missing directories created with ``dir_mode``
    and ``ids``; a link at ``rel`` is replaced or removed, never followed."""
    with parent_of(root, rel, create=True, mode=dir_mode, ids=ids) as (dir_fd, name):
        if dir_fd is None:  # pragma: no cover - create=True
            raise FileNotFoundError(errno.ENOENT, "directory missing", os.path.join(root, rel))
        if content is None:
            unlink_at(dir_fd, name)
        else:
            data = content
            write_at(dir_fd, name, lambda handle: handle.write(data), mode, ids, suffix=".notification")
