"""The test tiers: tests/conftest.py marks each test by the costly fixtures it uses (`make check` leaves the marked
ones out), no test is marked by hand, and free_port_block never hands one port to two processes (xdist workers)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import COSTLY, ROOT, free_port_block

FILES = [
    "tests/ansible/test_catalogue.py",
    "tests/ansible/test_health_playbook.py",
    "tests/ansible/test_recovery_playbooks.py",
    "tests/ansible/test_sandbox_playbooks.py",
    "tests/reference_app/test_probe.py",
    "tests/reference_app/test_postgres.py",
]


def collected(marks: str) -> set[str]:
    """The node ids of FILES that ``-m marks`` selects."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marks, *FILES],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_each_test_is_marked_by_the_costly_fixtures_it_uses() -> None:
    sandbox = collected("sandbox")
    # through sandbox_host, through a fixture of the test file that uses it (recovery), and through the
    # sandbox_factory a test that builds its own sandbox takes
    assert "tests/ansible/test_health_playbook.py::test_a_healthy_host_reports_no_level_and_exits_0" in sandbox
    assert "tests/ansible/test_recovery_playbooks.py::test_check_mode_changes_nothing" in sandbox
    assert "tests/ansible/test_sandbox_playbooks.py::test_ports_in_use_are_named" in sandbox
    assert "tests/reference_app/test_postgres.py::test_postgres_send_receive_and_claim" in collected("postgres")
    assert "tests/reference_app/test_probe.py::test_probe_succeeds_against_the_running_service" in collected("stack")
    fast = collected("not (sandbox or postgres or browser or stack)")
    assert "tests/ansible/test_catalogue.py::test_the_error_message_shows_the_bad_value" in fast
    assert not any("test_health_playbook.py" in node or "test_probe.py" in node for node in fast), fast


def test_no_test_carries_a_tier_marker_by_hand() -> None:
    """The tiers come from the fixtures only, so they cannot drift from what a test really uses. The one
    exception: a parametrized case that asks for a costly fixture at run time (request.getfixturevalue), which
    the hook cannot see, carries the marker on its own pytest.param."""
    by_hand = re.compile(r"mark\.(ansible|" + "|".join(COSTLY) + r")\b")
    placed = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line) and not re.search(r"pytest\.param\([^)]*marks=pytest\.mark\.", line)
    ]
    assert placed == []


HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from tests.conftest import free_port_block
print(free_port_block(3, start={start}), flush=True)
time.sleep(60)
"""


def test_a_port_block_reserved_by_another_process_is_not_handed_out() -> None:
    start = free_port_block(3, start=37000)  # a block nothing uses now; this process reserves it
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(root=str(ROOT), start=start + 100)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline())
        assert theirs >= start + 100
        mine = free_port_block(3, start=theirs)
        assert mine != theirs and not set(range(mine, mine + 3)) & set(range(theirs, theirs + 3))
        assert free_port_block(3, start=start) == start, "this process may hand its own free block out again"
    finally:
        other.kill()
        other.wait()
