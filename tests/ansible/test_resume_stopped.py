"""A hung program (frozen by SIGSTOP) is restarted within a bounded time: notification_services continues it
before the graceful stop, so it handles the SIGTERM at once instead of waiting for supervisord's stopwaitsecs
and its SIGKILL. A real private supervisord; its program a Python sleeper with a 10 s stopwaitsecs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.module_utils.notification_resume import continue_if_stopped
from ansible.module_utils.notification_services import SupervisorBackend

from tests.ansible.health_servers import SLEEPER, program, write_conf
from tests.ansible.test_supervisor_xmlrpc import SUPERVISORCTL, SUPERVISORD, only_supervisord, stop_daemon

STOPWAITSECS = 10


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    end = time.monotonic() + 5
    while state_of(pid) != "T" and time.monotonic() < end:
        time.sleep(0.02)
    assert state_of(pid) == "T"


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[SupervisorBackend]:
    conf = write_conf(tmp_path)
    (tmp_path / "conf.d" / "sleeper.conf").write_text(
        program("sleeper", SLEEPER, autostart=True, stopwaitsecs=STOPWAITSECS)
    )
    backend = SupervisorBackend(only_supervisord, str(conf), SUPERVISORCTL, SUPERVISORD, 30.0)
    backend.start_daemon()
    end = time.monotonic() + 15
    while backend.status("sleeper").state != "RUNNING" and time.monotonic() < end:
        time.sleep(0.1)
    try:
        yield backend
    finally:
        stop_daemon(tmp_path)


def test_a_sigstopped_program_is_restarted_without_waiting_for_stopwaitsecs(supervisor: SupervisorBackend) -> None:
    old = supervisor.status("sleeper").pid
    assert old is not None
    freeze(old)
    started = time.monotonic()
    supervisor.restart("sleeper")
    elapsed = time.monotonic() - started
    new = supervisor.status("sleeper")
    assert new.state == "RUNNING" and new.pid not in (None, old)
    assert not Path(f"/proc/{old}").exists() or state_of(old) == "Z"
    # A graceful stop of the continued process and a start (startsecs=1), not stopwaitsecs and a SIGKILL.
    assert elapsed < STOPWAITSECS - 5, elapsed


def test_only_a_stopped_process_is_continued(supervisor: SupervisorBackend) -> None:
    pid = supervisor.status("sleeper").pid
    assert pid is not None
    assert continue_if_stopped(pid) is False  # running: nothing sent
    freeze(pid)
    assert continue_if_stopped(pid) is True
    end = time.monotonic() + 5
    while state_of(pid) == "T" and time.monotonic() < end:
        time.sleep(0.05)
    assert state_of(pid) != "T"
    assert continue_if_stopped(2**22 + 7) is False  # no such process
