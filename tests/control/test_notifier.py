"""The notifier for real: e-mail to a local SMTP server (aiosmtpd), JSON to a local webhook receiver, the
fallback chain, retries with backoff within the deadline, de-duplication, every channel failing, bad channel
configuration refused at start, and channel secrets kept out of every output, file and store row."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notification_emergency.api import EmergencyToolkit
from notification_emergency.channels import failed_components, load_channels
from notification_emergency.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput
from notification_emergency.notifier import Notifier
from notification_emergency.redact import mask_url
from notification_emergency.store import EventStore
from tests.conftest import VENV_BIN, free_port_block

CLI = str(VENV_BIN / "notification-emergency")
SMTP_PASSWORD = "Pw-9f8e7d6c5b4a3"
HOOK_TOKEN = "tok-0a1b2c3d4e5f6a7b8c"
SECRETS = (SMTP_PASSWORD, HOOK_TOKEN)

pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),  # aiosmtpd's own
    pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning"),  # apprise's import
]


# -- real receivers --------------------------------------------------------------------------------------


class Mailbox:
    """An SMTP server on 127.0.0.1 that requires the login alerts / SMTP_PASSWORD (AUTH without TLS)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[str] = []
        self.controller = Controller(
            self, hostname="127.0.0.1", port=port, authenticator=self.authenticate, auth_require_tls=False
        )

    @staticmethod
    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"alerts" and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        self.messages.append(content.decode() if isinstance(content, bytes) else str(content))
        return "250 OK"

    def url(self, password: str = SMTP_PASSWORD) -> str:
        return (
            f"mailto://alerts:{password}@127.0.0.1:{self.port}?from=ne@example.com&to=oncall@example.com&mode=insecure"
        )


