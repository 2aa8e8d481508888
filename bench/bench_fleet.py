#!/usr/bin/env python3
"""Fleet speed: the rollback, the restore and the health check over sandbox fleets of 1, 10 and 50 hosts.

    .venv/bin/python bench/bench_fleet.py [--sizes 1,10,50] [--repeat 3] [--strategies linear,notification_linear]
    .venv/bin/python bench/bench_fleet.py --profile realistic --sizes 10   # over SSH (docs/fleet-speed.md)

For each fleet size, a fresh sandbox (its own directory and ports, the demo sandbox is not touched), then,
each the median of --repeat runs:

  rollback          playbooks/rollback_to_legacy.yml (with its verification)   WebSocket -> legacy
  rollback again    the same, the idempotent second run (must report changed=0)
  restore           playbooks/restore.yml (roll forward, with its verification) legacy -> WebSocket
  restore again     the same, the idempotent second run (must report changed=0)
  health playbook   playbooks/health_check.yml
  status            notification-emergency status (the CLI's path: ansible-runner, health_check.yml, event store)
  status --quick    notification-emergency status --quick (direct probes from the control node, no playbook)

each under every strategy of --strategies (linear: the project's default; notification_linear: Mitogen;
when installed), and two baselines on the same hosts:

  shell baseline    bench/baseline_rollback.sh: the rollback steps as a sequential shell script (the original tool)
  floor rollback    the physical floor: the WebSocket services stopped and every host's GET /health, all at once
  floor restore     the WebSocket services started and every host's GET /health saying healthy, all at once
  ansible floor     one ansible.builtin.ping task on every host (ad hoc), under each strategy: what a single
                    module task costs on this control node before any of the project's work

With --profile realistic the sandbox is the realistic profile's (playbooks/sandbox_up.yml): every host reached
over SSH (its own sshd), modules run by a bare Python 3.9, the service run by its own user from its own virtual
environment; the shell baseline then runs its steps on each host through one ssh session per host, and the
summary gives the rollback's ratio to the Ansible floor (goal <= 1.5) and to the shell baseline (goal <= 0.5).

It prints, per size, wall seconds, CPU seconds (the control node's processes: ansible-playbook, its workers and
module processes; not the services) and tasks per host, and writes bench/results/fleet.json
(fleet-realistic.json for the realistic profile).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from common import ROOT, sandbox, write_results
from supervisor.xmlrpc import SupervisorTransport

from tests.ansible.recovery_helpers import report_of
from tests.ansible.sandbox import PlaybookRun, Sandbox

VENV_BIN = ROOT / ".venv" / "bin"
STRATEGIES = ("linear", "notification_linear")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(action: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of the child processes it waited for)."""
    cpu, started = children_cpu(), time.monotonic()
    result = action()
    return result, time.monotonic() - started, children_cpu() - cpu


def tasks_per_host(run: PlaybookRun) -> float:
    counts = [
        c["ok"] + c["failed"] + c.get("skipped", 0) for host, c in run.recap.items() if host.startswith("sandbox-")
    ]
    return statistics.median(counts) if counts else 0.0


def switch_steps(run: PlaybookRun) -> dict[str, float]:
    """The median over the hosts of each step of the mode switch (the timings_ms of the run's report), as
    ``step_<name>_ms``: where a host's time went. Empty for a playbook without a switch."""
    report = report_of(run) or {}
    timings = [host["timings_ms"] for host in report.get("hosts", []) if host.get("timings_ms")]
    steps = dict.fromkeys(step for row in timings for step in row)
    medians = {f"step_{step}_ms": statistics.median(row.get(step, 0.0) for row in timings) for step in steps}
    if not any("process_cpu" in row for row in timings):
        return medians
    # The hosts' own share of the control node's CPU: what their module interpreters spent (start-up, imports,
    # the switch's work). On the sandbox it runs on the control node's cores; on a real fleet on the hosts.
    return {**medians, "hosts_cpu_s": sum(row.get("process_cpu", 0.0) for row in timings) / 1000}


