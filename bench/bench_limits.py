#!/usr/bin/env python3
"""What resolving a --limit with Ansible's own inventory code, and writing the private extra-vars file, cost
the command line before a run starts.

    .venv/bin/python bench/bench_limits.py [--hosts 50 500] [--repeat 5]

For each fleet size, an inventory file of that many hosts in two groups (no sandbox needed). Figures, in
milliseconds (median of --repeat): reading the inventory (ansible-inventory, as every command does), resolving
no limit, one host, a glob, a regex with an exclusion, and a typo (refused, with the hosts it could have meant),
and writing the 0600 extra-vars file with every string !unsafe. Writes bench/results/limits.json.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from common import median_of, print_figures, write_results

from notification_emergency.errors import BadInput
from notification_emergency.inputs import write_extra_vars
from notification_emergency.inventory import Inventory, load_inventory, resolve_limit

PATTERNS = {
    "no limit": None,
    "one host": "web-0007",
    "glob": "web-00*",
    "regex and exclusion": "~web-0[0-4].*:!eu",
    "typo (refused)": "wbe-0007",
}


IMPORT_TIMER = (
    "import time; t = time.perf_counter(); import ansible.inventory.manager, ansible.parsing.dataloader; "
    "print((time.perf_counter() - t) * 1000)"
)


def inventory_file(directory: Path, hosts: int) -> Path:
    names = [f"web-{n:04d}" for n in range(1, hosts + 1)]
    half = len(names) // 2
    data = {
        "all": {
            "children": {
                "notification_hosts": {
                    "children": {
                        "eu": {"hosts": {name: {} for name in names[:half]}},
                        "us": {"hosts": {name: {} for name in names[half:]}},
                    }
                }
            }
        }
    }
    path = directory / f"hosts-{hosts}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(BadInput):  # the typo's refusal is what is measured
        call()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[50, 500], help="fleet sizes")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the median is reported")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    # Once per command, the first --limit imports Ansible's inventory code (a fresh interpreter each time).
    imports = [
        float(subprocess.run([sys.executable, "-c", IMPORT_TIMER], capture_output=True, text=True, check=True).stdout)
        for _ in range(args.repeat)
    ]
    figures["import Ansible's inventory code, once per command (ms)"] = sorted(imports)[len(imports) // 2]
    with tempfile.TemporaryDirectory() as work:
        for size in args.hosts:
            path = inventory_file(Path(work), size)
            inventory = load_inventory(path)

            def measure(path: Path = path, inventory: Inventory = inventory) -> dict[str, float]:
                found = {"read the inventory": ms(lambda: load_inventory(path))}
                for name, pattern in PATTERNS.items():
                    found[f"resolve {name}"] = ms(lambda pattern=pattern: resolve_limit(inventory, pattern))
                with tempfile.TemporaryDirectory() as private:
                    values = {"reason": "{{ lookup('pipe', 'id') }}" * 10, "hosts": sorted(inventory.hosts)}
                    found["write the extra-vars file"] = ms(lambda: write_extra_vars(Path(private), values))
                return found

            for name, value in median_of(args.repeat, measure).items():
                figures[f"{size} hosts: {name} (ms)"] = value
    print_figures("bench_limits", args.repeat, figures)
    write_results("limits", args.repeat, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
