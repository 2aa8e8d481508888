"""A fleet for the dashboard's fleet view at 50 hosts and more, cheaper than a sandbox: an inventory of N
hosts, each either served by a lightweight real HTTP server on its own loopback port (``GET /health`` in
the shape the reference service answers, ``GET /`` the page, the same server answering the WebSocket
process's ``GET /health``), or down (nothing listens on its port). What a host says can change while the
dashboard runs (``FleetHost.set``). The dashboard probes them for real, as it probes real hosts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import VENV_BIN

HEALTHY = {"web": "healthy", "database": "healthy", "redis": "healthy", "websocket": "healthy"}

# What each kind of host says on GET /health: (overall status, mode, its components, emergency mode active?).
PROFILES: dict[str, dict[str, Any]] = {
    "healthy": {"status": "healthy", "mode": "websocket", "components": HEALTHY},
    "flash": {"status": "healthy", "mode": "legacy", "components": {**HEALTHY, "websocket": "disabled"}},
    "degraded": {"status": "degraded", "mode": "websocket", "components": {**HEALTHY, "redis": "degraded"}},
    "failed": {"status": "failed", "mode": "websocket", "components": {**HEALTHY, "database": "failed"}},
    "emergency": {
        "status": "healthy",
        "mode": "legacy",
        "components": {**HEALTHY, "websocket": "disabled"},
        "emergency": {"active": True, "level": 2, "reason": "notifications delayed", "triggered_by": "ops"},
    },
}


def _body(profile: dict[str, Any]) -> dict[str, Any]:
    components = {name: {"status": status, "latency_ms": 1.5} for name, status in profile["components"].items()}
    emergency = profile.get("emergency") or {"active": False}
    return {"status": profile["status"], "mode": profile["mode"], "components": components, "emergency": emergency}


class _Handler(BaseHTTPRequestHandler):
    server: _HostServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/health":
            body = self.server.body
            code = 503 if body["status"] == "failed" else 200
            data, kind = json.dumps(body).encode(), "application/json"
        else:
            code, data, kind = 200, b"<html><body>notifications</body></html>", "text/html"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HostServer(ThreadingHTTPServer):
    daemon_threads = True
    body: dict[str, Any]


@dataclass
class FleetHost:
    name: str
    profile: str  # a key of PROFILES, or "down"
    server: _HostServer | None = None
    port: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.profile == "down":
            return
        self.server = _HostServer(("127.0.0.1", 0), _Handler)
        self.server.body = _body(PROFILES[self.profile])
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, profile: str) -> None:
        """What the host says from now on (a served host only)."""
        assert self.server is not None, f"{self.name} is down"
        self.profile = profile
        self.server.body = _body(PROFILES[profile])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (a host that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fleet(directory: Path, profiles: dict[str, str]) -> Iterator[tuple[Path, dict[str, FleetHost]]]:
    """``profiles``: host name -> profile. Yields the inventory file and the hosts; stops the servers after."""
    hosts = {name: FleetHost(name, profile) for name, profile in profiles.items()}
    try:
        entries: dict[str, dict[str, Any]] = {}
        for name, host in hosts.items():
            host.start()
            port = host.port or free_port()
            entries[name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(VENV_BIN / "python"),
                "notification_service_root": str(directory / "roots" / f"host-{len(entries)}"),
                "notification_service_web_port": port,
                "notification_service_websocket_port": port,
            }
        inventory = directory / "fleet.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"notification_hosts": {"hosts": entries}}}}))
        yield inventory, hosts
    finally:
        for host in hosts.values():
            host.stop()


def mixed(size: int) -> dict[str, str]:
    """A fleet of ``size`` hosts like one in an incident: about 6% failed, 4% down, 8% degraded, 10% on flash
    messages, 4% in emergency mode, the rest healthy, spread over the names."""
    kinds = ["failed"] * 3 + ["down"] * 2 + ["degraded"] * 4 + ["flash"] * 5 + ["emergency"] * 2
    kinds += ["healthy"] * (50 - len(kinds))
    return {f"web-{n:03d}": kinds[(n * 17) % 50] if size >= 50 else "healthy" for n in range(1, size + 1)}


__all__ = ["PROFILES", "FleetHost", "fleet", "mixed"]
