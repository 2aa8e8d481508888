#!/usr/bin/env python3
"""Time of one scrape of the dashboard's /metrics at fleet size (issue 22), as Prometheus makes it.

    .venv/bin/python bench/bench_metrics.py [--hosts 50] [--incidents 500] [--repeat 20]

Serves a real Dashboard on a loopback port (a temporary state directory, a users file with one viewer) over an
inventory of ``--hosts`` hosts whose service is down (nothing listens on their ports, so each probe row has one
component: a fleet of healthy hosts shows about six per host, so its host part is larger), and an event store
with a history: ``--incidents`` incidents with three engine actions each (one escalated in ten), two runs per
incident, a notification per escalation. Once the monitor has probed every host, it GETs /metrics with the
viewer's Basic credentials ``--repeat`` times and prints the median and the slowest wall time, the size of the
text and its number of samples. Writes bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml
from common import print_figures, write_results

from notification_emergency.dashboard import Dashboard, DashboardServer
from notification_emergency.dashboard.users import UserFile
from notification_emergency.store import EventStore
from tests.conftest import free_port_block

PASSWORD = "bench-viewer-password"


def inventory(path: Path, hosts: int, work: Path) -> Path:
    base = free_port_block(2 * hosts, start=41000)
    rows = {
        f"bench-{i:03d}": {
            "ansible_connection": "local",
            "notification_service_root": str(work / f"bench-{i:03d}"),
            "notification_service_manager": "supervisord",
            "notification_service_web_port": base + 2 * i,
            "notification_service_websocket_port": base + 2 * i + 1,
        }
        for i in range(hosts)
    }
    path.write_text(yaml.safe_dump({"all": {"children": {"notification_hosts": {"hosts": rows}}}}))
    return path


def history(store: EventStore, hosts: int, incidents: int) -> None:
    """Incidents as the recovery engine records them, spread over the last 30 days."""
    now = datetime.now(UTC)
    for n in range(incidents):
        detected = now - timedelta(minutes=60 * 24 * 30 * (incidents - n) / incidents)
        host = f"bench-{n % hosts:03d}"
        incident = store.open_incident(
            failure_type=("websocket_service_down", "redis_unavailable", "web_service_down")[n % 3],
            level=2,
            hosts=[host],
            summary="bench",
            started_at=detected - timedelta(seconds=3),
            detected_at=detected,
        )
        for k, (action, outcome) in enumerate(
            (("restart_websocket", "no effect"), ("enable_flash_fallback", "recovered"))
        ):
            run_id = f"r{n}-{k}"
            store.start_run(
                run_id, action="auto-recover", playbook="p.yml", actor="bench", inputs={}, limit=host, check=False
            )
            store.finish_run(run_id, status="successful", rc=0, hosts={})
            step = store.add_incident_action(incident, action=action, run_id=run_id, details={"automatic": True})
            store.finish_incident_action(step, outcome=outcome)
        if n % 10 == 0:
            store.add_incident_action(incident, action="escalate", outcome="notified", details={"automatic": False})
            store.record_notification(
                f"n{n}", title="t", message="m", priority="high", actor="bench", incident_id=incident
            )
            store.record_delivery_attempt(f"n{n}", channel="file", outcome="delivered")
        else:
            store.update_incident(incident, resolved_at=detected + timedelta(seconds=30 + n % 600))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        work = Path(tmp)
        users = UserFile(work / "dashboard-users.yml")
        users.add("viewer", "viewer", PASSWORD)
        store = EventStore(work / "events.db")
        filled = time.monotonic()
        history(store, args.hosts, args.incidents)
        print(f"store filled in {time.monotonic() - filled:.1f} s", file=sys.stderr)
        dashboard = Dashboard(
            inventory=inventory(work / "hosts.yml", args.hosts, work),
            store=store,
            home=work,
            users_file=users.path,
            probe_interval=5,
        ).start()
        server = DashboardServer(dashboard, "127.0.0.1", 0).start()
        try:
            deadline = time.monotonic() + 60
            while dashboard.probe_rounds < 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the monitor did not probe the hosts within 60 s")
                time.sleep(0.2)
            session = requests.Session()
            session.auth = ("viewer", PASSWORD)
            first = session.get(f"{server.url}/metrics", timeout=30)  # the password check, cached after
            first.raise_for_status()
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                answer = session.get(f"{server.url}/metrics", timeout=30)
                times.append(time.perf_counter() - started)
                answer.raise_for_status()
            text = answer.text
        finally:
            server.shutdown()
            dashboard.stop()
    figures = {
        "scrape_median_s": statistics.median(times),
        "scrape_max_s": max(times),
        "text_kib": len(text.encode()) / 1024,
        "samples": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
    }
    print_figures(f"/metrics at {args.hosts} hosts, {args.incidents} incidents", args.repeat, figures)
    write_results("metrics", args.repeat, {"hosts": args.hosts, "incidents": args.incidents, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
