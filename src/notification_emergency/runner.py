"""The one runner wrapper: every playbook run of the package goes through :func:`run_playbook`.

It drives ``ansible_runner`` the way the project's conventions ask: a fresh private data directory per run
(``suppress_env_files`` so no extra vars or environment are written to disk), the project root as
``project_dir`` so ``ansible.cfg`` applies, an explicit run id as ``ident`` for a stable artifact
directory, and a typed result with the per-host recap and the stats the playbooks publish with
``set_stats``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from notification_emergency.errors import BadInput

Event = dict[str, Any]

# Variables every playbook accepts besides its own inputs: the target group, the run id and owner the
# package passes so the lock and its records agree, where reports go, and the lock takeover switch.
COMMON_INPUTS = frozenset(
    {
        "notification_target",
        "notification_run_id",
        "notification_run_owner",
        "notification_reports_dir",
        "notification_lock_force",
    }
)
TARGET_GROUP = "notification_hosts"


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


def playbook_spec(playbook: str) -> dict[str, dict[str, Any]]:
    """The inputs of ``playbooks/<playbook>``: the argument spec of its first ``validate_argument_spec`` task."""
    path = project_root() / "playbooks" / playbook
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in path.parent.glob("*.yml")))
        raise BadInput(f"no playbook {playbook!r} in {path.parent}; the playbooks are: {known}")
    for play in yaml.safe_load(path.read_text()) or []:
        for task in play.get("tasks") or []:
            for key in ("ansible.builtin.validate_argument_spec", "validate_argument_spec"):
                if key in task:
                    spec: dict[str, dict[str, Any]] = task[key].get("argument_spec") or {}
                    return spec
    return {}


def validate_inputs(playbook: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``inputs`` against the playbook's own argument spec before anything runs.

    Returns the inputs converted to their declared types; raises :class:`BadInput` naming each unknown or
    invalid input. The same spec the playbook enforces, read from the playbook: the two cannot drift.
    """
    spec = playbook_spec(playbook)
    unknown = sorted(set(inputs) - set(spec) - COMMON_INPUTS)
    if unknown:
        accepted = ", ".join(sorted(spec)) or "none"
        raise BadInput(f"{playbook} does not take {', '.join(unknown)}; its inputs are: {accepted}")
    own = {name: value for name, value in inputs.items() if name in spec}
    result = ArgumentSpecValidator(spec).validate(own)
    if result.error_messages:
        raise BadInput(f"{playbook}: " + "; ".join(result.error_messages))
    validated = {name: result.validated_parameters[name] for name in own}
    return {**dict(inputs), **validated}


# The host variables the package reads from the inventory (where a host answers, whether it is a sandbox);
# nothing else is kept, so secrets in host variables never reach the package's memory or records.
HOSTVARS_KEPT = frozenset(
    {
        "ansible_host",
        "ansible_connection",
        "notification_sandbox",
        "notification_service_root",
        "notification_service_manager",
        "notification_service_web_port",
        "notification_service_websocket_port",
        "notification_sandbox_redis_port",
    }
)


@dataclass(frozen=True)
class Inventory:
    sources: tuple[str, ...]
    groups: dict[str, frozenset[str]]
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hosts(self) -> frozenset[str]:
        return self.groups.get("all", frozenset())


def _inventory_sources(inventory: str | Path | Sequence[str | Path] | None) -> list[str]:
    sources = [inventory] if isinstance(inventory, (str, Path)) else list(inventory or [])
    if not sources:
        env = os.environ.get("NOTIFICATION_EMERGENCY_INVENTORY")
        sources = [Path(env)] if env else [project_root() / "inventories" / "sandbox"]
    for source in sources:
        if "," not in str(source) and not Path(source).exists():
            raise BadInput(
                f"inventory {source} does not exist; pass an inventory file or directory with -i/--inventory "
                "(the sandbox's is inventories/sandbox, created by `make demo`)"
            )
    return [str(Path(s).resolve()) if "," not in str(s) else str(s) for s in sources]


