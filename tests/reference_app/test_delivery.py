"""WebSocket delivery through real processes: live events, acks claimed once, replay, broadcast."""

from __future__ import annotations

import pytest
import requests
import socketio
from notification_service.redisq import PENDING_KEY

from .harness import SocketClient, Stack


def test_notification_reaches_client_and_is_claimed_once(service: Stack) -> None:
    client = service.client("alice-live", auto_ack=False)
    try:
        assert client.sio.call("ping", namespace=client.namespace, timeout=5) == "pong"
        created = service.notify("alice-live", "live one", message="hello", priority="critical")
        assert created["channel"] == "websocket"
        event = client.wait_for_event(created["id"])
        assert (event["title"], event["message"], event["priority"]) == ("live one", "hello", "critical")
        member = f"{created['id']}:alice-live"
        assert service.redis.client().zscore(PENDING_KEY, member) is not None

        assert client.ack(created["id"]) == {"claimed": True}
        assert client.ack(created["id"]) == {"claimed": False}
    finally:
        client.close()
    row = service.deliveries("alice-live")[created["id"]]
    assert (row["state"], row["channel"]) == ("delivered", "websocket")
    assert row["delivered_at"]
    assert service.redis.client().zscore(PENDING_KEY, member) is None


def test_a_second_connection_of_the_same_user_cannot_claim_again(service: Stack) -> None:
    first = service.client("twice-user", auto_ack=False)
    second = service.client("twice-user", auto_ack=False)
    try:
        created = service.notify("twice-user", "to both tabs")
        first.wait_for_event(created["id"])
        second.wait_for_event(created["id"])
        answers = [first.ack(created["id"])["claimed"], second.ack(created["id"])["claimed"]]
        assert sorted(answers) == [False, True]
    finally:
        first.close()
        second.close()


def test_sent_while_offline_is_replayed_on_connect(service: Stack) -> None:
    ids = [service.notify("offline-bob", f"offline {index}")["id"] for index in range(3)]
    client = service.client("offline-bob")
    try:
        for notification_id in ids:
            client.wait_for_claim(notification_id)
        client.wait_idle()
        assert sorted(client.claimed) == sorted(ids)
    finally:
        client.close()
    rows = service.deliveries("offline-bob")
    assert all(rows[i]["state"] == "delivered" and rows[i]["channel"] == "websocket" for i in ids)

    again = service.client("offline-bob")
    try:
        again.wait_idle(quiet=0.3)
        assert not set(again.event_ids()) & set(ids), "delivered notifications must not be replayed"
    finally:
        again.close()


def test_broadcast_reaches_every_known_user(service: Stack) -> None:
    users = ["cast-a", "cast-b", "cast-c"]
    clients = [service.client(user) for user in users]
    try:
        created = service.notify("*", "to everyone", priority="high")
        assert created["recipients"] >= len(users)
        for client in clients:
            event = client.wait_for_event(created["id"])
            assert event["broadcast"] is True
            client.wait_for_claim(created["id"])
    finally:
        for client in clients:
            client.close()
    for user in users:
        row = service.deliveries(user)[created["id"]]
        assert (row["state"], row["channel"]) == ("delivered", "websocket")


def test_connection_with_a_bad_token_is_refused(service: Stack) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        SocketClient(service.ws_url, "forged.token.value")
    with pytest.raises(socketio.exceptions.ConnectionError):
        client = socketio.Client(reconnection=False)
        client.connect(service.ws_url, namespaces=["/notifications"], transports=["websocket"], wait_timeout=5)


def test_socketio_accepts_only_the_web_and_public_origins(service: Stack) -> None:
    handshake = f"{service.ws_url}/socket.io/?EIO=4&transport=polling"
    allowed = requests.get(handshake, headers={"Origin": service.web_url}, timeout=5)
    assert allowed.status_code == 200
    assert allowed.headers.get("Access-Control-Allow-Origin") == service.web_url
    assert requests.get(handshake, headers={"Origin": service.ws_url}, timeout=5).status_code == 200
    assert requests.get(handshake, headers={"Origin": "http://evil.example"}, timeout=5).status_code == 400


def test_a_monitoring_connection_can_ping_and_is_sent_nothing(service: Stack) -> None:
    from .harness import API_TOKEN

    monitor = socketio.Client(reconnection=False)
    received: list[object] = []
    monitor.on("notification", received.append, namespace="/notifications")
    monitor.connect(
        service.ws_url,
        namespaces=["/notifications"],
        transports=["websocket"],
        auth={"api_token": API_TOKEN},
        wait_timeout=5,
    )
    try:
        assert monitor.call("ping", namespace="/notifications", timeout=5) == "pong"
        assert monitor.call("ack", {"id": 1}, namespace="/notifications", timeout=5)["claimed"] is False
        service.notify("*", "broadcast while monitoring")
        monitor.sleep(0.5)
        assert received == [], "a monitoring connection is no user and gets no notifications"
    finally:
        monitor.disconnect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        intruder = socketio.Client(reconnection=False)
        intruder.connect(
            service.ws_url,
            namespaces=["/notifications"],
            transports=["websocket"],
            auth={"api_token": "wrong"},
            wait_timeout=5,
        )
