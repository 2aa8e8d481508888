"""The one runner wrapper: every playbook run of the package goes through :func:`run_playbook`.

It drives ``ansible_runner`` the way the project's conventions ask: a fresh private data directory per run
(``suppress_env_files`` so no extra vars or environment are written to disk), the project root as
``project_dir`` so ``ansible.cfg`` applies, an explicit run id as ``ident`` for a stable artifact
directory, and a typed result with the per-host recap and the stats the playbooks publish with
``set_stats``.
"""

from __future__ import annotations

import difflib
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
from notification_emergency.text import shown

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
    invalid input. The same spec the playbook enforces, read from the playbook: the two cannot drift. Text
    is bounded here too (:func:`check_text`), so a hostile or runaway value is refused before a run starts.
    """
    spec = playbook_spec(playbook)
    for name, value in inputs.items():
        check_text(name, value, limit=MAX_CHARS.get(name, MAX_TEXT_CHARS))
    unknown = sorted(set(inputs) - set(spec) - COMMON_INPUTS)
    if unknown:
        accepted = ", ".join(sorted(spec)) or "none"
        raise BadInput(f"{playbook} does not take {', '.join(unknown)}; its inputs are: {accepted}")
    own = {name: value for name, value in inputs.items() if name in spec}
    result = ArgumentSpecValidator(spec).validate(own)
    if result.error_messages:
        raise BadInput(f"{playbook}: " + "; ".join(result.error_messages))
    validated = {name: result.validated_parameters[name] for name in own}
    for name, value in validated.items():
        rule = _INPUT_RULES.get(name) or next((r for s, r in _SUFFIX_RULES.items() if name.endswith(s)), None)
        if rule is not None and value is not None:
            validated[name] = rule(name, value)
    return {**dict(inputs), **validated}


# -- what an argument spec cannot say: the bounds of the inputs whose type is raw or str -------------------

_SERIAL = re.compile(r"^(?:[1-9][0-9]{0,5}|(?:100|[1-9][0-9]?)%)$")
_BACKUP_NAME = re.compile(r"^(?:latest|\d{8}T\d{6}Z-[a-z0-9_-]+)$")  # module_utils/notification_backup.NAME_RE
_BACKUP_LABEL = re.compile(r"^[a-z0-9_-]{1,64}$")  # module_utils/notification_backup.LABEL_RE and MAX_LABEL
_USER_ID = re.compile(r"^[A-Za-z0-9_.@:+][A-Za-z0-9_.@:+-]{0,63}$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:inf|infinity|nan)$", re.IGNORECASE)
MAX_AFFECTED_USERS = 1_000_000_000
MAX_MESSAGES = 100


def _serial_rule(name: str, value: Any) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not _SERIAL.match(text):
        raise BadInput(
            f"{input_name(name)} {shown(value)}: hosts per batch, a number (1 or more) or a percentage (1% to 100%)"
        )
    return text


def _backup_rule(name: str, value: Any) -> str:
    if not _BACKUP_NAME.match(str(value)):
        raise BadInput(
            f"{input_name(name)} {shown(value)} is not a backup name: give latest or a name as "
            "`ls <root>/backups` shows it (20261203T101500Z-manual)"
        )
    return str(value)


def _label_rule(name: str, value: Any) -> str:
    if not _BACKUP_LABEL.match(str(value)):
        raise BadInput(
            f"{input_name(name)} {shown(value)}: use 1 to 64 lower-case letters, digits, - and _ (before-upgrade)"
        )
    return str(value)


def _affected_users_rule(name: str, value: Any) -> int | list[str]:
    fix = f"give a count (0 to {MAX_AFFECTED_USERS:,}) or comma-separated user ids (u1,u2)"
    if isinstance(value, bool):
        raise BadInput(f"{input_name(name)} {shown(value)}: {fix}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdecimal()):
        count = int(value)
        if not 0 <= count <= MAX_AFFECTED_USERS:
            raise BadInput(f"{input_name(name)} {shown(value)} is out of range: {fix}")
        return count
    ids = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(ids, list) or not ids or len(ids) > 100_000:
        raise BadInput(f"{input_name(name)} {shown(value)}: {fix}")
    for user in ids:
        if not isinstance(user, str) or _NUMBER.match(user) or not _USER_ID.match(user):
            raise BadInput(
                f"{input_name(name)}: {shown(user)} is neither a whole count nor a user id "
                f"(up to 64 letters, digits and _.@:+-, not starting with -, not a number); {fix}"
            )
    return list(dict.fromkeys(ids))


def _messages_rule(name: str, value: Any) -> list[str]:
    if len(value) > MAX_MESSAGES:
        raise BadInput(
            f"{input_name(name)}: {len(value)} messages given, at most {MAX_MESSAGES}: pass the most telling ones"
        )
    return list(value)


def _unique_rule(_name: str, value: Any) -> list[Any]:
    return list(dict.fromkeys(value))  # restart -c web -c web restarts web once


_INPUT_RULES: dict[str, Callable[[str, Any], Any]] = {
    "restore_backup": _backup_rule,
    "backup_label": _label_rule,
    "affected_users": _affected_users_rule,
    "messages": _messages_rule,
    "components": _unique_rule,
}
_SUFFIX_RULES: dict[str, Callable[[str, Any], Any]] = {"_serial": _serial_rule}


# -- text from people and alerts is data ------------------------------------------------------------------

MAX_TEXT_CHARS = 4096
"""The longest text an input may carry (a reason, a title, a name): a pasted log excerpt fits; a runaway
paste (131,000 characters once ended in "argument list too long") is refused before anything runs."""

# Inputs with a tighter bound, the one the host enforces: refused here, before a run, not on the host after it.
MAX_CHARS = {"reason": 500}  # module_utils/notification_emergency_state.MAX_REASON (the banner)

# C0 and C1 control characters, DEL, and lone surrogates (what undecodable bytes on the command line become):
# none of them belongs in a banner, a record or a log line. Tab and newline are text.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# How each input is typed on the command line, so a refusal names what the user typed (and the variable,
# which is what AWX surveys, EDA and ansible-playbook -e use).
OPTION_NAMES = {
    "reason": "--reason",
    "triggered_by": "--triggered-by",
    "resolved_by": "--resolved-by",
    "level": "--level",
    "affected_users": "--affected-users",
    "messages": "--message",
    "backup_label": "--label",
    "restore_backup": "--backup",
    "rollback_serial": "--serial",
    "restore_serial": "--serial",
    "restart_serial": "--serial",
    "components": "--component",
    "notification_run_owner": "NOTIFICATION_EMERGENCY_ACTOR",
}


def input_name(name: str) -> str:
    """``--serial (rollback_serial)`` for a variable the command line has an option for, else the name."""
    base = re.split(r"[.\[]", name, maxsplit=1)[0]
    option = OPTION_NAMES.get(base)
    return f"{option} ({name})" if option else name


def check_text(name: str, value: Any, *, limit: int = MAX_TEXT_CHARS) -> None:
    """Refuse a string (or a string inside a list or mapping) that is too long or carries control characters,
    naming the input, the first offending character and the fix. Braces and quotes are fine: text is data."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_text(f"{name}.{key}", item, limit=limit)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_text(f"{name}[{index}]", item, limit=limit)
        return
    if not isinstance(value, str):
        return
    if len(value) > limit:
        raise BadInput(f"{input_name(name)} is {len(value)} characters long; at most {limit} are accepted: shorten it")
    bad = _FORBIDDEN_CHARS.search(value)
    if bad:
        char = bad.group()
        what = (
            "a byte that is not UTF-8" if "\ud800" <= char <= "\udfff" else f"the control character U+{ord(char):04X}"
        )
        raise BadInput(
            f"{input_name(name)} contains {what} at position {bad.start()}: remove it (tabs and newlines are fine)"
        )


