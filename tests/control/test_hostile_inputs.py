"""Hostile input through what the control node reads and shows without running a playbook (issue 19): the
event store (stored and read back exactly, or refused naming the text), the commands that only read (their
options, and the stored text they print: sanitized), the Markdown report (escaped) and the channels file
(never executed, never echoed). No canary file is ever created, nothing ends in a traceback."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from notification_emergency.channels import load_channels
from notification_emergency.errors import EXIT_BAD_INPUT, BadInput
from notification_emergency.reports import build_report, render_markdown
from notification_emergency.store import EventStore, parse_since
from notification_emergency.text import shown, terminal
from tests.conftest import invoke_cli
from tests.hostile import hostile_strings, is_unicode

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")  # apprise's import

UNSAFE_ON_A_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def run(*args: str) -> Any:
    result = invoke_cli(list(args), env={"NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args[:3]!r} ended in {result.exception!r}") from result.exception
    return result


@pytest.fixture
def canary(tmp_path: Path) -> Any:
    path = tmp_path / "CANARY"
    yield path
    assert not path.exists(), "a hostile input ran a command"


def test_hostile_text_round_trips_through_the_store_and_is_shown_safely(tmp_path: Path, canary: Path) -> None:
    strings = hostile_strings(canary)
    assert len(strings) >= 100
    path = tmp_path / "events.db"
    accepted: list[str] = []
    with EventStore(path) as store:
        for n, text in enumerate(strings):
            try:
                store.record_notification(f"n{n}", title=text, message=text, priority="high", actor=text)
            except BadInput as exc:
                assert not is_unicode(text), (text[:80], exc.message)
                assert shown(text)[:20] in exc.message and "not valid Unicode" in exc.message
                continue
            assert is_unicode(text), f"{text[:40]!r} is not text and was stored"
            store.record_delivery_attempt(f"n{n}", channel="hook", outcome="failed", error=text)
            store.record_emergency(action="activated", hosts=[text[:300]], actor=text, reason=text, level=2)
            store.audit(actor=text, action="hostile", target=text)
            accepted.append(text)
        store.open_incident(failure_type="hostile", level=1, hosts=["h"], summary=strings[0])

    # read back exactly, through a read-only opening
    with EventStore(path, read_only=True) as reader:
        notes = {note["notification_id"]: note for note in reader.notifications(limit=10_000)}
        trail = reader.audit_trail(limit=10_000)
        emergencies = reader.emergencies(limit=10_000)
        report = build_report(reader, status=None, since=None)
    by_title = {note["title"]: note for note in notes.values()}
    for text in accepted:
        note = by_title[text]
        assert (note["message"], note["actor"], note["attempts"][0]["error"]) == (text, text, text)
    assert sorted(row["target"] for row in trail) == sorted(accepted)
    assert sorted(row["reason"] for row in emergencies) == sorted(accepted)

    # printed by the commands that only read: nothing a terminal or Rich would interpret
    for args in (["events", "-n", "10000"], ["notifications", "-n", "10000", "--attempts"], ["stats"]):
        proc = run(*args, "--store", str(path))
        assert proc.exit_code == 0, proc.output[-2000:]
        assert not UNSAFE_ON_A_TERMINAL.search(proc.stdout), UNSAFE_ON_A_TERMINAL.search(proc.stdout)
    listing = "".join(run("notifications", "-n", "10000", "--store", str(path)).stdout.split())
    for text in accepted:
        if len(text) < 200:
            assert "".join(terminal(text).split()) in listing, text
    # --json keeps every text exactly
    data = json.loads(run("notifications", "-n", "10000", "--json", "--store", str(path)).stdout)
    assert sorted(note["title"] for note in data["notifications"]) == sorted(accepted)

    # the Markdown report: escaped, every text shown as it is
    rendered = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(render_markdown(report))
    tags = set(re.findall(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)", rendered))
    assert tags <= {"h1", "h2", "p", "ul", "li", "strong", "table", "thead", "tbody", "tr", "th", "td"}, tags
    assert "href" not in rendered and "<!--" not in rendered and not UNSAFE_ON_A_TERMINAL.search(rendered)
    plain = html.unescape(rendered)
    in_report = [note["title"] for note in report["notifications"]] + [e["reason"] for e in report["emergencies"]]
    assert len(in_report) >= 100  # (the report holds the latest 100 of each)
    for text in in_report:
        assert terminal(text) in plain, text[:80]


def test_hostile_options_of_the_commands_that_only_read_are_exit_2_naming_them(tmp_path: Path, canary: Path) -> None:
    strings = [text for text in hostile_strings(canary) if text.strip()]
    for text in strings:  # every one through the parser of --since (the CLI's and the dashboard's)
        with pytest.raises(BadInput) as caught:
            parse_since(text)
        assert caught.value.exit_code == EXIT_BAD_INPUT and shown(text)[:30] in caught.value.message
    store = tmp_path / "events.db"
    EventStore(store).close()
    for text in strings[::3]:  # and a third of them through the commands themselves
        for args in (["events", "--since", text], ["events", "--kind", text], ["stats", "--since", text]):
            proc = run(*args, "--store", str(store))
            assert proc.exit_code == EXIT_BAD_INPUT, (args[:2], text[:60], proc.output[-500:])
            assert terminal(shown(text))[:30] in proc.stderr, (text[:60], proc.stderr[:300])
            assert not UNSAFE_ON_A_TERMINAL.search(proc.stderr), proc.stderr[:300]


def test_hostile_text_as_a_store_path_or_report_name_creates_nothing(tmp_path: Path, canary: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for text in hostile_strings(canary)[::3]:
        if "\x00" in text or not is_unicode(text) or len(text) > 200:
            continue  # not a path the system can take (an argv cannot hold them either)
        proc = run("events", "--store", str(work / text) if not text.startswith("/") else text)
        assert proc.exit_code == EXIT_BAD_INPUT, (text[:60], proc.output[-300:])
        proc = run("generate-report", "--no-status", "--output", str(work / text / "r.md"), "--store", str(work))
        assert proc.exit_code == EXIT_BAD_INPUT, (text[:60], proc.output[-300:])
    assert list(work.iterdir()) == []


def test_hostile_channels_files_are_refused_without_running_or_echoing_them(tmp_path: Path, canary: Path) -> None:
    refused = 0
    for n, text in enumerate(hostile_strings(canary)):
        path = tmp_path / f"channels-{n}.yml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates: bytes that are not UTF-8
        path.chmod(0o600)
        try:
            load_channels(path, tmp_path)
        except BadInput as exc:
            refused += 1
            assert str(path) in exc.message
            if len(text) > 12 and text.strip() not in ("{{", "}}{%"):
                assert text not in exc.message and text.strip() not in exc.message, (text[:60], exc.message)
    assert refused >= 50
