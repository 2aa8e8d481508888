"""The one runner wrapper: every playbook run of the package goes through :func:`run_playbook`.

It drives ``ansible_runner`` the way the project's conventions ask: a fresh private data directory per run
(``suppress_env_files`` so no extra vars or environment are written to disk), the project root as
``project_dir`` so ``ansible.cfg`` applies, an explicit run id as ``ident`` for a stable artifact
directory, and a typed result with the per-host recap and the stats the playbooks publish with
``set_stats``. What goes in (the playbooks' inputs, checked and marked unsafe) is :mod:`.inputs`; which
hosts a run targets is :mod:`.inventory`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from notification_emergency.inputs import write_extra_vars
from notification_emergency.paths import project_root
from notification_emergency.redact import redact_env

Event = dict[str, Any]


@dataclass(frozen=True)
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class RunResult:
    run_id: str
    playbook: str
    status: str  # successful | failed | timeout | canceled
    rc: int
    duration_s: float
    artifact_dir: Path
    hosts: dict[str, HostRecap] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # what the playbook published with set_stats
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-host module result (ad-hoc runs)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, r in self.hosts.items() if r.failed or r.unreachable)

    @property
    def changed(self) -> dict[str, int]:
        return {host: recap.changed for host, recap in self.hosts.items()}


_RECAP_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def _recap(stats: Mapping[str, Mapping[str, int]] | None) -> dict[str, HostRecap]:
    counts: dict[str, dict[str, int]] = {}
    for runner_key, field_name in _RECAP_KEYS.items():
        for host, value in (stats or {}).get(runner_key, {}).items():
            counts.setdefault(host, {})[field_name] = value
    return {host: HostRecap(**values) for host, values in sorted(counts.items())}


def run_playbook(
    playbook: str,
    *,
    inventory: str | Path | Sequence[str | Path] | None = None,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    timeout: int | None = None,
    artifacts_root: Path | None = None,
    run_id: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    verbosity: int = 0,
) -> RunResult:
    """Run ``playbooks/<playbook>`` and return its typed result (it never raises for a failed play)."""
    path = project_root() / "playbooks" / playbook
    if not path.is_file():
        raise FileNotFoundError(f"no playbook {playbook} in {path.parent}")
    return _run(
        playbook,
        {"playbook": str(path), "limit": limit},
        extra_vars=extra_vars,
        inventory=inventory,
        check=check,
        diff=diff,
        timeout=timeout,
        artifacts_root=artifacts_root,
        run_id=run_id,
        on_event=on_event,
        cancel=cancel,
        verbosity=verbosity,
    )


def run_module(
    module: str,
    module_args: Mapping[str, Any] | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    hosts: str = "all",
    inventory: str | Path | Sequence[str | Path] | None = None,
    check: bool = False,
    timeout: int | None = None,
    artifacts_root: Path | None = None,
    run_id: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RunResult:
    """Run one module ad hoc on ``hosts``; each host's module result is in ``RunResult.results``.

    Ansible renders module arguments as templates: text that did not come from this package's own code (a
    title, a message) goes in ``data`` (variables marked unsafe, see :func:`write_extra_vars`) and the
    arguments refer to it by name, ``"{{ title }}"``, so it arrives as it was typed.
    """
    return _run(
        module,
        {"module": module, "module_args": json.dumps(dict(module_args or {})), "host_pattern": hosts},
        extra_vars=data,
        inventory=inventory,
        check=check,
        diff=False,
        timeout=timeout,
        artifacts_root=artifacts_root,
        run_id=run_id,
        on_event=on_event,
        cancel=None,
        verbosity=0,
    )


_RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"}


# The environment names worth keeping in the ``command`` artifact; every other value, and every kept one
# whose name looks secret (redact.SECRET_ENV_NAME: store URLs, notifier credentials, tokens), is replaced by
# "***" so that artifacts hold no secret.
_KEPT_ENV = re.compile(r"^(ANSIBLE_[A-Z_]+|PATH|HOME|LANG|LC_[A-Z]+|PWD|USER|SHELL|TERM|PYTHONUNBUFFERED)$")


def _scrub_command_artifact(artifact_dir: Path) -> None:
    """ansible-runner writes the whole process environment into ``<artifact dir>/command``: mask it."""
    command_file = artifact_dir / "command"
    try:
        recorded = json.loads(command_file.read_text())
    except (OSError, ValueError):
        return
    env = recorded.get("env") or {}
    recorded["env"] = redact_env(env, _KEPT_ENV)
    command_file.write_text(json.dumps(recorded))


def _run(
    name: str,
    target: dict[str, Any],
    *,
    extra_vars: Mapping[str, Any] | None = None,
    inventory: str | Path | Sequence[str | Path] | None,
    check: bool,
    diff: bool,
    timeout: int | None,
    artifacts_root: Path | None,
    run_id: str | None,
    on_event: Callable[[Event], None] | None,
    cancel: Callable[[], bool] | None,
    verbosity: int,
) -> RunResult:
    root = project_root()
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{Path(name).stem}-{uuid.uuid4().hex[:8]}"
    artifacts = artifacts_root or Path(os.environ.get("NOTIFICATION_EMERGENCY_ARTIFACTS", root / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    inventories = [inventory] if isinstance(inventory, (str, Path)) else list(inventory or [])
    if not inventories:
        inventories = [root / "inventories" / "sandbox"]
    published: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}

    def handle(event: Event) -> bool:
        data = event.get("event_data", {})
        if event.get("event") == "playbook_on_stats":
            published.update(data.get("artifact_data") or {})
        elif event.get("event") in _RESULT_EVENTS and "host" in data:
            results[data["host"]] = data.get("res") or {}
        if on_event is not None:
            on_event(event)
        return True  # keep every event, or runner.stats would be None

    cmdline = " ".join(flag for flag, wanted in (("--check", check), ("--diff", diff)) if wanted)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="notification-emergency-run-") as private:
        if extra_vars:
            target = {**target, "extravars": str(write_extra_vars(Path(private), extra_vars))}
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(root),
            inventory=[str(i) for i in inventories],
            cmdline=cmdline or None,
            ident=run_id,
            artifact_dir=str(artifacts),
            suppress_env_files=True,
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
                # Run from inside another ansible-runner job (AWX, ansible-rulebook running auto_recover.yml),
                # the environment names that job's callback (awx_display), which this run does not have:
                # ansible-playbook would stop before the first task (rc 250).
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
                # ansible-runner's environment overrides ansible.cfg's callback_plugins: name the project's here.
                # Its notification_guard stops ansible-playbook when this process dies, even by SIGKILL.
                "ANSIBLE_CALLBACK_PLUGINS": str(root / "callback_plugins"),
                "NOTIFICATION_EMERGENCY_PARENT_PID": str(os.getpid()),
                # The ansible-playbook of this interpreter's environment, even when it is not activated.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            quiet=True,
            timeout=timeout,
            verbosity=verbosity or None,
            event_handler=handle,
            cancel_callback=cancel,
            **target,
        )
    _scrub_command_artifact(artifacts / run_id)
    return RunResult(
        run_id=run_id,
        playbook=name,
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else -1),
        duration_s=time.monotonic() - started,
        artifact_dir=artifacts / run_id,
        hosts=_recap(runner.stats),
        stats=published,
        results=results,
    )
