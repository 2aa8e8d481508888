"""The dashboard's login, sessions and input bounds under attack, for real: a real Dashboard (users file,
SQLite event store, state directory) behind its Flask app, over a real HTTP server thread where the client's
address does not matter, and through Flask's test client where it does (the test client sets the client's
address; a loopback server sees only 127.0.0.1). Nothing here runs a playbook."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from notification_emergency.dashboard import Dashboard, DashboardServer, create_app
from notification_emergency.dashboard.app import LOGIN_FAILURES_PER_ADDRESS, LOGIN_FAILURES_PER_USER, MAX_JSON_DEPTH
from notification_emergency.dashboard.users import MAX_HASHING, UserFile
from tests.conftest import VENV_BIN
from tests.dashboard.conftest import PASSWORDS, csrf_of

CLI = str(VENV_BIN / "notification-emergency")


@pytest.fixture
def dashboard(make_dashboard: Callable[..., Dashboard], offline_inventory: Path) -> Dashboard:
    return make_dashboard(offline_inventory)


@pytest.fixture
def browser(dashboard: Dashboard) -> Callable[[str], FlaskClient]:
    """``browser(address)``: a client at ``address`` with its own cookies, all in front of one app."""
    app = create_app(dashboard)

    def at(address: str) -> FlaskClient:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return client

    return at


def form_login(client: FlaskClient, name: str, password: str) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf_of(page.text)})


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def audited(dashboard: Dashboard, action: str) -> list[dict[str, Any]]:
    return [e for e in dashboard.store.audit_trail(limit=1000) if e["action"] == action]


def test_basic_credentials_meet_the_same_throttle_and_audit_as_the_form(
    dashboard: Dashboard, serve: Callable[[Dashboard], DashboardServer]
) -> None:
    server = serve(dashboard)
    for _ in range(LOGIN_FAILURES_PER_USER):
        wrong = requests.get(f"{server.url}/api/status", headers=basic("alice", "not-it"), timeout=30)
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    blocked = requests.get(f"{server.url}/api/status", headers=basic("alice", PASSWORDS["alice"]), timeout=30)
    assert blocked.status_code == 429, "the right password too, once the name is locked"
    assert "Too many failed logins" in blocked.json()["error"] and int(blocked.headers["Retry-After"]) > 0
    session = requests.Session()
    page = session.get(f"{server.url}/login", timeout=10)
    form = session.post(
        f"{server.url}/login",
        data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf_of(page.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert form.status_code == 429 and int(form.headers["Retry-After"]) > 0, "one throttle for both ways in"
    failed = audited(dashboard, "dashboard login failed")
    assert len(failed) == LOGIN_FAILURES_PER_USER and {e["actor"] for e in failed} == {"alice"}
    assert {e["details"]["auth"] for e in failed} == {"basic"} and failed[0]["details"]["locked"] is True

    for _ in range(3):  # a scraper: audited (and hashed) once, then remembered
        answer = requests.get(f"{server.url}/metrics", headers=basic("bob", PASSWORDS["bob"]), timeout=30)
        assert answer.status_code == 200
    [entry] = [e for e in audited(dashboard, "dashboard login") if e["actor"] == "bob"]
    assert entry["details"]["auth"] == "basic" and entry["details"]["role"] == "viewer"
    assert dashboard.users.checks.checks == LOGIN_FAILURES_PER_USER + 1


def test_the_throttle_counts_names_and_addresses_apart(browser: Callable[[str], FlaskClient]) -> None:
    office = browser("198.51.100.7")  # one NAT address: the attacker and bob behind it
    for _ in range(LOGIN_FAILURES_PER_USER):
        assert form_login(office, "alice", "guess").status_code == 401
    assert form_login(office, "alice", PASSWORDS["alice"]).status_code == 429, "alice's name is locked"
    colleague = browser("198.51.100.7")
    assert form_login(colleague, "bob", PASSWORDS["bob"]).status_code == 302, "bob, same address, still logs in"
    elsewhere = browser("203.0.113.9")
    assert form_login(elsewhere, "alice", PASSWORDS["alice"]).status_code == 429, "alice's lock holds everywhere"

    spray = browser("192.0.2.50")  # one address trying many names: its own, higher limit
    for number in range(LOGIN_FAILURES_PER_ADDRESS):
        assert form_login(spray, f"guess-{number}", "guess").status_code == 401, number
    assert form_login(spray, "bob", PASSWORDS["bob"]).status_code == 429, "the address is locked for every name"
    assert form_login(browser("192.0.2.51"), "bob", PASSWORDS["bob"]).status_code == 302


def test_password_hashing_is_capped_and_an_unknown_name_costs_a_check(
    dashboard: Dashboard, serve: Callable[[Dashboard], DashboardServer]
) -> None:
    """Not timed: the cap is read from the checker's own counters (the most checks that ran at once)."""
    checks = dashboard.users.checks
    dashboard.users.authenticate("bob", "wrong-password")
    dashboard.users.authenticate("nobody", "wrong-password")
    assert checks.checks == 2, "a name nobody has costs the same scrypt check as a wrong password"
    server = serve(dashboard)
    parallel = 16  # under the address limit: every one of them reaches the password check (or the cap)
    start = threading.Barrier(parallel)
    answers: list[requests.Response] = []

    def attempt(number: int) -> None:
        session = requests.Session()
        page = session.get(f"{server.url}/login", timeout=30)
        start.wait(30)
        answers.append(
            session.post(
                f"{server.url}/login",
                data={"username": f"nobody-{number}", "password": "guess-guess", "csrf_token": csrf_of(page.text)},
                timeout=60,
            )
        )

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == parallel
    assert {a.status_code for a in answers} <= {401, 503}, [a.status_code for a in answers]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 503)
    assert 1 <= checks.peak <= MAX_HASHING, f"{checks.peak} password checks ran at once"
    assert checks.checks + checks.refused == 2 + parallel


