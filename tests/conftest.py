"""Shared fixtures: the project paths, free ports, and running the project's modules in-process."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import ansible.module_utils
import pytest
from ansible.module_utils.testing import patch_module_args

from tests.ansible.sandbox import Sandbox, SandboxHost

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# The project's module_utils are importable as ansible.module_utils.<name>, as they are when Ansible
# ships them with a module.
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


def free_port_block(count: int, start: int = 20000, stop: int = 60000, step: int = 10) -> int:
    """First port of a block of ``count`` consecutive free ports on 127.0.0.1."""
    for base in range(start, stop, step):
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
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
def sandbox_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox host for the whole session, created at first use, removed at the end."""
    box = Sandbox(tmp_path_factory.mktemp("shared-sandbox"), free_port_block(3, start=24000))
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
