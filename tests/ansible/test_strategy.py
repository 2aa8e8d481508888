"""The opt-in Mitogen strategy (strategy_plugins/notification_linear.py): a project playbook runs through it,
modules run inside Mitogen's per-host interpreter, and NOTIFICATION_EMERGENCY_MITOGEN=0 falls back to plain
linear (one AnsiballZ process per task)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import SandboxHost
from tests.ansible.sandbox import ROOT, parse_recap
from tests.conftest import VENV_BIN

PARENT = """\
- name: Show which process runs the modules
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the command line of the module's parent process
      ansible.builtin.shell: "tr '\\\\0' ' ' < /proc/$PPID/cmdline"
      register: parent
      changed_when: false

    - name: Print it
      ansible.builtin.debug:
        msg: "PARENT={{ parent.stdout }}"
"""


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **env}
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "runtime"),
    [
        ({"ANSIBLE_STRATEGY": "notification_linear"}, "(mitogen:"),
        ({"ANSIBLE_STRATEGY": "notification_linear", "NOTIFICATION_EMERGENCY_MITOGEN": "0"}, "AnsiballZ_command"),
        ({}, "AnsiballZ_command"),  # the project's default: plain linear
    ],
)
def test_modules_run_in_mitogen_only_when_asked(tmp_path: Path, env: dict[str, str], runtime: str) -> None:
    playbook = tmp_path / "parent.yml"
    playbook.write_text(PARENT)
    inventory = f"localhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
    (tmp_path / "hosts").write_text(inventory)
    done = run(["-i", str(tmp_path / "hosts"), str(playbook)], **env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if "PARENT=" in line]
    assert runtime in line, line


@pytest.mark.ansible
def test_the_health_playbook_runs_through_mitogen(sandbox_host: SandboxHost) -> None:
    """The project's own modules (health, classification) and set_stats work under the Mitogen strategy."""
    sandbox_host.wait_healthy()
    done = run(
        ["-i", str(sandbox_host.box.inventory), "playbooks/health_check.yml", "--limit", sandbox_host.name],
        ANSIBLE_STRATEGY="notification_linear",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert parse_recap(done.stdout)[sandbox_host.name]["failed"] == 0
    assert f"{sandbox_host.name}" in done.stdout and "HEALTHY" in done.stdout.upper()
