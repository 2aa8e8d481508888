"""The realistic sandbox profile (``sandbox_up.yml -e sandbox_profile=realistic``): hosts reached over SSH (a
private sshd each), modules run by a bare Python 3.9, the service run by its own user from its own virtual
environment. The whole recovery path runs on it through the toolkit's API, as on the default profile.

One sandbox of two hosts for the module; the tests run in order (deploy, the recovery path, a drill, removal)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import run_drill
from tests.ansible.sandbox import ROOT, Sandbox, port_open, processes, processes_under
from tests.conftest import VENV_BIN

HOSTS = ["sandbox-01", "sandbox-02"]


@pytest.fixture(scope="module")
def realistic(sandbox_factory: Callable[..., Sandbox]) -> Iterator[Sandbox]:
    """Two realistic hosts (the ports come from sandbox_factory's block; the profile's home is its own)."""
    plain = sandbox_factory("realistic", ports=10 * len(HOSTS) + 4)
    box = Sandbox(plain.workdir, plain.base_port, profile="realistic")
    up = box.playbook("sandbox_up.yml", extra={"sandbox_size": len(HOSTS)})
    if up.rc != 0:
        box.playbook("sandbox_down.yml")  # what was made (an sshd, a user) goes
    assert up.rc == 0, up.output[-4000:]
    yield box
    box.playbook("sandbox_down.yml")  # a no-op after test_sandbox_down_removes_everything


@pytest.fixture
def toolkit(tmp_path: Path, realistic: Sandbox) -> EmergencyToolkit:
    home = tmp_path / "state"
    return EmergencyToolkit(inventory=realistic.inventory, store=home / "events.db", home=home, actor="pytest")


def hostvars(box: Sandbox, name: str) -> dict[str, Any]:
    return box.hosts()[name]


def group_vars(box: Sandbox) -> dict[str, Any]:
    return dict(yaml.safe_load((box.inventory / "hosts.yml").read_text())["all"]["children"]["sandbox"]["vars"])


def service_user(box: Sandbox, name: str) -> str:
    """The host's service user: notif-<web port> (the inventory's group variable, which Ansible templates)."""
    assert group_vars(box)["notification_service_user"] == "notif-{{ notification_service_web_port }}"
    return f"notif-{hostvars(box, name)['notification_service_web_port']}"


def root_of(box: Sandbox, name: str) -> Path:
    return Path(hostvars(box, name)["notification_service_root"])


def health(box: Sandbox, name: str) -> dict[str, Any]:
    port = hostvars(box, name)["notification_service_web_port"]
    return dict(requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json())


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def uid_of(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def supervised_pid(box: Sandbox, name: str, program: str) -> int:
    conf = root_of(box, name) / "etc" / "supervisord.conf"
    answer = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(conf), "pid", program], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert answer.isdigit() and answer != "0", f"{program} does not run on {name}: {answer}"
    return int(answer)


def test_hosts_are_reached_over_ssh_with_a_bare_python_3_9(realistic: Sandbox, tmp_path: Path) -> None:
    group = realistic.hosts()
    assert sorted(group) == HOSTS
    ports = {host["ansible_port"] for host in group.values()}
    assert len(ports) == len(HOSTS) and all(port_open(port) for port in ports), "an sshd per host"
    command = [
        str(VENV_BIN / "ansible"),
        "sandbox",
        "-i",
        str(realistic.inventory),
        "-m",
        "ansible.builtin.command",
        "-a",
        "{{ ansible_python_interpreter }} -c 'import sys, os; print(sys.version_info[:2], os.getuid())'",
    ]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(3, 9) 0") == len(HOSTS), done.stdout
    for name in HOSTS:
        log = (realistic.home / "ssh" / name / "sshd.log").read_text()
        assert "Accepted publickey for root from 127.0.0.1" in log, log[-2000:]
    variables = group_vars(realistic)
    interpreter = variables["ansible_python_interpreter"]
    assert variables["ansible_connection"] == "ssh" and "/versions/3.9." in interpreter, variables
    bare = subprocess.run([interpreter, "-c", "import yaml"], capture_output=True, text=True, check=False)
    assert bare.returncode != 0, "the modules' interpreter has no packages (no PyYAML)"
    # Host keys are checked: a known_hosts of the sandbox, and a host whose key is not the known one is refused.
    known = (realistic.home / "ssh" / "known_hosts").read_text()
    assert all(f"[127.0.0.1]:{port} ssh-ed25519 " in known for port in ports), known
    other_key = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    port = group[HOSTS[0]]["ansible_port"]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {' '.join(Path(f'{other_key}.pub').read_text().split()[:2])}\n")
    ssh_args = json.dumps({"ansible_ssh_common_args": f"-o UserKnownHostsFile={wrong} -o IdentitiesOnly=yes"})
    refused = subprocess.run(
        [
            *command[:2],
            "-i",
            str(realistic.inventory),
            "--limit",
            HOSTS[0],
            "-m",
            "ansible.builtin.ping",
            "-e",
            ssh_args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert refused.returncode != 0 and "host key" in refused.stdout.lower(), refused.stdout + refused.stderr


def test_the_service_runs_as_its_own_user_from_its_own_environment(realistic: Sandbox) -> None:
    for name in HOSTS:
        root = root_of(realistic, name)
        user = service_user(realistic, name)
        uid = pwd.getpwnam(user).pw_uid
        assert uid != 0 and pwd.getpwnam(user).pw_shell == "/usr/sbin/nologin"
        for program in ("notification-web", "notification-websocket", "redis"):
            assert uid_of(supervised_pid(realistic, name, program)) == uid, f"{program} on {name} runs as {user}"
        web = supervised_pid(realistic, name, "notification-web")
        argv = Path(f"/proc/{web}/cmdline").read_bytes().split(b"\0")
        assert argv[0].decode() == str(root / "venv" / "bin" / "python3"), argv
        assert owner(root / "venv") == user and owner(root / "venv" / "bin" / "notification-service") == user
        # The venv's interpreter links to the system's, which stays root's (a recursive chown must not follow it).
        system_python = Path(os.readlink(root / "venv" / "bin" / "python3"))
        assert system_python.lstat().st_uid == 0 and system_python.resolve().stat().st_uid == 0, system_python
        supervisord = int((root / "run" / "supervisord.pid").read_text())
        assert uid_of(supervisord) == 0, "supervisord runs as root and starts each program as user="
        for path in ("data/notifications.db", "templates/active/index.html"):
            assert owner(root / path) == user, path
        assert_config_is_roots(root, user)
        assert_manager_definitions_are_roots(root)
        assert health(realistic, name)["status"] == "healthy"


def assert_config_is_roots(root: Path, user: str) -> None:
    """config.yml and secrets.yml: root's, readable by the service's group, 0640 (root-run modules trust config.yml;
    tests/ansible/test_host_trust.py shows the service cannot write them)."""
    for path in (root / "etc" / "config.yml", root / "etc" / "secrets.yml"):
        assert owner(path) == "root" and grp.getgrgid(path.stat().st_gid).gr_name == user, path
        assert path.stat().st_mode & 0o777 == 0o640, f"{path}: {path.stat().st_mode:o}"


def assert_manager_definitions_are_roots(root: Path) -> None:
    """supervisord runs as root and starts each program as its user=: the service must not be able to change a
    definition (its command, its user) nor replace the directory that holds them, or it could run anything as root.
    Root's, and no write bit for group or others: the service user (not root, not the owner) cannot write there."""
    definitions = [root / "etc", root / "etc" / "supervisor.d", *(root / "etc" / "supervisor.d").glob("*.conf")]
    assert len(definitions) >= 5, definitions  # etc, supervisor.d, web, websocket, redis
    for path in definitions:
        assert owner(path) == "root" and path.stat().st_mode & 0o022 == 0, (
            f"{path}: {owner(path)}, {path.stat().st_mode:o}"
        )


