"""Drive the project's real playbooks against throw-away sandbox hosts (used by the tests and bench/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from notification_emergency.drills import supervisorctl

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)"
)


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap.items()}


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP.match(line.strip()) if in_recap else None
        if match:
            recap[match.group("host")] = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
    return recap


@dataclass
class Sandbox:
    """A sandbox of its own: an inventory directory, a home for the host roots, a port range, a profile
    (``default``, or ``realistic``: SSH, a bare Python, a service user; its hosts need 10 * N + 4 ports)."""

    workdir: Path
    base_port: int
    profile: str = "default"

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory"

    @property
    def home(self) -> Path:
        return self._home

    def __post_init__(self) -> None:
        self.inventory.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "inventories" / "sandbox" / "controller.yml", self.inventory / "controller.yml")
        self._home = self.workdir / "sandbox"
        if self.profile == "realistic":
            # The realistic profile's service users must reach their roots, and temporary directories of pytest
            # and tempfile are closed to other users (0700): a home under /var/tmp (sandbox_down.yml removes it).
            self._home = Path(tempfile.mkdtemp(prefix="ne-realistic-", dir="/var/tmp"))

    def playbook(self, name: str, *args: str, extra: dict[str, Any] | None = None) -> PlaybookRun:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
        extra_vars = {"sandbox_home": str(self.home), "sandbox_base_port": self.base_port}
        if self.profile != "default":
            extra_vars["sandbox_profile"] = self.profile
        extra_vars.update(extra or {})
        command = [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            str(self.inventory),
            str(ROOT / "playbooks" / name),
            *[f"-e{key}={value}" for key, value in extra_vars.items()],
            *args,
        ]
        started = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False)
        return PlaybookRun(
            proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, parse_recap(proc.stdout)
        )

    def hosts(self) -> dict[str, dict[str, Any]]:
        path = self.inventory / "hosts.yml"
        if not path.exists():
            return {}
        data = yaml.safe_load(path.read_text())
        hosts: dict[str, dict[str, Any]] = data["all"]["children"]["sandbox"]["hosts"]
        return hosts

    def api_token(self, host: str) -> str:
        return (self.home / "credentials" / f"{host}-api_token").read_text().split()[0]


def processes(match: Callable[[list[str]], bool]) -> list[tuple[int, str]]:
    """Processes whose argument list satisfies ``match``, as (pid, command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if match(argv):
            found.append((int(entry), " ".join(argv)))
    return found


def processes_under(path: Path) -> list[tuple[int, str]]:
    """Processes whose command line names a file under ``path``."""
    prefix = str(path).rstrip("/") + "/"
    return processes(lambda argv: any(arg.startswith(prefix) for arg in argv))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class SandboxHost:
    """One deployed sandbox host and ways to break and mend it."""

    def __init__(self, box: Sandbox, name: str) -> None:
        self.box = box
        self.name = name
        self.vars: dict[str, Any] = box.hosts()[name]
        self.root = Path(self.vars["notification_service_root"])

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.vars['notification_service_web_port']}"

    def supervisorctl(self, *args: str) -> str:
        return supervisorctl(self.root, *args)

    def stats(self) -> dict[str, Any]:
        """The service's own delivery counts (``notification-service stats``: notifications, pending by channel)."""
        answer = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "notification-service"),
                "stats",
                "--config",
                str(self.root / "etc" / "config.yml"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return dict(json.loads(answer.stdout))

    def health(self) -> dict[str, Any]:
        response = requests.get(f"{self.web_url}/health", timeout=5)
        return dict(response.json())

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.health()
                if health["status"] == "healthy":
                    return health
            except requests.RequestException:
                health = {}
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy after {timeout}s: {health}")
            time.sleep(0.2)

    def mend(self) -> None:
        self.supervisorctl("start", "all")
        self.wait_healthy()
