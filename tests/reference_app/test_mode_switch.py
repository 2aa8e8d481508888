"""Switching between WebSocket and legacy (flash) mode loses nothing and delivers nothing twice."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections import Counter

from notification_service.redisq import PENDING_KEY

from .harness import Stack, wait_until


def _stats(stack: Stack) -> dict[str, dict[str, int]]:
    result = stack.cli("stats")
    assert result.returncode == 0, result.stderr
    stats: dict[str, dict[str, int]] = json.loads(result.stdout)
    return stats


def test_websocket_to_legacy_flashes_every_pending_notification_once(switch_stack: Stack) -> None:
    stack = switch_stack
    stack.set_mode("websocket")
    user = "switch-ws-legacy"
    browser = stack.login(user)
    client = stack.client(user)
    client.close()  # the user goes offline

    titles = [f"offline {index} {uuid.uuid4().hex[:6]}" for index in range(5)]
    ids = {}
    for title in titles:
        created = stack.notify(user, title, message="body")
        assert created["channel"] == "websocket"
        ids[title] = created["id"]
    assert stack.redis.client().zcard(PENDING_KEY) >= len(titles)

    stack.set_mode("legacy")
    carried = stack.cli("carry-pending")
    assert carried.returncode == 0, carried.stderr
    assert json.loads(carried.stdout) == {"carried": len(titles)}
    assert stack.redis.client().zcard(PENDING_KEY) == 0
    again = stack.cli("carry-pending")
    assert json.loads(again.stdout) == {"carried": 0}

    page = stack.page(browser)
    assert page.mode == "legacy"
    shown = Counter(text for _category, text in page.flashes)
    assert shown == Counter(f"{title}: body" for title in titles)
    assert stack.page(browser).flashes == []

    rows = stack.deliveries(user)
    assert all(rows[i]["state"] == "delivered" and rows[i]["channel"] == "flash" for i in ids.values())
    stats = _stats(stack)
    assert stats["pending"] == {"websocket": 0, "flash": 0}
    assert stats["delivered"]["flash"] >= len(titles)

    _, health = stack.health()
    assert health["mode"] == "legacy"
    assert health["components"]["websocket"]["status"] == "disabled"
    assert health["status"] == "healthy"


def test_legacy_to_websocket_still_flashes_pending_flash_deliveries(switch_stack: Stack) -> None:
    stack = switch_stack
    stack.set_mode("legacy")
    user = "switch-legacy-ws"
    browser = stack.login(user)
    titles = [f"flash {index} {uuid.uuid4().hex[:6]}" for index in range(3)]
    for title in titles:
        assert stack.notify(user, title, priority="low")["channel"] == "flash"

    stack.set_mode("websocket")
    page = stack.page(browser)
    assert page.mode == "websocket"
    assert sorted(page.flashes) == sorted(("low", title) for title in titles)
    assert stack.page(browser).flashes == []

    client = stack.client(user)  # live delivery works again after the switch back
    try:
        created = stack.notify(user, "live again")
        assert created["channel"] == "websocket"
        client.wait_for_claim(created["id"])
    finally:
        client.close()
    assert _stats(stack)["pending"] == {"websocket": 0, "flash": 0}


def test_switch_mid_stream_claims_every_delivery_exactly_once(switch_stack: Stack) -> None:
    stack = switch_stack
    stack.set_mode("websocket")
    user = "race-user"
    total = 40
    browser = stack.login(user)
    client = stack.client(user)
    sent: dict[str, int] = {}
    flashed: list[str] = []
    posting_done = threading.Event()
    errors: list[BaseException] = []

    def post_all() -> None:
        try:
            for index in range(total):
                title = f"race {index:02d} {uuid.uuid4().hex[:6]}"
                sent[title] = stack.notify(user, title)["id"]
                time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            posting_done.set()

    def view_pages() -> None:
        try:
            while not posting_done.is_set():
                flashed.extend(text for _category, text in stack.page(browser).flashes)
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    poster = threading.Thread(target=post_all)
    viewer = threading.Thread(target=view_pages)
    poster.start()
    viewer.start()
    try:
        assert wait_until(lambda: len(sent) >= total // 3, 20, 0.01)
        stack.set_mode("legacy")
        carried = stack.cli("carry-pending")
        assert carried.returncode == 0, carried.stderr
        poster.join(60)
        viewer.join(60)
        assert not errors, errors
        client.wait_idle()
        for _ in range(2):
            flashed.extend(text for _category, text in stack.page(browser).flashes)
    finally:
        posting_done.set()
        client.close()

    all_ids = set(sent.values())
    assert len(all_ids) == total
    flashed_ids = [sent[text] for text in flashed]
    socket_ids = list(client.claimed)
    assert len(flashed_ids) == len(set(flashed_ids)), "a notification was flashed twice"
    assert len(socket_ids) == len(set(socket_ids)), "a notification was claimed twice on the socket"
    assert not set(flashed_ids) & set(socket_ids), "a notification was delivered by both channels"
    assert len(flashed_ids) + len(socket_ids) == total
    assert socket_ids and flashed_ids, "the switch must happen while notifications are in flight"
    assert set(flashed_ids) | set(socket_ids) == all_ids
    rows = stack.deliveries(user)
    for notification_id in all_ids:
        expected = "websocket" if notification_id in socket_ids else "flash"
        assert (rows[notification_id]["state"], rows[notification_id]["channel"]) == ("delivered", expected)
    assert _stats(stack)["pending"] == {"websocket": 0, "flash": 0}


def test_template_set_copied_in_place_takes_effect(switch_stack: Stack) -> None:
    """The toolkit may copy another set into templates/active (keeping modification times)."""
    stack = switch_stack
    stack.set_mode("websocket")
    active = stack.root / "templates" / "active"
    browser = stack.login("in-place-user")
    assert stack.page(browser).mode == "websocket"
    try:
        for name in ("base.html", "index.html"):
            shutil.copy2(stack.root / "templates" / "legacy" / name, active / name)
        assert stack.page(browser).mode == "legacy"
    finally:
        for name in ("base.html", "index.html"):
            shutil.copy2(stack.root / "templates" / "websocket" / name, active / name)
    assert stack.page(browser).mode == "websocket"


def test_invalid_config_written_while_running_keeps_the_previous_one(switch_stack: Stack) -> None:
    stack = switch_stack
    stack.set_mode("websocket")
    browser = stack.login("bad-reload-user")
    try:
        stack.config_path.write_text("mode: flash\n")
        page = stack.page(browser)
        assert page.mode == "websocket"
        _, health = stack.health()
        assert health["mode"] == "websocket"
        assert health["components"]["web"]["status"] == "degraded"
        assert "mode 'flash'" in health["components"]["web"]["error"]
        assert stack.notify("bad-reload-user", "still works")["channel"] == "websocket"
    finally:
        stack.set_mode("websocket")
    _, health = stack.health()
    assert health["components"]["web"]["status"] == "healthy"
    client = stack.client("bad-reload-user")
    try:
        client.wait_idle()
        assert len(client.claimed) == 1
    finally:
        client.close()
