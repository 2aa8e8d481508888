"""Recovery drills for real on the shared sandbox host: the process manager (a crash loop, a removed log directory,
a killed supervisord), a prolonged WebSocket outage (flash messages, then back) and a backlog. Each is detected
with its type and recovered automatically (or escalated when it must be); the host is left as found
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


@pytest.mark.parametrize("fault", DRILL_GROUPS["outages"])
def test_each_drill_recovers_or_escalates_as_expected(
    fault: str, toolkit: EmergencyToolkit, sandbox_host: SandboxHost
) -> None:
    check_drill(fault, toolkit, sandbox_host)