def test_a_second_sandbox_up_changes_nothing(realistic: Sandbox) -> None:
    again = realistic.playbook("sandbox_up.yml", extra={"sandbox_size": len(HOSTS)})
    assert again.rc == 0, again.output[-3000:]
    assert again.changed() == {"localhost": 0, **dict.fromkeys(HOSTS, 0)}, again.changed()


def test_the_profile_of_existing_hosts_is_not_changed_by_a_resize(realistic: Sandbox) -> None:
    other = realistic.playbook("sandbox_up.yml", extra={"sandbox_size": len(HOSTS), "sandbox_profile": "default"})
    assert other.rc != 0
    assert "were created with another profile" in other.output and "sandbox_down.yml" in other.output


def test_the_recovery_path_over_ssh(realistic: Sandbox, toolkit: EmergencyToolkit) -> None:
    checked = toolkit.health_check()
    assert checked.ok, checked.message
    assert sorted(checked.hosts) == HOSTS, checked.hosts

    backup = toolkit.backup(label="realistic")
    assert backup.ok, backup.message
    rolled = toolkit.rollback()
    assert rolled.ok, rolled.message
    for name in HOSTS:
        assert health(realistic, name)["mode"] == "legacy"
    verified = toolkit.verify(expected_mode="legacy", verify_delivery=True)
    assert verified.ok, verified.message

    restored = toolkit.restore()
    assert restored.ok, restored.message
    assert {health(realistic, name)["mode"] for name in HOSTS} == {"websocket"}

    restarted = toolkit.restart(["websocket"])
    assert restarted.ok, restarted.message

    on = toolkit.activate_emergency("Realistic profile test", "pytest", level=2, notify=False)
    assert on.ok, on.message
    assert all(health(realistic, name)["emergency"]["active"] for name in HOSTS)
    off = toolkit.deactivate_emergency("pytest", notify=False)
    assert off.ok, off.message
    assert not any(health(realistic, name)["emergency"]["active"] for name in HOSTS)

    named = toolkit.restore(backup="latest", limit=HOSTS[0])
    assert named.ok, named.message
    # The drain runs the service's CLI (stats, carry-pending) as the service's user (setpriv), as the verification's
    # probe does: SQLite files it creates stay the service's (checked below with the rest of data/).
    drained = toolkit.drain_backlog()
    assert drained.ok, drained.message

    # What the toolkit keeps on a host is root's (the service cannot alter its backups or the lock); what the
    # service reads is readable by it; nothing the service writes became root's along the way.
    for name in HOSTS:
        root = root_of(realistic, name)
        user = service_user(realistic, name)
        backups = root / "backups"
        assert owner(backups) == "root" and backups.stat().st_mode & 0o077 == 0
        assert all(owner(path) == "root" for path in backups.iterdir())
        emergency = root / "state" / "emergency.json"
        assert emergency.stat().st_mode & 0o004, "the service reads emergency.json"
        for path in [*(root / "data").iterdir(), *(root / "templates" / "active").iterdir()]:
            assert owner(path) == user, f"{path} is {owner(path)}'s"
        assert_config_is_roots(root, user)
        assert not (root / "state" / "toolkit.lock").exists() or owner(root / "state" / "toolkit.lock") == "root"
        assert_manager_definitions_are_roots(root)


