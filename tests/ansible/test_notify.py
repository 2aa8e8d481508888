"""Notifications to the application's users on the shared sandbox host, for real: over WebSocket through the
service's API when it is healthy, into the flash store (shown on the next page) when the WebSocket process is
down or Redis is said to be, straight into the flash store on the host through Ansible when the web process
is down, and playbooks/notify.yml (what AWX runs) through ansible-runner."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from notification_emergency.api import EmergencyToolkit
from notification_emergency.runner import run_playbook
from tests.ansible.conftest import SandboxHost
from tests.ansible.recovery_helpers import Api
from tests.conftest import free_port_block
from tests.reference_app.harness import Page, SocketClient

HOOK_TOKEN = "hooktok-5e4d3c2b1a09f8e7"

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


class Webhook:
    """Operators' JSON webhook on 127.0.0.1 (the channel whose URL holds a secret)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port_block(1, start=28000)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hooks/{HOOK_TOKEN}"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def home(tmp_path: Path, webhook: Webhook) -> Path:
    """A state directory whose channels file routes high and critical to the users and the webhook."""
    home = tmp_path / "state"
    home.mkdir()
    (home / "channels.yml").write_text(
        yaml.safe_dump(
            {
                "channels": {"ops-hook": webhook.url},
                "routing": {"critical": ["users", "ops-hook"], "high": ["users"], "low": ["ops-hook"]},
                "retry": {"attempts": 2, "backoff_s": 0.2, "timeout_s": 5, "deadline_s": 60},
            }
        )
    )
    return home


@pytest.fixture
def toolkit(home: Path, sandbox_host: SandboxHost) -> EmergencyToolkit:
    return EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")


