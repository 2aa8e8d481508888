#!/usr/bin/env python3
"""Time of one notification_health call (healthy, and with one check timing out) and of
health_check.yml on 1 and 10 sandbox hosts.

    .venv/bin/python bench/bench_health.py [--hosts 10] [--repeat 3]

Creates its own sandbox in a temporary directory (own ports), so the demo sandbox is not touched.
The module call is measured twice: the module's own duration_ms (the checks, run concurrently) and the
wall time of an ad-hoc call through the package's runner wrapper (plus Ansible's start-up). Prints a table and
writes bench/results/health.json.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import print_figures, sandbox, write_results

from notification_emergency.runner import run_module
from tests.ansible.sandbox import Sandbox


def adhoc_health(box: Sandbox, host: str, args: dict[str, Any]) -> tuple[float, float]:
    """(wall seconds, module duration_ms) of one ad-hoc notification_health call through the runner."""
    with tempfile.TemporaryDirectory(prefix="bench-health-artifacts-") as artifacts:
        run = run_module(
            "notification_health", args, hosts=host, inventory=box.inventory, artifacts_root=Path(artifacts)
        )
    result = run.results.get(host, {})
    if "duration_ms" not in result:
        raise SystemExit(f"notification_health failed on {host}: {result.get('msg', run.status)}")
    return run.duration_s, float(result["duration_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10, help="sandbox size for the fleet figure (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is reported")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with sandbox(args.hosts, 25000) as (box, _work):
        first = sorted(box.hosts())[0]
        root = box.hosts()[first]["notification_service_root"]
        base = {"config": f"{root}/etc/config.yml", "manager": "supervisord"}
        # A server that accepts connections and never answers: the web check must time out at 2 s.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            hung = {
                **base,
                "timeout": 2.0,
                "checks": [{"name": "web", "kind": "http", "url": f"http://127.0.0.1:{silent.getsockname()[1]}/"}],
            }
            for label, module_args in (("healthy", base), ("one check times out (2 s)", hung)):
                runs = [adhoc_health(box, first, module_args) for _ in range(args.repeat)]
                figures[f"notification_health module, {label}: checks (ms)"] = statistics.median(r[1] for r in runs)
                figures[f"notification_health ad-hoc call, {label}: wall (s)"] = statistics.median(r[0] for r in runs)
        for label, limit in (("1 host", first), (f"{args.hosts} hosts", "all")):
            runs = [box.playbook("health_check.yml", f"--limit={limit}").seconds for _ in range(args.repeat)]
            figures[f"health_check.yml, {label}: wall (s)"] = statistics.median(runs)
    print_figures("figure", args.repeat, figures)
    write_results("health", args.repeat, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
