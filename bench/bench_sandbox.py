#!/usr/bin/env python3
"""Wall time of sandbox_up (1 and 10 hosts), of the idempotent re-deploy, and of sandbox_down.

    .venv/bin/python bench/bench_sandbox.py [--sizes 1,10] [--repeat 1]

Each size gets a fresh sandbox in a temporary directory and its own port range, so the demo
sandbox is not touched. Prints a table and writes bench/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from common import median_of, sandbox, write_results


def measure(size: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    with sandbox(size, 23000, timings) as (box, _work):
        redeploy = box.playbook("deploy.yml")
        if redeploy.rc != 0:
            raise SystemExit(f"re-deploy failed (rc={redeploy.rc}):\n{redeploy.output[-3000:]}")
        if set(redeploy.changed().values()) != {0}:
            raise SystemExit(f"re-deploy was not idempotent: {redeploy.changed()}")
    return {**timings, "redeploy_idempotent": redeploy.seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10", help="comma-separated sandbox sizes (default 1,10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is reported")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, float]] = {}
    print(f"{'hosts':>5}  {'sandbox_up':>11}  {'re-deploy':>10}  {'sandbox_down':>12}  (s, median of {args.repeat})")
    for size in sizes:
        median = median_of(args.repeat, partial(measure, size))
        results[str(size)] = median
        print(
            f"{size:>5}  {median['sandbox_up']:>11.1f}  {median['redeploy_idempotent']:>10.1f}  "
            f"{median['sandbox_down']:>12.1f}",
            flush=True,
        )
    write_results("sandbox", args.repeat, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
