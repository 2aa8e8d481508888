#!/usr/bin/env python3
"""The dashboard's fleet view: how long the page takes to render the live data of 50 and 200 hosts.

    .venv/bin/python bench/bench_dashboard_fleet.py [--sizes 50,200] [--repeat 20]

For each size: a fleet of lightweight real HTTP /health servers and a few hosts that are down
(tests/dashboard/fleet_hosts.py: 6% failed, 4% down, 8% degraded, 10% on flash messages, 4% in emergency
mode), a real Dashboard probing them, served on a loopback port, and Debian's headless Chromium driven by
Playwright, logged in. Once every host has been probed, the page is given the same live data ``--repeat``
times, each measured in the page with performance.now(): from the JSON text (as it arrives on the event
stream) to the page laid out (JSON.parse, the render of the summary, cards, grid, host picker, detail panel
and actions, then a forced layout). It also prints the renders of the updates the page got from the stream
(without the layout). The issue's target: under 1 s after the data arrives.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import write_results
from playwright.sync_api import sync_playwright

from notification_emergency.dashboard import Dashboard, DashboardServer
from notification_emergency.dashboard.users import UserFile
from tests.dashboard.fleet_hosts import fleet, mixed
from tests.dashboard.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "bench-operator-pw"
MEASURE = """async (repeat) => {
  const text = await (await fetch("/api/state", { cache: "no-store" })).text();
  const times = [];
  for (let i = 0; i < repeat; i += 1) {
    const started = performance.now();
    const data = JSON.parse(text);
    NE.dashboard.applyLive(data.live);
    void document.body.offsetHeight;  // the layout of what was rendered
    times.push(performance.now() - started);
  }
  return { times, bytes: text.length, stream: NE.dashboard.renders.map((r) => r.ms) };
}"""


def measure(size: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as work:
        home = Path(work) / "state"
        home.mkdir()
        users = UserFile(home / "dashboard-users.yml")
        users.add("bench", "operator", PASSWORD)
        with fleet(Path(work), mixed(size)) as (inventory, _hosts):
            dashboard = Dashboard(
                inventory=inventory, store=home / "events.db", home=home, users_file=users.path, probe_interval=1.0
            ).start()
            server = DashboardServer(dashboard, "127.0.0.1", 0).start()
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.goto(server.url)
                    page.fill("input[name=username]", "bench")
                    page.fill("input[name=password]", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_function(
                        f"() => window.NE && NE.dashboard.state.live && NE.dashboard.state.live.hosts.length === {size}"
                        " && NE.dashboard.state.live.hosts.every((h) => h.status !== 'unknown')",
                        timeout=60_000,
                    )
                    time.sleep(2)  # a few updates from the stream
                    result: dict[str, Any] = page.evaluate(MEASURE, repeat)
                    browser.close()
            finally:
                server.shutdown()
                dashboard.stop()
    times = result["times"]
    figures = {
        "hosts": size,
        "state_bytes": result["bytes"],
        "render_median_ms": statistics.median(times),
        "render_max_ms": max(times),
        "stream_render_median_ms": statistics.median(result["stream"]) if result["stream"] else None,
    }
    print(
        f"{size:>4} hosts  render after data arrives: median {figures['render_median_ms']:7.1f} ms, "
        f"max {figures['render_max_ms']:7.1f} ms (of {repeat}; {result['bytes'] / 1024:.0f} KiB of JSON)  "
        f"stream updates: median {figures['stream_render_median_ms'] or 0:.1f} ms",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200", help="fleet sizes, comma-separated (default 50,200)")
    parser.add_argument("--repeat", type=int, default=20, help="renders measured per size (default 20)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    figures = {str(size): measure(size, args.repeat) for size in sizes}
    write_results("dashboard_fleet", args.repeat, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
