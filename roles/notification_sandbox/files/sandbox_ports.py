#!/usr/bin/env python3
"""Port and process housekeeping for sandbox hosts (run on the control node by the role).

check: exit 1 with a clear message when a port that a *new* sandbox host needs is taken.
stop:  stop a sandbox host's supervisord and every process started from its root, then wait until
       its ports are closed; prints JSON {"stopped": [pids], "supervisord": bool}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROLES = ("web", "websocket", "redis")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the services bind: a port with only TIME-WAIT connections left (a sandbox just removed) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check(args: argparse.Namespace) -> int:
    last = args.base_port + 10 * (args.size - 1) + 2
    if args.base_port < 1024 or last > 65535:
        print(
            f"sandbox_base_port {args.base_port} with sandbox_size {args.size} needs ports up to {last}; "
            "choose a base port between 1024 and 65535 - 10 * size",
            file=sys.stderr,
        )
        return 1
    busy = []
    for index in range(1, args.size + 1):
        name = f"{args.prefix}-{index:02d}"
        if os.path.isdir(os.path.join(args.home, name)):
            continue  # an existing host holds its own ports
        for offset, role in enumerate(ROLES):
            port = args.base_port + 10 * (index - 1) + offset
            if not port_free(port):
                busy.append(f"{port} ({role} of {name})")
    if busy:
        print(
            "ports needed by new sandbox hosts are in use by other processes: "
            + ", ".join(busy)
            + "; stop those processes or choose another range with -e sandbox_base_port=N",
            file=sys.stderr,
        )
        return 1
    return 0


def processes_under(root: str) -> list[int]:
    prefix = root.rstrip("/") + "/"
    me = {os.getpid(), os.getppid()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) for arg in argv):
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(args: argparse.Namespace) -> int:
    conf = os.path.join(args.root, "etc", "supervisord.conf")
    pidfile = os.path.join(args.root, "run", "supervisord.pid")
    ctl = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
    stopped: list[int] = []
    supervisord = False
    if os.path.exists(pidfile) and os.path.exists(conf):
        try:
            with open(pidfile) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and alive(pid):
            supervisord = True
            subprocess.run([ctl, "-c", conf, "shutdown"], capture_output=True, timeout=60, check=False)
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            stopped.append(pid)
    # Anything left (orphans of a killed supervisord, for example) is stopped by its command line.
    leftovers = processes_under(args.root)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(alive(pid) for pid in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped.extend(pid for pid in leftovers if pid not in stopped)
        leftovers = [pid for pid in leftovers if alive(pid)]
        if not leftovers:
            break
    ports = [int(p) for p in args.ports.split(",") if p]
    deadline = time.monotonic() + 15
    while (still := [p for p in ports if port_open(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if still:
        print(
            f"ports {', '.join(map(str, still))} of {args.root} are still open after stopping its processes; "
            "find the process with `ss -ltnp` and stop it",
            file=sys.stderr,
        )
        return 1
    print(json.dumps({"stopped": sorted(set(stopped)), "supervisord": supervisord}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check")
    p_check.add_argument("--home", required=True)
    p_check.add_argument("--prefix", required=True)
    p_check.add_argument("--base-port", type=int, required=True)
    p_check.add_argument("--size", type=int, required=True)
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--root", required=True)
    p_stop.add_argument("--ports", default="")
    args = parser.parse_args()
    return check(args) if args.command == "check" else stop(args)


if __name__ == "__main__":
    sys.exit(main())
