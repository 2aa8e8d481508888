"""Delivery through the channels of :mod:`notification_emergency.channels`: Apprise for the operators'
channels, and the application's users through one host (or every host) of the application, by the path that
works: the WebSocket path, the flash path of the API, or the flash store on the host through Ansible.

Every error text raised here may hold a secret (a URL, a token): the notifier scrubs it
(:meth:`ChannelConfig.scrub <notification_emergency.channels.ChannelConfig.scrub>`) before it is shown or
recorded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import yaml

from notification_emergency.catalogue import APP_PRIORITY, COMPONENTS
from notification_emergency.channels import DOCS, ChannelConfig, ExternalChannel, apprise_quiet, instantiate
from notification_emergency.probes import read_web_health

if TYPE_CHECKING:
    from notification_emergency.inventory import Fleet


class DeliveryError(Exception):
    """One attempt failed; another attempt may work."""


class PermanentError(DeliveryError):
    """One attempt failed in a way a retry cannot fix (refused input, wrong token): go to the next channel."""


class Skip(Exception):
    """The channel cannot be used for this notification (the component it needs is down): not an attempt."""


# Apprise reports why a notification failed only through its logger. Its records are kept from the root
# logger (they may hold URLs) and collected per thread while a channel is tried.
_NOTIFY_TYPE = {"critical": "failure", "high": "warning", "medium": "info", "low": "info"}


def send_external(channel: ExternalChannel, title: str, message: str, priority: str, timeout: float) -> str:
    """One attempt through Apprise; returns a short description, raises DeliveryError with Apprise's reason."""
    with apprise_quiet() as lines:
        plugin = instantiate(channel.url)
        if plugin is None:  # checked at load; only a changed environment gets here
            raise PermanentError(f"{channel.masked} is not a valid Apprise URL")
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        try:
            ok = plugin.notify(body=message or title, title=title, notify_type=_NOTIFY_TYPE[priority])
        except Exception as exc:  # a plugin bug must not stop the other channels
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not ok:
        raise DeliveryError("; ".join(dict.fromkeys(lines)) or "the service did not accept the notification")
    return f"sent to {channel.masked}"


@dataclass(frozen=True)
class AppHost:
    """Where one host of the application answers (from the inventory, as the watch reads it)."""

    host: str
    web_url: str
    root: str | None


def app_hosts(fleet: Fleet, limit: str | None) -> list[AppHost]:
    return [AppHost(t.host, t.web_url, t.root) for t in fleet.targets(limit)]


Step = tuple[str, Callable[[float], str]]


