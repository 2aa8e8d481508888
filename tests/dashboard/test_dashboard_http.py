"""The dashboard over HTTP, for real: Flask's test client and a real server thread in front of a real
Dashboard (its monitor probing a managed host whose service is down, its event store a SQLite file, its
controls running the real playbooks through the toolkit). Security answers are 401, 403 or 400, never 500;
every control is audited with the user; /metrics is valid Prometheus text; the CLI refuses to serve beyond
loopback without users."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from notification_emergency.dashboard import Dashboard, DashboardServer, create_app, is_loopback
from notification_emergency.dashboard.users import UserFile
from notification_emergency.errors import BadInput
from notification_emergency.process import current_owner
from notification_emergency.store import EventStore
from tests.conftest import VENV_BIN, free_port_block
from tests.dashboard.conftest import PASSWORDS, csrf_of

CLI = str(VENV_BIN / "notification-emergency")


@pytest.fixture
def dashboard(make_dashboard: Callable[..., Dashboard], offline_inventory: Path) -> Dashboard:
    return make_dashboard(offline_inventory)


@pytest.fixture
def client(dashboard: Dashboard) -> FlaskClient:
    return create_app(dashboard).test_client()


def login(client: FlaskClient, name: str) -> str:
    """Log in through the form; returns the session's CSRF token (from the dashboard page)."""
    page = client.get("/login")
    answer = client.post(
        "/login", data={"username": name, "password": PASSWORDS[name], "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/", answer.text
    home = client.get("/")
    assert home.status_code == 200
    return csrf_of(home.text)


def act(client: FlaskClient, token: str | None, body: Any, **headers: str) -> Any:
    if token is not None:
        headers["X-CSRF-Token"] = token
    return client.post("/api/actions", json=body, headers=headers)


def wait_job(client: FlaskClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/actions/{job_id}").json
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, f"action {job_id} still running after {timeout}s: {job['progress']}"
        time.sleep(0.2)


def test_requests_without_a_session_get_401(client: FlaskClient) -> None:
    for path in ("/api/state", "/api/status", "/api/events", "/api/stats", "/api/components", "/api/actions"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert "log in" in answer.json["error"]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/api/stream").status_code == 401
    assert act(client, "whatever", {"action": "health-check"}).status_code == 401
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"] == "/login", "the page sends you to the login form"
    forged = client.get("/api/state", headers={"Cookie": "notification_emergency_dashboard=eyJ1c2VyIjoiYWxpY2UifQ.x.y"})
    assert forged.status_code == 401, "a cookie that is not signed by the dashboard is no session"


def test_login_logout_wrong_password_and_throttle(client: FlaskClient, dashboard: Dashboard) -> None:
    page = client.get("/login")
    assert 'name="csrf_token"' in page.text and "No users yet" not in page.text
    token = csrf_of(page.text)
    wrong = client.post("/login", data={"username": "alice", "password": "not-it", "csrf_token": token})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    unknown = client.post("/login", data={"username": "mallory", "password": "whatever1", "csrf_token": token})
    assert unknown.status_code == 401
    empty = client.post("/login", data={"username": "", "password": "", "csrf_token": token})
    assert empty.status_code == 400
    token = login(client, "alice")
    assert client.get("/api/state").status_code == 200
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/api/state").status_code == 401, "logged out"
    page = client.get("/login")
    for _ in range(5):  # 5 failures in the window (a success cleared the earlier ones): then 429, right or wrong
        client.post("/login", data={"username": "alice", "password": "not-it", "csrf_token": csrf_of(page.text)})
    blocked = client.post(
        "/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf_of(page.text)}
    )
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    failed = [e for e in dashboard.store.audit_trail() if e["action"] == "dashboard login failed"]
    assert {e["actor"] for e in failed} == {"alice", "mallory"}


def test_a_bad_csrf_token_gets_403(client: FlaskClient) -> None:
    login_page = client.get("/login")
    assert (
        client.post(
            "/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": "forged"}
        ).status_code
        == 403
    ), "the login form is CSRF-protected too"
    assert csrf_of(login_page.text)
    token = login(client, "alice")
    body = {"action": "health-check"}
    assert act(client, None, body).status_code == 403, "no token"
    assert act(client, token[:-2] + "xx", body).status_code == 403, "a wrong token"
    assert act(client, "", body).status_code == 403, "an empty token"
    cross = act(client, token, body, Origin="http://evil.example:5001")
    assert cross.status_code == 403 and "CSRF" in cross.json["error"], "a cross-origin POST with the token"
    other = create_app(client.application.extensions["notification_emergency_dashboard"]).test_client()
    other_token = login(other, "bob")
    assert act(client, other_token, body).status_code == 403, "another session's token"
    assert act(client, token, body, Origin="http://localhost").status_code == 200, "the right token (a preview)"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        ["health-check"],
        {},
        {"action": "format-disk"},
        {"action": 7},
        {"action": "health-check", "extra": 1},
        {"action": "health-check", "hosts": "offline-01"},
        {"action": "health-check", "hosts": []},
        {"action": "health-check", "hosts": ["nowhere-99"]},
        {"action": "health-check", "inputs": {"affected_users": 3}},
        {"action": "health-check", "inputs": "x"},
        {"action": "health-check", "confirmed": "yes"},
        {"action": "activate-emergency"},
        {"action": "activate-emergency", "inputs": {"reason": "   "}},
        {"action": "activate-emergency", "inputs": {"reason": "x" * 301}},
        {"action": "activate-emergency", "inputs": {"reason": "down", "level": 7}},
        {"action": "activate-emergency", "inputs": {"reason": "down", "level": True}},
        {"action": "activate-emergency", "inputs": {"reason": "down", "level": "high"}},
        {"action": "restart", "inputs": {"components": []}},
        {"action": "restart", "inputs": {"components": ["database"]}},
        {"action": "restart", "inputs": {"components": "web"}},
    ],
    ids=lambda body: str(body)[:40],
)
def test_malformed_input_gets_400(client: FlaskClient, body: Any) -> None:
    token = login(client, "alice")
    if isinstance(body, str):
        answer = client.post(
            "/api/actions", data=body, headers={"X-CSRF-Token": token, "Content-Type": "application/json"}
        )
    else:
        answer = act(client, token, {"confirmed": True, **body} if isinstance(body, dict) and body else body)
    assert answer.status_code == 400, answer.json
    assert answer.json["ok"] is False and answer.json["error"]
    assert client.get("/api/actions").json["jobs"] == [], "nothing started"


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=0", "limit=100000", "since=yesterday", "since=" + "9" * 80, "kind=gossip"]
)
def test_malformed_query_parameters_get_400(client: FlaskClient, query: str) -> None:
    login(client, "alice")
    answer = client.get(f"/api/events?{query}")
    assert answer.status_code == 400, answer.json
    assert client.get(f"/api/stats?{query}").status_code in (200, 400)


