"""The dashboard's production server, for real: ``notification-emergency dashboard`` (gunicorn's master and its
threaded worker, as the systemd unit runs it) on a loopback port, a real users file and store, requests over
HTTP. No version in any ``Server`` header; server-sent events through it; a killed worker replaced by the
master; ordinary requests served while every event stream the server allows is open; SIGTERM ends the streams
and finishes a request in flight, within the grace time; the systemd unit runs a command the CLI has."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from notification_emergency.dashboard.server import GRACEFUL_TIMEOUT, MAX_STREAMS, REQUEST_THREADS
from tests.conftest import ROOT, VENV_BIN, cli_command, free_port_block
from tests.dashboard.conftest import PASSWORDS, csrf_of

CLI = str(VENV_BIN / "notification-emergency")
UNIT = ROOT / "deploy" / "systemd" / "notification-emergency-dashboard.service"
BOB = (("bob", PASSWORDS["bob"]),)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    port: int
    ready: bytes  # what gunicorn's master sent to $NOTIFY_SOCKET


@contextmanager
def cli_dashboard(state: Path, users_file: Path, inventory: Path) -> Iterator[Served]:
    """``notification-emergency dashboard`` in a process of its own, with a systemd-like $NOTIFY_SOCKET."""
    port = free_port_block(1, start=27100)
    home = Path(tempfile.mkdtemp(prefix="ne-notify-"))  # a short path: unix socket names are 107 bytes at most
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(home / "notify"))
    notify.settimeout(60)
    env = {**os.environ, "NOTIFICATION_EMERGENCY_STATE_DIR": str(state), "NOTIFY_SOCKET": str(home / "notify")}
    command = [CLI, "dashboard", "--port", str(port), "--users", str(users_file), "-i", str(inventory)]
    proc = subprocess.Popen(
        [*command, "--store", str(state / "events.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ready = notify.recv(4096)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the dashboard did not answer"
            time.sleep(0.1)
        yield Served(proc, url, port, ready)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        notify.close()
        shutil.rmtree(home)


def log_in(url: str, name: str = "bob") -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/login", timeout=10)
    home = session.post(
        f"{url}/login",
        data={"username": name, "password": PASSWORDS[name], "csrf_token": csrf_of(page.text)},
        timeout=30,
    )
    assert home.status_code == 200 and home.url.endswith("/"), home.text[:300]
    return session


class Stream:
    """An open server-sent event stream, on a connection of its own (kept open until ``close()``)."""

    def __init__(self, url: str, cookies: Any) -> None:
        self.session = requests.Session()
        self.session.cookies.update(cookies)
        self.response = self.session.get(f"{url}/api/stream", stream=True, timeout=30)
        self.lines = self.response.iter_lines(decode_unicode=True)

    def event(self) -> tuple[str, Any]:
        """The next event: its name and its data."""
        event = None
        for line in self.lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                return event, json.loads(line[6:])
        raise AssertionError("the stream ended before an event")

    def rest(self) -> list[str]:
        """Every line until the server ends the stream (a stream cut short raises ChunkedEncodingError)."""
        return list(self.lines)

    def close(self) -> None:
        self.response.close()
        self.session.close()


def assert_no_version(answer: requests.Response) -> None:
    server = answer.headers.get("Server")
    assert server == "gunicorn", f"{answer.request.method} {answer.url}: Server {server!r}"
    assert not any("werkzeug" in value.lower() or "python" in value.lower() for value in answer.headers.values())


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's master: its worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def raw_exchange(port: int, request: bytes) -> str:
    """Send ``request`` as it is and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def test_the_cli_serves_with_gunicorn_no_version_in_any_server_header_and_a_dead_worker_replaced(
    state: Path, users_file: Path, offline_inventory: Path
) -> None:
    with cli_dashboard(state, users_file, offline_inventory) as served:
        assert b"READY=1" in served.ready, served.ready  # Type=notify in the systemd unit
        url = served.url
        answers = [
            requests.get(f"{url}/login", timeout=10),  # a page
            requests.get(f"{url}/static/dashboard.css", timeout=10),
            requests.get(f"{url}/", timeout=10, allow_redirects=False),  # 302 to the login form
            requests.get(f"{url}/metrics", auth=BOB[0], timeout=30),
            requests.get(f"{url}/metrics", timeout=10),  # 401
            requests.get(f"{url}/no-such-page", timeout=10),  # 404
            requests.post(f"{url}/login", data={"username": "bob", "password": "x"}, timeout=10),  # no CSRF: 403
            requests.delete(f"{url}/login", timeout=10),  # 405
        ]
        assert [a.status_code for a in answers] == [200, 200, 302, 200, 401, 404, 403, 405]
        assert answers[3].text.startswith("# HELP notification_emergency_")
        for answer in answers:
            assert_no_version(answer)

        stream = Stream(url, log_in(url).cookies)
        try:
            assert stream.response.status_code == 200
            assert stream.response.headers["Content-Type"].startswith("text/event-stream")
            assert_no_version(stream.response)
            event, data = stream.event()
            while event != "live":
                event, data = stream.event()
            assert [host["host"] for host in data["hosts"]] == ["offline-01"]
        finally:
            stream.close()

        # gunicorn's own answer to a request Flask never sees: no Server header at all, so no version
        garbled = raw_exchange(served.port, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbled.startswith("HTTP/1.1 400 "), garbled[:200]
        assert not re.search(r"^Server:", garbled, re.MULTILINE | re.IGNORECASE), garbled[:300]

        # gunicorn's master supervises its worker: a worker that dies is replaced, and serving goes on
        [worker] = children(served.proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (set(children(served.proc.pid)) - {worker}):
            assert time.monotonic() < deadline, "no new worker"
            time.sleep(0.1)
        again = requests.get(f"{url}/login", timeout=30)
        assert again.status_code == 200
        assert_no_version(again)

        served.proc.send_signal(signal.SIGTERM)
        _out, err = served.proc.communicate(timeout=GRACEFUL_TIMEOUT + 15)
    assert served.proc.returncode == 0, err
    assert "dashboard stopped" in err and "Traceback" not in err, err


def test_event_streams_cannot_starve_requests_and_sigterm_stops_gracefully(
    state: Path, users_file: Path, offline_inventory: Path
) -> None:
    with cli_dashboard(state, users_file, offline_inventory) as served:
        url = served.url
        cookies = log_in(url).cookies
        streams: list[Stream] = []
        try:
            for _ in range(MAX_STREAMS):  # every stream the server allows, each a real event received
                streams.append(Stream(url, cookies))
                assert streams[-1].response.status_code == 200, streams[-1].response.text[:300]
                assert streams[-1].event()[0] in ("live", "record")
            beyond = requests.get(f"{url}/api/stream", cookies=cookies, timeout=10)
            assert beyond.status_code == 429 and f"at most {MAX_STREAMS}" in beyond.json()["error"]

            # Twice as many requests at once as there are threads left: all served, none waits for a stream.
            def ordinary(number: int) -> int:
                if number % 2:
                    return requests.get(f"{url}/metrics", auth=BOB[0], timeout=30).status_code
                return requests.get(f"{url}/api/state", cookies=cookies, timeout=30).status_code

            assert requests.get(f"{url}/metrics", auth=BOB[0], timeout=30).ok  # then remembered, as for a scraper
            with ThreadPoolExecutor(max_workers=2 * REQUEST_THREADS) as pool:
                codes = list(pool.map(ordinary, range(4 * REQUEST_THREADS)))
            assert codes == [200] * (4 * REQUEST_THREADS)
            for stream in streams:  # and the streams were open all along: each gets the next update
                assert stream.event()[0] in ("live", "record")

            # A request in flight when SIGTERM comes: its body is still on its way.
            body = b"username=bob&password=" + PASSWORDS["bob"].encode() + b"&csrf_token=none"
            with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
                conn.sendall(
                    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
                )
                time.sleep(0.5)  # the worker has read the headers and waits for the body
                stopped_at = time.monotonic()
                served.proc.send_signal(signal.SIGTERM)
                time.sleep(1.0)
                conn.sendall(body[10:])
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
            head = answer.decode("latin-1").partition("\r\n\r\n")[0]
            assert head.startswith("HTTP/1.1 403 "), head  # answered (its CSRF token is wrong), not dropped
            assert "Server: gunicorn\r\n" in head, head  # and the worker closed the connection (recv gave b"")

            for stream in streams:  # each still open until SIGTERM, then ended by the server
                stream.rest()
            _out, err = served.proc.communicate(timeout=GRACEFUL_TIMEOUT + 15)
            took = time.monotonic() - stopped_at
        finally:
            for stream in streams:
                stream.close()
    assert served.proc.returncode == 0, err
    assert took < GRACEFUL_TIMEOUT, f"{took:.1f} s: the open streams held the graceful stop to its end"
    assert "dashboard stopped" in err and "Traceback" not in err and "SIGKILL" not in err, err
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=5)


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(UNIT)
    return unit


def test_the_systemd_unit_runs_the_cli_hardened_and_stops_after_the_grace_time() -> None:
    service = _unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == "/opt/notification-emergency/.venv/bin/notification-emergency"
    assert (VENV_BIN / Path(command[0]).name).is_file(), "an entry point of the virtual environment"
    assert 'notification-emergency = "notification_emergency.cli:run"' in (ROOT / "pyproject.toml").read_text()
    assert command[1] == "dashboard"
    dashboard = cli_command().commands["dashboard"]  # type: ignore[attr-defined]
    options = dashboard.make_context("dashboard", command[2:]).params  # raises on an option the CLI has not
    assert options["host"] == "127.0.0.1" and options["port"] == 5001 and options["secure_cookies"] is True
    assert service["Type"] == "notify" and service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > GRACEFUL_TIMEOUT + 10, "gunicorn's grace, then its own kill, first"
    assert service["User"] == "notification-emergency" and service["Restart"] == "on-failure"
    hardening = {"NoNewPrivileges": "true", "ProtectSystem": "full", "PrivateTmp": "true", "ProtectHome": "true"}
    assert {key: service.get(key) for key in hardening} == hardening
    assert service["CapabilityBoundingSet"] == "" and service["UMask"] == "0077"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """systemd's own check, with ExecStart pointed at this virtual environment (it checks the file exists)."""
    text = UNIT.read_text().replace("/opt/notification-emergency/.venv/bin/", f"{VENV_BIN}/")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    run = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stderr == "", run.stderr
