"""Emergency notifications: the one place every notification of the package goes through.

A notification has a priority (critical, high, medium, low); the channel configuration
(:mod:`notification_emergency.channels`, ``docs/notifications.md``) routes each priority to channels:
``users`` (the application's own users, through its API or its flash store), operator channels (Apprise
URLs: e-mail, chat, webhooks, PagerDuty ...) and ``file`` (``notifications.log`` in the state directory).
Every routed channel gets the notification, at the same time; a channel that fails after its retries hands it
to its ``fallback``, and so on down the chain. Each channel is tried with retries and exponential backoff,
and everything must finish within the deadline. When no routed channel delivered it, the file keeps it as the
last resort (it depends on nothing but the local disk): the attempt is recorded as ``kept``, and the
notification is *not delivered*. With no routing at all (no channel configured), the file is the channel.

Every notification gets an id and is recorded in the event store with each delivery attempt (channel, time,
outcome, error). A repeat of the same message within the de-duplication window is not sent again. The
caller may say which components are broken (``failed_components``): no channel then depends on them (the
users are reached through the flash store, not through Redis and the WebSocket process). No secret of a
channel URL or an API token is written anywhere: errors are scrubbed before they are recorded or returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notification_emergency import channels as ch
from notification_emergency import delivery
from notification_emergency.catalogue import LEVEL_PRIORITY, PRIORITIES
from notification_emergency.channels import FILE, USERS, ChannelConfig, load_channels
from notification_emergency.delivery import DeliveryError, PermanentError, Skip
from notification_emergency.errors import BadInput, ToolkitError
from notification_emergency.redact import scrub_text
from notification_emergency.store import EventStore
from notification_emergency.timeutil import iso, utc_now

if TYPE_CHECKING:
    from notification_emergency.inventory import Fleet

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    notification_id: str
    delivered: bool
    channel: str | None  # the first channel that delivered it
    duplicate: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    priority: str | None = None
    channels: list[str] = field(default_factory=list)  # every channel that delivered it
    routed: list[str] = field(default_factory=list)  # the channels the priority is routed to
    failed: dict[str, str] = field(default_factory=dict)  # routed channel -> why its whole chain failed
    skipped: dict[str, str] = field(default_factory=dict)  # channel -> why it could not be used
    kept_in_file: bool = False  # the last resort: in notifications.log, nobody reached
    record_error: str | None = None  # the event store could not record it (the notification still went)

    def to_json(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "priority": self.priority,
            "delivered": self.delivered,
            "duplicate": self.duplicate,
            "channel": self.channel,
            "channels": self.channels,
            "routed": self.routed,
            "failed": self.failed,
            "skipped": self.skipped,
            "kept_in_file": self.kept_in_file,
            "attempts": self.attempts,
            "record_error": self.record_error,
        }


class Notifier:
    """Send notifications through the configured channels.

    ``channels``: a :class:`ChannelConfig`, or the channels file (default: ``NOTIFICATION_EMERGENCY_CHANNELS``,
    else ``<home>/channels.yml``, else the file channel only); it is read and checked here, so a bad one is a
    :class:`BadInput` now, not during the emergency. ``fleet``: where the application's hosts are (the
    inventory); without it the ``users`` channel is skipped.
    """

    def __init__(
        self,
        store: EventStore,
        home: Path,
        *,
        actor: str,
        dedup_window_s: float | None = None,
        channels: ChannelConfig | str | Path | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.log_file = home / "notifications.log"
        self.actor = actor
        self.config = channels if isinstance(channels, ChannelConfig) else load_channels(channels, home)
        window = self.config.dedup_window_s if dedup_window_s is None else dedup_window_s
        self.dedup_window = timedelta(seconds=window)
        self.fleet = fleet
        self._secrets = set(self.config.secrets)
        self._lock = threading.Lock()

    @staticmethod
    def notification_id(title: str, message: str, priority: str) -> str:
        return hashlib.sha256(f"{priority}\0{title}\0{message}".encode()).hexdigest()[:16]

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = set(self._secrets)
        return scrub_text(text, secrets)

    def _add_secret(self, value: str) -> None:
        with self._lock:
            self._secrets.add(value)

    def send(
        self,
        title: str,
        message: str,
        priority: str,
        *,
        incident_id: int | None = None,
        failed_components: Iterable[str] = (),
        limit: str | None = None,
    ) -> Delivery:
        """Deliver one notification; ``failed_components``: web, websocket, redis, database (or failure types)
        known to be broken; ``limit``: the application hosts the ``users`` channel may use."""
        if priority not in PRIORITIES:
            raise BadInput(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        if not title or not title.strip():
            raise BadInput("the notification needs a title (--title)")
        failed = ch.failed_components(failed_components)
        base = self.notification_id(title, message, priority)
        now = utc_now()
        record_error = None
        try:
            for earlier in self.store.notifications(since=now - self.dedup_window):
                if str(earlier["notification_id"]).startswith(base) and earlier.get("delivered_by"):
                    return Delivery(
                        str(earlier["notification_id"]),
                        True,
                        earlier["delivered_by"],
                        duplicate=True,
                        priority=priority,
                        channels=[earlier["delivered_by"]],
                    )
        except ToolkitError as exc:  # the store is down: send anyway, without de-duplication
            record_error = exc.message
        notification_id = f"{base}-{now.strftime('%Y%m%dT%H%M%S%f')}"
        recorded = True
        try:
            self.store.record_notification(
                notification_id,
                title=title,
                message=message,
                priority=priority,
                actor=self.actor,
                incident_id=incident_id,
            )
        except ToolkitError as exc:
            recorded, record_error = False, exc.message
        run = _Run(self, notification_id, title, message, priority, failed, limit, recorded)
        routed = list(self.config.routing[priority]) or [FILE]
        with ThreadPoolExecutor(max_workers=len(routed), thread_name_prefix="notify") as pool:
            outcomes = list(pool.map(run.chain, routed))
        delivery = Delivery(notification_id, False, None, priority=priority, routed=routed)
        for name, (by, error) in zip(routed, outcomes, strict=True):
            if by:
                delivery.channels.append(by)
            elif error:
                delivery.failed[name] = error
        delivery.skipped = dict(run.skipped)
        if not delivery.channels and FILE not in run.tried:
            if run.attempts:  # channels were tried and none delivered: the file keeps it, nobody was reached
                delivery.kept_in_file = run.write_file(last_resort=True)
            elif run.write_file(last_resort=False):  # nothing routed could be used for it: the file is the channel
                delivery.channels.append(FILE)
        delivery.attempts = sorted(run.attempts, key=lambda a: (a["at"], a["channel"]))
        delivery.delivered = bool(delivery.channels)
        delivery.channel = _first_delivered(delivery.attempts)
        delivery.record_error = run.record_error or record_error
        return delivery


def _first_delivered(attempts: list[dict[str, Any]]) -> str | None:
    return next((a["channel"] for a in attempts if a["outcome"] == "delivered"), None)


class _Run:
    """One notification on its way: the deadline, the attempts, the file."""

    def __init__(
        self,
        notifier: Notifier,
        notification_id: str,
        title: str,
        message: str,
        priority: str,
        failed: set[str],
        limit: str | None,
        recorded: bool,
    ) -> None:
        self.notifier = notifier
        self.config = notifier.config
        self.id = notification_id
        self.title = title
        self.message = message
        self.priority = priority
        self.failed = failed
        self.limit = limit
        self.recorded = recorded
        self.deadline = time.monotonic() + self.config.retry.deadline_s
        self.attempts: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}
        self.tried: set[str] = set()
        self.record_error: str | None = None
        self._lock = threading.Lock()

    # -- the record ------------------------------------------------------------------------------------

    def record(self, channel: str, outcome: str, error: str | None, detail: str | None, attempt: int) -> None:
        error = self.notifier.scrub(error) if error else None
        detail = self.notifier.scrub(detail) if detail else None
        at = utc_now()
        entry = {
            "channel": channel,
            "outcome": outcome,
            "error": error,
            "detail": detail,
            "attempt": attempt,
            "at": iso(at),
        }
        with self._lock:
            self.attempts.append(entry)
        log.info("notification %s via %s (try %d): %s %s", self.id, channel, attempt, outcome, error or detail or "")
        if self.recorded:
            try:
                self.notifier.store.record_delivery_attempt(
                    self.id, channel=channel[:64], outcome=outcome, error=error, at=at
                )
            except ToolkitError as exc:
                self.record_error = exc.message

    # -- channels --------------------------------------------------------------------------------------

    def chain(self, name: str) -> tuple[str | None, str | None]:
        """Deliver through ``name``, then its fallbacks; (the channel that delivered, or the last error)."""
        errors: list[str] = []
        used = False  # a channel of the chain was tried (not only skipped)
        for channel in self.config.chain(name):
            try:
                by, error = self.channel(channel)
            except Skip as skip:
                with self._lock:
                    self.skipped[channel] = self.notifier.scrub(str(skip))
                errors.append(f"{channel} skipped: {self.skipped[channel]}")
                continue
            except ToolkitError as exc:  # e.g. no inventory for the users channel: the next channel's turn
                by, error = None, self.notifier.scrub(exc.message)
            except Exception as exc:  # a fault in one channel never stops the others
                by, error = None, self.notifier.scrub(f"{type(exc).__name__}: {exc}")
            used = True
            if by:
                return by, None
            errors.append(f"{channel}: {error}")
        return None, ("; ".join(errors) or "no channel") if used else None

    def channel(self, name: str) -> tuple[str | None, str | None]:
        with self._lock:
            self.tried.add(name)
        if name == FILE:
            ok = self.write_file(last_resort=False)
            return (FILE, None) if ok else (None, "cannot write notifications.log")
        if name == USERS:
            return self.users()
        channel = self.config.channels[name]
        return self.attempt(
            name, lambda timeout: delivery.send_external(channel, self.title, self.message, self.priority, timeout)
        )

    def users(self) -> tuple[str | None, str | None]:
        fleet = self.notifier.fleet
        if fleet is None:
            raise Skip("no application hosts known (this notifier has no inventory)")
        if "database" in self.failed:
            raise Skip("the application's database is down: users cannot be reached until it is back")
        users = delivery.UsersChannel(fleet, self.config, self.notifier.home, self.notifier._add_secret)
        hosts = delivery.app_hosts(fleet, self.limit)
        delivered: list[str] = []
        errors: list[str] = []
        for host in hosts:
            try:
                steps = users.steps(host, self.failed, self.title, self.message, self.priority, self.deadline)
            except Skip as skip:
                errors.append(str(skip))
                with self._lock:
                    self.skipped[f"users@{host.host}"] = self.notifier.scrub(str(skip))
                continue
            for step_name, step in steps:
                by, error = self.attempt(step_name, step)
                if by:
                    delivered.append(by)
                    break
                errors.append(f"{step_name}: {error}")
            if delivered and self.config.users.deliver_to == "first":
                break
        with self._lock:
            tried = any(a["channel"].startswith("users:") for a in self.attempts)
        if not delivered and not tried:
            raise Skip("; ".join(errors) or "no application host targeted")  # no host had a way to its users
        if self.config.users.deliver_to == "every" and len(delivered) < len(hosts):
            reached = ", ".join(delivered) or "none"
            return None, self.notifier.scrub(f"not every host took it (reached: {reached}); " + "; ".join(errors))
        if delivered:
            return delivered[0], None
        return None, self.notifier.scrub("; ".join(errors) or "no application host targeted")

    def attempt(self, name: str, send: Callable[[float], str]) -> tuple[str | None, str | None]:
        """Try ``send`` with retries and exponential backoff within the deadline."""
        retry = self.config.retry
        delay = retry.backoff_s
        error: str | None = None
        for attempt in range(1, retry.attempts + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                error = error or f"the deadline ({retry.deadline_s:g} s) passed before {name} could be tried"
                if attempt == 1:
                    self.record(name, "failed", error, None, attempt)
                break
            try:
                detail = send(min(retry.timeout_s, remaining))
            except PermanentError as exc:
                error = str(exc)
                self.record(name, "failed", error, None, attempt)
                return None, self.notifier.scrub(error)
            except Skip:
                raise
            except DeliveryError as exc:
                error = str(exc)
                self.record(name, "failed", error, None, attempt)
            except Exception as exc:  # anything unexpected counts as a failed attempt, never stops the others
                error = f"{type(exc).__name__}: {exc}"
                self.record(name, "failed", error, None, attempt)
            else:
                self.record(name, "delivered", None, detail, attempt)
                return name, None
            if attempt < retry.attempts:
                if self.deadline - time.monotonic() <= delay:
                    error = f"{error}; no time left before the deadline for another try"
                    break
                time.sleep(delay)
                delay *= retry.backoff_factor
        return None, self.notifier.scrub(error or "not delivered")

    def write_file(self, *, last_resort: bool) -> bool:
        """Append the notification to notifications.log (fsync'd); ``last_resort``: nobody else took it."""
        line = {
            "id": self.id,
            "at": iso(utc_now()),
            "priority": self.priority,
            "title": self.title,
            "message": self.message,
            **({"last_resort": True} if last_resort else {}),
        }
        try:
            with self._lock:
                self.notifier.log_file.parent.mkdir(parents=True, exist_ok=True)
                with self.notifier.log_file.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            self.record(FILE, "failed", f"{self.notifier.log_file}: {exc.strerror or exc}", None, 1)
            return False
        self.record(FILE, "kept" if last_resort else "delivered", None, str(self.notifier.log_file), 1)
        return True


__all__ = ["LEVEL_PRIORITY", "PRIORITIES", "Delivery", "Notifier"]
