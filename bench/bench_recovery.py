#!/usr/bin/env python3
"""Wall time of the rollback to legacy mode and of the restore (roll forward), each with its idempotent re-run.

    .venv/bin/python bench/bench_recovery.py [--sizes 1,10] [--repeat 1]

Each size gets a fresh sandbox (sandbox_up.yml: deployed, WebSocket mode) in a temporary directory with
its own port range, so the demo sandbox is not touched. Then, timed: rollback_to_legacy.yml, its second
run (must report changed=0 for every host), restore.yml, its second run (changed=0 likewise). The sandbox
is always removed at the end (sandbox_down.yml). Prints a table and writes bench/results/recovery.json.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from common import median_of, sandbox, write_results

from tests.ansible.sandbox import PlaybookRun, Sandbox

STEPS = (
    ("rollback", "rollback_to_legacy.yml", False),
    ("rollback_again", "rollback_to_legacy.yml", True),
    ("restore", "restore.yml", False),
    ("restore_again", "restore.yml", True),
)
COLUMNS = (
    ("rollback", "rollback"),
    ("rollback_again", "again"),
    ("restore", "restore"),
    ("restore_again", "again"),
    ("sandbox_up", "up"),
    ("sandbox_down", "down"),
)


def run(box: Sandbox, step: str, playbook: str, idempotent: bool, size: int) -> PlaybookRun:
    result = box.playbook(playbook)
    if result.rc != 0:
        raise SystemExit(f"{step} ({playbook}) failed (rc={result.rc}):\n{result.output[-3000:]}")
    hosts = {host: changed for host, changed in result.changed().items() if host != "localhost"}
    if len(hosts) != size:
        raise SystemExit(f"{step} ({playbook}): expected {size} hosts in the recap, got {sorted(hosts)}")
    if idempotent and set(hosts.values()) != {0}:
        raise SystemExit(f"{step} ({playbook}) was not idempotent (changed per host): {hosts}")
    return result


def measure(size: int) -> dict[str, float]:
    seconds: dict[str, float] = {}
    with sandbox(size, 24000, seconds) as (box, _work):
        for step, playbook, idempotent in STEPS:
            seconds[step] = run(box, step, playbook, idempotent, size).seconds
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10", help="comma-separated sandbox sizes (default 1,10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is reported")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, float]] = {}
    header = "  ".join(f"{title:>8}" for _, title in COLUMNS)
    print(f"{'hosts':>5}  {header}  (wall s, median of {args.repeat})")
    print("       again: the playbook run a second time (changed=0); up/down: sandbox_up.yml/sandbox_down.yml")
    for size in sizes:
        median = median_of(args.repeat, partial(measure, size))
        results[str(size)] = median
        row = "  ".join(f"{median[key]:>8.1f}" for key, _ in COLUMNS)
        print(f"{size:>5}  {row}", flush=True)
    write_results("recovery", args.repeat, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
