"""Hostile input to the reference service's HTTP API through the real processes (issue 19): every text field
(title, message, user, priority, channel, the query's user, the login's user), malformed bodies (deeply
nested JSON, lone surrogates, non-UTF-8 bytes, numbers Python cannot hold, NaN, wrong types). Never a 5xx
and never a traceback in the log; a refusal is a 4xx whose message names the field; accepted text comes
back exactly (the title stripped of surrounding blanks, as documented); no canary file is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from notification_service.names import valid_user

from tests.hostile import hostile_strings, is_unicode

from .harness import Page, Stack

USER = "hostile-user"


def _log_size(service: Stack) -> int:
    path = service.root / "web.log"
    return path.stat().st_size if path.exists() else 0


def _new_log(service: Stack, since: int) -> str:
    with (service.root / "web.log").open("rb") as log:
        log.seek(since)
        return log.read().decode(errors="replace")


def _acceptable_title(text: str) -> bool:
    return is_unicode(text) and "\x00" not in text and bool(text.strip()) and len(text) <= 200


def test_hostile_text_in_every_field_is_stored_exactly_or_refused_with_a_4xx(service: Stack, tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    strings = hostile_strings(canary)
    assert len(strings) >= 100
    log_start = _log_size(service)
    stored: dict[int, tuple[str, str]] = {}
    for text in strings:
        body = json.dumps({"user": USER, "title": text, "message": text, "channel": "flash"})
        answer = service.api("POST", "/api/notifications", data=body, headers={"Content-Type": "application/json"})
        if answer.status_code == 413:  # larger than the 64 KiB body limit
            assert len(body) > 64 * 1024
            continue
        fits = _acceptable_title(text) and len(text) <= 5000
        if fits:
            assert answer.status_code == 201, (text[:60], answer.status_code, answer.text[:300])
            stored[answer.json()["id"]] = (text.strip(), text)
        else:
            assert 400 <= answer.status_code < 500, (text[:60], answer.status_code, answer.text[:300])
            error = answer.json()["error"]
            assert "'title'" in error or "'message'" in error, error
        a_user = valid_user(text)  # "yes", "NaN", "0x1F" are user names like any other
        for field, extra in (("user", {"title": "t", "channel": "flash"}), ("priority", {"user": USER, "title": "t"})):
            answer = service.api("POST", "/api/notifications", json={**extra, field: text})
            if answer.status_code == 413 or (field == "user" and a_user and answer.status_code == 201):
                continue
            assert 400 <= answer.status_code < 500, (field, text[:60], answer.status_code, answer.text[:300])
            assert f"'{field}'" in answer.json()["error"], answer.text[:300]
        answer = service.api("POST", "/api/ws-token", json={"user": text})
        assert answer.status_code in ((200,) if a_user else (400, 413)), (text[:60], answer.status_code)
        if is_unicode(text):  # (a URL cannot carry a lone surrogate)
            answer = service.api("GET", "/api/notifications", params={"user": text[:300]})
            assert answer.status_code == (200 if a_user else 400), (text[:60], answer.text[:300])
    assert len(stored) >= 80

    rows = service.deliveries(USER)
    for notification_id, (title, message) in stored.items():
        assert (rows[notification_id]["title"], rows[notification_id]["message"]) == (title, message)

    # the page that shows them as flash messages: text, never markup
    browser = requests.Session()
    page = Page(browser.get(f"{service.web_url}/login", params={"user": USER}, timeout=10))  # shown as it loads
    assert len(page.flashes) >= 80
    assert "<script>alert(1)</script>" not in page.html and "<img src=x" not in page.html
    log = _new_log(service, log_start)
    assert "Traceback" not in log, log[-3000:]
    assert not canary.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 60_000, "deeper than 32 levels"),
        (b'{"title": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "deeper than 32 levels"),
        (b'{"user": "x", "title": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "deeper than 32 levels"),
        (b'{"user": "x", "title": "\\ud800"}', "field 'title' contains a lone surrogate"),
        (b'{"user": "x", "title": "ok", "message": "a\\udfffb"}', "field 'message' contains a lone surrogate"),
        (b'{"user": "x", "title": "a\\u0000b"}', "field 'title' contains a NUL character"),
        (b'{"\\ud800": 1}', "field name '\\ud800' is not text"),
        (b'{"user": "x", "title": "\xff\xfe"}', "the request body is not UTF-8 (byte 24)"),  # 0-based
        (b'{"user": "x", "title": "t", "priority": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b'{"user": "x", "title": "t", "priority": 1e999}', "field 'priority' must be one of"),
        (b'{"user": "x", "title": NaN}', "not usable JSON (NaN is not JSON)"),
        (b'{"user": "x", "title": -Infinity}', "not usable JSON"),
        (b'{"user": "x", "title": "t"', "not valid JSON (Expecting ',' delimiter"),
        (b'{"user": ["x"], "title": "t"}', "field 'user' must be"),
        (b'{"user": {"$ne": null}, "title": "t"}', "field 'user' must be"),
        (b'{"user": "x", "title": ["t"]}', "field 'title' must be a non-empty string"),
        (b'{"user": "x", "title": 12}', "field 'title' must be a non-empty string"),
        (b'{"user": "x", "title": "t", "message": {"a": 1}}', "field 'message' must be a string"),
        (b'{"user": "x", "title": "t", "priority": ["high"]}', "field 'priority' must be one of"),
        (b'{"user": "x", "title": "t", "channel": {"flash": true}}', "field 'channel' must be one of"),
        (b'{"user": "x", "title": "t", "channel": true}', "field 'channel' must be one of"),
        (b'"just a string"', "must be a JSON object"),
        (b"", "not valid JSON"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_problem(service: Stack, body: bytes, expected: str) -> None:
    log_start = _log_size(service)
    answer = service.api("POST", "/api/notifications", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert expected in answer.json()["error"], answer.json()["error"]
    token = service.api("POST", "/api/ws-token", data=body, headers={"Content-Type": "application/json"})
    assert token.status_code == 400, (token.status_code, token.text[:300])
    assert "Traceback" not in _new_log(service, log_start)


def test_a_body_over_the_limit_is_413_not_500(service: Stack) -> None:
    answer = service.api(
        "POST", "/api/notifications", data=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413 and "too large" in answer.json()["error"]
