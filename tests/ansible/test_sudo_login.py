"""The realistic profile reached as most fleets are (issue #23): ``sandbox_up.yml -e sandbox_profile=realistic
-e sandbox_login=sudo`` logs in over SSH as an administrator (``nadm-<web port>``, a key, a login shell, its own
home) who becomes root with ``sudo`` (``ansible_become``); root's own login is refused. The whole toolkit runs over
that login, and nothing it runs on the control node goes through sudo: a real operator's laptop would ask for a
password.

How that is shown, for real: for the whole module the control node's PATH starts with a directory whose ``sudo``
logs its arguments and exits 1 as a laptop's would without a terminal (the hosts' sessions get their PATH from
their sshd, so the hosts run the real ``/usr/bin/sudo``, whose own log, ``Defaults:<admin> logfile``, shows what
the administrator ran as root). That stand-in is not a mock of the hosts: it stands for the operator's laptop, a
different machine, which this one cannot be at the same time as it is the hosts'.

The modules' interpreter is the system's ``/usr/bin/python3`` here, not pyenv's 3.9 of the root-login tests: the
administrator starts it before it becomes root (Mitogen runs an interpreter per hop), and pyenv's builds live under
``/root`` (0700). ``sandbox_up.yml`` refuses an interpreter another user cannot run, and says so.

One sandbox host for the module; the tests run in order (up, login, the toolkit, removal)."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from notification_emergency.api import EmergencyToolkit
from notification_emergency.drills import run_drill
from tests.ansible.sandbox import ROOT, Sandbox, port_open, processes
from tests.conftest import VENV_BIN

HOST = "sandbox-01"
LOGIN = {"sandbox_login": "sudo", "sandbox_python": "/usr/bin/python3"}
ENV = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


@pytest.fixture(scope="module")
def controller_sudo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For the module: a ``sudo`` first on the control node's PATH that logs each call and fails as an operator's
    laptop does without a password. Yields its log (absent while nothing called it)."""
    trap = tmp_path_factory.mktemp("controller-sudo")
    log = trap / "calls.log"
    (trap / "bin").mkdir()
    sudo = trap / "bin" / "sudo"
    sudo.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {log}\n'
        'echo "sudo: a terminal is required to read the password (the control node\'s sudo)" >&2\n'
        "exit 1\n"
    )
    sudo.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{trap / 'bin'}{os.pathsep}{os.environ['PATH']}")
        yield log


@pytest.fixture(scope="module")
def box(sandbox_factory: Callable[..., Sandbox], controller_sudo: Path) -> Iterator[Sandbox]:
    plain = sandbox_factory("sudo-login", ports=14)
    sandbox = Sandbox(plain.workdir, plain.base_port, profile="realistic")
    up = sandbox.playbook("sandbox_up.yml", extra=LOGIN)
    if up.rc != 0:
        sandbox.playbook("sandbox_down.yml")  # what was made (an sshd, users, a sudoers file) goes
    assert up.rc == 0, up.output[-4000:]
    yield sandbox
    sandbox.playbook("sandbox_down.yml")  # a no-op after test_sandbox_down_removes_the_administrator


@pytest.fixture
def toolkit(tmp_path: Path, box: Sandbox) -> EmergencyToolkit:
    home = tmp_path / "state"
    return EmergencyToolkit(inventory=box.inventory, store=home / "events.db", home=home, actor="pytest")


def host(box: Sandbox) -> dict[str, Any]:
    return box.hosts()[HOST]


def group_vars(box: Sandbox) -> dict[str, Any]:
    return dict(yaml.safe_load((box.inventory / "hosts.yml").read_text())["all"]["children"]["sandbox"]["vars"])


def admin(box: Sandbox) -> str:
    return f"nadm-{host(box)['notification_service_web_port']}"


def root_of(box: Sandbox) -> Path:
    return Path(host(box)["notification_service_root"])


def owner(path: Path) -> str:
    return pwd.getpwuid(path.lstat().st_uid).pw_name


def health(box: Sandbox) -> dict[str, Any]:
    return dict(requests.get(f"http://127.0.0.1:{host(box)['notification_service_web_port']}/health", timeout=5).json())