class RunFailed(Exception):
    """A measured run failed; the bench reports it and goes on with the next strategy."""


class Fleet:
    def __init__(self, box: Sandbox, work: Path) -> None:
        self.box = box
        self.work = work
        self.hosts = box.hosts()

    def extra_vars(self) -> dict[str, Any]:
        """The sandbox's size, and a wait for health that fits a whole fleet on one machine: the sandbox's hosts
        share the control node's cores, and a WebSocket service's start-up is about 1.6 CPU-s (its imports),
        so 50 of them starting at once need about 40 s on 2 cores before the last answers. The default (30 s)
        is for a host with its own CPU; 1 s per host here, never less than the default. The same for the
        verification's probe (a Python start-up and a Socket.IO client per host, all at once, next to the
        services starting): its default deadline is 15 s."""
        return {
            "sandbox_size": len(self.hosts),
            "notification_service_health_timeout": max(30, len(self.hosts)),
            "notification_mode_verify_timeout": max(15, len(self.hosts)),
        }

    def playbook(self, name: str, strategy: str, *, idempotent: bool = False, **extra: Any) -> dict[str, float]:
        os.environ["ANSIBLE_STRATEGY"] = strategy
        try:
            run, wall, cpu = measured(lambda: self.box.playbook(name, extra={**self.extra_vars(), **extra}))
        finally:
            os.environ.pop("ANSIBLE_STRATEGY", None)
        if run.rc != 0:
            first = run.output.find("fatal: [")
            detail = run.output[first : first + 4000] if first >= 0 else run.output[-4000:]
            raise RunFailed(f"{name} failed (rc={run.rc}, strategy {strategy}); the first failure:\n{detail}")
        changed = {host: n for host, n in run.changed().items() if host.startswith("sandbox-")}
        if idempotent and set(changed.values()) != {0}:
            raise RunFailed(f"{name} second run was not idempotent ({strategy}): {changed}")
        return {"wall_s": wall, "cpu_s": cpu, "tasks_per_host": tasks_per_host(run), **switch_steps(run)}

    def cli(self, *args: str) -> dict[str, float]:
        command = [
            str(VENV_BIN / "notification-emergency"),
            *args,
            "--inventory",
            str(self.box.inventory),
            "--store",
            str(self.work / "events.db"),
        ]
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
        done, wall, cpu = measured(
            lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed (rc={done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
        return {"wall_s": wall, "cpu_s": cpu, "tasks_per_host": 0.0 if "--quick" in args else 3.0}

    def shell_baseline(self) -> dict[str, float]:
        specs = [f"{v['notification_service_root']}:{v['notification_service_web_port']}" for v in self.hosts.values()]
        env = dict(os.environ)
        if self.box.profile == "realistic":  # over SSH: one session per host, the steps run as root on the host
            specs = [
                f"{spec}:{v['ansible_port']}:notif-{v['notification_service_web_port']}"  # the profile's user
                for spec, v in zip(specs, self.hosts.values(), strict=True)
            ]
            env |= {"SSH_KEY": str(self.box.home / "ssh" / "id_ed25519")}
            env |= {"SSH_KNOWN_HOSTS": str(self.box.home / "ssh" / "known_hosts")}
        done, wall, cpu = measured(
            lambda: subprocess.run(
                [str(ROOT / "bench" / "baseline_rollback.sh"), *specs],
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )
        )
        if done.returncode != 0:
            raise SystemExit(f"the shell baseline failed (rc={done.returncode}):\n{done.stdout}{done.stderr}")
        return {"wall_s": wall, "cpu_s": cpu, "tasks_per_host": 0.0}

    def ansible_floor(self, strategy: str) -> dict[str, float]:
        """One ansible.builtin.ping task on every host: the cost of a module task on its own, no project code."""
        command = [str(VENV_BIN / "ansible"), "sandbox", "-i", str(self.box.inventory), "-m", "ansible.builtin.ping"]
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STRATEGY": strategy}
        done, wall, cpu = measured(
            lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        )
        if done.returncode != 0:
            raise RunFailed(f"ansible ping failed (rc={done.returncode}, strategy {strategy}):\n{done.stdout[-2000:]}")
        return {"wall_s": wall, "cpu_s": cpu, "tasks_per_host": 1.0}

    def _supervisor(self, host: dict[str, Any]) -> Any:
        socket_path = Path(host["notification_service_root"]) / "run" / "supervisor.sock"
        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{socket_path}")
        )

    def floor(self, start: bool) -> dict[str, float]:
        """The WebSocket services stopped (or started) and every host's GET /health, all hosts at once."""

        def one(host: dict[str, Any]) -> None:
            rpc = self._supervisor(host)
            if start:
                rpc.supervisor.startProcess("notification-websocket", True)
            else:
                rpc.supervisor.stopProcess("notification-websocket", True)
            url = f"http://127.0.0.1:{host['notification_service_web_port']}/health"
            ends = time.monotonic() + 120  # a measurement, not a check: give the slowest start its time
            while True:
                answer = requests.get(url, timeout=5)
                # Started means healthy: GET /health answers 200 while the WebSocket service is still coming up
                # (its status is then "degraded"), so the status in the body decides.
                healthy = answer.status_code == 200 and answer.json().get("status") == "healthy"
                if healthy or not start:
                    return
                if time.monotonic() > ends:
                    raise RunFailed(f"{url} not healthy 120 s after the WebSocket service was started")
                time.sleep(0.05)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(one, self.hosts.values()))
        return {"wall_s": time.monotonic() - started, "cpu_s": 0.0, "tasks_per_host": 0.0}


def median(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(key for row in rows for key in row)
    return {key: statistics.median(row.get(key, 0.0) for row in rows) for key in keys}


def measure_size(size: int, repeat: int, strategies: list[str], base_port: int, profile: str) -> dict[str, Any]:
    figures: dict[str, list[dict[str, float]]] = {}
    failures: list[str] = []

    def add(name: str, value: dict[str, float]) -> None:
        figures.setdefault(name, []).append(value)
        hosts_cpu = ""
        if "hosts_cpu_s" in value:
            hosts_cpu = f"  (of which the hosts' module interpreters {value['hosts_cpu_s']:.1f} s)"
        print(
            f"  {size:>3} hosts  {name:<40} {value['wall_s']:7.2f} s wall  {value['cpu_s']:7.2f} s CPU{hosts_cpu}",
            flush=True,
        )
        steps = [f"{key[5:-3]} {ms:.0f}" for key, ms in value.items() if key.startswith("step_")]
        if steps:
            print(f"  {'':>3}        {'':<40} per host (median ms): {', '.join(steps)}", flush=True)

    timings: dict[str, float] = {}
    with sandbox(size, base_port, timings, profile=profile) as (box, work):
        fleet = Fleet(box, work)
        print(f"  {size:>3} hosts  sandbox up in {timings['sandbox_up']:.1f} s", flush=True)
        for _ in range(repeat):
            for strategy in strategies:
                try:
                    add(f"rollback [{strategy}]", fleet.playbook("rollback_to_legacy.yml", strategy))
                    add(
                        f"rollback again [{strategy}]",
                        fleet.playbook("rollback_to_legacy.yml", strategy, idempotent=True),
                    )
                    add(f"restore [{strategy}]", fleet.playbook("restore.yml", strategy))
                    add(f"restore again [{strategy}]", fleet.playbook("restore.yml", strategy, idempotent=True))
                    add(f"health playbook [{strategy}]", fleet.playbook("health_check.yml", strategy))
                except RunFailed as exc:
                    print(f"  {size:>3} hosts  FAILED under {strategy}: {exc}", flush=True)
                    failures.append(f"{size} hosts, {strategy}: {str(exc).splitlines()[0]}")
                    try:
                        fleet.playbook("restore.yml", "linear")  # back to WebSocket mode for what follows
                    except RunFailed as again:
                        failures.append(f"{size} hosts, restore after {strategy}: {str(again).splitlines()[0]}")
            add("status (CLI, playbook)", fleet.cli("status"))
            add("status --quick (CLI, direct probe)", fleet.cli("status", "--quick"))
            for strategy in strategies:
                try:
                    add(f"ansible floor: one ping task [{strategy}]", fleet.ansible_floor(strategy))
                except RunFailed as exc:
                    failures.append(f"{size} hosts, ping {strategy}: {str(exc).splitlines()[0]}")
            add("shell baseline rollback", fleet.shell_baseline())
            try:
                # Back to WebSocket mode with the playbook (the baseline's changes are what it undoes).
                fleet.playbook("restore.yml", strategies[0])
                add("floor rollback (stop + health)", fleet.floor(start=False))
                add("floor restore (start + health)", fleet.floor(start=True))
            except RunFailed as exc:
                # The service floors need WebSocket mode; without it they are not measured, the rest is kept.
                print(f"  {size:>3} hosts  FAILED: {exc}", flush=True)
                failures.append(f"{size} hosts, floors not measured: {str(exc).splitlines()[0]}")
    result: dict[str, Any] = {name: median(rows) for name, rows in figures.items()}
    result["sandbox_up"] = {"wall_s": timings["sandbox_up"], "cpu_s": 0.0, "tasks_per_host": 0.0}
    if failures:
        result["failures"] = failures
    return result


def print_goals(size: int, strategies: list[str], figures: dict[str, Any]) -> None:
    """The rollback's wall time against the Ansible floor (one ping task, the same strategy) and the shell
    baseline: the issue's goals are <= 1.5x the floor and <= 0.5x the shell script."""
    shell = figures.get("shell baseline rollback", {}).get("wall_s")
    for strategy in strategies:
        rollback = figures.get(f"rollback [{strategy}]", {}).get("wall_s")
        floor = figures.get(f"ansible floor: one ping task [{strategy}]", {}).get("wall_s")
        if not rollback:
            continue
        to_floor = f"{rollback / floor:.2f}x the ping floor (goal <= 1.5)" if floor else "no ping floor"
        to_shell = f"{rollback / shell:.2f}x the shell script (goal <= 0.5)" if shell else "no shell baseline"
        print(f"{size} hosts, rollback [{strategy}] {rollback:.2f} s: {to_floor}, {to_shell}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,50", help="comma-separated fleet sizes (default 1,10,50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is reported")
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated strategies to compare (default linear,notification_linear)",
    )
    parser.add_argument("--base-port", type=int, default=40000, help="first port of the bench's sandboxes")
    parser.add_argument(
        "--profile",
        choices=["default", "realistic"],
        default="default",
        help="the sandbox profile: default (local connection) or realistic (SSH, a bare Python, a service user)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    strategies = [s for s in args.strategies.split(",") if s]
    results: dict[str, Any] = {}
    for size in sizes:
        results[str(size)] = measure_size(size, args.repeat, strategies, args.base_port, args.profile)
    print(f"\n{'':<42}" + "".join(f"{f'{size} hosts':>28}" for size in sizes))
    print(f"{'(median of ' + str(args.repeat) + ')':<42}" + f"{'wall s  CPU s  tasks/host':>28}" * len(sizes))
    names = list(dict.fromkeys(name for size in sizes for name in results[str(size)] if name != "failures"))
    for name in names:
        cells = []
        for size in sizes:
            row = results[str(size)].get(name)
            cells.append(
                f"{row['wall_s']:>10.2f} {row['cpu_s']:>6.1f} {row['tasks_per_host']:>10.0f}" if row else f"{'-':>28}"
            )
        print(f"{name:<42}" + "".join(f"{cell:>28}" for cell in cells))
    for size in sizes:
        print_goals(size, strategies, results[str(size)])
        for failure in results[str(size)].get("failures", []):
            print(f"FAILED: {failure}")
    write_results("fleet" if args.profile == "default" else f"fleet-{args.profile}", args.repeat, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
