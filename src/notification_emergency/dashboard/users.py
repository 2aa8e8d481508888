"""Dashboard users: names, roles and password hashes in a YAML file.

The file (``--users FILE``, ``NOTIFICATION_EMERGENCY_DASHBOARD_USERS``, else ``dashboard-users.yml`` in the
state directory) is written by ``notification-emergency dashboard --add-user NAME --role operator``, which
reads the password from the terminal (or the first line of standard input). It holds only hashes
(``werkzeug.security``, scrypt), is created with mode 0600, and looks like::

    # notification-emergency dashboard users (passwords hashed with werkzeug.security)
    users:
      alice:
        role: operator
        password_hash: "scrypt:32768:8:1$..."

Roles: ``viewer`` sees everything; ``operator`` also runs the controls. The running dashboard reads the file
again when it changes, so users added or removed take effect at once; a file that becomes invalid locks
everybody out (fail closed) and the login page says why. A file that others could write (group- or
world-writable) is refused the same way, by the dashboard and by ``--add-user``: whoever can write it can make
themselves an operator.

Checking a password is scrypt (32 MiB of memory and tens of milliseconds of CPU each): at most
``MAX_HASHING`` checks run at once; a check that cannot start within ``HASH_WAIT_S`` (or while ``MAX_WAITING``
others wait) raises :class:`Busy` at once instead of queueing. A name that is not in the file costs the same
check (against a dummy hash, under the same cap), so the time of an answer does not say who exists.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from werkzeug.security import check_password_hash, generate_password_hash

from notification_emergency.errors import BadInput
from notification_emergency.paths import state_dir, writable_by_others, write_private

USERS_ENV = "NOTIFICATION_EMERGENCY_DASHBOARD_USERS"
ROLES = ("viewer", "operator")
MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
HEADER = "# notification-emergency dashboard users (passwords hashed with werkzeug.security; mode 0600)\n"
# Checked when the name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anybody")
MAX_HASHING = 2  # password checks at once (each scrypt check holds 32 MiB)
MAX_WAITING = 8  # checks that may wait for one of those; more are refused at once
HASH_WAIT_S = 2.0  # how long a check waits for its turn before it is refused
MAX_NAME = 64
MAX_PASSWORD = 1024


class Busy(BadInput):
    """Too many password checks at once: try again in ``retry_after`` seconds (HTTP 503)."""

    retry_after = 1


class PasswordChecks:
    """The cap on concurrent password checks, with counters the tests and the benchmark read."""

    def __init__(self, limit: int = MAX_HASHING, waiting: int = MAX_WAITING, wait_s: float = HASH_WAIT_S) -> None:
        self.limit = limit
        self.max_waiting = waiting
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._waiting = 0
        self.running = 0
        self.peak = 0  # the most checks that ever ran at once
        self.checks = 0  # checks done (a known user's hash or the dummy hash)
        self.refused = 0  # checks refused because the cap was full

    def check(self, password_hash: str, password: str) -> bool:
        """``check_password_hash`` under the cap; Busy when it cannot run soon."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                self.refused += 1
                raise Busy("too many logins at once: try again in a second")
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self.wait_s)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            with self._lock:
                self.refused += 1
            raise Busy("too many logins at once: try again in a second")
        try:
            with self._lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
                self.checks += 1
            return check_password_hash(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()


def check_mode(path: Path, mode: int) -> None:
    """Refuse a users file that its group or others may write (BadInput naming the file and the fix)."""
    who = writable_by_others(mode)
    if who:
        raise BadInput(
            f"the dashboard users file {path} is writable by {who} (mode {stat.S_IMODE(mode):04o}): whoever can write "
            f"it can make themselves an operator, so it is not used. Check its content, then `chmod 600 {path}` "
            "(or 640 to let its group read it)"
        )


def default_users_file() -> Path:
    """``NOTIFICATION_EMERGENCY_DASHBOARD_USERS``, else ``dashboard-users.yml`` in the state directory."""
    configured = os.environ.get(USERS_ENV)
    return Path(configured).expanduser() if configured else state_dir() / "dashboard-users.yml"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BadInput(
            f"dashboard user name {name!r} is not valid: use 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInput(f"--role {role!r} is not a dashboard role; choose {' or '.join(ROLES)}")
    return role


class UserFile:
    """The users file at ``path``; ``users()`` re-reads it when it changed on disk. Thread-safe."""

    def __init__(self, path: Path | None = None, *, checks: PasswordChecks | None = None) -> None:
        self.path = Path(path) if path is not None else default_users_file()
        self.error: str | None = None  # why the file cannot be used (then nobody can log in)
        self.checks = checks or PasswordChecks()
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._users: dict[str, User] = {}

    def _read(self) -> dict[str, User]:
        """Parse the file; a file that is not as documented (or that others may write) is a BadInput naming the
        file and the fix."""
        try:
            with self.path.open(encoding="utf-8") as stream:
                check_mode(self.path, os.fstat(stream.fileno()).st_mode)
                data = yaml.safe_load(stream.read())
        except OSError as exc:
            raise BadInput(f"cannot read the dashboard users file {self.path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise BadInput(f"the dashboard users file {self.path} is not valid YAML: {exc}") from None
        fix = "recreate it with `notification-emergency dashboard --add-user NAME --role operator`"
        if data is None:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("users") or {}, dict):
            raise BadInput(f"the dashboard users file {self.path} must be a mapping with a 'users' mapping; {fix}")
        users: dict[str, User] = {}
        for name, entry in (data.get("users") or {}).items():
            name = str(name)
            if not _NAME.match(name) or not isinstance(entry, dict):
                raise BadInput(f"the dashboard users file {self.path}: entry {name!r} is not valid; {fix}")
            role, password_hash = entry.get("role"), entry.get("password_hash")
            if role not in ROLES:
                raise BadInput(
                    f"the dashboard users file {self.path}: user {name} has role {role!r}; choose {' or '.join(ROLES)}"
                )
            if not isinstance(password_hash, str) or "$" not in password_hash:
                raise BadInput(f"the dashboard users file {self.path}: user {name} has no password_hash; {fix}")
            users[name] = User(name, str(role), password_hash)
        return users

    def users(self) -> dict[str, User]:
        """The users (empty when the file is missing or invalid; ``error`` then says why, if invalid)."""
        with self._lock:
            try:
                info = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._users, self.error = None, {}, None
                return {}
            except OSError as exc:
                self._stamp, self._users, self.error = None, {}, f"cannot read {self.path}: {exc.strerror}"
                return {}
            stamp = (info.st_mtime_ns, info.st_size, info.st_mode, info.st_ino)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._users, self.error = self._read(), None
                except BadInput as exc:
                    self._users, self.error = {}, exc.message  # fail closed
            return dict(self._users)

    def check(self) -> dict[str, User]:
        """The users, or a BadInput when the file exists but cannot be used (for start-up)."""
        users = self.users()
        if self.error:
            raise BadInput(self.error)
        return users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    @staticmethod
    def valid_name(name: str) -> bool:
        """Whether a user could have this name (the name syntax; says nothing of who exists)."""
        return bool(_NAME.match(name or ""))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user whose name and password these are, else None. A name that could be a user's but is not
        costs the same check (the dummy hash) under the same cap; Busy when the cap is full."""
        if not _NAME.match(name or "") or len(password) > MAX_PASSWORD:
            return None  # no user can have this name (or password): nothing to learn from the time
        user = self.users().get(name)
        valid = self.checks.check(user.password_hash if user else _DUMMY_HASH, password)
        return user if user is not None and valid else None

    # -- changes (the CLI) -----------------------------------------------------------------------------

    def _write(self, users: dict[str, User]) -> None:
        data: dict[str, Any] = {
            "users": {u.name: {"role": u.role, "password_hash": u.password_hash} for u in users.values()}
        }
        text = HEADER + yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
        try:
            write_private(self.path, text)
        except OSError as exc:
            raise BadInput(
                f"cannot write the dashboard users file {self.path}: {exc.strerror or exc}; choose another with --users"
            ) from None

    def add(self, name: str, role: str, password: str) -> bool:
        """Add a user, or change the role and password of an existing one; True when the user is new."""
        check_name(name)
        check_role(role)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadInput(f"the password of {name} must have at least {MIN_PASSWORD_LENGTH} characters")
        users = self._read() if self.path.exists() else {}
        new = name not in users
        users[name] = User(name, role, generate_password_hash(password))
        self._write(users)
        return new

    def remove(self, name: str) -> bool:
        """Remove a user; False when there was none of that name."""
        users = self._read() if self.path.exists() else {}
        if users.pop(name, None) is None:
            return False
        self._write(users)
        return True


__all__ = [
    "MAX_HASHING",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "USERS_ENV",
    "Busy",
    "PasswordChecks",
    "User",
    "UserFile",
    "check_mode",
    "check_role",
    "default_users_file",
]
