"""The dashboard's sessions, kept server-side so that logging out ends a session for good.

The session cookie is signed (it cannot be forged), but a signature alone cannot be taken back: a cookie
saved before logout would work until it expires. So each login makes a random session id, the cookie
carries it, and the dashboard keeps the ids of the live sessions in ``dashboard-sessions.json`` in its state
directory (mode 0600, written atomically, only a SHA-256 of each id). A request whose id is not there (logged
out, expired, or from before this file existed) has no session. The file is read again when it changes, so
it survives a restart of the dashboard and is shared by dashboards on the same state directory; deleting it
logs everybody out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from notification_emergency.paths import write_private

log = logging.getLogger("notification_emergency.dashboard")

SESSIONS_FILE = "dashboard-sessions.json"
SESSION_LIFETIME_S = 12 * 3600.0
MAX_SESSIONS = 1000  # live sessions kept; beyond that the oldest ends (each login makes one)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()


class Sessions:
    """The live sessions: ``create`` at login, ``valid`` on each request, ``revoke`` at logout. Thread-safe."""

    def __init__(self, path: Path, lifetime_s: float = SESSION_LIFETIME_S) -> None:
        self.path = path
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._live: dict[str, dict[str, Any]] = {}  # digest -> {"user", "expires" (epoch seconds)}

    def _load(self) -> None:
        """Read the file again if it changed (a missing or unreadable file: no live sessions)."""
        try:
            info = self.path.stat()
        except OSError:
            if self._stamp is not None:  # it was there: deleted, everybody is logged out
                self._stamp, self._live = None, {}
            return  # (never written: what this process holds, if writing failed)
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            live = data["sessions"]
            self._live = {
                str(key): {"user": str(entry["user"]), "expires": float(entry["expires"])}
                for key, entry in live.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("cannot read the dashboard sessions %s (everybody must log in again): %s", self.path, exc)
            self._live = {}

    def _save(self) -> None:
        now = time.time()
        live = sorted(((k, v) for k, v in self._live.items() if v["expires"] > now), key=lambda kv: kv[1]["expires"])
        self._live = dict(live[-MAX_SESSIONS:])
        text = json.dumps({"sessions": self._live}, sort_keys=True)
        try:
            write_private(self.path, text)
            info = self.path.stat()
            self._stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError as exc:  # kept in memory: this process still knows, a restart would not
            log.error("cannot write the dashboard sessions %s: %s", self.path, exc)

    def create(self, user: str) -> str:
        """A new session of ``user``: its id (for the cookie)."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._load()
            self._live[_digest(sid)] = {"user": user, "expires": time.time() + self.lifetime_s}
            self._save()
        return sid

    def valid(self, sid: Any, user: str) -> bool:
        """True when ``sid`` is a live session of ``user``."""
        if not isinstance(sid, str) or not sid:
            return False
        with self._lock:
            self._load()
            entry = self._live.get(_digest(sid))
        return entry is not None and entry["user"] == user and entry["expires"] > time.time()

    def revoke(self, sid: Any) -> bool:
        """End the session ``sid``; False when it was not live."""
        if not isinstance(sid, str) or not sid:
            return False
        with self._lock:
            self._load()
            found = self._live.pop(_digest(sid), None) is not None
            if found:
                self._save()
        return found

    def count(self) -> int:
        with self._lock:
            self._load()
            now = time.time()
            return sum(1 for entry in self._live.values() if entry["expires"] > now)


__all__ = ["SESSIONS_FILE", "SESSION_LIFETIME_S", "Sessions"]