def check_extra_vars(extra_vars: Mapping[str, Any]) -> None:
    """Refuse a variable name that is not one, or text :func:`check_text` refuses: before a run is recorded."""
    for name, value in extra_vars.items():
        if not _VARIABLE_NAME.match(name):
            raise BadInput(f"{name!r} is not a variable name (letters, digits and _, not starting with a digit)")
        check_text(name, value)


def write_extra_vars(directory: Path, extra_vars: Mapping[str, Any]) -> Path:
    """Write ``extra_vars`` for ``ansible-playbook -e @FILE``: every string marked ``!unsafe``, the file
    readable by this user only (0600) inside a private directory.

    This is the one place where values the package received (typed by a person, sent by an alert, read from a
    host) become Ansible variables. Marked unsafe, ``{{ lookup('pipe', ...) }}`` in a reason is the text
    the users read in the banner, never a command; and the values are not on ``ansible-playbook``'s command
    line, where any local user could read them with ``ps``.
    """
    check_extra_vars(extra_vars)
    # The whole mapping is tagged !unsafe: Ansible marks every string inside it untrusted, and each scalar keeps
    # its quoted type. (A string tagged !unsafe on its own is resolved as if plain: "yes" became True, "0x1F"
    # became 31.)
    body = yaml.safe_dump(dict(extra_vars), allow_unicode=True, sort_keys=True, width=1 << 16)
    text = f"--- !unsafe\n{body}"
    path = directory / "extravars.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


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
    groups: dict[str, frozenset[str]]  # every host of each group, its descendants' included
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)
    # as ansible-inventory lists it: group -> (its own hosts, its child groups), in the inventory's order
    tree: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)

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
    tree = {
        group: (tuple((data.get(group) or {}).get("hosts") or ()), tuple((data.get(group) or {}).get("children") or ()))
        for group in data
        if group != "_meta"
    }
    members: dict[str, set[str]] = {}

    def collect(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if group in members:
            return members[group]
        own, children = tree.get(group, ((), ()))
        hosts = set(own)
        for child in children:
            if child not in seen:
                hosts |= collect(child, seen | {group})
        members[group] = hosts
        return hosts

    for group in tree:
        collect(group)
    members.setdefault("all", set()).update(*(h for g, h in members.items() if g != "all"))
    hostvars = {
        host: {key: value for key, value in variables.items() if key in HOSTVARS_KEPT}
        for host, variables in ((data.get("_meta") or {}).get("hostvars") or {}).items()
    }
    return Inventory(tuple(sources), {group: frozenset(hosts) for group, hosts in members.items()}, hostvars, tree)


def _ansible_inventory(inventory: Inventory) -> Any:
    """Ansible's own ``InventoryManager`` over the hosts and groups already read: patterns (``~regex``, ``&``,
    ``!``, globs, ``group[0:2]``) are resolved by Ansible's code, not a second implementation of it."""
    from ansible import constants
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    # This module reports a pattern that matches nothing itself (naming it and the hosts it could have
    # meant); Ansible's own warning would say it twice.
    constants.HOST_PATTERN_MISMATCH = "ignore"
    manager = InventoryManager(DataLoader(), sources=None, parse=False)
    data = manager._inventory  # the InventoryData that inventory plugins fill, filled the same way here
    for group in inventory.tree:
        data.add_group(group)
    for group, (hosts, children) in inventory.tree.items():
        for child in children:
            data.add_group(child)
            data.add_child(group, child)
        for host in hosts:
            data.add_host(host, group)
    data.reconcile_inventory()
    return manager


def _near(inventory: Inventory, term: str, target: str) -> str:
    """The hosts and groups a term that matched nothing could have meant."""
    bare = term.lstrip("!&~").replace("*", "").replace("?", "")
    members = inventory.groups.get(target, frozenset())
    # the hosts of the target group, and the groups that hold some of them (not "localhost" for a typo)
    names = sorted(members | {group for group, hosts in inventory.groups.items() if hosts & members})
    close = difflib.get_close_matches(bare, names, n=4, cutoff=0.5)
    close += [name for name in names if bare and bare in name and name not in close][: 4 - len(close)]
    hosts = sorted(inventory.groups.get(target, frozenset()))
    shown = ", ".join(hosts[:12]) + (f" and {len(hosts) - 12} more" if len(hosts) > 12 else "")
    return (f"did you mean {', '.join(close)}? " if close else "") + f"the hosts of {target} are: {shown}"


def resolve_limit(inventory: Inventory, limit: str | None, target: str = TARGET_GROUP) -> list[str]:
    """The hosts of ``target`` a run with ``--limit limit`` touches, resolved before anything runs.

    No limit (``None``) means every host of ``target``. A limit that names nothing (empty, blanks, commas), a
    term that matches no host or group of the inventory (a typo, ``zzz*``), or a limit that leaves no host of
    ``target`` is refused: a mistyped or empty ``$HOST`` in a script never means "every host".
    """
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import split_host_pattern

    group = inventory.groups.get(target, frozenset())
    if not group:
        raise BadInput(
            f"inventory {', '.join(inventory.sources)} has no hosts in group {target}; "
            "create the sandbox with `make demo` or pass your inventory with -i/--inventory"
        )
    if limit is None:
        return sorted(group)
    terms = [term for term in split_host_pattern(limit) if term.strip(" ,:")]
    if not terms:
        raise BadInput(
            f"--limit {shown(limit)} names no host: leave --limit out to run on every host of {target}, "
            f"or name hosts or groups; {_near(inventory, '', target)}"
        )
    empty = [term for term in terms if not term.lstrip("!&~").strip()]
    if empty:  # Ansible reads "~" (or "~[") as the empty regular expression: every host
        raise BadInput(
            f"--limit {shown(limit)}: {empty[0]!r} is an empty pattern (it would match every host); "
            f"name hosts or groups: {_near(inventory, '', target)}"
        )
    if any(term.startswith("@") for term in terms):
        raise BadInput(
            f"--limit {shown(limit)}: limit files (@FILE) are not accepted; name the hosts or groups: "
            f"{_near(inventory, '', target)}"
        )
    manager = _ansible_inventory(inventory)
    try:
        unmatched = [term for term in terms if not manager.get_hosts(term.lstrip("!&"))]
        if unmatched:
            raise BadInput(
                f"--limit {shown(limit)}: {', '.join(repr(t) for t in unmatched)} "
                f"match{'es' if len(unmatched) == 1 else ''} no host or group of inventory "
                f"{', '.join(inventory.sources)}, so nothing was run; {_near(inventory, unmatched[0], target)}"
            )
        manager.subset(limit)
        hosts = sorted({host.name for host in manager.get_hosts(target)})
    except AnsibleError as exc:
        raise BadInput(f"--limit {shown(limit)}: {exc.message}; {_near(inventory, '', target)}") from None
    if not hosts:
        raise BadInput(
            f"--limit {shown(limit)} leaves no host of group {target} to run on; {_near(inventory, '', target)}"
        )
    return hosts


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
