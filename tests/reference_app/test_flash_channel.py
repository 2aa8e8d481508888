"""The flash store as a way in: the API's ``channel`` field and ``notification-service notify``.

The toolkit reaches users through them when the WebSocket path (WebSocket process or Redis) or the web
process itself is down: a delivery on channel ``flash`` is shown on the user's next page in either mode and
is never sent over Socket.IO.
"""

from __future__ import annotations

import json
import uuid

from .harness import Stack


def test_api_channel_flash_in_websocket_mode_is_shown_on_the_next_page_not_over_socketio(service: Stack) -> None:
    user = f"flash-api-{uuid.uuid4().hex[:6]}"
    browser = service.login(user)
    client = service.client(user)
    try:
        title = f"via flash {uuid.uuid4().hex[:6]}"
        created = service.notify(user, title, message="body", priority="high", channel="flash")
        assert created["channel"] == "flash" and created["published"] is False
        page = service.page(browser)
        assert page.mode == "websocket"
        assert page.flashes == [("high", f"{title}: body")]
        assert service.page(browser).flashes == [], "shown once"
        client.wait_idle()
        assert created["id"] not in client.event_ids(), "a flash delivery never goes over Socket.IO"
    finally:
        client.close()
    row = service.deliveries(user)[created["id"]]
    assert row["channel"] == "flash" and row["state"] == "delivered"


def test_api_channel_is_checked(service: Stack) -> None:
    response = service.api("POST", "/api/notifications", json={"user": "*", "title": "t", "channel": "pigeon"})
    assert response.status_code == 400 and "'channel' must be one of websocket, flash" in response.json()["error"]
    default = service.notify(f"flash-default-{uuid.uuid4().hex[:6]}", "default channel")
    assert default["channel"] == "websocket", "without the field the mode decides, as before"


def test_cli_notify_stores_a_flash_for_every_known_user(service: Stack) -> None:
    users = [f"flash-cli-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    browsers = [service.login(user) for user in users]
    title = f"from the host {uuid.uuid4().hex[:6]}"
    result = service.cli(
        "notify", "--user", "*", "--title", title, "--message", "web is down", "--priority", "critical"
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["channel"] == "flash" and created["recipients"] >= 2
    for browser in browsers:
        assert service.page(browser).flashes == [("critical", f"{title}: web is down")]


def test_cli_notify_refuses_bad_input_in_one_line(service: Stack) -> None:
    result = service.cli("notify", "--user", "*", "--title", "t", "--priority", "urgent")
    assert result.returncode == 2
    assert json.loads(result.stdout)["ok"] is False
    assert result.stderr.strip() == (
        "notification-service: error: --priority must be one of low, normal, high, critical; got 'urgent'"
    )
    assert service.cli("notify", "--user", "no spaces", "--title", "t").returncode == 2


def test_api_channel_websocket_is_refused_in_legacy_mode(switch_stack: Stack) -> None:
    switch_stack.set_mode("legacy")
    try:
        response = switch_stack.api(
            "POST", "/api/notifications", json={"user": "*", "title": "t", "channel": "websocket"}
        )
        assert response.status_code == 409 and "mode legacy" in response.json()["error"]
        assert switch_stack.notify("*", "flash is fine", channel="flash")["channel"] == "flash"
    finally:
        switch_stack.set_mode("websocket")
