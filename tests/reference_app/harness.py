"""Real-process harness for the reference notification service: Redis, the web and websocket processes.

Nothing is mocked: a private ``redis-server`` on a free port, ``notification-service web`` and
``notification-service websocket`` started as process groups from the venv's console script, and real
HTTP and Socket.IO clients.
"""

from __future__ import annotations

import contextlib
import html
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import notification_service
import redis
import requests
import socketio
import yaml

VENV_BIN = Path(sys.executable).parent
SERVICE = (
    str(VENV_BIN / "notification-service")
    if (VENV_BIN / "notification-service").exists()
    else (shutil.which("notification-service") or "notification-service")
)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PACKAGE_TEMPLATES = Path(notification_service.__file__).resolve().parent / "templates"
API_TOKEN = "test-api-token-0123456789abcdef"
SECRET_KEY = "test-secret-key-0123456789abcdef"
NAMESPACE = "/notifications"
START_TIMEOUT = 20.0

_ports_lock = threading.Lock()
_ports_given: set[int] = set()
_process_groups: set[int] = set()  # every group started here, killed at session end if still alive


def free_port() -> int:
    """A port nothing listens on, never handed out twice in this test session."""
    with _ports_lock:
        for _ in range(50):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group (gunicorn master and workers), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _process_groups.discard(proc.pid)


def kill_leftovers() -> None:
    for pgid in list(_process_groups):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _process_groups.discard(pgid)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    _process_groups.add(proc.pid)
    return proc


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVICE, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


