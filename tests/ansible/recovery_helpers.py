"""Helpers of the recovery playbook tests: playbook runs, file snapshots, the host's lock, and a stream of
notifications read by real clients (python-socketio clients that ack, and "browsers" that view pages).

Nothing is mocked: the clients talk to the sandbox host's own web and websocket processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import socketio
import yaml

from tests.ansible.conftest import SandboxHost
from tests.ansible.sandbox import ROOT, PlaybookRun, parse_recap

NAMESPACE = "/notifications"
# python-engineio's write loop of a client the server disconnected waits out its ping timeout, then logs
# "packet queue is empty, aborting" at ERROR: harmless noise once the test has moved on.
QUIET_ENGINEIO = logging.getLogger("tests.recovery.engineio")
QUIET_ENGINEIO.setLevel(logging.CRITICAL)
FLASH_RE = re.compile(r'<li class="flash flash-(\w+)">(.*?)</li>', re.S)
MODE_RE = re.compile(r'<meta name="notification-mode" content="(\w+)">')
# What a playbook run may leave changing on a host: logs, supervisord's socket and pid, and the data (the
# SQLite database and its -wal/-shm files change with every request, page view and probe).
VOLATILE_DIRS = ("log", "run", "data")


# -- playbooks ------------------------------------------------------------------------------------------


def playbook_command(host: SandboxHost, name: str, *args: str, extra: dict[str, Any] | None = None) -> list[str]:
    """The ansible-playbook command line of ``name`` against the host's sandbox inventory (as Sandbox.playbook)."""
    command = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        str(host.box.inventory),
        str(ROOT / "playbooks" / name),
        "--limit",
        host.name,
        *args,
    ]
    if extra:
        command += ["-e", json.dumps(extra)]  # JSON keeps types and spaces
    return command


def playbook_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
    }


def run_playbook(
    host: SandboxHost, name: str, *args: str, extra: dict[str, Any] | None = None, timeout: float = 280
) -> PlaybookRun:
    started = time.monotonic()
    proc = subprocess.run(
        playbook_command(host, name, *args, extra=extra),
        capture_output=True,
        text=True,
        env=playbook_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, parse_recap(proc.stdout))
    print(f"{name} {' '.join(args)} {extra or ''}: rc={run.rc} in {run.seconds:.1f}s recap={run.recap}")
    return run


