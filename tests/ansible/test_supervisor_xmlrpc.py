"""SupervisorBackend asks a real private supervisord over XML-RPC, without a supervisorctl process per question.

The real ``supervisorctl`` is used only as the oracle (what it prints for the same supervisord) and for the
fallback path of a config that names no socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_checks import CheckSpec, Context
from ansible.module_utils.notification_health import Probe, run_one
from ansible.module_utils.notification_services import (
    ServiceControlError,
    SupervisorBackend,
    SupervisorTimeout,
    SupervisorUnreachable,
    read_endpoint,
)

from tests.ansible.health_servers import CRASHER, SLEEPER, program, write_conf
from tests.conftest import VENV_BIN, free_port_block

SUPERVISORD = str(VENV_BIN / "supervisord")
SUPERVISORCTL = str(VENV_BIN / "supervisorctl")


def no_runner(args: list[str]) -> tuple[int, str, str]:
    raise AssertionError(f"a process was started: {args}")


def only_supervisord(args: list[str]) -> tuple[int, str, str]:
    """Runs supervisord (which must stay a process); anything else fails the test."""
    assert args[0] == SUPERVISORD, f"a process other than supervisord was started: {args}"
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def backend(conf: Path, run: Any = no_runner, timeout: float = 10.0, **kwargs: Any) -> SupervisorBackend:
    return SupervisorBackend(run, str(conf), SUPERVISORCTL, SUPERVISORD, timeout, **kwargs)


def ctl(conf: Path, *args: str) -> str:
    """The oracle: what the real supervisorctl prints."""
    done = subprocess.run([SUPERVISORCTL, "-c", str(conf), *args], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def stop_daemon(root: Path) -> None:
    """Stop the supervisord this test started (by the pid in its pidfile)."""
    pidfile = root / "supervisord.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 15
    while time.monotonic() < end and pidfile.exists():
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_daemon(tmp_path)


@pytest.fixture
def running(root: Path) -> Path:
    """A started supervisord with alpha, beta (manual start) and crasher; returns its config."""
    conf = write_conf(root)
    for name, command in (("alpha", SLEEPER), ("beta", SLEEPER), ("crasher", CRASHER)):
        (root / "conf.d" / f"{name}.conf").write_text(program(name, command))
    backend(conf, run=only_supervisord).start_daemon()
    return conf


# -- the endpoint a config names ---------------------------------------------------------------------------


def test_endpoint_is_read_like_supervisorctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUP_TEST_DIR", "/run/x")
    conf = write_conf(tmp_path, ctl="serverurl = unix://%(ENV_SUP_TEST_DIR)s/ctl.sock ; a comment\n")
    endpoint = read_endpoint(str(conf))
    assert endpoint is not None and endpoint.socket_path == "/run/x/ctl.sock", "serverurl wins, ENV_ expands"
    assert endpoint.username is None and endpoint.password is None

    conf = write_conf(tmp_path, ctl="")
    endpoint = read_endpoint(str(conf))
    assert endpoint is not None and endpoint.url == f"unix://{tmp_path}/s.sock", "%(here)s is the config's directory"

    conf = write_conf(tmp_path, ctl="serverurl=http://127.0.0.1:9123\nusername=u\npassword=p\n")
    endpoint = read_endpoint(str(conf))
    assert endpoint is not None and (endpoint.host, endpoint.port, endpoint.socket_path) == ("127.0.0.1", 9123, None)
    assert (endpoint.username, endpoint.password) == ("u", "p")

    assert read_endpoint(str(write_conf(tmp_path, server="", ctl=""))) is None, "only supervisorctl knows"
    with pytest.raises(ServiceControlError, match="neither unix:// nor http://"):
        read_endpoint(str(write_conf(tmp_path, ctl="serverurl=ftp://x\n")))
    with pytest.raises(ServiceControlError, match="cannot be expanded"):
        read_endpoint(str(write_conf(tmp_path, ctl="serverurl=unix://%(ENV_SUP_TEST_NOT_SET)s/s.sock\n")))
    with pytest.raises(SupervisorUnreachable, match="does not exist"):
        read_endpoint(str(tmp_path / "missing.conf"))


# -- processes -----------------------------------------------------------------------------------------------


def test_status_start_stop_restart(running: Path) -> None:
    sup = backend(running)
    assert sup.reachable()
    idle = sup.status("alpha")
    assert (idle.state, idle.running, idle.pid, idle.detail) == ("STOPPED", False, None, "Not started")

    sup.start("alpha")
    up = sup.status("alpha")
    assert (up.state, up.running) == ("RUNNING", True) and up.pid and up.pid > 0
    assert up.detail.startswith(f"pid {up.pid}, uptime ")
    sup.start("alpha")  # already started: no error
    assert sup.status("alpha").pid == up.pid

    sup.restart("alpha")
    again = sup.status("alpha")
    assert again.state == "RUNNING" and again.pid != up.pid

    sup.stop("alpha")
    down = sup.status("alpha")
    assert (down.state, down.running, down.pid) == ("STOPPED", False, None)
    sup.stop("alpha")  # not running: no error
    sup.restart("beta")  # restart of a stopped program starts it
    assert sup.status("beta").state == "RUNNING"


def test_status_says_what_supervisorctl_says(running: Path) -> None:
    sup = backend(running)
    sup.start("beta")
    for name in ("alpha", "beta"):
        state = sup.status(name)
        fields = ctl(running, "status", name).split(None, 2)
        assert [state.state, state.detail.split(", uptime")[0]] == [fields[1], fields[2].strip().split(", uptime")[0]]


def test_a_start_that_fails_names_the_fault_and_the_stderr_tail(running: Path) -> None:
    sup = backend(running)
    with pytest.raises(ServiceControlError) as failure:
        sup.start("crasher")
    message = str(failure.value)
    assert "could not start crasher" in message and "ERROR (" in message
    assert "last stderr lines: boom: cannot bind" in message
    assert sup.status("crasher").state in ("FATAL", "BACKOFF", "EXITED")


def test_a_missing_program_is_named(running: Path) -> None:
    sup = backend(running)
    with pytest.raises(ServiceControlError) as failure:
        sup.status("nope")
    assert str(failure.value) == (
        f"service nope is not defined in {running}; check the services list or deploy its program file"
    )
    with pytest.raises(ServiceControlError, match=r"could not start nope: ERROR \(no such process\)"):
        sup.start("nope")


def test_reread_and_update_print_supervisorctls_lines(running: Path) -> None:
    sup = backend(running)
    assert sup.pending_updates() == []
    sup.start("alpha")
    sup.start("beta")
    old_pid = sup.status("alpha").pid
    conf_d = running.parent / "conf.d"
    (conf_d / "alpha.conf").write_text(program("alpha", autostart=True, stopwaitsecs=6))
    (conf_d / "beta.conf").unlink()
    (conf_d / "gamma.conf").write_text(program("gamma", autostart=True))

    pending = sup.pending_updates()
    assert pending == ["alpha: changed", "beta: disappeared", "gamma: available"]
    assert pending == ctl(running, "reread").splitlines(), "the same lines as supervisorctl reread"
    assert sup.pending_updates() == pending, "reread applies nothing"
    assert sup.status("beta").state == "RUNNING"

    assert sup.update() == [
        "beta: stopped",
        "beta: removed process group",
        "alpha: stopped",
        "alpha: updated process group",
        "gamma: added process group",
    ]
    assert sup.pending_updates() == []
    assert sup.update() == []
    with pytest.raises(ServiceControlError, match="beta is not defined"):
        sup.status("beta")
    for name in ("alpha", "gamma"):  # autostart=true: started by the update
        assert sup.status(name).state in ("STARTING", "RUNNING")
    assert sup.status("alpha").pid != old_pid


# -- supervisord down, hung, or asking for credentials ----------------------------------------------------------


def test_unreachable_supervisord(root: Path) -> None:
    conf = write_conf(root)
    sup = backend(conf)
    assert not sup.reachable(), "no socket file"
    with pytest.raises(SupervisorUnreachable, match="supervisord is not running"):
        sup.status("alpha")

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(root / "s.sock"))  # a socket file nobody listens on: connection refused
    try:
        assert not backend(conf).reachable()
    finally:
        stale.close()

    assert not backend(root / "missing.conf").reachable()


@pytest.fixture
def hung_socket(root: Path) -> Iterator[Path]:
    """A unix socket that accepts connections and never answers (a hung supervisord)."""
    conf = write_conf(root)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "s.sock"))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield conf
    server.close()
    for conn in held:
        conn.close()


def test_a_hung_supervisord_times_out(hung_socket: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SupervisorTimeout, match=r"did not answer supervisor\.getProcessInfo within 0\.3s"):
        backend(hung_socket, timeout=0.3).status("alpha")
    assert time.monotonic() - started < 2


def test_the_health_check_keeps_its_deadline_on_a_hung_supervisord(hung_socket: Path) -> None:
    spec = CheckSpec(
        name="web_process",
        kind="process",
        component="web",
        timeout=0.4,
        options={"manager": "supervisord", "supervisor_config": str(hung_socket), "service": "notification-web"},
    )
    result = run_one(Probe(spec), Context(bin_dir=str(VENV_BIN)))
    assert (result["status"], result["reason"]) == ("failed", "timeout")
    assert "reading the state of notification-web" in result["error"]
    assert result["latency_ms"] < 1500


def test_credentials_on_the_unix_socket(root: Path) -> None:
    server = "[unix_http_server]\nfile=%(here)s/s.sock\nusername=ops\npassword=s3cret\n"
    conf = write_conf(root, server=server, ctl="serverurl=unix://%(here)s/s.sock\nusername=ops\npassword=s3cret\n")
    (root / "conf.d" / "alpha.conf").write_text(program("alpha", autostart=True))
    sup = backend(conf, run=only_supervisord)
    sup.start_daemon()
    assert sup.status("alpha").state in ("STARTING", "RUNNING")

    wrong = write_conf(root, server=server, ctl="username=ops\npassword=wrong\n")
    with pytest.raises(ServiceControlError, match="refused the credentials"):
        backend(wrong).status("alpha")
    with pytest.raises(ServiceControlError, match="refused the credentials"):
        backend(wrong).reachable()  # it runs; it is not "down"

    none = write_conf(root, server="[unix_http_server]\nfile=%(here)s/s.sock\n", ctl="")
    with pytest.raises(ServiceControlError, match="refused the credentials"):
        backend(none).status("alpha")

    # Without credentials of its own, the client uses the socket's (supervisorctl would be refused).
    from_server = write_conf(root, server=server, ctl="")
    assert backend(from_server).status("alpha").name == "alpha"


def test_serverurl_over_http(root: Path) -> None:
    port = free_port_block(1, start=31000)
    server = f"[inet_http_server]\nport=127.0.0.1:{port}\nusername=ops\npassword=pw\n"
    conf = write_conf(root, server=server, ctl=f"serverurl=http://127.0.0.1:{port}\nusername=ops\npassword=pw\n")
    (root / "conf.d" / "alpha.conf").write_text(program("alpha"))
    sup = backend(conf, run=only_supervisord)
    sup.start_daemon()
    sup.start("alpha")
    assert sup.status("alpha").state == "RUNNING"
    sup.stop("alpha")
    assert sup.status("alpha").state == "STOPPED"


# -- the fallback: a config that names no socket ---------------------------------------------------------------


def test_a_config_without_a_socket_uses_supervisorctl(root: Path) -> None:
    """supervisorctl's default serverurl is http://localhost:9001; only such a supervisord can be found."""
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 9001))
    except OSError:
        pytest.skip("127.0.0.1:9001 is in use")
    finally:
        probe.close()
    conf = write_conf(root, server="[inet_http_server]\nport=127.0.0.1:9001\n", ctl="")
    (root / "conf.d" / "alpha.conf").write_text(program("alpha"))
    calls: list[list[str]] = []

    def run(args: list[str]) -> tuple[int, str, str]:
        calls.append(args)
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    sup = backend(conf, run=run)
    assert sup.endpoint() is None
    sup.start_daemon()
    sup.start("alpha")
    assert sup.status("alpha").state == "RUNNING"
    with pytest.raises(ServiceControlError, match="nope is not defined"):
        sup.status("nope")
    assert [args[3] for args in calls if args[0] == SUPERVISORCTL][-3:] == ["start", "status", "status"]

    without_ctl = SupervisorBackend(run, str(conf), None, SUPERVISORD, 5)
    with pytest.raises(ServiceControlError, match="supervisorctl not found"):
        without_ctl.status("alpha")


