"""What the toolkit writes and reads outside a playbook run, against careless and hostile input (issue 19):
reports never follow a symlink nor create a directory, the Markdown report shows text as text, the commands
that only read never create or change a database, bad windows and kinds are exit 2, stored text cannot
drive the terminal, and a channels file is never echoed and must not be writable by others."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from notification_emergency.channels import load_channels
from notification_emergency.errors import EXIT_BAD_INPUT, BadInput
from notification_emergency.reports import render_markdown, report_files, write_report
from notification_emergency.store import EventStore, StoreError
from notification_emergency.text import markdown, terminal
from tests.conftest import VENV_BIN, invoke_cli

CLI = str(VENV_BIN / "notification-emergency")
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")  # apprise's import
READ_COMMANDS = [["events"], ["stats"], ["notifications"], ["generate-report", "--no-status"]]


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI in this process (typer's runner): exit code, stdout, stderr; an exception is a failure."""
    result = invoke_cli(list(args), env={"NO_COLOR": "1", "COLUMNS": "250", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- reports -----------------------------------------------------------------------------------------------


def test_a_report_never_follows_a_symlink_planted_at_its_name(tmp_path: Path) -> None:
    """The /tmp attack: someone links the report's name to a file root may write; the report is refused and
    the file is left as it is. A link planted after the check is replaced by the rename, never followed."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "report.md").symlink_to(victim)
    store = tmp_path / "events.db"
    EventStore(store).close()

    proc = run("generate-report", "--no-status", "--output", str(shared / "report.md"), "--store", str(store))
    assert proc.exit_code == EXIT_BAD_INPUT, proc.output
    assert f"{shared / 'report.md'} is a symbolic link" in proc.stderr and "never follow" in proc.stderr
    assert victim.read_text() == "precious\n"
    assert listing(shared) == ["report.md"], "nothing written next to it either"

    (shared / "report.md").unlink()
    (shared / "report.json").symlink_to(victim)  # the other half of the pair
    with pytest.raises(BadInput, match=r"report\.json is a symbolic link"):
        write_report({"anything": 1}, shared / "report.md")
    assert victim.read_text() == "precious\n"

    # a link that appears between the check and the write: the temporary file is renamed over it
    (shared / "report.json").unlink()
    files = report_files(shared / "late.md")
    (shared / "late.json").symlink_to(victim)
    from notification_emergency import reports

    reports._write_new(files[0], "{}\n")
    assert victim.read_text() == "precious\n"
    assert not (shared / "late.json").is_symlink() and (shared / "late.json").read_text() == "{}\n"


@pytest.mark.parametrize("kind", ["missing-parent", "missing-directory", "parent-is-a-file"])
def test_a_report_never_creates_a_directory(kind: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    output = {
        "missing-parent": tmp_path / "no" / "such" / "report.md",
        "missing-directory": tmp_path / "reports",
        "parent-is-a-file": blocker / "report.md",
    }[kind]
    store = tmp_path / "events.db"
    EventStore(store).close()
    before = listing(tmp_path)
    proc = run("generate-report", "--no-status", "--output", str(output), "--store", str(store))
    assert proc.exit_code == EXIT_BAD_INPUT, proc.output
    directory = output.parent if output.suffix else output
    assert f"the directory {directory}" in proc.stderr and "mkdir -p" in proc.stderr, proc.stderr
    assert listing(tmp_path) == before


def test_a_report_is_written_whole_with_the_usual_mode(tmp_path: Path) -> None:
    store = tmp_path / "events.db"
    EventStore(store).close()
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.md").write_text("an older report\n")
    proc = run("generate-report", "--no-status", "--output", str(out / "r.md"), "--store", str(store), "--json")
    assert proc.exit_code == 0, proc.output
    assert json.loads(proc.stdout)["files"] == [str(out / "r.json"), str(out / "r.md")]
    assert listing(out) == ["r.json", "r.md"], "no temporary file left"
    assert (out / "r.md").read_text().startswith("# Notification service")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "r.md").stat().st_mode & 0o777 == 0o666 & ~umask


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "![pixel](http://tracker.example/p.png)",
    "a | b | c",
    "**bold** _em_ `code` ~~gone~~ $x^2$",
    "line one\nline two\r\n# heading",
    "&lt;b&gt; &amp;",
    "\x1b]0;pwned\x07\x1b[2J",
    "back\\slash\\",
    "<!-- hidden",
]


def test_the_markdown_report_shows_text_from_hosts_and_people_as_text(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        for n, text in enumerate(HOSTILE_MARKDOWN):
            store.record_notification(f"n{n}", title=text, message=text, priority="high", actor=text)
            store.record_emergency(action="activated", hosts=[text], actor=text, reason=text, level=2)
            incident = store.open_incident(failure_type=f"t{n}", level=2, hosts=[text], summary=text)
            store.add_incident_action(incident, action=text, outcome=text)
            store.start_run(f"r{n}", action=text, playbook=None, actor=text, inputs={}, limit=text, check=False)
        from notification_emergency.reports import build_report

        report = build_report(store, status=None, since=None)
    rendered = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(render_markdown(report))
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", rendered))
    assert tags <= {"h1", "h2", "p", "ul", "li", "strong", "table", "thead", "tbody", "tr", "th", "td"}, tags
    assert "<!--" not in rendered and "href" not in rendered and "\x1b" not in rendered
    plain = html.unescape(rendered)
    for text in HOSTILE_MARKDOWN:
        assert terminal(text) in plain, text  # every hostile text shows, character for character
    # each table row keeps its columns: a '|' in a title does not add one
    for row in re.findall(r"<tr>(.*?)</tr>", rendered, re.S):
        assert len(re.findall(r"<t[dh]>", row)) in (5, 6), row


# -- read-only commands ------------------------------------------------------------------------------------


def _needs_migration(path: Path) -> None:
    EventStore(path).close()
    with sqlite3.connect(path) as conn:
        latest = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
    conn.close()


def _unrelated_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.close()


SETUPS = {
    "missing": (lambda path: None, "no event store at {path}"),
    "missing-directory": (lambda path: None, "no event store at {path}"),
    "empty-file": (lambda path: path.write_bytes(b""), "{path} is an empty file, not an event store"),
    "unrelated-sqlite": (_unrelated_sqlite, "{path} is a database with other tables, not an event store"),
    "not-sqlite": (lambda path: path.write_text("some notes\n" * 50), "{path}: file is not a database"),
    "needs-migration": (_needs_migration, "needs a migration"),
}


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("setup", list(SETUPS))
def test_a_command_that_only_reads_never_creates_or_changes_a_store(
    setup: str, command: list[str], tmp_path: Path
) -> None:
    make, expected = SETUPS[setup]
    path = tmp_path / ("typo" if setup == "missing-directory" else "") / "events.db"
    make(path)
    before, files = digest(path), listing(tmp_path)
    (tmp_path / "out").mkdir()
    extra = ["--output", str(tmp_path / "out")] if command[0] == "generate-report" else []
    proc = run(*command, *extra, "--store", str(path))
    assert proc.exit_code == EXIT_BAD_INPUT, proc.output
    assert expected.format(path=path) in " ".join(proc.stderr.split()), proc.stderr
    if setup == "needs-migration":
        assert "run a command that records" in proc.stderr
    assert digest(path) == before, "the file is unchanged"
    assert [f for f in listing(tmp_path) if not f.endswith(("-wal", "-shm"))] == sorted([*files, "out"])
    assert listing(tmp_path / "out") == [], "no report from a store that is not one"


def test_a_store_opened_read_only_reads_and_refuses_to_write(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as writer:  # a command that records creates the store, as before
        writer.audit(actor="a", action="b", target="c")
    before = digest(path)
    with EventStore(path, read_only=True) as reader:
        assert [row["target"] for row in reader.audit_trail()] == ["c"]
        with pytest.raises(StoreError, match="read-only"):
            reader.audit(actor="a", action="b", target="d")
    proc = run("events", "--store", str(path), "--json")
    assert proc.exit_code == 0 and json.loads(proc.stdout)["events"][0]["summary"] == "a b c"
    assert digest(path) == before


# -- bad windows and kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["events", "--since", "99999999d"], "--since '99999999d' is longer than 10 years"),
        (["events", "--since", "3651d"], "--since '3651d' is longer than 10 years"),
        (["stats", "--since", "9" * 5000 + "d"], "is neither a duration"),
        (["notifications", "--since", "yesterday-ish"], "--since 'yesterday-ish' is neither a duration"),
        (["events", "--since", "[/x] [red]"], "--since '[/x] [red]' is neither a duration"),
        (["events", "--since", "1969-12-31"], "--since '1969-12-31' is out of range"),
        (["events", "--since", "0001-01-01T00:00:00+14:00"], "is out of range"),
        (["events", "--kind", "nosuch"], "--kind 'nosuch' is not an event kind; choose from action, audit, emergency"),
        (["events", "--kind", "run", "--kind", "\x1b[2J"], "--kind '\\x1b[2J' is not an event kind"),
        (["generate-report", "--no-status", "--since", "99999999d"], "--since '99999999d' is longer than 10 years"),
    ],
)
def test_a_bad_window_or_kind_is_exit_2_before_the_store_is_opened(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    proc = run(*args, "--store", str(tmp_path / "events.db"))
    assert proc.exit_code == EXIT_BAD_INPUT, proc.output
    assert expected in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stderr
    assert listing(tmp_path) == [], "no store opened, none created"
    as_json = run(*args, "--store", str(tmp_path / "events.db"), "--json")
    assert json.loads(as_json.stdout)["exit_code"] == EXIT_BAD_INPUT


def test_the_real_console_script_refuses_an_overflowing_window_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [CLI, "events", "--since", "99999999d", "--store", str(tmp_path / "events.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr, proc.stderr
    assert "longer than 10 years" in proc.stderr


# -- terminal output ---------------------------------------------------------------------------------------

ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m\x1b[31mred\rfake line\nnext\u202eevil\x00"


def test_stored_text_cannot_drive_the_terminal_or_rich_markup(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    title = "[red]x[/red] [link=http://evil.example]click[/link] [bold" + ESCAPES
    with EventStore(path) as store:
        store.record_notification("n1", title=title, message=title, priority="high", actor=title)
        store.record_delivery_attempt("n1", channel="hook", outcome="failed", error=title)
        store.record_emergency(action="activated", hosts=["web-01"], actor=title, reason=title, level=2)
    for args in (["events"], ["notifications", "--attempts"], ["stats"]):
        proc = run(*args, "--store", str(path))
        assert proc.exit_code == 0, proc.output
        for char in "\x1b\x07\x9b\r\x00\u202e":
            assert char not in proc.stdout, (args, repr(char))
        if args[0] != "stats":
            shown = "".join(proc.stdout.split())  # the table wraps long cells
            assert "[red]x[/red][link=http://evil.example]click[/link][bold" in shown, proc.stdout
            assert "\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\x1b[31mred\\rfakeline\\nnext\\u202eevil\\x00" in shown
    # JSON keeps the text exactly (JSON escapes the control characters itself)
    data = json.loads(run("notifications", "--json", "--store", str(path)).stdout)
    assert data["notifications"][0]["title"] == title
    assert data["notifications"][0]["attempts"][0]["error"] == title
    assert any(
        title in event["summary"]
        for event in json.loads(run("events", "--json", "--store", str(path)).stdout)["events"]
    )


def test_the_text_helpers() -> None:
    assert terminal("a\x1bb\nc\td\x7f\x85\u2028\ud800") == "a\\x1bb\\nc\\td\\x7f\\x85\\u2028\\ud800"
    assert terminal("plain text, ünïcödé, 日本語 and emoji 🚨") == "plain text, ünïcödé, 日本語 and emoji 🚨"
    assert markdown("websocket_service_down web-01") == "websocket_service_down web-01"
    assert markdown("<b>|*") == "&lt;b&gt;\\|\\*"


# -- the channels file -------------------------------------------------------------------------------------

MARKER = "Zq7-not-to-be-shown"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (f"root:$6$salt$hash{MARKER}:19000:0:99999:7:::\n_apt: {MARKER}:19000:0:99999:7:::\n", "at line"),
        (f"{MARKER}: 1\n", "unknown key at line 1, column 1"),
        (f"channels: {{a: !!python/object/apply:os.system ['echo {MARKER}']}}\n", "not valid YAML at line 1"),
        (f"channels:\n  a: *{MARKER}\n", "not valid YAML at line 2"),
        (f"channels: [\n  {MARKER}\n", "not valid YAML at line"),
        (f"a: {MARKER}\x1b\n", "not valid YAML at character"),
        (b"\x7fELF\x02\x01\x01\xff\xfe" + MARKER.encode(), "not UTF-8 text (byte 7)"),
        (f"- {MARKER}\n", "must be a mapping"),
    ],
)
def test_a_channels_file_error_names_the_file_and_place_never_its_content(
    content: str | bytes, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "some-file"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path.chmod(0o600)
    with pytest.raises(BadInput) as caught:
        load_channels(path, tmp_path)
    assert str(path) in caught.value.message and problem in caught.value.message, caught.value.message
    assert MARKER not in caught.value.message and "salt" not in caught.value.message
    proc = run(
        "send-notification",
        "--check-config",
        "--channels",
        str(path),
        env={"NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path)},
    )
    assert proc.exit_code == EXIT_BAD_INPUT and MARKER not in proc.output, proc.output


def _channels(tmp_path: Path, mode: int, **users: Any) -> Path:
    path = tmp_path / "channels.yml"
    config: dict[str, Any] = {"channels": {"mail": f"mailto://alerts:{MARKER}@smtp.example.com?to=oncall@example.com"}}
    if users:
        config = {"users": users}
    path.write_text(yaml.safe_dump(config))
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666, 0o664])
def test_a_channels_file_others_may_write_is_refused(mode: int, tmp_path: Path) -> None:
    path = _channels(tmp_path, mode)
    with pytest.raises(BadInput, match=rf"channels file {re.escape(str(path))} is writable by .*chmod 600"):
        load_channels(path, tmp_path)


def test_a_channels_file_with_credentials_others_may_read_gets_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="notification_emergency.channels"):
        config = load_channels(_channels(tmp_path, 0o644), tmp_path)
    assert len(config.warnings) == 1 and "holds credentials and is readable by" in config.warnings[0]
    assert "chmod 600" in caplog.text and MARKER not in caplog.text
    assert config.describe()["warnings"] == list(config.warnings)
    assert load_channels(_channels(tmp_path, 0o600), tmp_path).warnings == ()
    no_secret = tmp_path / "plain.yml"
    no_secret.write_text(yaml.safe_dump({"routing": {"low": ["file"]}}))
    no_secret.chmod(0o644)
    assert load_channels(no_secret, tmp_path).warnings == (), "nothing to steal: no warning"


def test_the_api_token_file_is_checked_the_same_way(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(f"api_token: {MARKER}\n")
    token.chmod(0o666)
    with pytest.raises(BadInput, match=rf"API token file {re.escape(str(token))} is writable by .*chmod 600"):
        load_channels(_channels(tmp_path, 0o600, api_token_file=str(token)), tmp_path)
    token.chmod(0o640)
    config = load_channels(_channels(tmp_path, 0o600, api_token_file=str(token)), tmp_path)
    assert [w for w in config.warnings if "API token file" in w and "its group" in w]
    token.chmod(0o600)
    assert load_channels(_channels(tmp_path, 0o600, api_token_file=str(token)), tmp_path).warnings == ()


def test_a_postgresql_store_is_read_without_creating_anything(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="is an empty database, not an event store"):
        EventStore(postgres_url, read_only=True)
    with EventStore(postgres_url) as writer:  # a command that records creates the tables
        writer.audit(actor="a", action="b", target="c")
    with EventStore(postgres_url, read_only=True) as reader:
        assert [row["target"] for row in reader.audit_trail()] == ["c"]
        with reader._engine.connect() as conn:  # the session itself is read-only
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