def ssh(box: Sandbox, user: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` over the host's sshd as ``user``, with the sandbox's client key and known_hosts."""
    keys = box.home / "ssh"
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(keys / "id_ed25519"),
            "-o",
            f"UserKnownHostsFile={keys / 'known_hosts'}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(host(box)["ansible_port"]),
            f"{user}@127.0.0.1",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sudo_log(box: Sandbox) -> str:
    """What the host's administrator ran through the host's sudo (its sudoers file's logfile)."""
    path = box.home / "ssh" / HOST / "sudo.log"
    return path.read_text() if path.exists() else ""


def changed_tasks(stdout: str) -> list[str]:
    """The tasks of a playbook's output that changed something, each with what it said."""
    found, task = [], ""
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            found.append(f"{task} {line}")
    return found


def assert_no_sudo_on_the_control_node(log: Path) -> None:
    assert not log.exists(), f"the control node ran sudo: {log.read_text()}"


def test_root_cannot_log_in_and_the_administrator_becomes_root_with_sudo(box: Sandbox, controller_sudo: Path) -> None:
    name = admin(box)
    account = pwd.getpwnam(name)
    assert account.pw_uid != 0 and account.pw_shell == "/bin/bash", account
    home = Path(account.pw_dir)
    assert home.is_dir() and owner(home) == name
    keys = home / ".ssh" / "authorized_keys"
    assert owner(keys) == name and stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.read_text().split()[:2] == (box.home / "ssh" / "id_ed25519.pub").read_text().split()[:2]
    rule = Path("/etc/sudoers.d") / name
    assert owner(rule) == "root" and stat.S_IMODE(rule.stat().st_mode) == 0o440
    assert f"{name} ALL=(ALL:ALL) NOPASSWD: ALL" in rule.read_text()
    checked = subprocess.run(["visudo", "-cf", str(rule)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Root's login is refused, with the very key the administrator logs in with.
    refused = ssh(box, "root", "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    config = (box.home / "ssh" / HOST / "sshd_config").read_text()
    assert "\nPermitRootLogin no\n" in config and f"\nAllowUsers {name}\n" in config, config
    assert "User root from 127.0.0.1 not allowed" in (box.home / "ssh" / HOST / "sshd.log").read_text()
    # The administrator logs in as itself and becomes root with sudo, without a password.
    who = ssh(box, name, "id -un; sudo -n id -u")
    assert who.returncode == 0 and who.stdout.split() == [name, "0"], who.stdout + who.stderr

    # The inventory says so, and Ansible (through Mitogen) runs the modules as root through that sudo.
    variables = group_vars(box)
    assert "ansible_user" not in variables and host(box)["ansible_user"] == name
    assert variables["ansible_become"] is True and variables["ansible_become_method"] == "sudo", variables
    assert variables["ansible_python_interpreter"] == "/usr/bin/python3"
    uid = "{{ ansible_python_interpreter }} -c 'import os; print(\"uid\", os.getuid())'"
    adhoc = [str(VENV_BIN / "ansible"), "sandbox", "-i", str(box.inventory), "-m", "ansible.builtin.command", "-a", uid]
    # Under Mitogen (the project's strategy: an interpreter as the administrator, then one as root through sudo)
    # and under Ansible's own linear strategy (sudo -H -S -n -u root /bin/sh -c ..., pipelined).
    for strategy in ("notification_linear", "linear"):
        before = sudo_log(box).count(f"{name} : ")
        done = subprocess.run(
            adhoc,
            capture_output=True,
            text=True,
            env={**os.environ, **ENV, "ANSIBLE_STRATEGY": strategy},
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 0 and "uid 0" in done.stdout, strategy + done.stdout + done.stderr
        assert sudo_log(box).count(f"{name} : ") > before, f"{strategy}: the module ran through the host's sudo"
    assert "Accepted publickey for root" not in (box.home / "ssh" / HOST / "sshd.log").read_text()
    assert_no_sudo_on_the_control_node(controller_sudo)


def test_a_second_sandbox_up_changes_nothing_and_the_login_is_kept(box: Sandbox, controller_sudo: Path) -> None:
    # With -b too (become asked for on the command line): the control node's plays stay the invoking user's.
    again = box.playbook("sandbox_up.yml", "--become", extra=LOGIN)
    assert again.rc == 0, again.output[-3000:]
    assert again.changed() == {"localhost": 0, HOST: 0}, changed_tasks(again.stdout)
    other = box.playbook("sandbox_up.yml", extra={"sandbox_login": "root"})
    assert other.rc != 0
    assert "were created with another sandbox_login" in other.output and "sandbox_down.yml" in other.output
    assert group_vars(box)["notification_sandbox_login"] == "sudo", "the refused run wrote nothing"
    assert_no_sudo_on_the_control_node(controller_sudo)


def test_the_toolkit_over_the_sudo_login(box: Sandbox, toolkit: EmergencyToolkit, controller_sudo: Path) -> None:
    name = admin(box)
    before = sudo_log(box).count(f"{name} : ")
    checked = toolkit.health_check()
    assert checked.ok and sorted(checked.hosts) == [HOST], checked.message

    backup = toolkit.backup(label="sudo-login")
    assert backup.ok, backup.message
    rolled = toolkit.rollback()
    assert rolled.ok, rolled.message
    assert health(box)["mode"] == "legacy"
    verified = toolkit.verify(expected_mode="legacy", verify_delivery=True)
    assert verified.ok, verified.message
    again = toolkit.rollback()
    assert again.ok, again.message
    assert again.run is not None and again.run.hosts[HOST].changed == 0, again.run and again.run.hosts

    restored = toolkit.restore()
    assert restored.ok, restored.message
    assert health(box)["mode"] == "websocket"
    restarted = toolkit.restart(["websocket"])
    assert restarted.ok, restarted.message
    on = toolkit.activate_emergency("Sudo login test", "pytest", level=2, notify=False)
    assert on.ok and health(box)["emergency"]["active"], on.message
    off = toolkit.deactivate_emergency("pytest", notify=False)
    assert off.ok and not health(box)["emergency"]["active"], off.message
    named = toolkit.restore(backup="latest")
    assert named.ok, named.message
    drained = toolkit.drain_backlog()
    assert drained.ok, drained.message

    assert sudo_log(box).count(f"{name} : ") > before + 10, "every playbook ran through the host's sudo"
    assert_owners(box)
    assert_no_sudo_on_the_control_node(controller_sudo)


def assert_owners(box: Sandbox) -> None:
    """What the toolkit keeps on the host is root's, never the administrator's who logged in; what the service
    writes stays the service's; nothing under the host's root is the administrator's."""
    root = root_of(box)
    service = f"notif-{host(box)['notification_service_web_port']}"
    admin_uid = pwd.getpwnam(admin(box)).pw_uid
    backups = root / "backups"
    assert owner(backups) == "root" and stat.S_IMODE(backups.stat().st_mode) & 0o077 == 0
    taken = list(backups.rglob("*"))
    assert taken and all(owner(path) == "root" for path in taken), [p for p in taken if owner(p) != "root"]
    audit = root / "state" / "emergency-audit.log"
    assert owner(audit) == "root" and audit.stat().st_gid == 0, audit
    lock = root / "state" / "toolkit.lock"
    assert not lock.exists() or owner(lock) == "root"
    assert owner(root / "state" / "emergency.json") == "root"
    # The service's CLI ran as the service's user (setpriv) under become too: the database and its journal files.
    for path in [*(root / "data").iterdir(), *(root / "templates" / "active").iterdir()]:
        assert owner(path) == service, f"{path} is {owner(path)}'s"
    admins = [str(path) for path in [root, *root.rglob("*")] if path.lstat().st_uid == admin_uid]
    assert admins == [], f"the administrator's files on the host: {admins}"


def test_a_run_asked_to_become_still_runs_nothing_through_sudo_on_the_control_node(
    box: Sandbox, controller_sudo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-b`` (AWX's "privilege escalation", an operator's habit) sets become on every task, those on the control
    node too: the run's report and event-store record (notification_run, delegated to localhost) and the plays on
    localhost (auto_recover.yml) say ``become: false``, or they would ask the operator's sudo for a password."""
    monkeypatch.setenv("NOTIFICATION_EMERGENCY_STATE_DIR", str(tmp_path / "state"))  # auto_recover.yml's CLI
    rolled = box.playbook("rollback_to_legacy.yml", "--become")
    assert rolled.rc == 0, rolled.output[-3000:]
    assert health(box)["mode"] == "legacy"
    assert "report: " in rolled.stdout, "the run's report was written on the control node"
    recovered = box.playbook("auto_recover.yml", "--become", extra={"recover_limit": HOST})
    assert recovered.rc == 0, recovered.output[-3000:]
    restored = box.playbook("restore.yml", "--become")
    assert restored.rc == 0, restored.output[-3000:]
    assert health(box)["mode"] == "websocket"
    assert_owners(box)
    assert_no_sudo_on_the_control_node(controller_sudo)


def test_auto_recover_from_the_cli_and_a_drill(
    box: Sandbox, toolkit: EmergencyToolkit, controller_sudo: Path, tmp_path: Path
) -> None:
    conf = root_of(box) / "etc" / "supervisord.conf"
    ctl = [str(VENV_BIN / "supervisorctl"), "-c", str(conf)]
    pid = subprocess.run([*ctl, "pid", "notification-websocket"], capture_output=True, text=True, check=True).stdout
    os.kill(int(pid), 9)
    cli = [str(VENV_BIN / "notification-emergency"), "auto-recover", "-i", str(box.inventory), "--limit", HOST]
    recovered = subprocess.run(
        [*cli, "--store", str(tmp_path / "events.db"), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, "NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path / "state")},
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    assert json.loads(recovered.stdout)["ok"] is True
    assert health(box)["components"]["websocket"]["status"] == "healthy"

    journal = run_drill(toolkit, HOST, "websocket_killed", interval=0.25)
    assert journal["as_expected"] and journal["recovered"] and journal["healthy_after"], journal
    assert journal["left_as_found"], journal["left_problems"]
    assert_owners(box)
    assert_no_sudo_on_the_control_node(controller_sudo)


def test_the_control_node_sudo_stand_in_does_catch_a_sudo(box: Sandbox, controller_sudo: Path) -> None:
    """The stand-in is on the control node's PATH and fails a become there: so an empty log above means that
    nothing the toolkit ran on the control node used sudo (not that the stand-in was never reachable)."""
    assert_no_sudo_on_the_control_node(controller_sudo)
    tried = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-i", str(box.inventory), "--become", "-m", "ansible.builtin.ping"],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        cwd=ROOT,
        check=False,
    )
    assert tried.returncode != 0, tried.stdout
    assert controller_sudo.exists() and "-u root" in controller_sudo.read_text(), tried.stdout + tried.stderr
    controller_sudo.unlink()


def test_sandbox_down_removes_the_administrator(box: Sandbox, controller_sudo: Path) -> None:
    name = admin(box)
    account = pwd.getpwnam(name)
    port = host(box)["ansible_port"]
    down = box.playbook("sandbox_down.yml", "--become")  # its tasks on the control node stay the invoking user's
    assert down.rc == 0, down.output[-3000:]
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not Path(account.pw_dir).exists(), "the administrator's home"
    assert not (Path("/etc/sudoers.d") / name).exists(), "the administrator's sudo rule"
    assert not box.home.exists() and not port_open(port)
    assert processes(lambda argv: any(str(box.home) in arg for arg in argv)) == [], "no sshd left"
    left = [entry for entry in os.listdir("/proc") if entry.isdigit() and _uid(int(entry)) == account.pw_uid]
    assert left == [], f"processes of the removed administrator: {left}"
    assert_no_sudo_on_the_control_node(controller_sudo)


def _uid(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except OSError:
        return None


def test_sandbox_login_is_checked_before_anything_is_made(sandbox_factory: Callable[..., Sandbox]) -> None:
    """A login the default profile cannot have, one that does not exist, and an interpreter the administrators could
    not run (under a directory closed to other users, as pyenv's builds under /root are): each refused, named, with
    the fix, before any host, user or sshd is made."""
    plain = sandbox_factory("sudo-login-inputs", ports=4)
    default = plain.playbook("sandbox_up.yml", extra={"sandbox_login": "sudo"})
    assert default.rc != 0 and "sandbox_login=sudo needs -e sandbox_profile=realistic" in default.output
    unknown = plain.playbook("sandbox_up.yml", extra={"sandbox_login": "admin"})
    assert unknown.rc != 0 and "sandbox_login" in unknown.output and "root, sudo" in unknown.output
    assert not plain.hosts()

    closed = plain.workdir / "closed"  # pytest's temporary directories are 0700
    closed.mkdir()
    (closed / "python3").symlink_to("/usr/bin/python3")
    box = Sandbox(plain.workdir, plain.base_port, profile="realistic")
    try:
        refused = box.playbook("sandbox_up.yml", extra={**LOGIN, "sandbox_python": str(closed / "python3")})
        assert refused.rc != 0
        assert f"another user than root cannot run {closed / 'python3'}" in refused.output, refused.output[-3000:]
        assert "-e sandbox_python=/usr/bin/python3" in refused.output
        assert not box.hosts() and not (box.home / "ssh").exists(), "nothing was made"
        with pytest.raises(KeyError):
            pwd.getpwnam(f"nadm-{plain.base_port}")
    finally:
        box.playbook("sandbox_down.yml")
