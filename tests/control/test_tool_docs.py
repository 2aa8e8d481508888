"""The tool reference (docs/reference/) is generated from the CLI, the playbooks' argument specs and the
modules' DOCUMENTATION: it must match them, so it cannot go stale."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_tool_reference_is_up_to_date() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tool_docs.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_the_reference_covers_every_command_playbook_and_module() -> None:
    cli = (ROOT / "docs" / "reference" / "cli.md").read_text()
    for command in ("status", "health-check", "auto-recover", "watch", "test-recovery", "drain-backlog"):
        assert f"## `{command}`" in cli
    playbooks = (ROOT / "docs" / "reference" / "playbooks.md").read_text()
    for path in (ROOT / "playbooks").glob("*.yml"):
        assert f"## `{path.name}`" in playbooks
    modules = (ROOT / "docs" / "reference" / "modules.md").read_text()
    for path in (ROOT / "library").glob("*.py"):
        assert f"## `{path.stem}`" in modules
