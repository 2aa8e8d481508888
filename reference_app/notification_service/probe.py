"""End-to-end probe: a notification sent through the HTTP API reaches the user by the current mode's channel.

WebSocket mode: a real Socket.IO client receives and claims it. Legacy mode: the user's next page shows it
once as a flash message (and the page after does not).

The whole probe runs under one deadline (``--timeout``); it never hangs, whatever the services do.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any

import requests

from .config import Config


class ProbeError(Exception):
    pass


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, step: str) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0.05:
            raise ProbeError(f"timed out before: {step}")
        return remaining


def _api(config: Config, deadline: _Deadline, path: str, body: dict[str, Any], step: str) -> dict[str, Any]:
    url = f"{config.web_base_url}{path}"
    timeout = min(deadline.left(step), 10.0)
    try:
        response = requests.post(
            url,
            json=body,
            timeout=(min(timeout, 3.0), timeout),
            headers={"Authorization": f"Bearer {config.secrets.api_token}"},
        )
    except requests.RequestException as exc:
        raise ProbeError(f"{step}: POST {url} failed: {type(exc).__name__}") from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code not in (200, 201) or not isinstance(data, dict):
        detail = data.get("error") if isinstance(data, dict) else None
        raise ProbeError(f"{step}: POST {url} answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    return data


def _run_flash(config: Config, user: str, deadline: _Deadline) -> dict[str, Any]:
    """Legacy mode: the notification must show as a flash message on the user's next page, once."""
    session = requests.Session()
    base = config.web_base_url

    def get(path: str, step: str) -> str:
        timeout = min(deadline.left(step), 10.0)
        try:
            response = session.get(f"{base}{path}", timeout=(min(timeout, 3.0), timeout))
        except requests.RequestException as exc:
            raise ProbeError(f"{step}: GET {base}{path} failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ProbeError(f"{step}: GET {base}{path} answered HTTP {response.status_code}")
        return response.text

    get(f"/login?user={user}", "sign in")
    get("/", "read the messages already waiting")
    title = f"probe {uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    created = _api(
        config,
        deadline,
        "/api/notifications",
        {"user": user, "title": title, "message": "notification-service probe", "priority": "low"},
        "send a notification",
    )
    if created.get("channel") != "flash":
        raise ProbeError(f"send a notification: channel is {created.get('channel')!r}, not flash")
    page = get("/", "show the flash message")
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    if page.count(title) != 1:
        raise ProbeError(f"notification {created.get('id')} is not shown once as a flash message on the next page")
    if title in get("/", "check it is shown only once"):
        raise ProbeError(f"notification {created.get('id')} was flashed again on a second page")
    return {
        "ok": True,
        "channel": "flash",
        "notification_id": created.get("id"),
        "latency_ms": latency_ms,
        "user": user,
    }


def _run(config: Config, user: str, deadline: _Deadline) -> dict[str, Any]:
    if config.mode == "legacy":
        return _run_flash(config, user, deadline)
    if not config.websocket.enabled:
        raise ProbeError(f"mode is {config.mode} but websocket.enabled is false; nothing can deliver by WebSocket")
    # Imported here: python-socketio takes two thirds of the probe's start-up, and the legacy probe needs none.
    import socketio

    namespace = config.websocket.namespace
    token = _api(config, deadline, "/api/ws-token", {"user": user}, "get a websocket token").get("token")
    if not isinstance(token, str):
        raise ProbeError("get a websocket token: no token in the answer")

    received: queue.Queue[dict[str, Any]] = queue.Queue()
    client = socketio.Client(reconnection=False, request_timeout=5)
    client.on("notification", lambda data: received.put(data) if isinstance(data, dict) else None, namespace=namespace)
    url = config.websocket.public_url
    try:
        try:
            client.connect(
                url,
                namespaces=[namespace],
                auth={"token": token},
                transports=["websocket"],
                wait_timeout=max(1, int(deadline.left("connect to the websocket process"))),
            )
        except socketio.exceptions.ConnectionError as exc:
            raise ProbeError(f"connect to {url}{namespace} failed: {exc}") from None
        try:
            pong = client.call("ping", namespace=namespace, timeout=max(1, int(deadline.left("ping"))))
        except socketio.exceptions.TimeoutError:
            raise ProbeError("ping: no answer from the websocket process") from None
        if pong != "pong":
            raise ProbeError(f"ping: unexpected answer {pong!r}")

        title = f"probe {uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        created = _api(
            config,
            deadline,
            "/api/notifications",
            {"user": user, "title": title, "message": "notification-service probe", "priority": "low"},
            "send a notification",
        )
        notification_id = created.get("id")
        if created.get("channel") != "websocket":
            raise ProbeError(f"send a notification: channel is {created.get('channel')!r}, not websocket")
        while True:
            try:
                event = received.get(timeout=deadline.left(f"receive notification {notification_id}"))
            except queue.Empty:
                raise ProbeError(f"notification {notification_id} did not arrive on the socket") from None
            if event.get("id") == notification_id:
                break
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        try:
            answer = client.call(
                "ack", {"id": notification_id}, namespace=namespace, timeout=max(1, int(deadline.left("ack")))
            )
        except socketio.exceptions.TimeoutError:
            raise ProbeError(f"ack of notification {notification_id} was not answered") from None
        if not isinstance(answer, dict) or answer.get("claimed") is not True:
            raise ProbeError(f"ack of notification {notification_id} did not claim it: {answer!r}")
        return {
            "ok": True,
            "channel": "websocket",
            "notification_id": notification_id,
            "latency_ms": latency_ms,
            "user": user,
        }
    finally:
        if client.connected:
            closer = threading.Thread(target=client.disconnect, daemon=True)
            closer.start()
            closer.join(1.0)


def run_probe(config: Config, user: str, timeout: float) -> dict[str, Any]:
    """Run the probe in a daemon thread and give up at the deadline, whatever blocks."""
    result: dict[str, Any] = {"ok": False, "error": f"probe timed out after {timeout:g} s"}
    deadline = _Deadline(timeout)

    def target() -> None:
        nonlocal result
        try:
            result = _run(config, user, deadline)
        except ProbeError as exc:
            result = {"ok": False, "error": str(exc)}
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    worker = threading.Thread(target=target, name="probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return result
