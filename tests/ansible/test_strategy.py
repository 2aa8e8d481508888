"""The Mitogen strategy (strategy_plugins/notification_linear.py), the project's default: a project playbook runs
through it, modules run inside Mitogen's per-host interpreter, and ANSIBLE_STRATEGY=linear or
NOTIFICATION_EMERGENCY_MITOGEN=0 fall back to plain linear (one AnsiballZ process per task)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ansible.conftest import SandboxHost
from tests.ansible.sandbox import ROOT, parse_recap, processes, processes_under
from tests.conftest import VENV_BIN


def parent_playbook(hosts: str = "localhost", only: str | None = None) -> str:
    """A playbook that prints the command line of the process that runs its module (PARENT=...), on ``only``
    when given (the other hosts run no module)."""
    when = f"      when: inventory_hostname == '{only}'\n" if only else ""
    return (
        "- name: Show which process runs the modules\n"
        f"  hosts: {hosts}\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Read the command line of the module's parent process\n"
        "      ansible.builtin.shell: \"tr '\\\\0' ' ' < /proc/$PPID/cmdline\"\n"
        "      register: parent\n"
        "      changed_when: false\n"
        f"{when}"
        "    - name: Print it\n"
        "      ansible.builtin.debug:\n"
        '        msg: "PARENT={{ parent.stdout }}"\n'
        f"{when}"
    )


PARENT = parent_playbook()


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # (the strategy is each test's: the project's default unless the test names one)
    inherited = {key: value for key, value in os.environ.items() if key != "ANSIBLE_STRATEGY"}
    environment = {**inherited, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **env}
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "runtime"),
    [
        ({"ANSIBLE_STRATEGY": "notification_linear"}, "(mitogen:"),
        ({"ANSIBLE_STRATEGY": "notification_linear", "NOTIFICATION_EMERGENCY_MITOGEN": "0"}, "AnsiballZ_command"),
        ({}, "(mitogen:"),  # the project's default (ansible.cfg)
        ({"ANSIBLE_STRATEGY": "linear"}, "AnsiballZ_command"),  # the documented way to switch it off
    ],
)
def test_modules_run_in_mitogen_unless_switched_off(tmp_path: Path, env: dict[str, str], runtime: str) -> None:
    playbook = tmp_path / "parent.yml"
    playbook.write_text(PARENT)
    inventory = f"localhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
    (tmp_path / "hosts").write_text(inventory)
    done = run(["-i", str(tmp_path / "hosts"), str(playbook)], **env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if "PARENT=" in line]
    assert runtime in line, line


def test_the_health_playbook_runs_through_mitogen(sandbox_host: SandboxHost) -> None:
    """The project's own modules (health, classification) and set_stats work under the Mitogen strategy."""
    sandbox_host.wait_healthy()
    done = run(
        ["-i", str(sandbox_host.box.inventory), "playbooks/health_check.yml", "--limit", sandbox_host.name],
        ANSIBLE_STRATEGY="notification_linear",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert parse_recap(done.stdout)[sandbox_host.name]["failed"] == 0
    assert f"{sandbox_host.name}" in done.stdout and "HEALTHY" in done.stdout.upper()


AFFINITY = """\
- name: Show which CPUs the module's interpreter may run on
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the CPU list of the module's interpreter (the shell's parent)
      ansible.builtin.shell: "grep Cpus_allowed_list /proc/$PPID/status"
      register: cpus
      changed_when: false

    - name: Print it
      ansible.builtin.debug:
        msg: "CPUS={{ cpus.stdout.split()[-1] }}"
"""


def cpu_list(cpus: set[int]) -> str:
    """The kernel's Cpus_allowed_list notation of a set of CPUs (0-1, 0,2, 3)."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and int(ranges[-1].split("-")[-1]) == cpu - 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="CPU placement needs at least 2 CPUs to be seen")
@pytest.mark.parametrize("keep", [False, True])
def test_mitogen_does_not_pin_the_run_to_one_cpu(tmp_path: Path, keep: bool) -> None:
    """Mitogen pins its multiplexer to CPU 0 and, below 4 CPUs, everything else (the ansible-playbook process,
    its workers, the interpreters that run the modules) to the one CPU left: on 2 cores a fleet run had one
    core's throughput. The plugin switches that placement off unless NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY=1."""
    playbook = tmp_path / "cpus.yml"
    playbook.write_text(AFFINITY)
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
    )
    env = {"ANSIBLE_STRATEGY": "notification_linear"}
    if keep:
        env["NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY"] = "1"
    done = run(["-i", str(tmp_path / "hosts"), str(playbook)], **env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if "CPUS=" in line]
    allowed = line.split("CPUS=")[1].strip().strip('"')
    everything = cpu_list(os.sched_getaffinity(0))
    if keep:
        assert allowed != everything, f"Mitogen's own placement was asked for, the module ran on {allowed}"
    else:
        assert allowed == everything, f"the module's interpreter was pinned to CPUs {allowed}, not {everything}"


