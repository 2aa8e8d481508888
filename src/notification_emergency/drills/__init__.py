"""Recovery drills: break a sandbox host on purpose, let the watch detect it and the engine recover it, and
time every part. ``sandbox``: the host handles and the refusal of non-sandbox hosts; ``faults``: the faults
and their undo; ``exercise``: one drill (or a fleet drill) from steady state to journal."""

from __future__ import annotations

from notification_emergency.drills.exercise import run_drill, run_fleet_drill
from notification_emergency.drills.faults import FAULTS, Fault
from notification_emergency.drills.sandbox import (
    DRILL_POLICY,
    SANDBOX_MARKER,
    DrillToolkit,
    SandboxHost,
    Undo,
    supervisorctl,
)

__all__ = [
    "DRILL_POLICY",
    "FAULTS",
    "SANDBOX_MARKER",
    "DrillToolkit",
    "Fault",
    "SandboxHost",
    "Undo",
    "run_drill",
    "run_fleet_drill",
    "supervisorctl",
]
