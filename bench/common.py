"""What every bench script shares: the project on ``sys.path``, medians and the JSON results file."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def median_of(repeat: int, measure: Callable[[], Mapping[str, float]]) -> dict[str, float]:
    """Run ``measure`` ``repeat`` times; the median of each figure."""
    runs = [measure() for _ in range(repeat)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def write_results(name: str, repeat: int, figures: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine context and say where."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(), "repeat": repeat, "figures": figures}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return out