def test_a_play_with_a_host_mitogen_cannot_start_python_on_runs_under_linear(tmp_path: Path) -> None:
    """Mitogen cannot discover an interpreter ("EOF on stream"), so a play with a host that has no
    ansible_python_interpreter path runs under plain linear, with a warning naming that host; the same play
    limited to hosts that have one runs through Mitogen."""
    playbook = tmp_path / "parent.yml"
    playbook.write_text(parent_playbook("all", only="with-python"))
    (tmp_path / "hosts").write_text(
        f"with-python ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
        "without-python ansible_connection=local\n"
    )
    both = run(["-i", str(tmp_path / "hosts"), str(playbook)], ANSIBLE_STRATEGY="notification_linear")
    output = " ".join((both.stdout + both.stderr).split())
    assert both.returncode == 0, both.stdout[-3000:] + both.stderr[-2000:]
    assert "host without-python has no ansible_python_interpreter path" in output, output[-3000:]
    [line] = [line for line in both.stdout.splitlines() if "PARENT=" in line]
    assert "AnsiballZ_command" in line, line

    limited = run(
        ["-i", str(tmp_path / "hosts"), str(playbook), "--limit", "with-python"], ANSIBLE_STRATEGY="notification_linear"
    )
    assert limited.returncode == 0, limited.stdout[-3000:] + limited.stderr[-2000:]
    assert "has no ansible_python_interpreter" not in limited.stdout + limited.stderr
    [line] = [line for line in limited.stdout.splitlines() if "PARENT=" in line]
    assert "(mitogen:" in line, line


# The module sleeps for a length of its own (60.<pid>), so that no other `sleep 60` on the machine (another test
# process, another run) passes for it.
SECONDS = f"60.{os.getpid()}"
SLEEP = f"""\
- name: Run a module that takes a while
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep {SECONDS}
      changed_when: false
"""


def _sleeping(argv: list[str]) -> bool:
    """The playbook's module: sleep 60.<pid>."""
    return argv[0].endswith("sleep") and argv[1:2] == [SECONDS]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_killed_by_process_group_leaves_no_worker_behind(tmp_path: Path) -> None:
    """ansible-runner cancels a run by killing its process group. An ansible worker has a session of its own;
    under Mitogen it used to wait for its dead multiplexer forever, holding the runner's terminal, so a
    canceled CLI run never returned. The plugin makes a worker die with ansible-playbook."""
    playbook = tmp_path / "sleep.yml"
    playbook.write_text(SLEEP)
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STRATEGY": "notification_linear"}
    run = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts"), str(playbook)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not processes(_sleeping):
            time.sleep(0.2)
        assert processes(_sleeping), "the module started"
        assert len(processes_under(tmp_path)) >= 2, "ansible-playbook and its worker"
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and processes_under(tmp_path):
            time.sleep(0.2)
        assert not processes_under(tmp_path), f"left behind: {processes_under(tmp_path)}"
    finally:
        for pid, _ in processes_under(tmp_path):
            os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
