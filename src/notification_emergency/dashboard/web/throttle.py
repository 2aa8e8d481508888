"""The login throttle: failed logins counted per user name and per client address."""

from __future__ import annotations

import threading
import time

LOGIN_FAILURES_PER_USER = 5  # failed logins of one user name within LOGIN_WINDOW_S (from any address)
LOGIN_FAILURES_PER_ADDRESS = 20  # failed logins from one client address within LOGIN_WINDOW_S (any names)
LOGIN_WINDOW_S = 300.0
MAX_TRACKED = 10_000  # names and addresses the throttle remembers (the oldest are forgotten first)


class LoginThrottle:
    """Failed logins counted per user name and per client address in a sliding window of ``window`` s.

    A name with ``per_user`` failures is refused from every address (a guesser cannot spread over
    addresses); an address with ``per_address`` failures is refused for every name (a guesser cannot spread
    over names). Below the address limit, the other users of a shared address (a NAT, a proxy) still log
    in while one name is hammered. An attempt counts as a failure from the moment it starts, so parallel
    attempts cannot slip past the limit together; a success takes its attempt back and clears the name's
    failures (not the address's: a valid login of one's own must not reset a guesser's count).
    """

    def __init__(
        self,
        per_user: int = LOGIN_FAILURES_PER_USER,
        per_address: int = LOGIN_FAILURES_PER_ADDRESS,
        window: float = LOGIN_WINDOW_S,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._users: dict[str, list[float]] = {}
        self._addresses: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, table: dict[str, list[float]], key: str, now: float) -> list[float]:
        recent = [t for t in table.get(key, ()) if now - t < self.window]
        if recent:
            table[key] = recent
        else:
            table.pop(key, None)
        return recent

    def _wait(self, user: str, address: str, now: float) -> float:
        waits = [
            self.window - (now - recent[-limit])
            for table, key, limit in ((self._users, user, self.per_user), (self._addresses, address, self.per_address))
            if len(recent := self._recent(table, key, now)) >= limit
        ]
        return max(waits, default=0.0)

    def wait(self, user: str, address: str) -> float:
        """Seconds before ``user`` may try again from ``address`` (0: now)."""
        with self._lock:
            return self._wait(user, address, time.monotonic())

    def attempt(self, user: str, address: str) -> tuple[float, float]:
        """Start an attempt: ``(wait, 0)`` when refused, else ``(0, token)`` with the attempt counted as failed
        until ``succeeded`` or ``undo`` takes it back."""
        now = time.monotonic()
        with self._lock:
            wait = self._wait(user, address, now)
            if wait:
                return wait, 0.0
            for table, key in ((self._users, user), (self._addresses, address)):
                if key not in table and len(table) >= MAX_TRACKED:
                    self._forget(table, now)
                table.setdefault(key, []).append(now)
            return 0.0, now

    def _forget(self, table: dict[str, list[float]], now: float) -> None:
        for key in [k for k, times in table.items() if now - times[-1] >= self.window]:
            del table[key]
        while len(table) >= MAX_TRACKED:
            del table[min(table, key=lambda k: table[k][-1])]

    def _take_back(self, table: dict[str, list[float]], key: str, token: float) -> None:
        times = table.get(key)
        if times and token in times:
            times.remove(token)
        if not times:
            table.pop(key, None)

    def succeeded(self, user: str, address: str, token: float) -> None:
        with self._lock:
            self._users.pop(user, None)
            self._take_back(self._addresses, address, token)

    def undo(self, user: str, address: str, token: float) -> None:
        """An attempt that checked no password (the hashing cap was full): it does not count."""
        with self._lock:
            self._take_back(self._users, user, token)
            self._take_back(self._addresses, address, token)


__all__ = [
    "LOGIN_FAILURES_PER_ADDRESS",
    "LOGIN_FAILURES_PER_USER",
    "LOGIN_WINDOW_S",
    "MAX_TRACKED",
    "LoginThrottle",
]