def kill_when(
    host: SandboxHost,
    name: str,
    marker: str,
    *,
    extra: dict[str, Any] | None = None,
    timeout: float = 240,
    ready: Callable[[], bool] | None = None,
    kill_tree: bool = False,
) -> tuple[int, str]:
    """Start ``name``, SIGKILL its whole process group once a stdout line contains ``marker`` (and then, with
    ``ready``, once ``ready()`` is true: a point inside that task); (pid, output).

    ``kill_tree``: SIGKILL every descendant too. Ansible's workers start sessions of their own, so a module
    running on a local-connection host outlives its killed controller unless it is killed as well (as it would
    die with a host that crashed)."""
    proc = subprocess.Popen(
        playbook_command(host, name, extra=extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=playbook_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    timer = threading.Timer(timeout, lambda: _killpg(proc.pid))
    timer.start()
    try:
        if not marker:
            # No output to wait for (ansible-playbook's stdout is a pipe, block-buffered): poll ``ready`` alone.
            assert ready is not None, "kill_when needs a marker or ready"
            ends = time.monotonic() + timeout
            while not ready() and proc.poll() is None and time.monotonic() < ends:
                time.sleep(0.02)
            _kill_run(proc.pid, kill_tree)
            lines.extend(proc.stdout)
            lines.append(marker)
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                ends = time.monotonic() + 60
                while ready is not None and not ready() and time.monotonic() < ends:
                    time.sleep(0.02)
                _kill_run(proc.pid, kill_tree)
                break
        proc.wait(timeout=30)
    finally:
        timer.cancel()
        _killpg(proc.pid)  # nothing of the run survives, whatever happened
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        proc.stdout.close()
    output = "".join(lines)
    assert any(marker in line for line in lines), f"the run ended before {marker!r}:\n{output[-3000:]}"
    assert proc.returncode == -signal.SIGKILL, f"rc {proc.returncode}:\n{output[-3000:]}"
    return proc.pid, output


def _kill_run(pid: int, kill_tree: bool) -> None:
    """SIGKILL the run's process group and, with ``kill_tree``, every descendant (workers have own sessions)."""
    descendants = _descendants(pid) if kill_tree else []
    _killpg(pid)
    for child in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (whatever its session), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def report_of(run: PlaybookRun) -> dict[str, Any] | None:
    """The run's JSON report, from the path the report play prints (None when no report was written)."""
    match = re.search(r"report: (\S+\.json)", run.stdout)
    if not match or not Path(match.group(1)).exists():
        return None
    report: dict[str, Any] = json.loads(Path(match.group(1)).read_text())
    return report


# -- files ----------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path, *, skip: tuple[str, ...] = VOLATILE_DIRS) -> dict[str, str]:
    """Every file (sha256 and mode) and directory (mode) under ``root``, except the top directories ``skip``."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in skip:
            dirs[:] = []
            continue
        for name in dirs:
            path = Path(directory) / name
            if rel_dir.parts or name not in skip:
                found[f"{(rel_dir / name).as_posix()}/"] = f"dir {oct(path.lstat().st_mode)}"
        for name in files:
            path = Path(directory) / name
            found[(rel_dir / name).as_posix()] = f"{sha256(path)} {oct(path.lstat().st_mode)}"
    return found


def snapshot_diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    lines = [f"+ {path}" for path in sorted(after.keys() - before.keys())]
    lines += [f"- {path}" for path in sorted(before.keys() - after.keys())]
    lines += [
        f"~ {path}: {before[path]} -> {after[path]}"
        for path in sorted(before.keys() & after.keys())
        if before[path] != after[path]
    ]
    return lines


def backups(root: Path) -> list[str]:
    """Names of the complete backups, oldest first (names start with the UTC time)."""
    directory = root / "backups"
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and (p / "manifest.json").exists())


def lock_file(root: Path) -> Path:
    return root / "state" / "toolkit.lock"


def audit_records(root: Path) -> list[dict[str, Any]]:
    path = root / "state" / "lock-audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def config_mode(root: Path) -> str:
    settings = yaml.safe_load((root / "etc" / "config.yml").read_text())
    return str(settings["mode"])


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- a stream of notifications and its readers ---------------------------------------------------------


class Api:
    """The host's HTTP API with its token; a new connection per call (no kept-alive socket to go stale)."""

    def __init__(self, web_url: str, token: str) -> None:
        self.web_url = web_url
        self.token = token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Connection": "close"}
        return requests.request(method, f"{self.web_url}{path}", headers=headers, timeout=(3, 10), **kwargs)

    def ws_token(self, user: str) -> str:
        response = self.request("POST", "/api/ws-token", json={"user": user})
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def deliveries(self, user: str) -> list[dict[str, Any]]:
        response = self.request("GET", "/api/notifications", params={"user": user})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["deliveries"]
        return rows


@dataclass
class Sent:
    """What the sender knows: the notifications it created (201) and the attempts whose answer was lost."""

    ids: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (user, title)
    titles: dict[str, int] = field(default_factory=dict)  # title -> id
    uncertain: dict[str, str] = field(default_factory=dict)  # title -> user: no answer (may exist or not)
    transport_errors: Counter[str] = field(default_factory=Counter)
    http_errors: list[str] = field(default_factory=list)


class Sender(threading.Thread):
    """POSTs notifications to the users in turn at ``rate`` per second until stopped.

    A request that fails at the transport level (connection refused or reset, timeout: the web process is
    restarting) is retried with a new title and recorded: it may or may not have created a notification.
    Any other answer than 201 is an error of the run.
    """

    def __init__(self, api: Api, users: list[str], tag: str, rate: float) -> None:
        super().__init__(name="sender", daemon=True)
        self.api = api
        self.users = users
        self.tag = tag
        self.interval = 1.0 / rate
        self.sent = Sent()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def run(self) -> None:
        seq = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            user = self.users[seq % len(self.users)]
            self._send(user, f"{self.tag}-{seq}")
            seq += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)
            else:
                next_at = time.monotonic()

    def _send(self, user: str, base_title: str) -> None:
        for attempt in range(200):
            title = base_title if attempt == 0 else f"{base_title}-retry{attempt}"
            try:
                response = self.api.request("POST", "/api/notifications", json={"user": user, "title": title})
            except (requests.ConnectionError, requests.Timeout) as exc:
                with self.lock:
                    self.sent.uncertain[title] = user
                    self.sent.transport_errors[type(exc).__name__] += 1
                time.sleep(0.2)
                continue
            with self.lock:
                if response.status_code == 201:
                    notification_id = int(response.json()["id"])
                    self.sent.ids[notification_id] = (user, title)
                    self.sent.titles[title] = notification_id
                else:
                    self.sent.http_errors.append(f"{title}: HTTP {response.status_code} {response.text[:200]}")
            return
        with self.lock:
            self.sent.http_errors.append(f"{base_title}: gave up after 200 transport errors")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive(), "the sender did not stop"


class Browser(threading.Thread):
    """A user's browser: signs in, then views GET / every ``interval`` seconds and keeps every flash it shows.

    One thread per browser: its requests never overlap, as a user's page loads do not (the flashed messages
    live in the session cookie between the render that claims them and the one that shows them).
    """

    def __init__(self, web_url: str, user: str, interval: float = 0.5) -> None:
        super().__init__(name=f"browser-{user}", daemon=True)
        self.web_url = web_url
        self.user = user
        self.interval = interval
        self.session = requests.Session()
        self.flashes: list[str] = []
        self.modes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.views = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        response = self.session.get(f"{web_url}/login", params={"user": user}, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:300]

    def view(self) -> None:
        try:
            response = self.session.get(f"{self.web_url}/", timeout=(3, 10))
        except requests.RequestException as exc:
            with self.lock:
                self.errors[type(exc).__name__] += 1
            return
        with self.lock:
            self.views += 1
            if response.status_code != 200:
                self.errors[f"HTTP {response.status_code}"] += 1
                return
            mode = MODE_RE.search(response.text)
            self.modes[mode.group(1) if mode else "?"] += 1
            self.flashes += [html.unescape(text).strip() for _category, text in FLASH_RE.findall(response.text)]

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.view()
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)


