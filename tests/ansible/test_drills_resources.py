"""Recovery drills for real on the shared sandbox host: files, resources and desired state (config.yml broken or
drifted, a template broken, Redis refusing writes, a full log volume). Each is detected with its type and
recovered automatically (or escalated when it must be); the host is left as found
(tests/ansible/drill_checks.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notification_emergency.api import EmergencyToolkit
from tests.ansible.conftest import SandboxHost
from tests.ansible.drill_checks import DRILL_GROUPS, check_drill


@pytest.fixture
def toolkit(tmp_path: Path, sandbox_host: SandboxHost) -> Iterator[EmergencyToolkit]:
    home = tmp_path / "state"
    yield EmergencyToolkit(inventory=sandbox_host.box.inventory, store=home / "events.db", home=home, actor="pytest")


@pytest.mark.parametrize("fault", DRILL_GROUPS["resources"])
def test_each_drill_recovers_or_escalates_as_expected(
    fault: str, toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    check_drill(fault, toolkit, sandbox_host)
