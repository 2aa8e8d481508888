"""What every bench script shares: the project on ``sys.path``, a private sandbox, medians, the printed
table and the JSON results file."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ansible.sandbox import Sandbox  # noqa: E402  (needs ROOT on sys.path)
from tests.conftest import free_port_block  # noqa: E402


@contextmanager
def sandbox(
    size: int, start: int, timings: dict[str, float] | None = None, profile: str = "default"
) -> Iterator[tuple[Sandbox, Path]]:
    """A private sandbox of ``size`` hosts (own temporary directory, ports from ``start``, the sandbox profile
    ``profile``), always removed.

    Yields the sandbox and its work directory; ``timings`` gets the sandbox_up and sandbox_down seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        box = Sandbox(Path(work), free_port_block(10 * size + 4, start=start), profile=profile)
        try:
            up = box.playbook("sandbox_up.yml", extra={"sandbox_size": size})
            if up.rc != 0:
                raise SystemExit(f"sandbox_up failed:\n{up.output[-2000:]}")
            if timings is not None:
                timings["sandbox_up"] = up.seconds
            yield box, Path(work)
        finally:
            down = box.playbook("sandbox_down.yml")
            if down.rc != 0:
                print(f"sandbox_down failed (rc={down.rc}):\n{down.output[-2000:]}", file=sys.stderr)
            if timings is not None:
                timings["sandbox_down"] = down.seconds


def print_figures(title: str, repeat: int, figures: Mapping[str, float | int | None]) -> None:
    """One figure per line, aligned; a missing figure prints as "-"."""
    width = max(len(title), *map(len, figures))
    print(f"{title:<{width}}  median of {repeat}")
    for name, value in figures.items():
        print(f"{name:<{width}}  {'-' if value is None else f'{value:8.3f}'}")


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
