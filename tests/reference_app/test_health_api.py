"""/health, the page, and the HTTP API's authentication and validation."""

from __future__ import annotations

import pytest
import requests

from .harness import API_TOKEN, Stack


def test_health_reports_every_component_healthy(service: Stack) -> None:
    status, body = service.health()
    assert status == 200
    assert body["status"] == "healthy", body
    assert body["mode"] == "websocket"
    assert body["websocket_enabled"] is True
    assert body["version"] == "1.0.0"
    assert set(body["components"]) == {"web", "database", "redis", "websocket"}
    for name, component in body["components"].items():
        assert component["status"] == "healthy", (name, component)
        assert isinstance(component["latency_ms"], (int, float))
    assert set(body["pending"]) == {"websocket", "flash"}
    assert body["emergency"]["active"] is False

    ws = requests.get(f"{service.ws_url}/health", timeout=5)
    assert ws.status_code == 200
    ws_body = ws.json()
    assert ws_body["status"] == "healthy"
    assert ws_body["components"]["redis"]["status"] == "healthy"
    assert ws_body["components"]["database"]["status"] == "healthy"


def test_page_shows_user_mode_and_socket_client(service: Stack) -> None:
    anonymous = service.page(requests.Session())
    assert anonymous.mode == "websocket"
    assert 'name="user"' in anonymous.html  # the sign-in form

    browser = service.login("page-user")
    page = service.page(browser)
    assert page.mode == "websocket"
    assert '<strong id="current-user">page-user</strong>' in page.html
    assert 'id="notification-config"' in page.html
    assert "/static/socket.io.min.js" in page.html
    assert "https://" not in page.html  # nothing from a CDN

    script = browser.get(f"{service.web_url}/static/socket.io.min.js", timeout=5)
    assert script.status_code == 200
    assert "Socket.IO v4.8.1" in script.text[:200]
    assert browser.get(f"{service.web_url}/static/notifications.js", timeout=5).status_code == 200


def test_login_rejects_bad_user_names(service: Stack) -> None:
    response = requests.get(f"{service.web_url}/login", params={"user": "../etc"}, timeout=5)
    assert response.status_code == 400


def test_api_token_missing_is_401_and_says_how_to_send_it(service: Stack) -> None:
    response = service.api("POST", "/api/notifications", token=None, json={"user": "x", "title": "t"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert "Authorization: Bearer" in error
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert service.api("GET", "/api/notifications", token=None, params={"user": "x"}).status_code == 401
    assert service.api("POST", "/api/ws-token", token=None, json={"user": "x"}).status_code == 401


def test_api_wrong_token_is_403(service: Stack) -> None:
    response = service.api("POST", "/api/notifications", token="wrong-token", json={"user": "x", "title": "t"})
    assert response.status_code == 403
    assert "invalid" in response.json()["error"]
    assert service.api("POST", "/api/ws-token", token=API_TOKEN + "x", json={"user": "x"}).status_code == 403


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        ({"user": "api-user", "title": "t", "priority": "urgent"}, "priority", "low, normal, high, critical"),
        ({"user": "api-user"}, "title", "required"),
        ({"user": "api-user", "title": "   "}, "title", "non-empty"),
        ({"user": "api-user", "title": "t", "type": "alert"}, "type", "allowed fields: user, title, message, priority"),
        ({"title": "t"}, "user", "'*'"),
        ({"user": "no spaces allowed", "title": "t"}, "user", "user name"),
        ({"user": "api-user", "title": "t", "message": 5}, "message", "string"),
    ],
)
def test_api_bad_field_is_400_naming_the_field(service: Stack, body: dict[str, object], field: str, hint: str) -> None:
    response = service.api("POST", "/api/notifications", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"'{field}'" in error
    assert hint in error


def test_api_rejects_a_body_that_is_not_a_json_object(service: Stack) -> None:
    response = service.api("POST", "/api/notifications", data="not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "the request body is not valid JSON (Expecting value at line 1 column 1)" in response.json()["error"]
    response = service.api("POST", "/api/notifications", json=["a", "list"])
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]


def test_api_created_answer_and_listing(service: Stack) -> None:
    created = service.notify("api-list-user", "hello", message="body", priority="high")
    assert set(created) >= {"id", "recipients", "channel"}
    assert created["recipients"] == 1
    assert created["channel"] == "websocket"
    rows = service.deliveries("api-list-user")
    row = rows[created["id"]]
    assert (row["state"], row["channel"], row["title"], row["message"], row["priority"]) == (
        "pending",
        "websocket",
        "hello",
        "body",
        "high",
    )
    assert service.api("GET", "/api/notifications", params={"user": ""}).status_code == 400