# -- the modules spawn no supervisorctl -------------------------------------------------------------------------


def test_the_modules_start_no_supervisorctl(module_runner: Any, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = write_conf(root)
    for name in ("notification-web", "notification-websocket"):
        (root / "conf.d" / f"{name}.conf").write_text(program(name))
    started: list[str] = []
    real_run_command = AnsibleModule.run_command

    def run_command(self: AnsibleModule, args: Any, *rest: Any, **kwargs: Any) -> Any:
        command = os.path.basename(str(args[0] if isinstance(args, list) else args.split()[0]))
        assert command != "supervisorctl", f"supervisorctl was started: {args}"
        started.append(command)
        return real_run_command(self, args, *rest, **kwargs)

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    args = {
        "manager": "supervisord",
        "supervisor_config": str(conf),
        "bin_dir": str(VENV_BIN),
        "services": ["notification-web", "notification-websocket"],
        "supervisord_start": True,
    }
    result, failed = module_runner("notification_services", args)
    assert not failed, result.get("msg")
    assert result["manager_actions"] == ["started supervisord"] and started == ["supervisord"]
    assert {service["state"] for service in result["services"].values()} == {"RUNNING"}
    restarted, failed = module_runner("notification_services", {**args, "state": "restarted"})
    assert not failed and restarted["changed"]
    assert started == ["supervisord"], "nothing but supervisord was ever started"

    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    checks = [
        {"name": "web_process", "kind": "process", "service": "notification-web"},
        {"name": "websocket_process", "kind": "process", "service": "notification-websocket"},
    ]
    health, failed = module_runner(
        "notification_health",
        {"checks": checks, "manager": "supervisord", "supervisor_config": str(conf), "bin_dir": str(VENV_BIN)},
    )
    assert not failed, health.get("msg")
    assert {check["status"] for check in health["checks"].values()} == {"healthy"}, health["checks"]
