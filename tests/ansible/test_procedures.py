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
import yaml

from tests.ansible.conftest import SandboxHost
from tests.ansible.sandbox import ROOT
from tests.conftest import VENV_BIN

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
    timings = []
    for line in lines:
        argv = shlex.split(line.replace("HOST", sandbox_host.name))
        assert argv[0] in ("notification-emergency", "ansible-playbook"), line
        argv[0] = str(VENV_BIN / argv[0])
        started = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        timings.append(f"{time.monotonic() - started:5.1f}s {line}")
        assert done.returncode == 0, f"{line}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    print("\n".join(timings))
    health = sandbox_host.health()
    assert health["status"] == "healthy" and health["mode"] == "websocket", "the page ends where it began"
    assert not health["emergency"]["active"]


@pytest.mark.parametrize("line", commands())
def test_each_command_is_well_formed(line: str) -> None:
    """Each command's options exist (its --help accepts the same command path)."""
    argv = shlex.split(line.replace("HOST", "sandbox-01"))
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
