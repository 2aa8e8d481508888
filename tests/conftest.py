"""Shared fixtures: the project paths, free ports, running the project's modules in-process, the session's
sandbox host, and the collection hook that marks each test by the costly things it uses (see COSTLY)."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import ansible.module_utils
import click
import pytest
from ansible.module_utils.testing import patch_module_args
from click.testing import CliRunner, Result

from tests.ansible.sandbox import Sandbox, SandboxHost

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# The project's module_utils are importable as ansible.module_utils.<name>, as they are when Ansible
# ships them with a module.
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


# The test tiers. A test is marked by the costly fixtures in its whole fixture closure (item.fixturenames holds
# every fixture a test uses, directly or through other fixtures), so the markers cannot drift from the code:
# `make check` runs the tests with none of these marks, `make test` runs them all. A test that builds such a
# thing by hand instead of through one of these fixtures would be missed: give it a fixture.
COSTLY: dict[str, frozenset[str]] = {
    # a sandbox host deployed by sandbox_up.yml, or a playbook run against one
    "sandbox": frozenset({"sandbox_factory", "sandbox_box", "sandbox_host"}),
    # a database on the shared PostgreSQL server
    "postgres": frozenset({"pg_admin", "postgres_url", "pg_stack"}),
    # headless Chromium driven by Playwright
    "browser": frozenset({"browser"}),
    # a stack of the reference service: its web and websocket processes and their Redis
    "stack": frozenset({"service", "switch_stack", "outage_stack", "pg_stack", "new_stack"}),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in COSTLY.items():
            if used & fixtures:
                item.add_marker(marker)


# Ports handed out by free_port_block are reserved across processes (parallel xdist workers, another pytest on
# the machine) by holding an exclusive lock on one file per port until this process exits: a port is free only
# if nothing is bound to it and no other process has reserved it. Within one process a port may be handed out
# again once nothing is bound to it (as a fixture that ended frees its ports).
PORT_LOCKS = Path(tempfile.gettempdir()) / f"notification-emergency-test-ports-{os.getuid()}"
_reserved: dict[int, int] = {}  # port -> the open lock file descriptor that reserves it


def _reserve(port: int) -> bool:
    if port in _reserved:
        return True
    PORT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reserved[port] = fd
    return True


def free_port_block(count: int, start: int = 20000, stop: int = 60000, step: int = 10) -> int:
    """First port of a block of ``count`` consecutive free ports on 127.0.0.1, reserved for this process."""
    for base in range(start, stop, step):
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            if all(_reserve(port) for port in range(base, base + count)):
                return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port block")


def load_module(name: str) -> ModuleType:
    """Import library/<name>.py as a Python module."""
    spec = importlib.util.spec_from_file_location(f"library_{name}", ROOT / "library" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def cli_command() -> click.Command:
    """The CLI's click command, built from the Typer app once: typer's CliRunner builds it again on every
    invoke (0.14 s), which made the tests that run the CLI in-process hundreds of times slow."""
    import typer.main

    from notification_emergency.cli import app

    return typer.main.get_command(app)


def invoke_cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process (as typer's CliRunner does): exit code, output, exception."""
    return CliRunner().invoke(cli_command(), args, env=env)


@pytest.fixture
def module_runner(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Call ``runner(name, args, check_mode=False)``; returns (result dict, failed flag)."""

    def runner(name: str, args: dict[str, Any], check_mode: bool = False) -> tuple[dict[str, Any], bool]:
        module = load_module(name)
        if check_mode:
            args = {**args, "_ansible_check_mode": True}
        capsys.readouterr()
        with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
            module.main()
        result = json.loads(capsys.readouterr().out)
        return result, bool(exit_info.value.code) or bool(result.get("failed"))

    yield runner


@pytest.fixture(scope="session")
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Sandbox]:
    """``sandbox_factory(name, ports=3)``: a sandbox of its own (a new directory of this session's temporary
    directory, which is private to each xdist worker, and a block of free ports reserved for it); nothing is
    deployed yet. Every test or fixture that builds a sandbox goes through here, so the collection hook marks it."""

    def make(name: str = "sandbox", ports: int = 3) -> Sandbox:
        return Sandbox(tmp_path_factory.mktemp(name), free_port_block(ports, start=21000))

    return make


@pytest.fixture(scope="session")
def sandbox_box(sandbox_factory: Callable[..., Sandbox]) -> Iterator[Sandbox]:
    """One sandbox host for the whole session (of each xdist worker), created at first use, removed at the end."""
    box = sandbox_factory("shared-sandbox")
    up = box.playbook("sandbox_up.yml")
    assert up.rc == 0, up.output[-3000:]
    yield box
    down = box.playbook("sandbox_down.yml")
    assert down.rc == 0, down.output[-3000:]


@pytest.fixture
def sandbox_host(sandbox_box: Sandbox) -> Iterator[SandboxHost]:
    """The shared host, healthy before the test and mended after it."""
    host = SandboxHost(sandbox_box, "sandbox-01")
    host.wait_healthy()
    yield host
    host.mend()


# -- PostgreSQL: throwaway databases on the shared server -------------------------------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the shared server's ``postgres`` database (skips when unreachable)."""
    import psycopg  # here, not at the top: most tests need no PostgreSQL, and psycopg takes a while to import

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    with admin:
        yield admin


@contextmanager
def throwaway_database(admin: psycopg.Connection[tuple[object, ...]], prefix: str = "ne_test") -> Iterator[str]:
    """A new, empty database on the shared server (a SQLAlchemy psycopg URL), dropped afterwards with whatever
    is still connected to it. For a fixture of a wider scope than ``postgres_url``'s (a module's stack)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(pg_admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    """A fresh, empty database on the shared PostgreSQL server (a SQLAlchemy psycopg URL), dropped afterwards."""
    with throwaway_database(pg_admin) as url:
        yield url
