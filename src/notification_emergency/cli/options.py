"""The options the commands share, declared once.

A command asks for the shared options it takes with :func:`shared` and receives them as one
:class:`Common`::

    @shared(RUN)
    def explain(opts: Common) -> None:
        act(opts, lambda toolkit: toolkit.explain(opts.limit), render_recovery)

Typer reads the command's signature: :func:`shared` gives it one in which ``opts`` is replaced by the
shared options (``-i/--inventory``, ``-l/--limit``, ``--check``, ``--diff``, ``--json``, ``-v``, ``--store``,
``--timeout``: the names, flags, environment variables, defaults and help texts of docs/cli.md), always in
that order, so ``--help`` lists them the same way for every command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

# Upper bounds of the numeric options: a typo of a few digits is refused (exit 2), not an overflow or a
# watch that never probes again.
HOUR = 3600
WEEK = 7 * 24 * HOUR
MAX_ROWS = 100_000

Inventory = Annotated[
    list[Path] | None,
    typer.Option(
        "-i",
        "--inventory",
        envvar="NOTIFICATION_EMERGENCY_INVENTORY",
        help="Inventory file or directory (repeatable). Default: the sandbox's, inventories/sandbox.",
    ),
]
Limit = Annotated[
    str | None, typer.Option("--limit", "-l", help="Only these hosts or groups (Ansible pattern, comma-separated).")
]
Check = Annotated[bool, typer.Option("--check", help="Show what would change; change nothing.")]
Diff = Annotated[bool, typer.Option("--diff", help="Show the differences in changed files.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (see docs/cli.md).")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="Show each task; -vv and more: Ansible's.")]
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="NOTIFICATION_EMERGENCY_STORE",
        help="Event store: a SQLite file or a postgresql+psycopg:// URL. Default: events.db in the state directory.",
    ),
]
Timeout = Annotated[
    int | None, typer.Option("--timeout", min=1, max=WEEK, help="Cancel the playbook run after this many seconds.")
]

# Options several commands share without being in every command's block.
Since = Annotated[str | None, typer.Option(help="Only since then: 30m, 24h, 7d or an ISO time.")]
Channels = Annotated[
    str | None,
    typer.Option(
        "--channels",
        envvar="NOTIFICATION_EMERGENCY_CHANNELS",
        help="The channels file (docs/notifications.md). Default: channels.yml in the state directory.",
    ),
]


@dataclass(frozen=True)
class Common:
    """The shared options of one command line, as typed. An option the command does not take keeps its
    default here (no ``--check`` means ``check`` is False, no ``--timeout`` means no timeout)."""

    inventory: list[Path] | None = None
    limit: str | None = None
    check: bool = False
    diff: bool = False
    as_json: bool = False
    verbose: int = 0
    store: str | None = None
    timeout: int | None = None


# Each shared option: its declaration and its default, in the order every --help lists them.
SHARED: dict[str, tuple[Any, Any]] = {
    "inventory": (Inventory, None),
    "limit": (Limit, None),
    "check": (Check, False),
    "diff": (Diff, False),
    "as_json": (AsJson, False),
    "verbose": (Verbose, 0),
    "store": (Store, None),
    "timeout": (Timeout, None),
}

# The usual blocks.
RUN = ("inventory", "limit", "as_json", "verbose", "store", "timeout")  # one playbook run that changes nothing
CHANGE = ("inventory", "limit", "check", "diff", "as_json", "verbose", "store", "timeout")  # one that changes hosts
HOSTS = ("inventory", "limit", "as_json", "verbose", "store")  # the hosts, without one run's --timeout
RECORDS = ("as_json", "store")  # only the event store

MARKER = "opts"  # the command's parameter that receives the Common

Command = Callable[..., None]


def shared(names: Sequence[str], *, after_limit: Sequence[str] = (), **declared: Any) -> Callable[[Command], Command]:
    """Give a command the shared options ``names``, as one :class:`Common` in its ``opts`` parameter.

    In the signature Typer reads, the options take the place of ``opts``, in the order of :data:`SHARED`.
    ``declared`` replaces an option's declaration for this command, at the same place (the watch's ``--json``
    prints one object per line); ``after_limit`` names parameters of the command listed right after
    ``--limit`` (the target first, then what the command is told about it)."""
    unknown = sorted(set(names) - SHARED.keys() | set(declared) - set(names))
    if unknown:
        raise TypeError(f"not a shared option of this command: {', '.join(unknown)}")

    def decorate(command: Command) -> Command:
        own = dict(inspect.signature(command, eval_str=True).parameters)
        if MARKER not in own:
            raise TypeError(f"{command.__name__} takes no {MARKER}: Common parameter")
        block = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=declared.get(name, kind), default=default
            )
            for name, (kind, default) in SHARED.items()
            if name in names
        ]
        if after_limit:
            at = [parameter.name for parameter in block].index("limit") + 1
            block[at:at] = [own.pop(name) for name in after_limit]
        parameters: list[inspect.Parameter] = []
        for name, parameter in own.items():
            parameters.extend(block if name == MARKER else [parameter])
        signature = inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters])

        @functools.wraps(command, updated=())
        def with_options(**values: Any) -> None:
            common = Common(**{name: values.pop(name) for name in names})
            command(**values, **{MARKER: common})

        with_options.__signature__ = signature  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return with_options

    return decorate