def login(host: SandboxHost) -> tuple[str, requests.Session]:
    """A user with a browser session (the application knows its users from their first login)."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    browser = requests.Session()
    browser.headers["Connection"] = "close"
    assert browser.get(f"{host.web_url}/login", params={"user": user}, timeout=10).status_code == 200
    return user, browser


def page(host: SandboxHost, browser: requests.Session) -> Page:
    return Page(browser.get(f"{host.web_url}/", timeout=10))


def secrets_absent(home: Path, *secrets: str) -> None:
    for path in home.rglob("*"):
        if path.is_file() and path.name != "channels.yml":
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, (path, secret)


def test_users_get_it_over_websocket_when_the_service_is_healthy(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost, webhook: Webhook, home: Path
) -> None:
    api = Api(sandbox_host.web_url, sandbox_host.box.api_token(sandbox_host.name))
    user, _browser = login(sandbox_host)
    client = SocketClient(
        f"http://127.0.0.1:{sandbox_host.vars['notification_service_websocket_port']}", api.ws_token(user)
    )
    try:
        result = toolkit.send_notification("Maintenance at 18:00", "Expect a short delay", "critical")
        assert result.ok, result.message
        note = result.data["notification"]
        assert sorted(note["channels"]) == ["ops-hook", f"users:websocket@{sandbox_host.name}"]
        [row] = [r for r in api.deliveries(user) if r["title"] == "Maintenance at 18:00"]
        event = client.wait_for_event(row["id"])
        assert event["message"] == "Expect a short delay" and event["priority"] == "critical" and event["broadcast"]
        client.wait_for_claim(row["id"])
    finally:
        client.close()
    assert webhook.bodies[0]["title"] == "Maintenance at 18:00", "operators got it too"
    [recorded] = toolkit.notifications()
    assert recorded["status"] == "delivered"
    assert {(a["channel"], a["outcome"]) for a in recorded["attempts"]} == {
        (f"users:websocket@{sandbox_host.name}", "delivered"),
        ("ops-hook", "delivered"),
    }
    secrets_absent(home, HOOK_TOKEN, api.token)


def test_users_get_it_as_a_flash_message_when_websocket_is_down(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    _user, browser = login(sandbox_host)
    sandbox_host.supervisorctl("stop", "notification-websocket")
    result = toolkit.send_notification("Live updates paused", "You will see notices on each page", "high")
    assert result.ok, result.message
    assert result.data["notification"]["channel"] == f"users:flash@{sandbox_host.name}", "found down by /health"
    assert page(sandbox_host, browser).flashes == [("high", "Live updates paused: You will see notices on each page")]
    assert page(sandbox_host, browser).flashes == [], "once"
    sandbox_host.mend()

    # The caller says Redis is down: the flash store is used even though every check is green.
    said = toolkit.send_notification("Redis maintenance", "", "high", failed_components=["redis_unavailable"])
    assert said.data["notification"]["channel"] == f"users:flash@{sandbox_host.name}"
    assert page(sandbox_host, browser).flashes == [("high", "Redis maintenance")]


def test_users_get_it_through_the_host_when_the_web_process_is_down(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost, home: Path
) -> None:
    _user, browser = login(sandbox_host)
    sandbox_host.supervisorctl("stop", "notification-web")
    # The title and message go to the host as variables marked unsafe: the {% raw %} guard this replaced was
    # escaped by closing it early. A title that begins with "-" is still the title, not an option.
    canary = home / "canary"
    title = f"--Site degraded {{% endraw %}}{{{{ lookup('pipe','touch {canary}') }}}}{{% raw %}}"
    message = f"We are on it {{{{ not a template }}}} $(touch {canary})"
    result = toolkit.send_notification(title, message, "high")
    assert result.ok, result.message
    note = result.data["notification"]
    assert note["channel"] == f"users:host-store@{sandbox_host.name}"
    assert [a["channel"] for a in note["attempts"]] == [f"users:host-store@{sandbox_host.name}"], (
        "the web process was found down: no attempt through it"
    )
    sandbox_host.mend()
    assert page(sandbox_host, browser).flashes == [("high", f"{title}: {message}")]
    assert not canary.exists()
    assert any((home / "artifacts").iterdir()), "the Ansible run left its artifacts"
    secrets_absent(home, HOOK_TOKEN, sandbox_host.box.api_token(sandbox_host.name))


def test_notify_playbook_through_the_runner_delivers(
    home: Path, sandbox_host: SandboxHost, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STATE_DIR", str(home))
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STORE", str(home / "events.db"))
    monkeypatch.delenv("NOTIFICATION_EMERGENCY_CHANNELS", raising=False)
    _user, browser = login(sandbox_host)
    sandbox_host.supervisorctl("stop", "notification-websocket")
    run = run_playbook(
        "notify.yml",
        inventory=[sandbox_host.box.inventory],
        extra_vars={
            "notify_title": "From AWX",
            "notify_message": "Sent by the job template",
            "notify_priority": "critical",
            "notify_failed_components": ["websocket"],
        },
        artifacts_root=home / "artifacts",
    )
    assert run.ok, run.status
    sent = run.stats["notification_notify"]
    assert sent["ok"] and sorted(sent["notification"]["channels"]) == ["ops-hook", f"users:flash@{sandbox_host.name}"]
    assert webhook.bodies[-1]["title"] == "From AWX"
    assert page(sandbox_host, browser).flashes == [("critical", "From AWX: Sent by the job template")]

    check = run_playbook(
        "notify.yml", inventory=[sandbox_host.box.inventory], extra_vars={"notify_title": "x"}, check=True
    )
    assert check.ok and check.stats["notification_notify"]["channels"]["channels"]["ops-hook"]["url"].endswith(
        "/***/***"
    )
    assert len(webhook.bodies) == 1, "--check sends nothing"

    refused = run_playbook(
        "notify.yml",
        inventory=[sandbox_host.box.inventory],
        extra_vars={"notify_title": "x", "notify_priority": "urgent"},
    )
    assert refused.status == "failed", "the argument spec refuses an unknown priority"
    secrets_absent(home, HOOK_TOKEN, sandbox_host.box.api_token(sandbox_host.name))


def test_emergency_on_and_off_notify_users_and_operators(
    toolkit: EmergencyToolkit, sandbox_host: SandboxHost, home: Path
) -> None:
    _user, browser = login(sandbox_host)
    good = (home / "channels.yml").read_text()
    (home / "channels.yml").write_text(good.replace("json://", "jsn://"))
    on = toolkit.activate_emergency("Notifications are delayed", "alice", level=1, limit=sandbox_host.name)
    assert on.ok and sandbox_host.health()["emergency"]["active"], "a bad channels file does not stop the banner"
    assert (
        "notification NOT SENT, the channels are misconfigured" in on.message and "unknown scheme 'jsn'" in on.message
    )
    assert "notification" not in on.data and toolkit.notifications() == []

    (home / "channels.yml").write_text(good)
    off = toolkit.deactivate_emergency("bob", limit=sandbox_host.name)
    assert off.ok and "notified via" in off.message, off.message
    note = off.data["notification"]
    assert note["priority"] == "critical", "at the level the emergency was activated with (1)"
    assert sorted(note["channels"]) == ["ops-hook", f"users:websocket@{sandbox_host.name}"]
    assert [n["title"] for n in toolkit.notifications()] == ["Emergency mode off"]
    assert page(sandbox_host, browser).flashes == [], "delivered over WebSocket, not as flash messages"
