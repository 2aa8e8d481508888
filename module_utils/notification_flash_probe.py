"""The legacy mode's end-to-end check, made from outside the service the way a user's browser sees it.

A user signs in, a notification is sent through the service's HTTP API, and the user's next page must show it
once as a flash message (and the page after must not). Standard library only (managed hosts, Python 3.8+): no
code of the service runs, no Python start-up of its CLI (a third of a CPU-second per host, measured in
docs/fleet-speed.md), and nothing runs with the service's or root's privileges beyond reading config.yml and the
secrets file. The WebSocket mode's check still runs the service's own ``probe`` (a Socket.IO client).

Everything the service answers is data: it is compared and counted, never evaluated.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from ansible.module_utils.notification_common import CheckTimeout, Deadline, HealthArgumentError
from ansible.module_utils.notification_health_plan import ServiceConfig
from ansible.module_utils.notification_service_config import path_in_config, read_api_token, read_service_config

MAX_BODY = 2 * 1024 * 1024  # a page or an API answer; more is not the reference pages


class FlashProbeError(Exception):
    """The check failed; the message names the step and what was seen."""


def _left(deadline: Deadline, step: str) -> float:
    """Seconds left for ``step`` (at most 10 per request), else FlashProbeError naming the step."""
    deadline.step = step
    try:
        return min(deadline.remaining(), 10.0)
    except CheckTimeout:
        raise FlashProbeError(f"timed out before: {step}") from None


class _Browser:
    """One user's session: cookies kept, redirects followed, no proxy (the service is on this host)."""

    def __init__(self, base: str, deadline: Deadline) -> None:
        self.base = base
        self.deadline = deadline
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(self, method: str, path: str, step: str, body: Any = None, token: str | None = None) -> str:
        url = self.base + path
        headers = {"Accept": "text/html,application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=_left(self.deadline, step)) as response:
                return response.read(MAX_BODY).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                answer = json.loads(exc.read(MAX_BODY).decode("utf-8", "replace"))
                detail = f": {answer.get('error')}" if isinstance(answer, dict) and answer.get("error") else ""
            except ValueError:
                pass
            raise FlashProbeError(f"{step}: {method} {url} answered HTTP {exc.code}{detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FlashProbeError(f"{step}: {method} {url} failed: {reason}") from None


def web_base_url(config_path: str) -> tuple[str, str | None]:
    """(where this host reaches the web process, the service's api_token), read from config.yml and its secrets as
    the health checks read them (``notification_health_plan.ServiceConfig``)."""
    try:
        config = ServiceConfig(config_path, read_service_config(config_path))
    except HealthArgumentError as exc:
        raise FlashProbeError(f"read the service's configuration: {exc}") from None
    if config.web_port is None:
        raise FlashProbeError(f"read the service's configuration: {config.missing('web.port', 'flash delivery')}")
    token, why_not = read_api_token(path_in_config(config.data.get("secrets_file"), config.etc_dir))
    if token is None:
        raise FlashProbeError(f"send a notification: {why_not}")
    return config.web_url(""), token


def flash_probe(config_path: str, user: str, timeout: float) -> dict[str, Any]:
    """Sign in as ``user``, send a notification, see it flashed once on the next page and not on the one after.

    Returns the answer the service's own ``probe`` gives (ok, channel, notification_id, latency_ms, user);
    raises FlashProbeError naming the step that failed.
    """
    deadline = Deadline(timeout)
    base, token = web_base_url(config_path)
    browser = _Browser(base, deadline)
    browser.request("GET", "/login?" + urllib.parse.urlencode({"user": user}), "sign in")
    browser.request("GET", "/", "read the messages already waiting")
    title = f"probe {uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    text = browser.request(
        "POST",
        "/api/notifications",
        "send a notification",
        body={"user": user, "title": title, "message": "notification-emergency verification", "priority": "low"},
        token=token,
    )
    try:
        created = json.loads(text)
    except ValueError:
        created = None
    if not isinstance(created, dict):
        raise FlashProbeError("send a notification: the answer is not a JSON object")
    if created.get("channel") != "flash":
        raise FlashProbeError(f"send a notification: channel is {created.get('channel')!r}, not flash")
    page = browser.request("GET", "/", "show the flash message")
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    shown = page.count(title)
    if shown != 1:
        raise FlashProbeError(
            f"notification {created.get('id')} is shown {shown} times as a flash message on the next page, not once"
        )
    if title in browser.request("GET", "/", "check it is shown only once"):
        raise FlashProbeError(f"notification {created.get('id')} was flashed again on a second page")
    return {
        "ok": True,
        "channel": "flash",
        "notification_id": created.get("id"),
        "latency_ms": latency_ms,
        "user": user,
    }
