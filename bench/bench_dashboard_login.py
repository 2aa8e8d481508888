#!/usr/bin/env python3
"""Memory and time of N parallel wrong logins against the dashboard (issue 19: 24 of them took the process
from 79 MB to 793 MB, each an scrypt check of 32 MiB, all at once).

    .venv/bin/python bench/bench_dashboard_login.py [--parallel 24] [--throttle default|off] [--src DIR]

Serves the dashboard in a process of its own (a temporary state directory, a users file with one operator,
an inventory of one host whose service is down), waits until it is idle, then fires ``--parallel`` wrong
logins through the login form at once (distinct user names nobody has, each a real password check) and
prints the process's resident memory before, its peak (VmHWM from /proc, the kernel's high-water mark), the
wall time and the answers. ``--throttle off`` gives the throttle limits no burst reaches, so that every login
meets the hashing cap (the default throttle refuses an address's 21st failure before any hashing).
``--src DIR`` serves the dashboard from another source tree (for example ``git archive`` of an older commit)
to compare. Writes bench/results/dashboard_login.json.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from common import ROOT, write_results

from tests.conftest import free_port_block

SERVE = r"""
import sys
import threading
from pathlib import Path
from notification_emergency.dashboard import Dashboard, DashboardServer
from notification_emergency.dashboard import app as app_module

state, inventory, throttle = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
dashboard = Dashboard(inventory=inventory, store=state / "events.db", home=state,
                      users_file=state / "dashboard-users.yml", probe_interval=5)
options = {}
takes_throttle = "throttle" in app_module.create_app.__code__.co_varnames  # (not before issue 19)
if throttle == "off" and takes_throttle:
    options["throttle"] = app_module.LoginThrottle(per_user=10**9, per_address=10**9)
server = DashboardServer(dashboard, "127.0.0.1", 0, **options)
print(server.url, flush=True)
server.start()  # the worker in this process (no gunicorn master): /proc/<pid> is the process that hashes
threading.Event().wait()
"""


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of ``pid`` in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    assert match, f"no {field} in /proc/{pid}/status"
    return int(match.group(1)) / 1024


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the login page"
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=24, help="wrong logins fired at once (default 24)")
    parser.add_argument("--throttle", choices=("default", "off"), default="off")
    parser.add_argument("--src", type=Path, help="serve the dashboard from this source tree instead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-login-") as work:
        state = Path(work) / "state"
        state.mkdir()
        env = {**os.environ, "NOTIFICATION_EMERGENCY_STATE_DIR": str(state)}
        if args.src:
            env["PYTHONPATH"] = f"{args.src.resolve() / 'src'}:{env.get('PYTHONPATH', '')}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "notification_emergency",
                "dashboard",
                "--users",
                str(state / "dashboard-users.yml"),
                "--add-user",
                "alice",
                "--role",
                "operator",
            ],
            input="alice-operator-pw\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        base = free_port_block(2, start=33500)
        inventory = Path(work) / "offline.yml"
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "notification_service_root": str(Path(work) / "offline-01"),
            "notification_service_manager": "supervisord",
            "notification_service_web_port": base,
            "notification_service_websocket_port": base + 1,
        }
        hosts = {"notification_hosts": {"hosts": {"offline-01": host}}}
        inventory.write_text(yaml.safe_dump({"all": {"children": hosts}}))
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(state), str(inventory), args.throttle],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://"), "the dashboard did not start"
            sessions = []
            for _ in range(args.parallel):  # each its own browser with the login form's CSRF token
                session = requests.Session()
                sessions.append((session, csrf_of(session.get(f"{url}/login", timeout=30).text)))
            time.sleep(1.0)
            before = rss_mb(server.pid, "VmRSS")
            start = threading.Barrier(args.parallel + 1)
            answers: list[int] = []
            lock = threading.Lock()

            def attempt(number: int, session: requests.Session, token: str) -> None:
                start.wait()
                data = {"username": f"nobody-{number}", "password": "wrong-password", "csrf_token": token}
                status = session.post(f"{url}/login", data=data, timeout=300).status_code
                with lock:
                    answers.append(status)

            threads = [threading.Thread(target=attempt, args=(n, *browser)) for n, browser in enumerate(sessions)]
            for thread in threads:
                thread.start()
            start.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
            peak = rss_mb(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(30)

    counts = dict(sorted(collections.Counter(answers).items()))
    figures: dict[str, Any] = {
        "source": str(args.src or ROOT),
        "parallel": args.parallel,
        "throttle": args.throttle,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "seconds": round(seconds, 2),
        "answers": counts,
    }
    print(f"dashboard login burst: {args.parallel} wrong logins at once (throttle {args.throttle})")
    print(f"  source           {figures['source']}")
    print(f"  RSS before       {before:8.1f} MB")
    print(f"  RSS peak         {peak:8.1f} MB  (VmHWM)")
    print(f"  wall time        {seconds:8.2f} s")
    print(f"  answers          {', '.join(f'{code}: {n}' for code, n in counts.items())}")
    write_results("dashboard_login" + ("" if not args.src else "_src"), 1, figures)


if __name__ == "__main__":
    main()
