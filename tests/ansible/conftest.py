"""A sandbox host shared by the playbook tests of a session (created once, removed at the end)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ansible.sandbox import Sandbox
from tests.conftest import VENV_BIN, free_port_block


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
        proc = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.root / "etc" / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return proc.stdout + proc.stderr

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


@pytest.fixture(scope="session")
def sandbox_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("shared-sandbox"), free_port_block(3, start=24000))
    up = box.playbook("sandbox_up.yml")
    assert up.rc == 0, up.output[-3000:]
    yield box
    down = box.playbook("sandbox_down.yml")
    assert down.rc == 0, down.output[-3000:]


@pytest.fixture
def sandbox_host(sandbox_box: Sandbox) -> Iterator[SandboxHost]:
    """The shared host, healthy before the test and mended after it."""
    host = SandboxHost(sandbox_box, "sandbox-01")
    host.wait_healthy()
    yield host
    host.mend()
