"""Real servers for the notification_health tests: HTTP, Socket.IO, a TCP black hole, Redis, supervisord."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
import socketio
from werkzeug.serving import make_server

from tests.conftest import VENV_BIN, free_port_block

REDIS_SERVER = "/usr/bin/redis-server"
NAMESPACE = "/notifications"
API_TOKEN = "health-test-token-4f1c9b"
REDIS_PASSWORD = "s3cret-redis-pw"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connecting is refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class _Handler(BaseHTTPRequestHandler):
    """/health 200 healthy, /error 500, /degraded 200 with status degraded, /slow?s=0.3, /text plain text."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        healthy = {"status": "healthy", "components": {"redis": {"status": "healthy"}}}
        if url.path == "/health":
            self._send(200, healthy)
        elif url.path == "/":
            self._send(200, "<html><body>notifications</body></html>", "text/html")
        elif url.path == "/error":
            self._send(500, {"status": "failed"})
        elif url.path == "/degraded":
            self._send(200, {"status": "degraded", "components": {"redis": {"status": "failed"}}})
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["0.3"])[0]))
            self._send(200, healthy)
        elif url.path == "/text":
            self._send(200, "hello notification world", "text/plain")
        else:
            self._send(404, {"error": "not found"})


class HTTPServer:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """Accepts TCP connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class SocketIOServer:
    """python-socketio in threading mode under werkzeug: namespace /notifications, auth by api_token, ping."""

    def __init__(self, api_token: str) -> None:
        sio = socketio.Server(async_mode="threading", logger=False, engineio_logger=False)

        @sio.on("connect", namespace=NAMESPACE)
        def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            if not isinstance(auth, dict) or auth.get("api_token") != api_token:
                raise socketio.exceptions.ConnectionRefusedError("invalid api token")

        @sio.on("ping", namespace=NAMESPACE)
        def ping(sid: str, *args: Any) -> str:
            return "pong"

        self.server = make_server("127.0.0.1", 0, socketio.WSGIApp(sio), threaded=True)
        self.port: int = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RedisServer:
    """A private redis-server without persistence, optionally with a password."""

    def __init__(self, tmp: Path, password: str | None = None) -> None:
        self.port = free_port_block(1, start=30000 + (7 if password else 0))
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(tmp)]
        if password:
            args += ["--requirepass", password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        self.password = password

    def url(self, db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        """A redis-py client to prepare data (the module speaks RESP itself)."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# Private supervisord instances for the tests (one place: the health, services and XML-RPC tests use it).
SLEEPER = f"{VENV_BIN / 'python'} -c 'import time; time.sleep(100000)'"
CRASHER = f"{VENV_BIN / 'python'} -c 'import sys; print(\"boom: cannot bind\", file=sys.stderr); sys.exit(3)'"


def program(
    name: str, command: str = SLEEPER, autostart: bool = False, stopwaitsecs: int = 5, startsecs: int = 1
) -> str:
    """A supervisord [program:...] section (its logs next to the file that holds it)."""
    return textwrap.dedent(
        f"""\
        [program:{name}]
        command={command}
        autostart={str(autostart).lower()}
        autorestart=false
        startsecs={startsecs}
        startretries=0
        stopwaitsecs={stopwaitsecs}
        stdout_logfile=%(here)s/{name}.log
        stderr_logfile=%(here)s/{name}.err
        """
    )


def write_conf(
    root: Path,
    server: str = "[unix_http_server]\nfile=%(here)s/s.sock\n",
    ctl: str = "serverurl=unix://%(here)s/s.sock\n",
) -> Path:
    """supervisord.conf in ``root`` (paths through %(here)s), programs from root/conf.d/*.conf."""
    (root / "conf.d").mkdir(exist_ok=True)
    conf = root / "supervisord.conf"
    conf.write_text(
        server
        + textwrap.dedent(
            """\
            [supervisord]
            logfile=%(here)s/supervisord.log
            pidfile=%(here)s/supervisord.pid
            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
            [include]
            files = %(here)s/conf.d/*.conf
            [supervisorctl]
            """
        )
        + ctl
    )
    return conf


def supervisor_conf(tmp: Path, programs: dict[str, bool]) -> Path:
    """A private supervisord configuration with sleeper programs (name -> autostart) that start and stop fast."""
    conf = write_conf(tmp)
    for name, autostart in programs.items():
        (tmp / "conf.d" / f"{name}.conf").write_text(program(name, autostart=autostart, stopwaitsecs=2, startsecs=0))
    return conf


def start_supervisord(conf: Path, running: list[str], timeout: float = 15.0) -> None:
    subprocess.run([VENV_BIN / "supervisord", "-c", conf], check=True)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "status"], capture_output=True, text=True)
        states = dict(line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2)
        if all(states.get(name) == "RUNNING" for name in running):
            return
        time.sleep(0.05)
    raise RuntimeError(f"supervisord {conf} did not run {running} within {timeout}s")


def stop_supervisord(conf: Path) -> None:
    subprocess.run([VENV_BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, check=False)


# -- running the module ---------------------------------------------------------------------------------------


def sqlite_db(path: Path, rows: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notifications (id INTEGER PRIMARY KEY, title TEXT)")
        conn.executemany("INSERT INTO notifications (title) VALUES (?)", [(f"n{i}",) for i in range(rows)])
    conn.close()
    return path


def health(module_runner: Any, checks: list[dict[str, Any]], **args: Any) -> dict[str, Any]:
    """Run the module with ``checks``; it must not fail (unhealthy components do not fail it)."""
    result, failed = module_runner("notification_health", {"checks": checks, **args})
    assert not failed, result.get("msg")
    assert result["changed"] is False
    return result


def one(module_runner: Any, check: dict[str, Any], **args: Any) -> dict[str, Any]:
    result = health(module_runner, [{"name": "it", **check}], **args)
    return result["checks"]["it"]