class UsersChannel:
    """The application's users, through one host (or every host) of the application.

    For each host the steps are chosen by what works: the WebSocket path when the web process, Redis and the
    WebSocket process are healthy; else the flash path of the API; else (web process down) the flash store
    on the host through Ansible. A database that is down leaves no way to users on that host."""

    def __init__(self, fleet: Fleet, config: ChannelConfig, home: Path, add_secret: Callable[[str], None]):
        self.fleet = fleet
        self.config = config
        self.home = home
        self.add_secret = add_secret

    def token(self, host: AppHost) -> str:
        settings = self.config.users
        if settings.api_token_env:
            value = os.environ.get(settings.api_token_env, "").strip()
            if not value:
                raise PermanentError(
                    f"users.api_token_env names {settings.api_token_env}, which is not set; export the API token"
                )
        elif settings.api_token_file:
            value = _read_token(settings.api_token_file)
        elif host.root and Path(host.root, "etc", "secrets.yml").is_file():
            value = _read_token(Path(host.root, "etc", "secrets.yml"))
        else:
            raise PermanentError(
                f"no API token for {host.host}: its secrets file is not on this machine; set users.api_token_env "
                f"or users.api_token_file in the channels file ({DOCS})"
            )
        self.add_secret(value)
        return value

    def health(self, host: AppHost, timeout: float) -> tuple[set[str], str | None]:
        """(components not healthy, mode) from the web process's /health; an unreachable web is ``web``."""
        try:
            web = read_web_health(
                requests.get(f"{host.web_url}/health", timeout=timeout, headers={"Connection": "close"})
            )
        except (requests.RequestException, ValueError):
            return {"web"}, None
        if not web.body:  # not the application answering (a proxy's error page, say)
            return {"web"}, None
        down = {
            name for name, state in web.components.items() if name in COMPONENTS and state in ("failed", "degraded")
        }
        return down, web.mode

    def steps(
        self, host: AppHost, failed: set[str], title: str, message: str, priority: str, deadline: float
    ) -> list[Step]:
        down = set(failed)
        mode = None
        if "database" not in down and "web" not in down:
            seen, mode = self.health(host, max(0.2, min(2.0, deadline - time.monotonic())))
            down |= seen
        if "database" in down:
            raise Skip(f"{host.host}: the database is down, the application cannot store a notification")
        payload = {"user": "*", "title": title[:200], "message": message[:5000], "priority": APP_PRIORITY[priority]}
        steps: list[Step] = []
        if "web" not in down:
            if mode != "legacy" and not down & {"websocket", "redis"}:
                steps.append((f"users:websocket@{host.host}", lambda t: self.post(host, payload, t, realtime=True)))
            steps.append(
                (
                    f"users:flash@{host.host}",
                    lambda t: self.post(host, {**payload, "channel": "flash"}, t, realtime=False),
                )
            )
        if self.config.users.host_store:
            steps.append((f"users:host-store@{host.host}", lambda t: self.host_store(host, payload, t)))
        if not steps:
            raise Skip(f"{host.host}: the web process is down and users.host_store is false")
        return steps

    def post(self, host: AppHost, payload: dict[str, Any], timeout: float, *, realtime: bool) -> str:
        token = self.token(host)
        try:
            answer = requests.post(
                f"{host.web_url}/api/notifications",
                json=payload,
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"POST {host.web_url}/api/notifications: {type(exc).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 201:
            error = f"POST {host.web_url}/api/notifications answered {answer.status_code}: {body.get('error', '')}"
            if answer.status_code in (400, 401, 403, 409):
                raise PermanentError(error)
            raise DeliveryError(error)
        detail = (
            f"application notification {body.get('id')} for {body.get('recipients')} users, "
            f"channel {body.get('channel')}"
        )
        if realtime and body.get("channel") == "websocket" and not body.get("published"):
            detail += " (stored, not published in real time: replayed when the users reconnect)"
        return detail

    def host_store(self, host: AppHost, payload: dict[str, Any], timeout: float) -> str:
        """``notification-service notify`` on the host, through Ansible: needs only the database."""
        from notification_emergency.runner import run_module

        argv = [
            "{{ notification_service_python | default(notification_service_root | default('/srv/notification')"
            " ~ '/venv/bin/python') | dirname }}/notification-service",
            "notify",
            "--config",
            "{{ notification_service_root | default('/srv/notification') }}/etc/config.yml",
            "--user",
            "*",
            # --name=value: a title that begins with "-" is still the title, not an option
            "--title={{ notification_title }}",
            "--message={{ notification_message }}",
            "--priority={{ notification_priority }}",
        ]
        # The title and message are data: passed as variables marked unsafe, never rendered (runner.run_module).
        run = run_module(
            "ansible.builtin.command",
            {"argv": argv},
            data={
                "notification_title": payload["title"],
                "notification_message": payload["message"],
                "notification_priority": payload["priority"],
            },
            hosts=host.host,
            inventory=self.fleet.sources,
            timeout=max(5, int(timeout) + 1),
            artifacts_root=self.home / "artifacts",
        )
        result = run.results.get(host.host) or {}
        if run.status != "successful" or result.get("rc") != 0:
            why = result.get("stderr") or result.get("msg") or f"ansible {run.status} (rc {run.rc})"
            raise DeliveryError(f"notification-service notify on {host.host}: {str(why).strip()[-300:]}")
        try:
            body = json.loads(result.get("stdout") or "{}")
        except ValueError:
            body = {}
        return (
            f"stored on {host.host} for the next page: notification {body.get('id')} ({body.get('recipients')} users)"
        )


def _read_token(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PermanentError(f"cannot read the API token from {path}: {type(exc).__name__}") from None
    token = data.get("api_token") if isinstance(data, dict) else data
    if not isinstance(token, str) or not token.strip():
        raise PermanentError(f"{path} holds no api_token")
    return token.split()[0]  # a bare token file may carry more words (Ansible's password lookup: salt=...)