class RedisServer:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = _spawn(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            self.workdir / "redis.log",
        )
        if not wait_until(self._answers, 10):
            raise RuntimeError(f"redis-server on {self.port} did not start: {(self.workdir / 'redis.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=5)
            self.proc = None


class SocketClient:
    """A python-socketio client as a browser would be: token auth, ``notification`` events, ``ack``.

    Handlers run on the client's read thread, so acknowledgements are sent from a worker thread.
    """

    def __init__(self, url: str, token: str, *, auto_ack: bool = True, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
        self.auto_ack = auto_ack
        self.events: list[dict[str, Any]] = []
        self.claimed: list[int] = []
        self.not_claimed: list[int] = []
        self._cond = threading.Condition()
        self._acks: queue.Queue[int | None] = queue.Queue()
        self.sio = socketio.Client(reconnection=False, request_timeout=10)
        self.sio.on("notification", self._on_notification, namespace=namespace)
        self.sio.connect(url, namespaces=[namespace], auth={"token": token}, transports=["websocket"], wait_timeout=10)
        self._worker: threading.Thread | None = None
        if auto_ack:
            self._worker = threading.Thread(target=self._ack_loop, daemon=True)
            self._worker.start()

    def _on_notification(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        with self._cond:
            self.events.append(data)
            self._cond.notify_all()
        if self.auto_ack:
            self._acks.put(int(data["id"]))

    def _ack_loop(self) -> None:
        while True:
            notification_id = self._acks.get()
            if notification_id is None:
                return
            try:
                claimed = self.ack(notification_id).get("claimed") is True
            except Exception:
                claimed = False
            with self._cond:
                (self.claimed if claimed else self.not_claimed).append(notification_id)
                self._cond.notify_all()

    def ack(self, notification_id: int) -> dict[str, Any]:
        answer = self.sio.call("ack", {"id": notification_id}, namespace=self.namespace, timeout=10)
        assert isinstance(answer, dict), answer
        return answer

    def event_ids(self) -> list[int]:
        with self._cond:
            return [int(event["id"]) for event in self.events]

    def wait_for_event(self, notification_id: int, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            found = self._cond.wait_for(lambda: any(event["id"] == notification_id for event in self.events), timeout)
            assert found, f"notification {notification_id} not received; got {[e['id'] for e in self.events]}"
            return next(event for event in self.events if event["id"] == notification_id)

    def wait_for_claim(self, notification_id: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: notification_id in self.claimed, timeout), (
                f"notification {notification_id} not claimed; claimed {self.claimed}"
            )

    def wait_idle(self, quiet: float = 0.5, timeout: float = 15.0) -> None:
        """Until every received event has its ack answered and nothing arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            with self._cond:
                done = len(self.claimed) + len(self.not_claimed) == len(self.events)
                count = len(self.events)
            if done and count == seen:
                return
            seen = count if done else -1
            time.sleep(quiet)
        raise AssertionError("socket client did not settle")

    def close(self) -> None:
        self._acks.put(None)
        with contextlib.suppress(Exception):
            self.sio.disconnect()
        if self._worker is not None:
            # An ack still in flight (a notification can arrive live and by replay around connect;
            # only one ack claims it) is abandoned with the connection.
            self._worker.join(1)


FLASH_RE = re.compile(r'<li class="flash flash-(\w+)">(.*?)</li>', re.S)
MODE_RE = re.compile(r'<meta name="notification-mode" content="(\w+)">')


class Page:
    def __init__(self, response: requests.Response) -> None:
        assert response.status_code == 200, response.text[:500]
        self.html = response.text
        match = MODE_RE.search(self.html)
        self.mode = match.group(1) if match else None
        self.flashes = [(category, html.unescape(text).strip()) for category, text in FLASH_RE.findall(self.html)]

    @property
    def banner(self) -> str | None:
        match = re.search(r'<div class="emergency" id="emergency-banner".*?</div>', self.html, re.S)
        return html.unescape(match.group(0)) if match else None


class Stack:
    """Redis + web + websocket processes with their own config.yml, secrets, templates and database."""

    def __init__(self, root: Path, *, database_url: str | None = None, web_workers: int = 2) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        self.ws_port = free_port()
        self.redis = RedisServer(free_port(), root / "redis")
        self.config_path = root / "config.yml"
        self.secrets_path = root / "secrets.yml"
        self.emergency_path = root / "state" / "emergency.json"
        (root / "state").mkdir(exist_ok=True)
        templates = root / "templates"
        for name in ("websocket", "legacy"):
            shutil.copytree(PACKAGE_TEMPLATES / name, templates / name, dirs_exist_ok=True)
        shutil.copytree(PACKAGE_TEMPLATES / "websocket", templates / "active", dirs_exist_ok=True)
        self.secrets_path.write_text(yaml.safe_dump({"api_token": API_TOKEN, "secret_key": SECRET_KEY}))
        self.secrets_path.chmod(0o600)
        self.settings: dict[str, Any] = {
            "mode": "websocket",
            "websocket": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": self.ws_port,
                "namespace": NAMESPACE,
                "public_url": f"http://127.0.0.1:{self.ws_port}",
            },
            "web": {"host": "127.0.0.1", "port": self.web_port, "workers": web_workers, "threads": 4},
            "redis_url": self.redis.url,
            "database_url": database_url or f"sqlite:///{root / 'data' / 'notifications.db'}",
            "templates_dir": str(templates / "active"),
            "emergency_file": str(self.emergency_path),
            "secrets_file": str(self.secrets_path),
            "log_dir": str(root / "log"),
        }
        self.write_config()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- configuration ----------------------------------------------------------------------------------

    def write_config(self) -> None:
        """Write config.yml atomically (the web process notices the new file on its next request)."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.settings, sort_keys=False))
        os.replace(tmp, self.config_path)

    def set_mode(self, mode: str) -> None:
        """Switch as the toolkit does: mode, websocket.enabled and the active template set together."""
        self.settings["mode"] = mode
        self.settings["websocket"]["enabled"] = mode == "websocket"
        self.settings["templates_dir"] = str(self.root / "templates" / ("active" if mode == "websocket" else "legacy"))
        self.write_config()

    # -- processes --------------------------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"http://127.0.0.1:{self.ws_port}"

    def start_process(self, name: str) -> None:
        assert name in ("web", "websocket")
        self.procs[name] = _spawn([SERVICE, name, "--config", str(self.config_path)], self.root / f"{name}.log")

    def wait_ready(self, name: str, statuses: tuple[int, ...] = (200,)) -> None:
        """Until the process answers /health with one of ``statuses`` (503 = up, database unreachable)."""
        url = f"{self.web_url if name == 'web' else self.ws_url}/health"

        def ready() -> bool:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                return requests.get(url, timeout=2).status_code in statuses
            except requests.RequestException:
                return False

        if not wait_until(ready, START_TIMEOUT, 0.1):
            raise RuntimeError(f"{name} not ready at {url}:\n{self.log(name)}")

    def stop_process(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_group(proc)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self) -> Stack:
        self.redis.start()
        self.start_process("web")
        self.start_process("websocket")
        self.wait_ready("web")
        self.wait_ready("websocket")
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name in list(self.procs):
            self.stop_process(name)
        self.redis.stop()

    # -- clients ----------------------------------------------------------------------------------------

    def api(self, method: str, path: str, *, token: str | None = API_TOKEN, **kwargs: Any) -> requests.Response:
        # A new connection per call: a kept-alive one may be closed by the server just as it is reused.
        headers = {"Connection": "close", **kwargs.pop("headers", {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.web_url}{path}", headers=headers, timeout=10, **kwargs)

    def health(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{self.web_url}/health", timeout=10)
        return response.status_code, response.json()

    def notify(self, user: str, title: str, **fields: Any) -> dict[str, Any]:
        response = self.api("POST", "/api/notifications", json={"user": user, "title": title, **fields})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def deliveries(self, user: str) -> dict[int, dict[str, Any]]:
        response = self.api("GET", "/api/notifications", params={"user": user})
        assert response.status_code == 200, response.text
        return {int(row["id"]): row for row in response.json()["deliveries"]}

    def ws_token(self, user: str) -> str:
        response = self.api("POST", "/api/ws-token", json={"user": user})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def client(self, user: str, *, auto_ack: bool = True) -> SocketClient:
        return SocketClient(self.ws_url, self.ws_token(user), auto_ack=auto_ack)

    def login(self, user: str) -> requests.Session:
        browser = requests.Session()
        browser.headers["Connection"] = "close"
        response = browser.get(f"{self.web_url}/login", params={"user": user}, timeout=10)
        assert response.status_code == 200 and response.url.rstrip("/") == self.web_url, response.text[:300]
        return browser

    def page(self, browser: requests.Session) -> Page:
        return Page(browser.get(f"{self.web_url}/", timeout=10))

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        return run_cli(command, "--config", str(self.config_path), *rest, timeout=timeout)


@contextlib.contextmanager
def running_stack(root: Path, **kwargs: Any) -> Iterator[Stack]:
    stack = Stack(root, **kwargs)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