def test_oversized_body_and_unknown_routes_are_client_errors(client: FlaskClient) -> None:
    token = login(client, "alice")
    big = act(client, token, {"action": "activate-emergency", "inputs": {"reason": "x" * 100_000}})
    assert big.status_code == 413
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/actions/unknown-job").status_code == 404
    assert client.put("/api/actions").status_code == 405


def test_a_viewer_sees_everything_and_is_refused_every_control(client: FlaskClient, dashboard: Dashboard) -> None:
    token = login(client, "bob")
    assert client.get("/api/state").status_code == 200
    assert client.get("/api/events").status_code == 200
    assert "You are a viewer" in client.get("/").text
    for action in ("health-check", "auto-recover", "rollback", "restore", "deactivate-emergency"):
        refused = act(client, token, {"action": action, "confirmed": True})
        assert refused.status_code == 403, action
        assert "only operators" in refused.json["error"]
    refused = act(client, token, {"action": "activate-emergency", "inputs": {"reason": "test", "level": 1}})
    assert refused.status_code == 403, "even the confirmation text is refused"
    assert act(client, token, {"action": ["not", "a", "name"]}).status_code == 403
    assert client.get("/api/actions").json["jobs"] == []
    audited = [e for e in dashboard.store.audit_trail() if e["actor"] == "bob" and e["action"].endswith(" refused")]
    assert len(audited) == 7 and {e["details"]["role"] for e in audited} == {"viewer"}
    assert dashboard.store.runs() == [], "no playbook ran"