def load_inventory(inventory: str | Path | Sequence[str | Path] | None = None) -> Inventory:
    """Hosts and groups of the inventory, read with ``ansible-inventory`` (so every inventory plugin works)."""
    sources = _inventory_sources(inventory)
    command = [str(Path(sys.executable).parent / "ansible-inventory"), "--list"]
    for source in sources:
        command += ["-i", source]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=project_root(),
        env={**os.environ, "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    if proc.returncode != 0:
        raise BadInput(f"cannot read inventory {', '.join(sources)}: {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout)
    members: dict[str, set[str]] = {}

    def collect(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if group in members:
            return members[group]
        entry = data.get(group) or {}
        hosts = set(entry.get("hosts") or [])
        for child in entry.get("children") or []:
            if child not in seen:
                hosts |= collect(child, seen | {group})
        members[group] = hosts
        return hosts

    for group in [g for g in data if g != "_meta"]:
        collect(group)
    members.setdefault("all", set()).update(*(h for g, h in members.items() if g != "all"))
    hostvars = {
        host: {key: value for key, value in variables.items() if key in HOSTVARS_KEPT}
        for host, variables in ((data.get("_meta") or {}).get("hostvars") or {}).items()
    }
    return Inventory(tuple(sources), {group: frozenset(hosts) for group, hosts in members.items()}, hostvars)


_PATTERN_CHARS = set("*?~[]")


def resolve_limit(inventory: Inventory, limit: str | None, target: str = TARGET_GROUP) -> list[str]:
    """The hosts of ``target`` a run with ``--limit limit`` would touch; a name that is neither a host nor a
    group of the inventory, or a limit that leaves no host, is refused naming it."""
    group = inventory.groups.get(target, frozenset())
    if not group:
        raise BadInput(
            f"inventory {', '.join(inventory.sources)} has no hosts in group {target}; "
            "create the sandbox with `make demo` or pass your inventory with -i/--inventory"
        )
    if not limit:
        return sorted(group)
    selected: set[str] = set()
    excluded: set[str] = set()
    intersect: list[set[str]] = []
    unknown: list[str] = []
    for term in (t.strip() for t in limit.replace(":", ",").split(",")):
        if not term:
            continue
        op, name = (term[0], term[1:]) if term[0] in "!&" else ("", term)
        if _PATTERN_CHARS & set(name):
            # a wildcard term: matched like Ansible's simple patterns
            names = {h for h in inventory.hosts if fnmatch.fnmatch(h, name)}
            names |= {h for g, hs in inventory.groups.items() if fnmatch.fnmatch(g, name) for h in hs}
        elif name in inventory.groups:
            names = set(inventory.groups[name])
        elif name in inventory.hosts:
            names = {name}
        else:
            unknown.append(name)
            continue
        if op == "!":
            excluded |= names
        elif op == "&":
            intersect.append(names)
        else:
            selected |= names
    if unknown:
        raise BadInput(
            f"--limit names {', '.join(unknown)}, not a host or group of inventory {', '.join(inventory.sources)}; "
            f"its hosts in {target} are: {', '.join(sorted(group))}"
        )
    hosts = (selected or set(group)) - excluded
    for names in intersect:
        hosts &= names
    hosts &= group
    if not hosts:
        raise BadInput(f"--limit {limit} leaves no host of group {target} to run on")
    return sorted(hosts)


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
        {"playbook": str(path), "limit": limit, "extravars": dict(extra_vars or {})},
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
    hosts: str = "all",
    inventory: str | Path | Sequence[str | Path] | None = None,
    check: bool = False,
    timeout: int | None = None,
    artifacts_root: Path | None = None,
    run_id: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RunResult:
    """Run one module ad hoc on ``hosts``; each host's module result is in ``RunResult.results``."""
    return _run(
        module,
        {"module": module, "module_args": json.dumps(dict(module_args or {})), "host_pattern": hosts},
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


# The environment names worth keeping in the ``command`` artifact; every other value (store URLs with a
# password, notifier credentials, tokens) is replaced by "***" so that artifacts hold no secret.
_KEPT_ENV = re.compile(r"^(ANSIBLE_[A-Z_]+|PATH|HOME|LANG|LC_[A-Z]+|PWD|USER|SHELL|TERM|PYTHONUNBUFFERED)$")
_SECRET_NAME = re.compile(r"(PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|URL|DSN|STORE)", re.IGNORECASE)


def _scrub_command_artifact(artifact_dir: Path) -> None:
    """ansible-runner writes the whole process environment into ``<artifact dir>/command``: mask it."""
    command_file = artifact_dir / "command"
    try:
        recorded = json.loads(command_file.read_text())
    except (OSError, ValueError):
        return
    env = recorded.get("env") or {}
    recorded["env"] = {
        name: value if _KEPT_ENV.match(name) and not _SECRET_NAME.search(name) else "***"
        for name, value in sorted(env.items())
    }
    command_file.write_text(json.dumps(recorded))


def _run(
    name: str,
    target: dict[str, Any],
    *,
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
