#!/usr/bin/env python3
"""MTTR of recovery drills, beside the physical floor measured in the same run.

    .venv/bin/python bench/bench_drills.py [--repeat 5] [--hosts 10] [--faults websocket_killed,websocket_stopped]
    .venv/bin/python bench/bench_drills.py --efficacy [--repeat 3]      # every drill: the table in the docs

On a private sandbox: each fault's drill on one host (median of --repeat runs: MTTD, MTTR and its parts
detect/decide/act/verify); the physical floor (a bare `supervisorctl restart` of the WebSocket process and the
first healthy probe after it); and the last fault's drill on --hosts hosts at once (one watch over the
fleet). Prints a table and writes bench/results/drills.json.

--efficacy runs every drill of ``test-recovery`` (--repeat times each, one host, no fleet drill) and writes the
efficacy table into docs/recovery-engine.md (between its efficacy markers) and bench/results/efficacy.json:
per drill the detected type, the outcome, MTTD, MTTR, how long users went without notifications (until the
host was recovered or on flash messages), and whether the drill left the host as it found it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import print_figures, sandbox, write_results

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import FAULTS, run_drill, run_fleet_drill
from notification_emergency.probes import probe
from tests.conftest import VENV_BIN


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def floor(toolkit: EmergencyToolkit, host: str) -> float:
    """A bare restart of the WebSocket process plus the first healthy probe: what no recovery can beat."""
    [target] = toolkit.fleet.targets(host)
    started = time.monotonic()
    subprocess.run(
        [
            str(VENV_BIN / "supervisorctl"),
            "-c",
            f"{target.root}/etc/supervisord.conf",
            "restart",
            "notification-websocket",
        ],
        capture_output=True,
        check=True,
    )
    while not probe(target, timeout=1.0).ok:
        time.sleep(0.02)
    return time.monotonic() - started


DOC = Path(__file__).resolve().parents[1] / "docs" / "recovery-engine.md"
BEGIN, END = "<!-- efficacy:begin -->", "<!-- efficacy:end -->"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def efficacy(toolkit: EmergencyToolkit, host: str, repeat: int) -> list[dict[str, Any]]:
    """Every drill ``repeat`` times on one host: one row of the efficacy table per drill (medians)."""
    rows = []
    for name, fault in FAULTS.items():
        journals = [run_drill(toolkit, host, name) for _ in range(repeat)]
        types = sorted({str(j["detected_type"] or "- (healed first)") for j in journals})
        outcomes = sorted({str(j["outcome"]) for j in journals})
        rows.append(
            {
                "drill": name,
                "expected": fault.expects,
                "detected": ", ".join(types),
                "outcome": ", ".join(outcomes),
                "as_expected": sum(bool(j["as_expected"]) for j in journals),
                "runs": len(journals),
                "mttd_s": median([j["mttd_s"] for j in journals]),
                "mttr_s": median([j["mttr_s"] for j in journals]),
                "served_again_s": median([j["served_again_s"] for j in journals]),
                "fell_back": any(j["fell_back"] for j in journals),
                "clean_after": all(j["healthy_after"] and j["left_as_found"] for j in journals),
            }
        )
        print(f"{name}: {rows[-1]}", flush=True)
    return rows


def efficacy_table(rows: list[dict[str, Any]], repeat: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, median of {repeat} per drill "
        f"(`.venv/bin/python bench/bench_drills.py --efficacy --repeat {repeat}`).",
        "",
        "| drill | detected type | outcome | as expected | MTTD (s) | MTTR (s) | users without notifications (s) "
        "| via flash | host as found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['drill']}` | {row['detected']} | {row['outcome']} | {row['as_expected']}/{row['runs']} "
            f"| {_cell(row['mttd_s'])} | {_cell(row['mttr_s'])} | {_cell(row['served_again_s'])} "
            f"| {'yes' if row['fell_back'] else 'no'} | {'yes' if row['clean_after'] else 'NO'} |"
        )
    return "\n".join(lines)


def write_efficacy(table: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} markers for the table")
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    print(f"written: {DOC.name} (efficacy table)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="drills per fault on one host; the median is reported")
    parser.add_argument("--hosts", type=int, default=10, help="hosts for the all-at-once drill (0 to skip)")
    parser.add_argument("--faults", default="websocket_killed,websocket_stopped", help="comma-separated drills")
    parser.add_argument("--efficacy", action="store_true", help="every drill: the efficacy table into the docs")
    args = parser.parse_args()
    if args.efficacy:
        with sandbox(1, 27000) as (box, work):
            home = Path(work) / "state"
            toolkit = EmergencyToolkit(inventory=box.inventory, store=home / "events.db", home=home, actor="bench")
            rows = efficacy(toolkit, sorted(box.hosts())[0], args.repeat)
        table = efficacy_table(rows, args.repeat)
        print(table)
        write_results("efficacy", args.repeat, {"rows": rows})
        write_efficacy(table)
        return 0
    faults = [f for f in args.faults.split(",") if f]
    size = max(1, args.hosts)
    figures: dict[str, Any] = {}
    with sandbox(size, 27000) as (box, work):
        home = Path(work) / "state"
        toolkit = EmergencyToolkit(inventory=box.inventory, store=home / "events.db", home=home, actor="bench")
        first = sorted(box.hosts())[0]
        figures["floor: restart + first healthy probe (s)"] = median(
            [floor(toolkit, first) for _ in range(args.repeat)]
        )
        for fault in faults:
            journals = [run_drill(toolkit, first, fault) for _ in range(args.repeat)]
            bad = [j for j in journals if not j["as_expected"]]
            if bad:
                print(f"warning: {len(bad)} {fault} drills not as expected: {bad[0]['outcome']}", file=sys.stderr)
            figures[f"{fault}, 1 host: MTTD (s)"] = median([j["mttd_s"] for j in journals])
            figures[f"{fault}, 1 host: MTTR (s)"] = median([j["mttr_s"] for j in journals])
            for part in ("detect", "decide", "act", "verify"):
                figures[f"{fault}, 1 host: {part} (s)"] = median([j["parts_s"][part] for j in journals])
        if args.hosts > 1:
            fault = faults[-1]
            fleet = run_fleet_drill(toolkit, sorted(box.hosts()), fault)
            label = f"{fault}, {fleet['hosts']} hosts at once"
            figures[f"{label}: MTTD median (s)"] = fleet["mttd_median_s"]
            figures[f"{label}: MTTR median (s)"] = fleet["mttr_median_s"]
            figures[f"{label}: MTTR max (s)"] = fleet["mttr_max_s"]
            figures[f"{label}: hosts recovered"] = fleet["recovered"]
            figures[f"{label}: recovery runs"] = fleet["recovery_runs"]
            if fleet["errors"]:
                print(f"warning: fleet drill errors: {fleet['errors']}", file=sys.stderr)
    print_figures("figure", args.repeat, figures)
    write_results("drills", args.repeat, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