def test_an_operator_action_is_confirmed_run_and_audited_with_the_user(
    client: FlaskClient, dashboard: Dashboard
) -> None:
    token = login(client, "alice")
    preview = act(client, token, {"action": "health-check", "hosts": ["offline-01"]})
    assert preview.status_code == 200
    assert "offline-01" in preview.json["confirm"] and "Changes nothing" in preview.json["confirm"]
    assert client.get("/api/actions").json["jobs"] == [], "the confirmation text starts nothing"
    assert not [e for e in dashboard.store.audit_trail() if e["action"] == "dashboard health-check"]

    started = act(client, token, {"action": "health-check", "hosts": ["offline-01"], "confirmed": True})
    assert started.status_code == 202, started.json
    job = started.json["job"]
    assert job["user"] == "alice" and job["hosts"] == ["offline-01"] and job["state"] == "running"
    again = act(client, token, {"action": "auto-recover", "confirmed": True})
    assert again.status_code == 409 and "is running on offline-01" in again.json["error"], "one at a time per host"

    done = wait_job(client, job["id"])
    assert done["state"] == "failed" and done["exit_code"] == 1, "the host is down: the check has no result"
    assert any("playbook" in line for line in done["progress"]), "progress came from the runner's events"
    trail = {(e["actor"], e["action"]) for e in dashboard.store.audit_trail()}
    assert ("alice", "dashboard health-check") in trail, "recorded before it started, with the user"
    assert ("alice", "health-check started") in trail, "the toolkit ran it as the user"
    assert ("alice", "dashboard health-check failed") in trail, "and its end"
    assert ("alice", "dashboard auto-recover refused") in trail, "the refused second action too"
    [run] = dashboard.store.runs()
    assert run["actor"] == "alice" and run["playbook"] == "health_check.yml" and run["limit"] == "offline-01"
    request_entry = next(e for e in dashboard.store.audit_trail() if e["action"] == "dashboard health-check")
    assert request_entry["details"]["via"] == "dashboard" and request_entry["details"]["role"] == "operator"
    assert request_entry["target"] == "offline-01"


def test_status_of_a_host_whose_service_is_down(client: FlaskClient, dashboard: Dashboard) -> None:
    login(client, "alice")
    deadline = time.monotonic() + 10
    while dashboard.probe_rounds < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [row] = client.get("/api/status").json["hosts"]
    assert row["host"] == "offline-01" and row["status"] == "unreachable" and row["ok"] is False
    assert row["mode"] == "unknown" and row["emergency"] is None
    [web] = row["components"]
    assert web["name"] == "web" and web["status"] == "unreachable" and "ConnectionError" in web["evidence"]
    # The record (the event store's data) is read by its own loop: under load its first round may come after the
    # first probe round, so wait for it rather than assume it (until then the store's "ok" is None, not known).
    deadline = time.monotonic() + 15
    while (state := client.get("/api/state").json)["record"]["store"]["ok"] is None:
        assert time.monotonic() < deadline, state["record"]
        time.sleep(0.05)
    assert state["record"]["store"]["ok"] is True and state["versions"]["live"] >= 1