def test_auto_recover_and_a_drill_over_ssh(realistic: Sandbox, toolkit: EmergencyToolkit) -> None:
    name = HOSTS[1]
    os.kill(supervised_pid(realistic, name, "notification-websocket"), 9)
    recovered = toolkit.auto_recover(limit=name)
    assert recovered.ok, recovered.message
    assert health(realistic, name)["components"]["websocket"]["status"] == "healthy"

    journal = run_drill(toolkit, HOSTS[0], "websocket_killed", interval=0.25)
    assert journal["as_expected"], journal
    assert journal["recovered"] and journal["healthy_after"], journal
    assert journal["left_as_found"], journal["left_problems"]


def test_sandbox_down_removes_everything(realistic: Sandbox) -> None:
    group = realistic.hosts()
    users = [service_user(realistic, name) for name in group]
    uids = {pwd.getpwnam(user).pw_uid for user in users}
    ports = [
        host[key]
        for host in group.values()
        for key in ("notification_service_web_port", "notification_service_websocket_port", "ansible_port")
    ]
    down = realistic.playbook("sandbox_down.yml")
    assert down.rc == 0, down.output[-3000:]
    assert not realistic.home.exists()
    assert not any(port_open(port) for port in ports)
    assert processes_under(realistic.home) == []
    assert processes(lambda argv: any(str(realistic.home) in arg for arg in argv)) == [], "no sshd left"
    for user in users:
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
        with pytest.raises(KeyError):
            grp.getgrnam(user)
    left = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _uid(pid) in uids]
    assert left == [], f"processes of the removed users: {left}"


def _uid(pid: int) -> int | None:
    try:
        return uid_of(pid)
    except OSError:
        return None
