"""docs/emergency-procedures.md cannot go stale: every command in it is run, in the page's order, against the
shared sandbox host (the page's HOST), and must succeed; every AWX job template it names exists."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.ansible.conftest import SandboxHost
from tests.ansible.sandbox import ROOT
from tests.conftest import VENV_BIN, free_port_block

PAGE = ROOT / "docs" / "emergency-procedures.md"


def commands() -> list[str]:
    """The `$ ` lines of the page's console blocks, in order."""
    found, inside = [], False
    for line in PAGE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            inside = stripped == "```console"
            continue
        if inside and stripped.startswith("$ "):
            found.append(stripped[2:])
    return found


def test_the_page_names_only_job_templates_that_exist() -> None:
    templates = {t["name"] for t in yaml.safe_load((ROOT / "awx" / "job_templates.yml").read_text())["job_templates"]}
    named = set(re.findall(r"`(notification-emergency \\\| [^`]+)`", PAGE.read_text()))
    assert named, "the page names the job templates to run"
    assert {name.replace("\\|", "|") for name in named} <= templates


def test_every_command_of_the_page_runs_against_a_sandbox_host(tmp_path: Path, sandbox_host: SandboxHost) -> None:
    lines = commands()
    assert len(lines) >= 20 and any("rollback" in line for line in lines)
    env = {
        **os.environ,
        "NOTIFICATION_EMERGENCY_INVENTORY": str(sandbox_host.box.inventory),
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path / "state"),
        "ANSIBLE_INVENTORY": str(sandbox_host.box.inventory),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"  # the page's commands, as after activating the venv
    timings = []
    for line in lines:
        command = line.replace("HOST", sandbox_host.name)
        assert re.match(r"^(echo .*\| )?(notification-emergency|ansible-playbook) ", command), line
        started = time.monotonic()
        if " dashboard --port " in command:  # a server: start it, see it answer, stop it
            _serve_and_check(command, env)
            timings.append(f"{time.monotonic() - started:5.1f}s {line}")
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        timings.append(f"{time.monotonic() - started:5.1f}s {line}")
        assert done.returncode == 0, f"{line}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    print("\n".join(timings))
    health = sandbox_host.health()
    assert health["status"] == "healthy" and health["mode"] == "websocket", "the page ends where it began"
    assert not health["emergency"]["active"]


def _serve_and_check(command: str, env: dict[str, str]) -> None:
    """Start the dashboard line on a free port, wait until its login page answers, stop it with SIGTERM."""
    port = free_port_block(1, start=26500)
    argv = shlex.split(re.sub(r"--port \d+", f"--port {port}", command))
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, f"{command}: did not start"
            time.sleep(0.3)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode in (0, -15), f"{command}: exit {server.returncode}\n{output[-2000:]}"


@pytest.mark.parametrize("line", commands())
def test_each_command_is_well_formed(line: str) -> None:
    """Each command's options exist (its --help accepts the same command path)."""
    argv = shlex.split(line.replace("HOST", "sandbox-01").split("| ")[-1])
    if argv[0] != "notification-emergency":
        assert (ROOT / argv[1]).is_file(), line
        return
    command = argv[1]
    helped = _help(command)
    assert helped is not None, f"{line}: no command {command}"
    for option in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
        assert option in helped, f"{line}: {option} is not an option of {command}"


@functools.cache
def _help(command: str) -> str | None:
    helped = subprocess.run(
        [str(VENV_BIN / "notification-emergency"), command, "--help"], capture_output=True, text=True, check=False
    )
    return helped.stdout if helped.returncode == 0 else None
