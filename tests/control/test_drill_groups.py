"""Every drill of ``test-recovery`` is run by the sandbox tests: each is in exactly one of the groups the drill
test files take (tests/ansible/drill_checks.py), so a new drill cannot be left out."""

from __future__ import annotations

from notification_emergency.drills import FAULTS
from tests.ansible.drill_checks import DRILL_GROUPS


def test_every_drill_is_in_exactly_one_group() -> None:
    grouped = [name for group in DRILL_GROUPS.values() for name in group]
    assert len(grouped) == len(set(grouped)), "a drill in two groups runs twice"
    assert sorted(grouped) == sorted(FAULTS), f"not in a group: {sorted(set(FAULTS) - set(grouped))}"
