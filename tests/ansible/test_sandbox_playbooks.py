"""sandbox_up, deploy and sandbox_down: real playbooks on real local sandbox hosts."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.ansible.sandbox import ROOT, Sandbox, port_open, processes_under
from tests.conftest import VENV_BIN

BAD_SIZES = ["0", "-2", "abc", "2.5", "101"]


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: Callable[..., Sandbox]) -> Iterator[Sandbox]:
    box = sandbox_factory("sandbox", ports=30)
    up = box.playbook("sandbox_up.yml", extra={"sandbox_size": 2})
    assert up.rc == 0, up.output[-3000:]
    yield box
    box.playbook("sandbox_down.yml")


def ports_of(host: dict[str, int]) -> list[int]:
    return [
        host["notification_service_web_port"],
        host["notification_service_websocket_port"],
        host["notification_sandbox_redis_port"],
    ]


def test_sandbox_up_brings_up_healthy_marked_hosts(sandbox: Sandbox) -> None:
    hosts = sandbox.hosts()
    assert sorted(hosts) == ["sandbox-01", "sandbox-02"]
    ports = [port for host in hosts.values() for port in ports_of(host)]
    assert len(set(ports)) == 6, "every host has its own ports"
    for name, host in hosts.items():
        root = Path(host["notification_service_root"])
        marker = json.loads((root / ".notification-sandbox").read_text())
        assert marker == {"sandbox": True, "host": name, "created_by": "playbooks/sandbox_up.yml"}
        health = requests.get(f"http://127.0.0.1:{host['notification_service_web_port']}/health", timeout=5).json()
        assert health["status"] == "healthy", health
        assert health["mode"] == "websocket"
        assert {c["status"] for c in health["components"].values()} == {"healthy"}
        assert (root / "etc" / "secrets.yml").stat().st_mode & 0o777 == 0o640  # root's, the service's group reads
        for template_set in ("websocket", "legacy", "active"):
            directory = root / "templates" / template_set
            assert directory.stat().st_mode & 0o777 == 0o755, directory
            assert {page.stat().st_mode & 0o777 for page in directory.rglob("*.html")} == {0o644}, directory
        assert (root / "templates" / "active" / "index.html").read_text() == (
            root / "templates" / "websocket" / "index.html"
        ).read_text()


def test_second_deploy_and_sandbox_up_change_nothing(sandbox: Sandbox) -> None:
    deploy = sandbox.playbook("deploy.yml")
    assert deploy.rc == 0, deploy.output[-3000:]
    assert deploy.changed() == {"sandbox-01": 0, "sandbox-02": 0}
    again = sandbox.playbook("sandbox_up.yml", extra={"sandbox_size": 2})
    assert again.rc == 0, again.output[-3000:]
    assert set(again.changed().values()) == {0}, again.changed()


def test_api_sends_to_a_socketio_client_on_every_host(sandbox: Sandbox) -> None:
    from subprocess import run

    for host in sandbox.hosts().values():
        root = host["notification_service_root"]
        probe = run(
            [
                str(Path(__file__).resolve().parents[2] / ".venv/bin/notification-service"),
                "probe",
                f"--config={root}/etc/config.yml",
                "--user=pytest",
                "--timeout=15",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        received = json.loads(probe.stdout)
        assert received["ok"] is True and int(received["notification_id"]) > 0, received


def test_check_mode_deploy_of_another_mode_changes_nothing(sandbox: Sandbox) -> None:
    host = sandbox.hosts()["sandbox-01"]
    root = Path(host["notification_service_root"])
    before = {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()}
    run = sandbox.playbook(
        "deploy.yml", "--check", "--diff", "--limit=sandbox-01", extra={"notification_service_mode": "legacy"}
    )
    assert run.rc == 0, run.output[-3000:]
    assert run.changed()["sandbox-01"] > 0, "check mode reports what would change"
    assert "mode: legacy" in run.stdout, "diff shows the config change"
    assert sandbox.api_token("sandbox-01") not in run.output, "secrets never reach the output"
    after = {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()}
    assert before == after


def test_shrinking_removes_the_extra_host_completely(sandbox: Sandbox) -> None:
    gone = sandbox.hosts()["sandbox-02"]
    run = sandbox.playbook("sandbox_up.yml", extra={"sandbox_size": 1})
    assert run.rc == 0, run.output[-3000:]
    assert sorted(sandbox.hosts()) == ["sandbox-01"]
    root = Path(gone["notification_service_root"])
    assert not root.exists()
    assert processes_under(root) == []
    assert not any(port_open(port) for port in ports_of(gone))


def test_sandbox_down_leaves_no_process_port_or_file(sandbox: Sandbox) -> None:
    hosts = sandbox.hosts()
    run = sandbox.playbook("sandbox_down.yml")
    assert run.rc == 0, run.output[-3000:]
    assert processes_under(sandbox.home) == []
    assert not any(port_open(port) for host in hosts.values() for port in ports_of(host))
    assert not sandbox.home.exists()
    assert not (sandbox.inventory / "hosts.yml").exists()
    again = sandbox.playbook("sandbox_down.yml")
    assert again.rc == 0 and set(again.changed().values()) <= {0}


def size_refused(size: str) -> str:
    return f"sandbox_size must be a whole number from 1 to 100, got '{size}'"


def test_a_bad_sandbox_size_is_refused_before_anything_is_created(sandbox_factory: Callable[..., Sandbox]) -> None:
    """End to end, once: sandbox_up.yml refuses a bad size, naming it, and creates nothing."""
    box = sandbox_factory("bad-size")
    run = box.playbook("sandbox_up.yml", extra={"sandbox_size": "abc"})
    assert run.rc != 0
    assert size_refused("abc") in " ".join(run.output.split())
    assert not box.home.exists() and not (box.inventory / "hosts.yml").exists()


def test_every_bad_sandbox_size_fails_the_playbooks_own_check(tmp_path: Path) -> None:
    """The size check task of sandbox_up.yml, as it is in the playbook, run once for every bad size (and one
    good one) in one ansible-playbook run: each bad size fails it with the message naming the value."""
    [plan] = yaml.safe_load((ROOT / "playbooks" / "sandbox_up.yml").read_text())[:1]
    [check] = [task for task in plan["tasks"] if task["name"].startswith("Check that sandbox_size")]
    task = {**check, "vars": {"__sandbox_size_raw": "{{ item }}"}, "loop": [*BAD_SIZES, "3"], "ignore_errors": True}
    playbook = tmp_path / "size_check.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    output = " ".join((proc.stdout + proc.stderr).split())
    for size in BAD_SIZES:
        assert f"failed: [localhost] (item={size})" in output and size_refused(size) in output, output[-3000:]
    assert "ok: [localhost] => (item=3)" in output and size_refused("3") not in output, output[-3000:]


def test_ports_in_use_are_named(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory("busy-ports")
    base = box.base_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 1))
        blocker.listen()
        run = box.playbook("sandbox_up.yml")
    assert run.rc != 0
    output = " ".join(run.output.split())
    assert f"{base + 1} (websocket of sandbox-01)" in output
    assert "sandbox_base_port" in output
    assert not (box.inventory / "hosts.yml").exists()


def test_sandbox_down_refuses_a_host_without_the_marker(
    sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    box = sandbox_factory("impostor")
    port = box.base_port
    precious = tmp_path / "not-a-sandbox"
    (precious / "etc").mkdir(parents=True)
    (precious / "etc" / "keep.txt").write_text("important")
    (box.inventory / "hosts.yml").write_text(
        "all:\n  children:\n    sandbox:\n      hosts:\n        impostor:\n"
        "          ansible_connection: local\n          notification_sandbox: true\n"
        "          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        f"          notification_service_root: {precious}\n          notification_service_web_port: {port}\n"
        f"          notification_service_websocket_port: {port + 1}\n"
        f"          notification_sandbox_redis_port: {port + 2}\n"
    )
    run = box.playbook("sandbox_down.yml")
    assert run.rc != 0
    assert f"refusing to remove {precious}" in " ".join(run.output.split())
    assert (precious / "etc" / "keep.txt").read_text() == "important"
