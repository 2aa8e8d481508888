"""Faults of the deployed configuration: config.yml drifts from the inventory (the desired state) and the
service follows it, so it answers where nobody looks for it. The undo puts the deployed config.yml back (and
restarts the program on it) when the engine's re-deploy did not."""

from __future__ import annotations

import socket

import yaml

from notification_emergency.drills.sandbox import SandboxHost, Undo

WEB = "notification-web"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def config_drift(host: SandboxHost) -> Undo:
    """The web port in the host's config.yml is changed (as by a hand edit) and the web program restarted: it
    listens on the new port, healthy, while the inventory, the probes and the dashboard look for it on the
    deployed one."""
    path = host.root / "etc" / "config.yml"
    original = path.read_bytes()
    data = yaml.safe_load(original)
    drifted = _free_port()
    data["web"]["port"] = drifted
    path.write_text("# edited by hand (the config_drift drill)\n" + yaml.safe_dump(data, sort_keys=False))
    host.supervisorctl("restart", WEB)

    def undo() -> None:
        now = yaml.safe_load(path.read_bytes()) or {}
        if isinstance(now, dict) and (now.get("web") or {}).get("port") == drifted:  # the engine did not re-deploy
            path.write_bytes(original)
            host.supervisorctl("restart", WEB)

    return undo