def test_it_goes_on_when_the_event_store_breaks(client: FlaskClient, dashboard: Dashboard, state: Path) -> None:
    login(client, "bob")

    def wait(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 15
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    wait(lambda: client.get("/api/state").json["record"]["store"]["ok"] is True, "the store is read")
    for name in ("events.db", "events.db-wal", "events.db-shm"):  # overwritten in place, under the open store
        part = state / name
        part.write_bytes(b"not a database any more " * (part.stat().st_size // 24 + 1))
    wait(lambda: client.get("/api/state").json["record"]["store"]["ok"] is False, "the breakage is shown")
    record = client.get("/api/state").json["record"]
    assert record["store"]["error"], "with the reason"
    rounds = dashboard.probe_rounds
    wait(lambda: dashboard.probe_rounds >= rounds + 2, "the probes go on")
    assert client.get("/api/status").status_code == 200
    events = client.get("/api/events")
    assert events.status_code == 503 and "event store" in events.json["error"], "an error, not a 500"


def metric_families(text: str) -> dict[str, dict[str, Any]]:
    """Parse Prometheus text format 0.0.4 strictly enough to catch mistakes: HELP and TYPE before each
    family's samples, names and labels well formed, values numbers."""
    sample = re.compile(
        r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
        r" (?P<value>-?(?:[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))$"
    )
    families: dict[str, dict[str, Any]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"{name} described twice"
            families[name] = {"help": line.split(" ", 3)[3], "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in families and families[name]["type"] is None, f"TYPE of {name} without HELP"
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            families[name]["type"] = kind
        else:
            match = sample.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group("name")
            family = name if name in families else re.sub(r"_(sum|count|bucket)$", "", name)
            assert family in families, f"sample {name} before its HELP/TYPE"
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group("labels") or ""))
            families[family]["samples"].append((name, labels, float(match.group("value"))))
    return families


def test_metrics_in_prometheus_text_format(dashboard: Dashboard, serve: Callable[[Dashboard], DashboardServer]) -> None:
    store: EventStore = dashboard.store
    detected = datetime.now(UTC) - timedelta(minutes=5)
    resolved = store.open_incident(
        failure_type="websocket_service_down",
        level=2,
        hosts=["offline-01"],
        summary="websocket down",
        started_at=detected - timedelta(seconds=2),
        detected_at=detected,
    )
    store.update_incident(resolved, resolved_at=detected + timedelta(seconds=12), verified_at=detected)
    store.open_incident(failure_type="redis_unavailable", level=2, hosts=["offline-01"], summary="redis down")
    # A run whose CLI was killed (its process is gone): abandoned, not running forever in /metrics.
    node = current_owner().rsplit(":", 2)[0]
    store.start_run(
        "killed",
        action="rollback",
        playbook="r.yml",
        actor="a",
        inputs={},
        limit=None,
        check=False,
        owner=f"{node}:{2**22 + 1}:1",  # beyond the kernel's pid_max: no such process
    )
    server = serve(dashboard)
    time.sleep(1.2)  # a probe round and a read of the store
    anonymous = requests.get(f"{server.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    wrong = requests.get(f"{server.url}/metrics", auth=("alice", "wrong-password"), timeout=10)
    assert wrong.status_code == 401
    answer = requests.get(f"{server.url}/metrics", auth=("bob", PASSWORDS["bob"]), timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = metric_families(answer.text)

    def value(family: str, sample: str | None = None, **labels: str) -> float:
        found = [v for n, lab, v in families[family]["samples"] if n == (sample or family) and lab == labels]
        assert len(found) == 1, (family, labels, families[family]["samples"])
        return found[0]

    prefix = "notification_emergency_"
    assert value(prefix + "host_healthy", host="offline-01") == 0
    assert value(prefix + "component_healthy", host="offline-01", component="web") == 0
    assert value(prefix + "incidents_total") == 2 and families[prefix + "incidents_total"]["type"] == "counter"
    assert value(prefix + "incidents_resolved_total") == 1
    assert value(prefix + "incidents_open") == 1 and families[prefix + "incidents_open"]["type"] == "gauge"
    assert value(prefix + "incidents_by_type_total", failure_type="redis_unavailable") == 1
    assert value(prefix + "recovery_rate") == 0.5
    assert families[prefix + "recovery_seconds"]["type"] == "histogram"
    assert value(prefix + "recovery_seconds", prefix + "recovery_seconds_bucket", le="10.0") == 0
    assert value(prefix + "recovery_seconds", prefix + "recovery_seconds_bucket", le="20.0") == 1
    assert value(prefix + "recovery_seconds", prefix + "recovery_seconds_count") == 1
    assert value(prefix + "recovery_seconds", prefix + "recovery_seconds_sum") == 12.0
    assert value(prefix + "detection_seconds", prefix + "detection_seconds_bucket", le="2.5") == 1
    assert value(prefix + "runs_finished_total", status="successful") == 0
    assert value(prefix + "runs", status="running") == 0 and families[prefix + "runs"]["type"] == "gauge"
    assert store.run("killed")["status"] == "abandoned"
    assert value(prefix + "runs_finished_total", status="abandoned") == 1
    assert value(prefix + "notifications", state="delivered") == 0
    assert value(prefix + "notification_mode", host="offline-01", mode="websocket") == 0, "mode unknown: 0 for both"
    assert value(prefix + "circuit_breaker_open", host="offline-01") == 0
    assert value(prefix + "store_up") == 1
    assert value(prefix + "dashboard_actions_running") == 0


def test_live_updates_over_server_sent_events(
    dashboard: Dashboard, serve: Callable[[Dashboard], DashboardServer]
) -> None:
    server = serve(dashboard)
    session = requests.Session()
    page = session.get(f"{server.url}/login", timeout=10)
    session.post(
        f"{server.url}/login",
        data={"username": "bob", "password": PASSWORDS["bob"], "csrf_token": csrf_of(page.text)},
        timeout=10,
    )
    seen: dict[str, int] = {}
    with session.get(f"{server.url}/api/stream", stream=True, timeout=10) as stream:
        assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        event = None
        deadline = time.monotonic() + 15
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                seen[event] = seen.get(event, 0) + 1
            if seen.get("live", 0) >= 2 and seen.get("record"):
                break  # the first state, then a change (the probe's latency moves every round)
            assert time.monotonic() < deadline, f"no live updates in 15 s: {seen}"
    assert seen["live"] >= 2 and seen["record"] >= 1


def test_users_are_created_by_the_cli_with_hashed_passwords(tmp_path: Path) -> None:
    users = tmp_path / "users.yml"

    def add(name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "dashboard", "--users", str(users), "--add-user", name, "--role", role],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = add("carol", "operator", "carol-password")
    assert created.returncode == 0, created.stderr
    assert "added dashboard user carol (operator)" in created.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "carol-password" not in users.read_text() and "scrypt:" in users.read_text()
    assert UserFile(users).authenticate("carol", "carol-password") is not None
    assert UserFile(users).authenticate("carol", "wrong") is None
    short = add("dave", "viewer", "short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad_role = add("dave", "admin", "long-enough")
    assert bad_role.returncode == 2
    bad_name = add("dave smith", "viewer", "long-enough")
    assert bad_name.returncode == 2 and "not valid" in bad_name.stderr
    removed = subprocess.run(
        [CLI, "dashboard", "--users", str(users), "--remove-user", "carol"], capture_output=True, text=True, check=False
    )
    assert removed.returncode == 0 and UserFile(users).users() == {}


def test_it_refuses_to_listen_beyond_loopback_without_users(
    tmp_path: Path, offline_inventory: Path, state: Path
) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.10")
    assert not is_loopback("dashboard.example.org")
    env = {**os.environ, "NOTIFICATION_EMERGENCY_STATE_DIR": str(state)}
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        proc = subprocess.run(
            [CLI, "dashboard", "--host", host, "--users", str(tmp_path / "none.yml"), "-i", str(offline_inventory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert f"refusing to serve the dashboard on {host}" in proc.stderr and "--add-user" in proc.stderr
    dashboard = Dashboard(inventory=offline_inventory, store=state / "events.db", home=state, users_file=tmp_path / "x")
    with pytest.raises(BadInput, match="not a loopback address"):
        DashboardServer(dashboard, "0.0.0.0", 0)
    broken = tmp_path / "broken.yml"
    broken.write_text("users: [alice]\n")
    proc = subprocess.run(
        [CLI, "dashboard", "--users", str(broken), "-i", str(offline_inventory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "broken.yml must be a mapping" in proc.stderr


def test_a_port_in_use_is_a_clear_error(dashboard: Dashboard) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BadInput, match=f"cannot listen on 127.0.0.1:{port}"):
            DashboardServer(dashboard, "127.0.0.1", port)


def test_the_cli_serves_on_loopback_without_users_and_says_how_to_add_one(
    tmp_path: Path, offline_inventory: Path, state: Path
) -> None:
    port = free_port_block(1, start=27000)
    env = {**os.environ, "NOTIFICATION_EMERGENCY_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [CLI, "dashboard", "--port", str(port), "-i", str(offline_inventory), "--store", str(state / "events.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.2)
        page = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert "No users yet" in page.text and "--add-user NAME --role operator" in page.text
        assert requests.get(f"http://127.0.0.1:{port}/api/state", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"dashboard on http://127.0.0.1:{port} for offline-01" in err and "nobody can log in yet" in err
    assert "dashboard stopped" in err


def test_basic_credentials_are_for_reading_only(
    dashboard: Dashboard, serve: Callable[[Dashboard], DashboardServer]
) -> None:
    server = serve(dashboard)
    auth = "Basic " + base64.b64encode(f"alice:{PASSWORDS['alice']}".encode()).decode()
    assert requests.get(f"{server.url}/api/status", headers={"Authorization": auth}, timeout=10).status_code == 200
    post = requests.post(
        f"{server.url}/api/actions",
        json={"action": "health-check", "confirmed": True},
        headers={"Authorization": auth},
        timeout=10,
    )
    assert post.status_code == 401, "a control needs a session and its CSRF token, not credentials a browser caches"
