#!/usr/bin/env python3
"""Take a screenshot of the dashboard over a real fleet (docs/dashboard-fleet.png), in Debian's headless
Chromium driven by Playwright, as the browser tests do.

    .venv/bin/python scripts/dashboard_screenshot.py -i INVENTORY [--store URL] [--out docs/dashboard-fleet.png]
        [--host HOST] [--width 1400] [--height 1250]

The dashboard is started on a free loopback port with a users file of its own (a throwaway operator), its
event store ``--store`` (the runs and incidents to show), and waits until every host has been probed.
``--host``: open that host's detail panel first (its components and timeline are then in the picture when
the height reaches them). How docs/dashboard-fleet.png was made: a 50-host sandbox
(``ansible-playbook playbooks/sandbox_up.yml -e sandbox_size=50`` in a directory of its own, as
bench/bench_fleet.py does), three WebSocket services, two web services and two Redis servers stopped, a health
check of those hosts, three hosts rolled back to flash messages and two of them in emergency mode.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from notification_emergency.dashboard import Dashboard, DashboardServer  # noqa: E402
from notification_emergency.dashboard.users import UserFile  # noqa: E402
from tests.dashboard.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PASSWORD = "screenshot-operator-pw"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", required=True, help="the fleet's inventory (file or directory)")
    parser.add_argument("--store", help="the event store (default: the state directory's events.db)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard-fleet.png"), help="the PNG to write")
    parser.add_argument("--host", help="open this host's detail panel")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-screenshot-") as work:
        home = Path(work)
        users = UserFile(home / "dashboard-users.yml")
        users.add("alice", "operator", PASSWORD)
        dashboard = Dashboard(
            inventory=args.inventory, store=args.store, home=home, users_file=users.path, probe_interval=1.0
        ).start()
        server = DashboardServer(dashboard, "127.0.0.1", 0).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(server.url)
                page.fill("input[name=username]", "alice")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_function(
                    "() => window.NE && NE.dashboard.state.live && NE.dashboard.state.live.hosts.length"
                    " && NE.dashboard.state.live.hosts.every((h) => h.status !== 'unknown')",
                    timeout=60_000,
                )
                if args.host:
                    page.click(f"[data-open-host='{args.host}']")
                    page.evaluate("window.scrollTo(0, 0)")
                time.sleep(3)  # the timeline and a few live updates
                page.screenshot(path=args.out)
                browser.close()
        finally:
            server.shutdown()
            dashboard.stop()
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
