"""The process check when the service manager itself does not answer, with the real systemctl of this machine:
systemd is not PID 1 here, so systemctl answers "offline" (no bus). That is manager_down, not a stopped unit."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.ansible.health_servers import one


def test_a_systemd_that_does_not_answer_is_manager_down(module_runner: Any) -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.skip("no systemctl on this machine")
    state = subprocess.run([systemctl, "is-system-running"], capture_output=True, text=True, check=False)
    if state.stdout.strip() != "offline":
        pytest.skip(f"systemd answers here ({state.stdout.strip()}): this test needs a machine without it")
    check = one(module_runner, {"kind": "process", "service": "notification-web"}, manager="systemd")
    assert (check["status"], check["reason"]) == ("failed", "manager_down"), check
    assert check["evidence"]["state"] == "MANAGER_DOWN" and "systemd does not answer" in check["error"]