class Webhook:
    """A JSON webhook receiver on 127.0.0.1: records each POST (time, path, body); the first ``fail_first``
    requests (or all, with ``always_fail``) are answered 500."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[float, str, dict[str, Any]]] = []
        self.fail_first = 0
        self.always_fail = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                hook.requests.append((time.monotonic(), self.path, body))
                failing = hook.always_fail or len(hook.requests) <= hook.fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hooks/{HOOK_TOKEN}"


@pytest.fixture
def ports() -> int:
    return free_port_block(4, start=28000)


@pytest.fixture
def mailbox(ports: int) -> Iterator[Mailbox]:
    box = Mailbox(ports)
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def webhook(ports: int) -> Iterator[Webhook]:
    hook = Webhook(ports + 1)
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def closed_port(ports: int) -> int:
    """A port nothing listens on: a channel that is down."""
    return ports + 2


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "state"


def write_channels(home: Path, config: dict[str, Any]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "channels.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)  # it holds credentials (a readable one gets a warning, a writable one is refused)
    return path


def toolkit(home: Path) -> EmergencyToolkit:
    return EmergencyToolkit(store=home / "events.db", home=home, actor="pytest")


FAST = {"attempts": 2, "backoff_s": 0.05, "backoff_factor": 2, "timeout_s": 2, "deadline_s": 20}


def cli(home: Path, *args: str, channels: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(home),
        "NOTIFICATION_EMERGENCY_STORE": str(home / "events.db"),
        "NOTIFICATION_EMERGENCY_ACTOR": "pytest",
        "NO_COLOR": "1",
        **env,
    }
    environment.pop("NOTIFICATION_EMERGENCY_CHANNELS", None)
    if channels is not None:
        environment["NOTIFICATION_EMERGENCY_CHANNELS"] = str(channels)
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False)


# -- delivery --------------------------------------------------------------------------------------------


def test_delivers_by_email_and_webhook_and_records_each(home: Path, mailbox: Mailbox, webhook: Webhook) -> None:
    write_channels(
        home,
        {
            "channels": {"email": mailbox.url(), "hook": webhook.url()},
            "routing": {"high": ["hook", "email"], "low": ["file"]},
            "retry": FAST,
        },
    )
    result = toolkit(home).send_notification("WebSocket down", "Real-time notifications are delayed", "high")
    assert result.ok and result.exit_code == 0, result.message
    note = result.data["notification"]
    assert sorted(note["channels"]) == ["email", "hook"] and note["delivered"] and not note["failed"]
    [(_, path, body)] = webhook.requests
    assert path == f"/hooks/{HOOK_TOKEN}"
    assert body["title"] == "WebSocket down" and body["message"] == "Real-time notifications are delayed"
    assert body["type"] == "warning", "high is sent as a warning"
    [mail] = mailbox.messages
    assert "Subject: WebSocket down" in mail and "Real-time notifications are delayed" in mail
    [row] = EventStore(home / "events.db").notifications()
    assert row["status"] == "delivered" and row["priority"] == "high"
    assert sorted((a["channel"], a["outcome"]) for a in row["attempts"]) == [
        ("email", "delivered"),
        ("hook", "delivered"),
    ]
    assert not (home / "notifications.log").exists(), "the file is the last resort, not used when others deliver"

    low = toolkit(home).send_notification("Disk at 70%", "", "low")
    assert low.ok and low.data["notification"]["channels"] == ["file"]
    assert len(webhook.requests) == 1, "low goes to the file only"
    [line] = [json.loads(text) for text in (home / "notifications.log").read_text().splitlines()]
    assert line["title"] == "Disk at 70%" and "last_resort" not in line


def test_a_down_webhook_falls_back_to_email_and_both_attempts_are_recorded(
    home: Path, mailbox: Mailbox, closed_port: int
) -> None:
    write_channels(
        home,
        {
            "channels": {
                "hook": {"url": f"json://127.0.0.1:{closed_port}/hooks/{HOOK_TOKEN}", "fallback": "email"},
                "email": mailbox.url(),
            },
            "routing": {"critical": ["hook"]},
            "retry": FAST,
        },
    )
    result = toolkit(home).send_notification("Redis down", "Switching to flash messages", "critical")
    assert result.ok, result.message
    note = result.data["notification"]
    assert note["channel"] == "email" and note["channels"] == ["email"]
    assert len(mailbox.messages) == 1 and "Subject: Redis down" in mailbox.messages[0]
    [row] = EventStore(home / "events.db").notifications()
    assert row["delivered_by"] == "email" and row["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in row["attempts"]] == [
        ("hook", "failed"),
        ("hook", "failed"),
        ("email", "delivered"),
    ], "failed (with its retry), then delivered by the fallback"
    assert all("127.0.0.1" in (a["error"] or "") for a in row["attempts"][:2]), "the error says what failed"
    events = toolkit(home).events(kinds={"notification"})
    assert events[0]["summary"] == "notification [critical] Redis down: delivered via email"


def test_retries_back_off_exponentially_and_stop_at_the_deadline(home: Path, webhook: Webhook) -> None:
    write_channels(
        home,
        {
            "channels": {"hook": webhook.url()},
            "routing": {"high": ["hook"]},
            "retry": {"attempts": 3, "backoff_s": 0.3, "backoff_factor": 2, "timeout_s": 2, "deadline_s": 10},
        },
    )
    webhook.fail_first = 2
    result = toolkit(home).send_notification("Flaky chat", "third time lucky", "high")
    assert result.ok, result.message
    times = [at for at, _path, _body in webhook.requests]
    assert len(times) == 3, "two failures, then delivered on the third try"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6 and gaps[1] > gaps[0] * 1.5, f"exponential backoff: {gaps}"
    [row] = EventStore(home / "events.db").notifications()
    assert [a["outcome"] for a in row["attempts"]] == ["failed", "failed", "delivered"]
    assert "500" in row["attempts"][0]["error"] or "Internal Server Error" in row["attempts"][0]["error"]

    # Within a deadline: many tries allowed, but not past 1.5 s.
    webhook.requests.clear()
    webhook.always_fail = True
    write_channels(
        home,
        {
            "channels": {"hook": webhook.url()},
            "routing": {"high": ["hook"]},
            "retry": {"attempts": 20, "backoff_s": 0.2, "backoff_factor": 2, "timeout_s": 1, "deadline_s": 1.5},
        },
    )
    started = time.monotonic()
    failed = toolkit(home).send_notification("Chat is down", "for good", "high")
    elapsed = time.monotonic() - started
    assert not failed.ok and failed.exit_code == EXIT_FAILED
    assert 2 <= len(webhook.requests) <= 4, f"{len(webhook.requests)} tries within 1.5 s (0, 0.2, 0.6, 1.4 s)"
    assert elapsed < 1.5 + 1.0, f"the deadline holds ({elapsed:.2f} s)"
    assert "no time left before the deadline" in failed.message


def test_a_repeat_within_the_window_is_not_sent_twice(home: Path, webhook: Webhook) -> None:
    write_channels(
        home,
        {"channels": {"hook": webhook.url()}, "routing": {"medium": ["hook"]}, "retry": FAST, "dedup_window_s": 1},
    )
    first = toolkit(home).send_notification("Backlog growing", "42 pending", "medium")
    again = toolkit(home).send_notification("Backlog growing", "42 pending", "medium")
    assert first.ok and again.ok
    assert again.data["notification"]["duplicate"] and "not sent again" in again.message
    assert again.data["notification"]["notification_id"] == first.data["notification"]["notification_id"]
    other = toolkit(home).send_notification("Backlog growing", "43 pending", "medium")
    assert not other.data["notification"]["duplicate"]
    assert len(webhook.requests) == 2
    time.sleep(1.1)
    later = toolkit(home).send_notification("Backlog growing", "42 pending", "medium")
    assert not later.data["notification"]["duplicate"] and len(webhook.requests) == 3, "after the window: sent"
    assert len(EventStore(home / "events.db").notifications()) == 3


def test_every_channel_failing_is_not_delivered_exits_1_loudly_and_is_kept_in_the_file(
    home: Path, closed_port: int
) -> None:
    channels = write_channels(
        home,
        {
            "channels": {
                "hook": {"url": f"json://127.0.0.1:{closed_port}/hooks/{HOOK_TOKEN}", "fallback": "email"},
                "email": f"mailto://alerts:{SMTP_PASSWORD}@127.0.0.1:{closed_port}?from=ne@example.com&mode=insecure",
            },
            "routing": {"critical": ["hook"]},
            "retry": FAST,
        },
    )
    proc = cli(home, "send-notification", "--title", "Database down", "--priority", "critical", channels=channels)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    assert "NOT DELIVERED" in proc.stdout and "reached nobody" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    as_json = cli(
        home, "send-notification", "--title", "Database down", "--priority", "critical", "--json", channels=channels
    )
    assert as_json.returncode == EXIT_FAILED
    data = json.loads(as_json.stdout)
    note = data["notification"]
    assert data["ok"] is False and note["delivered"] is False and note["duplicate"] is False, "a failure is re-sent"
    assert note["kept_in_file"] and list(note["failed"]) == ["hook"]
    rows = EventStore(home / "events.db").notifications()
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert [(a["channel"], a["outcome"]) for a in rows[0]["attempts"]] == [
        ("hook", "failed"),
        ("hook", "failed"),
        ("email", "failed"),
        ("email", "failed"),
        ("file", "kept"),
    ]
    logged = [json.loads(line) for line in (home / "notifications.log").read_text().splitlines()]
    assert [line["last_resort"] for line in logged] == [True, True] and logged[0]["title"] == "Database down"
    listing = cli(home, "notifications")
    assert listing.returncode == 0 and "failed" in listing.stdout and "Database down" in listing.stdout


# -- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"channels": {"chat": "bogus://hooks.example.com/x"}}, "channels.chat: unknown scheme 'bogus'"),
        ({"channels": {"chat": "json://"}}, "channels.chat: json:// is not a valid json:// URL"),
        ({"channels": {"chat": "hooks.example.com/x"}}, "channels.chat: the value is not a URL (no scheme://)"),
        ({"channels": {"chat": "json://h/x"}, "routing": {"urgent": ["chat"]}}, "routing.urgent: unknown priority"),
        ({"channels": {"chat": "json://h/x"}, "routing": {"low": ["pager"]}}, "routing.low names 'pager'"),
        ({"channels": {"chat": {"url": "json://h/x", "fallback": "chat"}}}, "fallback makes a loop (chat -> chat)"),
        ({"channels": {"users": "json://h/x"}}, "'users' is a built-in channel"),
        ({"retry": {"attempts": 0}}, "retry.attempts must be a whole number >= 1"),
        ({"users": {"deliver_to": "all"}}, "users.deliver_to must be first"),
        ({"chanels": {}}, "unknown key at line 1, column 1; the keys are channels"),  # its content is not shown
    ],
)
def test_bad_configuration_is_refused_when_the_notifier_is_created(
    home: Path, config: dict[str, Any], expected: str
) -> None:
    path = write_channels(home, config)
    kit = toolkit(home)
    with pytest.raises(BadInput) as refused:
        kit.notifier()
    assert str(path) in refused.value.message and expected in refused.value.message, refused.value.message
    with pytest.raises(BadInput):
        Notifier(kit.store, home, actor="pytest")
    # An emergency-mode switch still happens (users need the banner), saying the notification was not sent.
    not_sent = kit._emergency_notifier(True)
    assert isinstance(not_sent, BadInput) and expected in not_sent.message
    check = cli(home, "send-notification", "--check-config")
    assert check.returncode == EXIT_BAD_INPUT and expected in check.stderr and "Traceback" not in check.stderr


def test_broken_yaml_and_a_missing_explicit_file_are_named(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "channels.yml").write_text("channels:\n  chat: [unclosed\n")
    with pytest.raises(BadInput, match=r"channels.yml: not valid YAML at line \d+"):
        load_channels(None, home)
    with pytest.raises(BadInput, match=r"channels file /nowhere/channels\.yml does not exist"):
        load_channels("/nowhere/channels.yml", home)


def test_no_configuration_means_the_file_only(home: Path) -> None:
    config = load_channels(None, home)
    assert config.source == "defaults" and all(routed == [] for routed in config.routing.values())
    result = toolkit(home).send_notification("Hello", "", "critical")
    assert result.ok and result.data["notification"]["channels"] == ["file"]


def test_masking_keeps_scheme_and_server_and_hides_credentials_and_tokens() -> None:
    assert mask_url("mailto://alerts:pw12345@smtp.example.com:587?to=oncall@example.com&pass=pw12345")[0] == (
        "mailto://***:***@smtp.example.com:587?to=oncall@example.com&pass=***"
    )
    assert mask_url(f"json://hooks.example.com/hooks/{HOOK_TOKEN}")[0] == "json://hooks.example.com/***/***"
    masked, secrets = mask_url("slack://TokenA1/TokenB2/TokenC3/#ops")
    assert masked == "slack://***/***/***/#***" and {"TokenA1", "TokenB2", "TokenC3"} <= secrets
    assert mask_url("pagerduty://integration123@apikey456/")[0] == "pagerduty://***@***/"


def test_failed_components_take_components_or_failure_types() -> None:
    assert failed_components(["redis", "websocket_service_down"]) == {"redis", "websocket"}
    # The engine escalates whatever it classified: a type that takes no component down (an unknown failure, a
    # configuration error) blocks no channel, and is not refused (it was, and the escalation ended in exit 2).
    assert failed_components(["unknown", "configuration_error", "template_error"]) == set()
    with pytest.raises(BadInput, match="failed component 'disk' is not one of web, websocket, redis, database"):
        failed_components(["disk"])


# -- secrets ---------------------------------------------------------------------------------------------


def test_channel_secrets_never_reach_outputs_files_or_the_store(
    home: Path, mailbox: Mailbox, webhook: Webhook, closed_port: int
) -> None:
    channels = write_channels(
        home,
        {
            "channels": {
                "hook": {"url": webhook.url(), "fallback": "email"},
                "email": mailbox.url(),
                "down": {"url": f"json://127.0.0.1:{closed_port}/hooks/{HOOK_TOKEN}", "fallback": "wrongpw"},
                "wrongpw": mailbox.url(password=SMTP_PASSWORD + "x"),
            },
            "routing": {"critical": ["hook", "down"], "high": ["down"], "low": ["email"]},
            "retry": FAST,
        },
    )
    other = home.parent / "state-env"
    (home / "reports").mkdir()  # a report never creates its directory
    outputs = [
        cli(home, "send-notification", "--check-config", channels=channels),
        cli(home, "send-notification", "--check-config", "--json", channels=channels),
        cli(home, "send-notification", "--title", "All channels", "--priority", "critical", channels=channels),
        cli(home, "send-notification", "--title", "Nothing works", "--priority", "high", "--json", channels=channels),
        cli(home, "send-notification", "--title", "Mail only", "--priority", "low", "-v", channels=channels),
        cli(home, "notifications", "--attempts"),
        cli(home, "notifications", "--json"),
        cli(home, "events", "--json"),
        cli(home, "generate-report", "--no-status", "--output", str(home / "reports" / "r.md")),
        # a channel given in the environment (no channels file), its secret in the URL
        cli(
            other,
            "send-notification",
            "--title",
            "From env",
            "--priority",
            "low",
            NOTIFICATION_EMERGENCY_CHANNEL_ENV_HOOK=webhook.url(),
        ),
    ]
    assert [proc.returncode for proc in outputs] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0], [p.stderr for p in outputs]
    assert "json://127.0.0.1:" in outputs[0].stdout and "/***/***" in outputs[0].stdout, "shown masked"
    assert len(mailbox.messages) == 1 and len(webhook.requests) == 2, "the secrets were used, just never shown"
    assert webhook.requests[-1][2]["title"] == "From env"
    for proc in outputs:
        for secret in SECRETS:
            assert secret not in proc.stdout + proc.stderr, (proc.args, secret)
    files = [path for path in [*home.rglob("*"), *other.rglob("*")] if path.is_file() and path.name != "channels.yml"]
    assert {p.name for p in files} >= {"events.db", "notifications.log", "r.json", "r.md"}
    for path in files:  # the SQLite file (and its WAL) as bytes, the log, the reports
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (path, secret)
    report = (home / "reports" / "r.md").read_text()
    assert "## Notifications" in report and "| critical | All channels | delivered | hook |" in report
    assert "| high | Nothing works | failed | - |" in report
    store = EventStore(home / "events.db")
    rows = json.dumps([store.notifications(), store.audit_trail(), store.events(limit=500)])
    assert not any(secret in rows for secret in SECRETS)


def test_channels_that_cannot_be_used_leave_the_file_as_the_channel(home: Path, closed_port: int) -> None:
    """The engine's notifier has no inventory: users are skipped (not a failure); with nothing else routed the
    file delivers it, while a routed channel that was tried and failed leaves the file as the last resort."""
    write_channels(
        home,
        {
            "channels": {"down": f"json://127.0.0.1:{closed_port}/hooks/{HOOK_TOKEN}"},
            "routing": {"critical": ["users"], "high": ["users", "down"]},
            "retry": FAST,
        },
    )
    store = EventStore(home / "events.db")
    notifier = Notifier(store, home, actor="engine")
    only_users = notifier.send("Escalated", "level 1", "critical")
    assert only_users.delivered and only_users.channels == ["file"] and not only_users.failed
    assert "no inventory" in only_users.skipped["users"]
    tried = notifier.send("Escalated", "level 2", "high")
    assert not tried.delivered and tried.kept_in_file and list(tried.failed) == ["down"]
    assert [n["status"] for n in store.notifications()] == ["failed", "delivered"]
