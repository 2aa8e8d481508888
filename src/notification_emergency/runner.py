"""The one runner wrapper: every playbook run of the package goes through :func:`run_playbook`.

It drives ``ansible_runner`` the way the project's conventions ask: a fresh private data directory per run
(``suppress_env_files`` so no extra vars or environment are written to disk), the project root as
``project_dir`` so ``ansible.cfg`` applies, an explicit run id as ``ident`` for a stable artifact
directory, and a typed result with the per-host recap and the stats the playbooks publish with
``set_stats``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

Event = dict[str, Any]


class ProjectNotFound(RuntimeError):
    """The playbooks could not be found; set NOTIFICATION_EMERGENCY_PROJECT to the project directory."""


def project_root() -> Path:
    """The directory holding ``ansible.cfg`` and ``playbooks/``.

    ``NOTIFICATION_EMERGENCY_PROJECT`` wins (AWX execution environments, installed packages); otherwise the
    source tree this package is installed from.
    """
    configured = os.environ.get("NOTIFICATION_EMERGENCY_PROJECT")
    candidates = [Path(configured)] if configured else list(Path(__file__).resolve().parents)
    for candidate in candidates:
        if (candidate / "ansible.cfg").is_file() and (candidate / "playbooks").is_dir():
            return candidate
    raise ProjectNotFound(
        "cannot find the notification-emergency project (ansible.cfg and playbooks/); "
        "set NOTIFICATION_EMERGENCY_PROJECT to its directory"
    )


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
    root = project_root()
    path = root / "playbooks" / playbook
    if not path.is_file():
        raise FileNotFoundError(f"no playbook {playbook} in {root / 'playbooks'}")
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{Path(playbook).stem}-{uuid.uuid4().hex[:8]}"
    artifacts = artifacts_root or Path(os.environ.get("NOTIFICATION_EMERGENCY_ARTIFACTS", root / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    inventories = [inventory] if isinstance(inventory, (str, Path)) else list(inventory or [])
    if not inventories:
        inventories = [root / "inventories" / "sandbox"]
    published: dict[str, Any] = {}

    def handle(event: Event) -> bool:
        if event.get("event") == "playbook_on_stats":
            published.update(event.get("event_data", {}).get("artifact_data") or {})
        if on_event is not None:
            on_event(event)
        return True  # keep every event, or runner.stats would be None

    cmdline = " ".join(flag for flag, wanted in (("--check", check), ("--diff", diff)) if wanted)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="notification-emergency-run-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(root),
            playbook=str(path),
            inventory=[str(i) for i in inventories],
            limit=limit,
            extravars=dict(extra_vars or {}),
            cmdline=cmdline or None,
            ident=run_id,
            artifact_dir=str(artifacts),
            suppress_env_files=True,
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
                # The ansible-playbook of this interpreter's environment, even when it is not activated.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            quiet=True,
            timeout=timeout,
            verbosity=verbosity or None,
            event_handler=handle,
            cancel_callback=cancel,
        )
    return RunResult(
        run_id=run_id,
        playbook=playbook,
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else -1),
        duration_s=time.monotonic() - started,
        artifact_dir=artifacts / run_id,
        hosts=_recap(runner.stats),
        stats=published,
    )