class SocketUser:
    """A user's live page: a python-socketio client (reconnection on) that acks every notification it gets.

    Only an ack answered ``{"claimed": true}`` counts as shown. python-socketio does not reconnect by itself
    after the server closed the connection (the websocket process disconnects its clients when it stops; a
    browser's socket.io-client does reconnect then), so a watcher connects a new client in that case, as the
    page would; transport errors are left to python-socketio's own reconnection.
    """

    def __init__(self, url: str, api: Api, user: str) -> None:
        self.url = url
        self.api = api
        self.user = user
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.claimed: list[int] = []
        self.not_claimed: list[int] = []
        self.outstanding: Counter[int] = Counter()  # acks sent whose answer has not come (yet)
        self.ack_errors: Counter[str] = Counter()
        self.unsent_acks: set[int] = set()  # received, but the ack could not be sent: sent again when connected
        self.connects = 0
        self.disconnects: Counter[str] = Counter()
        self.client: socketio.Client | None = None
        self.need_new_client = threading.Event()
        self.stop_event = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name=f"socket-{user}", daemon=True)

    def start(self) -> None:
        self._connect()
        self.watcher.start()

    def _connect(self) -> None:
        client = socketio.Client(
            reconnection=True,
            reconnection_delay=0.5,
            reconnection_delay_max=2,
            request_timeout=5,
            engineio_logger=QUIET_ENGINEIO,
        )
        client.on("connect", self._on_connect, namespace=NAMESPACE)
        client.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        client.on("notification", lambda data: self._on_notification(client, data), namespace=NAMESPACE)
        client.connect(
            self.url,
            namespaces=[NAMESPACE],
            auth={"token": self.api.ws_token(self.user)},
            transports=["websocket"],
            wait_timeout=5,
        )
        self.client = client

    def _on_connect(self) -> None:
        with self.lock:
            self.connects += 1

    def _on_disconnect(self, reason: Any = None) -> None:
        with self.lock:
            self.disconnects[str(reason)] += 1
        if reason == socketio.Client.reason.SERVER_DISCONNECT:
            self.need_new_client.set()

    def _on_notification(self, client: socketio.Client, data: Any) -> None:
        if not isinstance(data, dict):
            return
        notification_id = int(data["id"])
        with self.lock:
            self.events.append(data)
        self._send_ack(client, notification_id)

    def _send_ack(self, client: socketio.Client, notification_id: int) -> None:
        with self.lock:
            self.outstanding[notification_id] += 1
        try:
            client.emit(
                "ack",
                {"id": notification_id},
                namespace=NAMESPACE,
                callback=lambda answer=None: self._on_answer(notification_id, answer),
            )
        except Exception as exc:  # the connection went away: ack again once connected (as the page's JS does)
            with self.lock:
                self.ack_errors[type(exc).__name__] += 1
                self.outstanding[notification_id] -= 1
                self.unsent_acks.add(notification_id)

    def _on_answer(self, notification_id: int, answer: Any) -> None:
        with self.lock:
            self.outstanding[notification_id] -= 1
            if isinstance(answer, dict) and answer.get("claimed") is True:
                self.claimed.append(notification_id)
            else:
                self.not_claimed.append(notification_id)

    def _watch(self) -> None:
        while not self.stop_event.is_set():
            with self.lock:
                retry = sorted(self.unsent_acks) if self.client is not None and self.client.connected else []
                self.unsent_acks.difference_update(retry)
            for notification_id in retry:
                if self.client is not None:
                    self._send_ack(self.client, notification_id)
            if self.need_new_client.wait(0.2) and not self.stop_event.is_set():
                try:
                    self._connect()
                except Exception:
                    self.stop_event.wait(0.5)  # the websocket process is down (legacy mode): try again
                    continue
                self.need_new_client.clear()

    def waiting_answers(self) -> list[int]:
        with self.lock:
            return sorted(notification_id for notification_id, count in self.outstanding.items() if count > 0)

    def close(self) -> None:
        self.stop_event.set()
        self.watcher.join(5)
        if self.client is not None:
            closer = threading.Thread(target=self.client.disconnect, daemon=True)
            closer.start()
            closer.join(5)


