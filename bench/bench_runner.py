#!/usr/bin/env python3
"""Overhead of the package's runner wrapper and CLI against plain ansible-playbook, on the same playbook.

    .venv/bin/python bench/bench_runner.py [--repeat 5]

One sandbox host (own ports, temporary directory). The same health_check.yml run three ways: plain
`ansible-playbook`, the runner wrapper (`run_playbook`, ansible-runner), and the whole CLI path
(`notification-emergency status --json`: inventory and --limit checks, argument spec, event store, runner).
Prints the median wall time of each and the overheads; writes bench/results/runner.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import print_figures, sandbox, write_results

from notification_emergency.runner import run_playbook
from tests.ansible.sandbox import ROOT
from tests.conftest import VENV_BIN


def timed(call: Callable[[], None]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the median is reported")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with sandbox(1, 26000) as (box, work):
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "NOTIFICATION_EMERGENCY_STATE_DIR": str(Path(work) / "state"),
            "NOTIFICATION_EMERGENCY_INVENTORY": str(box.inventory),
        }

        def plain() -> None:
            proc = subprocess.run(
                [str(VENV_BIN / "ansible-playbook"), "-i", str(box.inventory), "playbooks/health_check.yml"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-2000:]}")

        def wrapped() -> None:
            result = run_playbook("health_check.yml", inventory=box.inventory, artifacts_root=Path(work) / "artifacts")
            if not result.ok:
                raise SystemExit(f"run_playbook failed: {result.status}")

        def cli() -> None:
            proc = subprocess.run(
                [str(VENV_BIN / "notification-emergency"), "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"notification-emergency status failed ({proc.returncode}):\n{proc.stderr}")

        for label, call in (("ansible-playbook", plain), ("run_playbook", wrapped), ("CLI status", cli)):
            figures[f"{label} (s)"] = statistics.median(timed(call) for _ in range(args.repeat))
    figures["wrapper overhead (s)"] = figures["run_playbook (s)"] - figures["ansible-playbook (s)"]
    figures["CLI overhead (s)"] = figures["CLI status (s)"] - figures["ansible-playbook (s)"]
    print_figures("health_check.yml, 1 host", args.repeat, figures)
    write_results("runner", args.repeat, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
