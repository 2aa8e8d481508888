"""Hostile text against every text input of the dashboard (issue 19): untrusted text is data, never code.

What is real: the Dashboard (users file with scrypt hashes, SQLite event store and audit trail, session key,
sessions file), its Flask app behind the real server (gunicorn's threaded worker) on a loopback port, every
request over HTTP with ``requests``, and one real control run: ``activate-emergency`` confirmed with a reason
made of template injections and shell substitutions, run by the toolkit through ansible-runner and
``ansible-playbook`` against a host whose service is down (the playbook's first task renders the reason on the
control node, which is where an injection would run).

What is not: the other inputs stop before a playbook would run. Each hostile reason is sent without
``confirmed`` (the server's confirmation text, which checks and echoes the inputs exactly as a run would get
them, and starts nothing); the other fields are refused by their checks. The login throttle is given
limits no test reaches (it is tested in test_dashboard_security.py), so that every input meets the checks
rather than a 429. Hostile passwords are a sample (each one costs a real scrypt check, ~0.1 s); hostile user
names are all sent (a name no user can have costs no check).

For every answer: no 5xx, no traceback, no secret (the session key, a password hash, a password); every 400
names the field; no canary file appears."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Browser, expect

from notification_emergency.dashboard import Dashboard, DashboardServer
from notification_emergency.dashboard.app import LoginThrottle
from notification_emergency.dashboard.server import LIMIT_REQUEST_FIELD_SIZE
from tests.dashboard.conftest import PASSWORDS, csrf_of
from tests.dashboard.fleet_hosts import fleet
from tests.dashboard.test_dashboard_browser import browser, log_in  # noqa: F401  (the module's browser)
from tests.hostile import hostile_strings as shared_hostile_strings

PASSWORD_SAMPLE = 12


def hostile_strings(canary: Path) -> list[str]:
    """The project's hostile strings (tests/hostile.py) that fit in a request body: a body over the dashboard's
    64 KiB limit is a 413 before any field is read (test_dashboard_security.py)."""
    return [text for text in shared_hostile_strings(canary) if len(text.encode("utf-8", "surrogatepass")) < 16_000]


def secrets_of(state: Path, users_file: Path) -> list[str]:
    """What must never appear in an answer: the session key, each password hash (and its digest), passwords."""
    text = users_file.read_text()
    hashes = [line.split('"')[1] for line in text.splitlines() if "password_hash" in line and '"' in line]
    hashes += [line.split(":", 1)[1].strip().strip("'\"") for line in text.splitlines() if "password_hash:" in line]
    found = [(state / "dashboard-secret.key").read_text().strip(), *PASSWORDS.values()]
    for value in hashes:
        found += [value, value.rsplit("$", 1)[-1]]
    return [value for value in found if len(value) >= 8]


def wire(text: str) -> bytes:
    """``text`` as bytes for a form or a URL (a lone surrogate as the bytes Python would write for it)."""
    return text.encode("utf-8", "surrogatepass")


def json_body(value: Any) -> bytes:
    """A JSON body: lone surrogates as ``\\ud800`` escapes (valid JSON), as a hostile client would send them."""
    return json.dumps(value, ensure_ascii=True).encode()


@pytest.fixture
def canary() -> Iterator[Path]:
    """A file nobody creates, at a short path (the real run's reason must stay under 300 characters)."""
    home = Path(tempfile.mkdtemp(prefix="cn"))
    yield home / "C"
    shutil.rmtree(home)


def test_hostile_text_is_data_on_every_text_input(
    make_dashboard: Callable[..., Dashboard],
    offline_inventory: Path,
    serve: Callable[..., DashboardServer],
    state: Path,
    users_file: Path,
    canary: Path,
) -> None:
    dashboard = make_dashboard(offline_inventory)
    server = serve(dashboard, throttle=LoginThrottle(per_user=10**9, per_address=10**9))
    url = server.url
    strings = hostile_strings(canary)
    never = secrets_of(state, users_file)
    seen: dict[str, int] = {}

    def check(answer: requests.Response, field: str, named: str | None = None) -> requests.Response:
        """No 5xx, no traceback, no secret; a 400 names ``named`` (the field, by default)."""
        where = f"{answer.request.method} {answer.request.url[:120]} ({field})"
        assert answer.status_code < 500, f"{where}: {answer.status_code} {answer.text[:300]}"
        body = answer.text
        assert "Traceback" not in body and 'File "/' not in body, f"{where}: {body[:500]}"
        for secret in never:
            assert secret not in body, f"{where}: a secret in the answer"
        if answer.status_code == 400 and answer.headers["Content-Type"].startswith("application/json"):
            assert (named or field) in answer.json()["error"], f"{where}: {answer.json()['error'][:300]}"
        seen[field] = seen.get(field, 0) + 1
        return answer

    operator = requests.Session()
    page = operator.get(f"{url}/login", timeout=10)
    home = operator.post(
        f"{url}/login",
        data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf_of(page.text)},
        timeout=30,
    )
    token = csrf_of(home.text)

    def post(body: bytes) -> requests.Response:
        return operator.post(
            f"{url}/api/actions",
            data=body,
            headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
            timeout=30,
        )

    stranger = requests.Session()
    form = csrf_of(stranger.get(f"{url}/login", timeout=10).text)
    accepted_reasons = 0
    for number, text in enumerate(strings):
        accepted_reasons += _post_every_field(post, check, text)  # the JSON API: every field of POST /api/actions
        # query parameters and the path
        for endpoint in ("events", "stats", "audit") if number % 5 == 0 else ("events",):
            check(operator.get(f"{url}/api/{endpoint}", params={"since": wire(text)}, timeout=10), "since")
        check(operator.get(f"{url}/api/events", params={"limit": wire(text)}, timeout=10), "limit")
        check(operator.get(f"{url}/api/events", params={"kind": wire(text)}, timeout=10), "kind")
        check(operator.get(f"{url}/api/actions/{quote(wire(text), safe='')}", timeout=10), "job id", "action")
        cancel = f"{url}/api/actions/{quote(wire(text), safe='')}/cancel"
        # no such action, no such host: 404 (or 414 for a URL over the server's limit), the text as data
        assert check(operator.post(cancel, headers={"X-CSRF-Token": token}, timeout=10), "cancel").status_code >= 400
        for part in ("timeline", "backups"):
            host = operator.get(f"{url}/api/hosts/{quote(wire(text), safe='')}/{part}", timeout=10)
            assert check(host, "host").status_code in (404, 405, 414), host.text[:200]
        # the login form and Basic credentials: names (all), passwords (a sample, each a real scrypt check)
        login = {"username": wire(text), "password": b"some-password", "csrf_token": form}
        assert check(stranger.post(f"{url}/login", data=login, timeout=30), "username").status_code in (400, 401)
        credentials = base64.b64encode(wire(text) + b":some-password").decode()
        answer = requests.get(f"{url}/api/status", headers={"Authorization": f"Basic {credentials}"}, timeout=30)
        too_long = len(f"Authorization: Basic {credentials}\r\n") > LIMIT_REQUEST_FIELD_SIZE  # gunicorn refuses it
        assert check(answer, "basic").status_code == (431 if too_long else 401)
    for text in strings[:: len(strings) // PASSWORD_SAMPLE][:PASSWORD_SAMPLE]:
        login = {"username": b"bob", "password": wire(text), "csrf_token": form}
        assert check(stranger.post(f"{url}/login", data=login, timeout=30), "password").status_code in (400, 401)

    assert accepted_reasons >= 40, "the checks refuse control characters and surrogates, not braces and quotes"
    assert operator.get(f"{url}/api/actions", timeout=10).json()["jobs"] == [], "no input started anything"
    assert dashboard.store.runs() == []

    _run_a_hostile_reason(operator, url, post, dashboard, canary)
    assert not canary.exists(), "a hostile input ran a command"
    assert sum(seen.values()) >= 100 * 20, seen


Check = Callable[..., requests.Response]


def _post_every_field(post: Callable[[bytes], requests.Response], check: Check, text: str) -> int:
    """``text`` in every field of POST /api/actions; 1 when it was accepted as an emergency's reason."""
    check(post(json_body({"action": text, "confirmed": True})), "action")
    check(post(json_body({"action": "health-check", "hosts": [text], "confirmed": True})), "hosts")
    check(post(json_body({"action": "restart", "inputs": {"components": [text]}})), "components")
    check(post(json_body({"action": "activate-emergency", "inputs": {"reason": "x", "level": text}})), "level")
    check(post(json_body({"action": "health-check", "inputs": {text: 1}})), "inputs", "inputs")
    check(post(json_body({"action": "backup", "inputs": {"label": text}})), "label")
    check(post(json_body({"action": "backup", "inputs": {text: "x"}})), "backup inputs", "label")
    restore = check(post(json_body({"action": "restore-backup", "inputs": {"backup": text}})), "backup")
    assert restore.status_code == 400 or text == "latest", "a backup name is a name, nothing else"
    check(post(json_body({"action": "health-check", text: True})), "body field", "unknown")
    check(post(json_body(text)), "body", "request body")
    if not text.lstrip().startswith("{"):  # (a JSON object as the raw body is a request: sent as text above)
        check(post(wire(text)), "raw body", "request body")
    preview = check(post(json_body({"action": "activate-emergency", "inputs": {"reason": text}})), "reason")
    if preview.status_code != 200:
        assert preview.status_code == 400, preview.text
        return 0
    expected = " ".join(text.split())  # accepted as text: echoed exactly, nothing started
    assert preview.json()["inputs"]["reason"] == expected
    assert f'"{expected}"' in preview.json()["confirm"]
    return 1


def _run_a_hostile_reason(
    operator: requests.Session,
    url: str,
    post: Callable[[bytes], requests.Response],
    dashboard: Dashboard,
    canary: Path,
) -> None:
    """One real run: a reason of template injections and shell substitutions, confirmed."""
    reason = (
        f"{{{{ lookup('pipe','touch {canary}') }}}} {{% endraw %}}{{{{ query('pipe','touch {canary}') }}}}{{% raw %}}"
        f" $(touch {canary}) `touch {canary}` {{# x #}} {{{{ notification_service_secret_key }}}} {{{{ user.name }}}}"
    )
    started = post(json_body({"action": "activate-emergency", "inputs": {"reason": reason}, "confirmed": True}))
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    deadline = time.monotonic() + 180
    while (job := operator.get(f"{url}/api/actions/{job_id}", timeout=10).json())["state"] == "running":
        assert time.monotonic() < deadline, job["progress"]
        time.sleep(0.3)
    progress = "\n".join(job["progress"])
    assert "play: Activate emergency mode" in progress and "Validate the inputs" not in progress, progress
    assert "failed at Take the host lock" in progress, "past the inputs' check (which reads the reason): the host"
    assert "undefined" not in progress.lower(), f"the reason was rendered as a template: {progress}"
    [run] = dashboard.store.runs()
    assert run["playbook"] == "emergency_activate.yml"
    requested = next(e for e in dashboard.store.audit_trail() if e["action"] == "dashboard activate-emergency")
    assert requested["details"]["inputs"]["reason"] == reason, "the audit trail holds the text as typed"


def test_hostile_host_names_and_searches_stay_text_in_the_browser(
    browser: Browser,  # noqa: F811
    make_dashboard: Callable[..., Dashboard],
    serve: Callable[..., DashboardServer],
    tmp_path: Path,
    canary: Path,
) -> None:
    """Host names come from the inventory (and so from whoever edits it): markup, template syntax, quotes and
    slashes in them, some hosts answering (the grid), some down (cards), and hostile text typed in the fleet
    view's search and the controls' host search. Nothing runs (no ``window.pwned``, no new element, no
    script error, no canary), every name reads back as typed, the host detail panel and the backups list
    work for a name with a slash."""
    hostile = [
        '<img src=x onerror="window.pwned=1">',
        "</script><script>window.pwned=2</script>",
        'a" onmouseover="window.pwned=3" x="',
        f"{{{{ lookup('pipe','touch {canary}') }}}}",
        "web/../../api/state?x=<b>",
        "é漢字 ${window.pwned=4} `$(touch x)`",
    ]
    names = {name: "healthy" if number % 2 else "down" for number, name in enumerate(hostile)}
    names.update({f"plain-{n:02d}": "healthy" for n in range(8)})  # more than 8 hosts: the grid is shown
    with fleet(tmp_path, names) as (inventory, _hosts):
        server = serve(make_dashboard(inventory, probe_interval=0.5))
        page, errors = log_in(browser, server, "alice")
        expect(page.locator("[data-count='health-failing'] .n")).to_have_text("3")
        shown = page.evaluate(
            "[...document.querySelectorAll('#hosts .host-link span, #fleet-grid .tile-name')].map(n => n.textContent)"
        )
        assert sorted(shown) == sorted(names), shown
        picker = page.evaluate("[...document.querySelectorAll('#host-pick-list input')].map(n => n.value)")
        assert sorted(picker) == sorted(names)
        elements = page.evaluate("document.querySelectorAll('img, script, b, iframe').length")
        for text in [*hostile, *hostile_strings(canary)[::4]]:
            if any("\ud800" <= char <= "\udfff" for char in text) or len(text) > 200:
                continue  # (a browser's text field cannot hold a lone surrogate; the fields hold 200 characters)
            page.fill("#fleet-search", text)
            page.fill("#host-pick-search", text)
        page.fill("#fleet-search", "")
        page.fill("#host-pick-search", "")
        for name in hostile[:2] + hostile[4:5]:
            page.locator("[data-open-host]").filter(has_text=name).first.click()
            expect(page.locator("#host-detail .detail-name")).to_have_text(name)
            expect(page.locator("#host-timeline")).to_contain_text("nothing recorded for this host yet")
            assert page.evaluate("document.getElementById('host-timeline').dataset.host") == name
        page.select_option("select[name=backup-host]", hostile[4])
        expect(page.locator("select[name=backup] option")).to_have_text(["latest (the newest complete backup)"])
        assert page.evaluate("window.pwned") is None
        assert page.evaluate("document.querySelectorAll('img, script, b, iframe').length") == elements
        assert not errors, errors
        assert not canary.exists()
        page.close()
