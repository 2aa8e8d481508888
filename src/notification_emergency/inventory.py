"""Which hosts a run targets, and where each answers: the inventory read with ``ansible-inventory``, a
``--limit`` resolved by Ansible's own pattern code (a limit that matches nothing never means "every host"),
and the :class:`Fleet` the services receive instead of the whole toolkit.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notification_emergency.errors import BadInput
from notification_emergency.paths import project_root
from notification_emergency.text import shown

TARGET_GROUP = "notification_hosts"


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


@dataclass(frozen=True)
class Target:
    """Where one managed host answers, from the control node."""

    host: str
    web_url: str
    websocket_url: str | None
    sandbox: bool = False
    root: str | None = None


InventoryArg = str | Path | Sequence[str | Path] | None


class Fleet:
    """The managed hosts of one inventory: read on first use, then kept. What the services (the watch, the
    engine, the notifier) receive instead of the whole toolkit."""

    def __init__(self, inventory: InventoryArg = None) -> None:
        self._arg = inventory
        self._inventory: Inventory | None = None

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = load_inventory(self._arg)
        return self._inventory

    @property
    def sources(self) -> list[str]:
        return list(self.inventory.sources)

    def hosts(self, limit: str | None = None) -> list[str]:
        """The managed hosts a run with ``limit`` targets (refuses a limit that matches nothing)."""
        return resolve_limit(self.inventory, limit)

    def hostvars(self, host: str) -> dict[str, Any]:
        return self.inventory.hostvars.get(host, {})

    def targets(self, limit: str | None = None) -> list[Target]:
        """Where each targeted host answers (``ansible_host`` and the service ports)."""
        return [self.target(host) for host in self.hosts(limit)]

    def target(self, host: str) -> Target:
        variables = self.hostvars(host)
        address = str(
            variables.get("ansible_host") or ("127.0.0.1" if variables.get("ansible_connection") == "local" else host)
        )
        web_port = variables.get("notification_service_web_port", 8000)
        ws_port = variables.get("notification_service_websocket_port")
        return Target(
            host=host,
            web_url=f"http://{address}:{web_port}",
            websocket_url=f"http://{address}:{ws_port}" if ws_port else None,
            sandbox=bool(variables.get("notification_sandbox")),
            root=variables.get("notification_service_root"),
        )
