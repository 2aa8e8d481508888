# Copyright: notification-emergency contributors
# MIT License (see LICENSE)
"""``linear`` run through Mitogen when it is installed and not switched off (the project's default strategy)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: notification_linear
short_description: linear, accelerated by Mitogen when available
description:
  - ansible.builtin.linear (tasks in order, each on every host before the next) run through Mitogen's
    connection and module runtime (the C(mitogen) Python package, pinned in the project's requirements),
    which starts one Python per host and runs each module in it instead of starting a new interpreter per
    task. On 50 sandbox hosts (2 cores) the idempotent rollback and the health check ran 1.2-1.9x faster than
    under plain linear; docs/fleet-speed.md has the figures.
  - The project's default (C(strategy) in ansible.cfg, chosen by those measurements). Switch it off with
    E(ANSIBLE_STRATEGY=linear) or E(NOTIFICATION_EMERGENCY_MITOGEN=0), for instance in an AWX execution
    environment without Mitogen. ansible-core 2.19 deprecates third-party strategy plugins, so every run prints
    that deprecation warning.
  - Falls back to plain ansible.builtin.linear, with a warning, when Mitogen is not installed (an AWX
    execution environment built without it), and without a warning when E(NOTIFICATION_EMERGENCY_MITOGEN=0)
    (or C(false), C(no), C(off)) switches it off.
  - Mitogen's own CPU placement is switched off. It pins its multiplexer to CPU 0 and, on a machine with
    fewer than 4 CPUs, the ansible-playbook process, every worker and every module's interpreter to the one
    CPU left, so on 2 cores a fleet run had one core's throughput (measured on 50 hosts, 5 C(set_fact) tasks
    took 12.5 s pinned and 7.0 s unpinned, 2 C(ping) tasks 8.8 s and 6.6 s). The kernel places the
    processes instead; E(NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY=1) keeps Mitogen's placement.
  - A worker process dies with ansible-playbook (Linux C(PR_SET_PDEATHSIG)). ansible-runner cancels a run by
    killing its process group; an ansible worker has a session of its own, and under Mitogen it then waited
    for the dead multiplexer forever, keeping the runner's terminal open (a canceled CLI run never returned).
  - Mitogen needs a Python it can start on the host, and cannot discover one (on this machine discovery failed
    under Mitogen with "EOF on stream"). So a play runs through Mitogen only when every one of its hosts has
    C(ansible_python_interpreter) set to a path (in the inventory, or C(interpreter_python) in ansible.cfg);
    otherwise the play runs under plain linear, with a warning that names a host without one.
author: notification-emergency contributors (!UNKNOWN)
"""

import ctypes
import os
import signal
import sys
from typing import Any

from ansible import constants as C
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule
from ansible.utils.display import Display

OFF = ("0", "false", "no", "off")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _mitogen_wanted() -> bool:
    return os.environ.get("NOTIFICATION_EMERGENCY_MITOGEN", "1").strip().lower() not in OFF


def _die_with_parent() -> None:
    """In a worker process: be killed when the ansible-playbook process that forked it dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the prctl
        os._exit(1)


class _Placement:
    """Mitogen's process placement policy (``ansible_mitogen.affinity.policy``), which Mitogen calls as it starts
    the controller, each multiplexer and each worker: no CPU pinning unless asked for, and a worker that dies
    with ansible-playbook. Under ansible-runner, a canceled run is killed by process group; an ansible worker
    has a session of its own, and under Mitogen it then waited for its dead multiplexer forever, holding the
    runner's terminal open, so the CLI never returned."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def assign_controller(self) -> None:
        self._inner.assign_controller()

    def assign_muxprocess(self, index: int) -> None:
        self._inner.assign_muxprocess(index)

    def assign_worker(self) -> None:
        _die_with_parent()
        self._inner.assign_worker()

    def assign_subprocess(self) -> None:
        self._inner.assign_subprocess()


def _place(affinity: Any) -> None:
    """Install the placement policy; Mitogen's own pinning only with NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY=1.
    Mitogen reads ``ansible_mitogen.affinity.policy`` each time it places a process, so this must run before
    the strategy does."""
    keep = os.environ.get("NOTIFICATION_EMERGENCY_MITOGEN_AFFINITY", "0").strip().lower() not in OFF
    affinity.policy = _Placement(affinity.policy if keep else affinity.Policy())


def _interpreter_missing(strategy: Any, iterator: Any) -> str | None:
    """A host of the play (after --limit) without an interpreter path, or None when all have one: the hosts
    Mitogen cannot start a Python on, since it cannot discover one (see DOCUMENTATION)."""
    configured = str(C.config.get_config_value("INTERPRETER_PYTHON") or "auto")
    if not configured.startswith("auto"):
        return None
    play = iterator._play
    for host in strategy._inventory.get_hosts(play.hosts, order=play.order):
        value = strategy._variable_manager.get_vars(play=play, host=host, include_hostvars=False).get(
            "ansible_python_interpreter"
        )
        if not value or str(value).startswith("auto"):
            return str(host.name)
    return None


def _guarded(mitogen_strategy: type) -> type:
    """The Mitogen strategy, which runs a play whose hosts Mitogen cannot start a Python on as plain linear."""

    def run(self: Any, iterator: Any, play_context: Any) -> Any:
        host = _interpreter_missing(self, iterator)
        if host is None:
            return mitogen_strategy.run(self, iterator, play_context)
        Display().warning(
            f"host {host} has no ansible_python_interpreter path (Mitogen cannot discover one): running this "
            "play with the plain linear strategy. Set ansible_python_interpreter for every host to use Mitogen, "
            "or ANSIBLE_STRATEGY=linear to silence this."
        )
        return LinearStrategyModule.run(self, iterator, play_context)

    return type("StrategyModule", (mitogen_strategy,), {"run": run})


def _plain_linear(warning: str) -> type:
    """Plain linear that says why when a play runs (not when the plugin is imported: ansible-doc, ansible-test)."""

    def run(self: Any, iterator: Any, play_context: Any) -> Any:
        Display().warning(warning)
        return LinearStrategyModule.run(self, iterator, play_context)

    return type("StrategyModule", (LinearStrategyModule,), {"run": run})


def _strategy() -> type:
    if not _mitogen_wanted():
        return LinearStrategyModule
    try:
        import ansible_mitogen.affinity
        import ansible_mitogen.loaders
        import ansible_mitogen.strategy
    except ImportError as exc:
        return _plain_linear(
            f"Mitogen is not installed ({exc}): running with the plain linear strategy (slower on fleets). "
            "Install the pinned mitogen package, or set NOTIFICATION_EMERGENCY_MITOGEN=0 to silence this."
        )
    _place(ansible_mitogen.affinity)
    base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)
    return _guarded(type("MitogenLinear", (ansible_mitogen.strategy.StrategyMixin, base), {}))


StrategyModule = _strategy()