@dataclass
class Accounting:
    """Who showed each notification: the socket (an ack that claimed it) or a page (a flash)."""

    by_socket: Counter[int]
    by_flash: Counter[int]
    orphans: Counter[str]  # shown notifications created by an attempt whose answer was lost
    strangers: list[str]  # shown notifications that nobody sent

    def missing(self, sent: Sent) -> list[int]:
        return sorted(i for i in sent.ids if self.by_socket[i] + self.by_flash[i] == 0)

    def duplicated(self, sent: Sent) -> list[str]:
        return [
            f"{i} ({sent.ids[i][1]}): socket {self.by_socket[i]}, flash {self.by_flash[i]}"
            for i in sorted(sent.ids)
            if self.by_socket[i] + self.by_flash[i] > 1
        ]


def account(sent: Sent, sockets: list[SocketUser], browsers: list[Browser]) -> Accounting:
    by_socket: Counter[int] = Counter()
    by_flash: Counter[int] = Counter()
    orphans: Counter[str] = Counter()
    strangers: list[str] = []
    titles_by_id: dict[int, str] = {}
    for user in sockets:
        with user.lock:
            for event in user.events:
                titles_by_id[int(event["id"])] = str(event.get("title"))
            claimed = list(user.claimed)
        for notification_id in claimed:
            if notification_id in sent.ids:
                by_socket[notification_id] += 1
            elif titles_by_id.get(notification_id) in sent.uncertain:
                orphans[titles_by_id[notification_id]] += 1
            else:
                strangers.append(f"socket {user.user}: id {notification_id} {titles_by_id.get(notification_id)}")
    for browser in browsers:
        with browser.lock:
            flashes = list(browser.flashes)
        for text in flashes:
            if text in sent.titles:
                by_flash[sent.titles[text]] += 1
            elif text in sent.uncertain:
                orphans[text] += 1
            else:
                strangers.append(f"page {browser.user}: {text!r}")
    return Accounting(by_socket, by_flash, orphans, strangers)


@contextlib.contextmanager
def notification_stream(host: SandboxHost, users: list[str], tag: str, rate: float) -> Iterator[dict[str, Any]]:
    """Connected socket users and browsers for ``users``, and a running sender; everything closed at exit."""
    api = Api(host.web_url, host.box.api_token(host.name))
    ws_url = f"http://127.0.0.1:{host.vars['notification_service_websocket_port']}"
    sockets = [SocketUser(ws_url, api, user) for user in users]
    browsers = [Browser(host.web_url, user) for user in users]
    sender = Sender(api, users, tag, rate)
    try:
        for user in sockets:
            user.start()
        for browser in browsers:
            browser.start()
        sender.start()
        yield {"api": api, "sockets": sockets, "browsers": browsers, "sender": sender}
    finally:
        if sender.is_alive():
            sender.stop()
        for browser in browsers:
            browser.stop()
        for user in sockets:
            user.close()