def test_logout_ends_the_session_server_side_across_a_restart(
    dashboard: Dashboard,
    make_dashboard: Callable[..., Dashboard],
    offline_inventory: Path,
    serve: Callable[[Dashboard], DashboardServer],
) -> None:
    server = serve(dashboard)

    def logged_in() -> tuple[requests.Session, str]:
        session = requests.Session()
        page = session.get(f"{server.url}/login", timeout=10)
        answer = session.post(
            f"{server.url}/login",
            data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf_of(page.text)},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.url.endswith("/")
        return session, csrf_of(answer.text)

    leaving, token = logged_in()
    saved = leaving.cookies.get("notification_emergency_dashboard")
    stream = leaving.get(f"{server.url}/api/stream", stream=True, timeout=30)
    assert stream.status_code == 200
    staying, _ = logged_in()
    kept = staying.cookies.get("notification_emergency_dashboard")
    cookie = "notification_emergency_dashboard="
    assert requests.get(f"{server.url}/api/state", headers={"Cookie": cookie + saved}, timeout=10).status_code == 200
    out = leaving.post(f"{server.url}/logout", data={"csrf_token": token}, timeout=10, allow_redirects=False)
    assert out.status_code == 302
    replay = requests.get(f"{server.url}/api/state", headers={"Cookie": cookie + saved}, timeout=10)
    assert replay.status_code == 401, "the saved cookie of a logged-out session is no session"
    page = requests.get(f"{server.url}/", headers={"Cookie": cookie + saved}, timeout=10, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"] == "/login"
    assert requests.get(f"{server.url}/api/state", headers={"Cookie": cookie + kept}, timeout=10).status_code == 200
    assert [e["actor"] for e in audited(dashboard, "dashboard logout")] == ["alice"]
    ended = time.monotonic() + 20
    for _line in stream.iter_lines():  # the open event stream of the session ends with it (at its next update)
        assert time.monotonic() < ended, "the event stream outlived its session"
    stream.close()

    again = serve(make_dashboard(offline_inventory))  # a restart: a new Dashboard and app on the same state

    def status(cookie_value: str) -> int:
        return requests.get(f"{again.url}/api/state", headers={"Cookie": cookie + cookie_value}, timeout=10).status_code

    assert status(saved) == 401, "still revoked after a restart"
    assert status(kept) == 200, "still logged in after a restart"
    (dashboard.home / "dashboard-sessions.json").unlink()
    assert status(kept) == 401, "the sessions file deleted: everybody is logged out"


def test_bad_since_and_deeply_nested_json_are_400_naming_the_input(browser: Callable[[str], FlaskClient]) -> None:
    client = browser("127.0.0.1")
    assert form_login(client, "alice", PASSWORDS["alice"]).status_code == 302
    token = csrf_of(client.get("/").text)
    for path in ("/api/events", "/api/stats", "/api/audit"):
        for since in ("99999999d", "999999999999s", "99999999w"):
            answer = client.get(f"{path}?since={since}")
            assert answer.status_code == 400 and "since" in answer.json["error"], (path, since, answer.text)
    for limit in ("\u00b2", "\u0663", "1" * 40, "-1", " "):
        answer = client.get("/api/events", query_string={"limit": limit})
        assert answer.status_code == 400 and "limit" in answer.json["error"], (limit, answer.text)
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    for body in ("[" * 30000 + "]" * 30000, '{"a":' * 10000 + "1" + "}" * 10000, "[" * 30000):
        answer = client.post("/api/actions", data=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert "request body is JSON nested" in answer.json["error"] and str(MAX_JSON_DEPTH) in answer.json["error"]
    huge = client.post("/api/actions", data="[" * 100_000, headers=headers)
    assert huge.status_code == 413 and huge.json["ok"] is False
    not_utf8 = client.post("/api/actions", data=b'{"action": "\xff"}', headers=headers)
    assert not_utf8.status_code == 400 and "not UTF-8" in not_utf8.json["error"]
    broken = client.post("/api/actions", data='{"action": ', headers=headers)
    assert broken.status_code == 400 and "not valid JSON" in broken.json["error"]
    fine = client.post("/api/actions", data='{"action": "health-check", "hosts": [["x"]]}', headers=headers)
    assert fine.status_code == 400 and "hosts" in fine.json["error"], "a little nesting is the checks' business"
    assert client.get("/api/actions").json["jobs"] == []


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o620, 0o660], ids=lambda mode: f"{mode:04o}")
def test_a_users_file_others_can_write_is_refused(
    mode: int, users_file: Path, offline_inventory: Path, state: Path
) -> None:
    os.chmod(users_file, mode)
    who = {0o020: "its group", 0o002: "every user", 0o022: "its group and every user"}[mode & 0o022]
    env = {**os.environ, "NOTIFICATION_EMERGENCY_STATE_DIR": str(state)}
    serve = subprocess.run(
        [CLI, "dashboard", "--users", str(users_file), "-i", str(offline_inventory), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert serve.returncode == 2, serve.stderr
    assert f"{users_file} is writable by {who}" in " ".join(serve.stderr.split()), serve.stderr
    assert f"chmod 600 {users_file}" in " ".join(serve.stderr.split())
    add = subprocess.run(
        [CLI, "dashboard", "--users", str(users_file), "--add-user", "carol", "--role", "operator"],
        input="carol-password\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert add.returncode == 2 and f"writable by {who}" in " ".join(add.stderr.split()), add.stderr
    assert stat.S_IMODE(users_file.stat().st_mode) == mode and "carol" not in users_file.read_text(), "untouched"


def test_a_users_file_made_writable_under_a_running_dashboard_locks_everybody_out(
    browser: Callable[[str], FlaskClient], users_file: Path
) -> None:
    client = browser("127.0.0.1")
    assert form_login(client, "bob", PASSWORDS["bob"]).status_code == 302
    os.chmod(users_file, 0o640)  # its group may read it: fine
    assert client.get("/api/state").status_code == 200
    os.chmod(users_file, 0o666)
    assert client.get("/api/state").status_code == 401, "fail closed: the session's user is no longer known"
    page = browser("127.0.0.2").get("/login")
    assert "writable by its group and every user" in page.text and "chmod 600" in page.text
    assert form_login(browser("127.0.0.3"), "bob", PASSWORDS["bob"]).status_code == 401
    os.chmod(users_file, 0o600)
    assert form_login(browser("127.0.0.4"), "bob", PASSWORDS["bob"]).status_code == 302
    assert UserFile(users_file).check().keys() == {"alice", "bob"}


@pytest.mark.parametrize("mode", [0o644, 0o660, 0o606], ids=lambda mode: f"{mode:04o}")
def test_a_session_key_others_can_read_or_write_is_refused(mode: int, tmp_path: Path) -> None:
    """Whoever reads the session key can forge any user's session: a key others may read or write is refused,
    naming the file and the fix; a new key is written 0600 from its first byte."""
    from notification_emergency.dashboard.core import secret_key
    from notification_emergency.errors import BadInput

    key = secret_key(tmp_path)
    path = tmp_path / "dashboard-secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secret_key(tmp_path) == key
    os.chmod(path, mode)
    with pytest.raises(BadInput, match=rf"{path} can be read or changed by .* delete it .* or chmod 600"):
        secret_key(tmp_path)
