"""The options the commands share are declared once (cli/options.py): ``shared()`` puts them in a command's
signature, where Typer finds them, and hands the command one typed ``Common``. Checked on a small Typer app
of its own and on the real command tree: every command that takes a shared option takes it the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from notification_emergency.cli import app
from notification_emergency.cli.options import CHANGE, RECORDS, RUN, SHARED, Common, shared


def _app(command: Any) -> typer.Typer:
    made = typer.Typer()
    made.command()(command)
    made.callback()(lambda: None)  # a group, so the command is called by its name as in the real CLI
    return made


def _params(typer_app: typer.Typer, name: str) -> list[Any]:
    group: Any = typer.main.get_command(typer_app)
    return list(group.commands[name].params)


def test_the_options_reach_the_command_as_one_common() -> None:
    seen: list[Common] = []

    @shared(CHANGE)
    def act(reason: Annotated[str, typer.Option(help="Why.")] = "", *, opts: Common) -> None:
        seen.append(opts)
        typer.echo(reason)

    runner = CliRunner()
    given = ["act", "-i", "a.yml", "-i", "b", "-l", "web-*", "--check", "--diff", "--json", "-vv", "--store", "s.db"]
    result = runner.invoke(_app(act), [*given, "--timeout", "30", "--reason", "disk"])
    assert result.exit_code == 0, result.output
    assert result.output == "disk\n"
    assert seen.pop() == Common([Path("a.yml"), Path("b")], "web-*", True, True, True, 2, "s.db", 30)

    result = runner.invoke(_app(act), ["act"], env={"NOTIFICATION_EMERGENCY_STORE": "from-env.db"})
    assert result.exit_code == 0, result.output
    assert seen.pop() == Common(store="from-env.db")

    refused = runner.invoke(_app(act), ["act", "--timeout", "0"])
    assert refused.exit_code == 2 and "--timeout" in refused.output


def test_a_command_gets_only_its_options_and_the_rest_keep_their_defaults() -> None:
    seen: list[Common] = []

    @shared(RECORDS)
    def read(opts: Common) -> None:
        seen.append(opts)

    runner = CliRunner()
    assert runner.invoke(_app(read), ["read", "--json"]).exit_code == 0
    assert seen == [Common(as_json=True)]
    assert [p.name for p in _params(_app(read), "read")] == ["as_json", "store"]
    refused = runner.invoke(_app(read), ["read", "--check"])
    assert refused.exit_code == 2 and "No such option: --check" in refused.output


OWN_JSON = Annotated[bool, typer.Option("--json", help="One object per line.")]


def test_the_options_take_the_place_of_opts_in_the_shared_order() -> None:
    @shared(RUN, after_limit=("users",), as_json=OWN_JSON)
    def check(
        first: Annotated[int, typer.Option()] = 1,
        users: Annotated[str, typer.Option()] = "",
        *,
        opts: Common,
        last: Annotated[bool, typer.Option()] = False,
    ) -> None:
        raise AssertionError

    params = _params(_app(check), "check")
    order = ["first", "inventory", "limit", "users", "as_json", "verbose", "store", "timeout", "last"]
    assert [p.name for p in params] == order
    assert next(p for p in params if p.name == "as_json").help == "One object per line."


def test_a_wrong_declaration_is_refused_when_the_module_loads() -> None:
    with pytest.raises(TypeError, match="not a shared option of this command: tiemout"):
        shared(("inventory", "tiemout"))
    with pytest.raises(TypeError, match="not a shared option of this command: check"):
        shared(RECORDS, check=bool)  # a declaration for an option the command does not take

    def no_opts() -> None:
        raise AssertionError

    with pytest.raises(TypeError, match="takes no opts"):
        shared(RUN)(no_opts)


def every(opts: Common) -> None:
    raise AssertionError("never called")


# The two commands that declare a shared option their own way, on purpose.
OWN_DECLARATIONS = {("watch", "as_json"), ("dashboard", "verbose")}


def test_every_command_takes_each_shared_option_the_same_way() -> None:
    """Same flags, environment variable, default and help for a shared option in every command of the CLI,
    and the shared options in the same relative order everywhere."""
    reference = _params(_app(shared(tuple(SHARED))(every)), "every")
    canonical = {p.name: (p.opts, p.secondary_opts, p.envvar, p.default, p.help, p.count) for p in reference}
    group: Any = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        if name in ("events", "notifications"):  # their --last/-n is named limit: not the shared --limit
            names = [p.name for p in command.params if p.name in SHARED and p.name != "limit"]
        else:
            names = [p.name for p in command.params if p.name in SHARED]
        assert names == [n for n in SHARED if n in names], name
        for param in command.params:
            if param.name in names and (name, param.name) not in OWN_DECLARATIONS:
                taken = (param.opts, param.secondary_opts, param.envvar, param.default, param.help, param.count)
                assert taken == canonical[param.name], (name, param.name)
                checked += 1
    assert checked > 100  # 21 commands, most with five to eight shared options
