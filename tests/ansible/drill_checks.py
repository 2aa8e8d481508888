"""The drills of ``test-recovery``, in groups of about equal run time, one test file each (tests/ansible/
test_drills*.py), so that parallel test processes share them (pytest-xdist's --dist loadfile keeps a file on one
process). Every drill is in exactly one group (tests/control/test_drill_groups.py checks it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import FAULTS, run_drill
from tests.ansible.conftest import SandboxHost as SharedHost

DRILL_GROUPS: dict[str, list[str]] = {
    # the service's processes killed, stopped or hung: test_drills.py
    "processes": [
        "websocket_killed",
        "web_killed",
        "redis_stopped",
        "websocket_stopped",
        "websocket_hung",
        "redis_hung",
        "web_hung",
    ],
    # files, resources and desired state: test_drills_resources.py
    "resources": [
        "config_invalid",
        "template_broken",
        "config_drift",
        "redis_read_only",
        "redis_out_of_memory",
        "disk_full",
    ],
    # the process manager, a prolonged outage (flash fallback) and a backlog: test_drills_outages.py
    "outages": [
        "websocket_crash_loop",
        "log_dir_removed",
        "supervisord_killed",
        "websocket_port_taken",
        "queue_backed_up",
    ],
}


def check_drill(fault: str, toolkit: EmergencyToolkit, sandbox_host: SharedHost) -> None:
    """One drill on the shared sandbox host, and everything its journal, the store and the host must show."""
    journal = run_drill(toolkit, sandbox_host.name, fault, interval=0.25)
    expected = FAULTS[fault]
    assert journal["as_expected"], journal
    assert journal["matches_explain"], "auto-recover did what explain says for the same snapshot"
    assert journal["healthy_after"], "the drill leaves the host in its steady state"
    assert not sandbox_host.health()["emergency"]["active"]
    if expected.recovers:
        assert journal["recovered"] and journal["mttr_s"] is not None and journal["mttr_s"] < 120, journal
    else:
        assert journal["outcome"] == "escalated" and journal["level"] is not None
        assert journal["escalation"].startswith(f"escalated to level {max(1, journal['level'] - 1)}"), journal
        assert toolkit.store.notifications()[0]["delivered_by"] == "file"
    if journal["detected_at"]:
        # Measured, and within the drill's own limit; how fast detection is belongs to bench/bench_drills.py,
        # not to a timed test (on a loaded machine a 10 s bound failed at 12.5 s).
        assert journal["mttd_s"] is not None and 0 <= journal["mttd_s"] < 180, journal
    if journal["detected_type"]:
        assert journal["detected_type"] == expected.expects
        incident = toolkit.store.incidents()[0]
        assert incident["failure_type"] == expected.expects
        assert incident["detection_seconds"] == pytest.approx(journal["mttd_s"], abs=0.01), "MTTD is in the store"
    written = json.loads(Path(journal["journal"]).read_text())
    assert written["fault"] == fault and written["as_expected"] is True
