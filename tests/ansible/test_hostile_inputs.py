"""Text that people type and alerts send is data, never code (issue 19): hostile inputs through every text
field of the command line and the API, down to Ansible.

What is real: ansible-playbook and ansible-core 2.19's templating (a bulk run of every hostile string through
the runner's one extra-vars file), the CLI's own option parsing and checks (run in-process with Typer's
runner for the refusals, which stop before any playbook), and the real CLI on a real sandbox host for one
end-to-end run per text field. Nothing is mocked. Each string that could run a command names a canary file;
no test may create it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from notification_emergency.errors import BadInput
from notification_emergency.inputs import check_text, validate_inputs, write_extra_vars
from notification_emergency.runner import run_module
from notification_emergency.store import EventStore
from tests.ansible.conftest import SandboxHost
from tests.conftest import VENV_BIN, invoke_cli
from tests.hostile import hostile_strings

CLI = str(VENV_BIN / "notification-emergency")
SECRETS = ("notification_service_api_token", "notification_service_secret_key")


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary") / "created-if-a-template-ran"


@pytest.fixture(scope="module")
def strings(canary: Path) -> list[str]:
    return hostile_strings(canary)


def accepted(text: str) -> bool:
    try:
        check_text("x", text)
    except BadInput:
        return False
    return True


def test_every_hostile_string_reaches_ansible_exactly_as_typed(
    strings: list[str], canary: Path, tmp_path: Path
) -> None:
    """One real ansible run gets every string the runner accepts as a variable (the extra-vars file, each
    string !unsafe) and echoes it back through a module argument that refers to it: every one comes back
    byte for byte, none is rendered, no canary."""
    ok = [text for text in strings if accepted(text)]
    assert len(ok) >= 150, len(ok)
    run = run_module(
        "ansible.builtin.debug",
        {"msg": "{{ hostile }}"},
        data={"hostile": ok, "nested": {"list": ok[:20], "key": ok[0]}},
        hosts="localhost",
        inventory="localhost,",
        artifacts_root=tmp_path,
    )
    assert run.status == "successful", run
    assert run.results["localhost"]["msg"] == ok
    assert not canary.exists()


def test_the_extra_vars_file_is_private_and_marks_every_string_unsafe(tmp_path: Path) -> None:
    path = write_extra_vars(tmp_path, {"reason": "{{ x }}", "level": 2, "items": ["a", {"b": "c"}]})
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("--- !unsafe\n") and "level: 2" in text
    with pytest.raises(BadInput, match="not a variable name"):
        write_extra_vars(tmp_path / "other", {"bad name": "x"})


def test_every_string_the_runner_refuses_is_refused_naming_the_input(strings: list[str]) -> None:
    refused = [text for text in strings if not accepted(text)]
    assert len(refused) >= 30, len(refused)
    for text in refused:
        with pytest.raises(BadInput) as caught:
            validate_inputs("emergency_activate.yml", {"reason": text, "triggered_by": "alice"})
        message = str(caught.value)
        assert message.startswith("--reason (reason) ") and len(message) < 300, message[:400]


# Each CLI option that carries text, with the command it belongs to and the arguments that make the rest of
# the command valid. `{}` is where the hostile string goes.
FIELDS: dict[str, list[str]] = {
    "--reason": ["activate-emergency", "--reason", "{}", "--triggered-by", "alice"],
    "--triggered-by": ["activate-emergency", "--reason", "Redis down", "--triggered-by", "{}"],
    "--resolved-by": ["deactivate-emergency", "--resolved-by", "{}"],
    "--message": ["health-check", "-m", "{}"],
    "--affected-users": ["health-check", "--affected-users", "{}"],
    "--label": ["backup", "--label", "{}"],
    "--backup": ["restore", "--backup", "{}"],
    "--serial": ["rollback", "--serial", "{}"],
}
# These name a backup or a batch size: every hostile string is refused. (A label takes a word such as
# "yes" or "--help": harmless in a directory name.)
STRICT = {"--backup", "--serial"}


@pytest.mark.parametrize("option", sorted(FIELDS))
def test_every_text_option_checks_hostile_text_before_anything_runs(
    option: str, strings: list[str], canary: Path, tmp_path: Path
) -> None:
    """Every hostile string through the CLI's own parsing and checks (in-process), with an inventory that
    does not exist: a string the option refuses stops there (exit 2 naming the option); one it accepts gets
    as far as the inventory (exit 2 naming it), which proves it passed every check and that nothing ran.
    What accepted text does in a real run is the bulk test above and the end-to-end test below."""
    env = {"NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "300"}
    refused = 0
    for text in strings:
        args = [text if part == "{}" else part for part in FIELDS[option]] + ["-i", str(tmp_path / "nowhere")]
        result = invoke_cli(args, env=env)
        output = result.output
        where = (option, text[:80], result.exit_code, output[-600:])
        assert result.exit_code == 2, where
        assert result.exception is None or isinstance(result.exception, SystemExit), (*where, result.exception)
        assert "Traceback" not in output, where
        assert not any(secret in output for secret in SECRETS if secret not in text), where
        if "inventory" in output and "does not exist" in output:
            assert option not in STRICT, where
            assert accepted(text), where  # the runner's own check would have refused it
        else:
            assert option in output or _click_refusal(output), where
            refused += 1
    assert refused >= (len(strings) if option in STRICT else 30), (option, refused)
    assert not canary.exists()
    assert not (tmp_path / "events.db").exists(), "a refused command opened the event store"


def _click_refusal(output: str) -> bool:
    """Click refuses a value that looks like an option itself (``--help``, ``-e ...``): its usage error."""
    return "Usage:" in output or "No such option" in output


def test_hostile_text_typed_by_a_person_arrives_exactly_as_typed(
    tmp_path: Path, sandbox_host: SandboxHost, canary: Path
) -> None:
    """The real CLI on a real sandbox host, once per text field: the banner users see, the host's
    emergency.json, the event store and the audit trail hold the very characters typed; no canary, no secret
    in the banner; a pasted log line with {{ }} works as a reason (it failed with "'user' is undefined")."""
    home = tmp_path / "state"
    actor = f"ops {{{{ lookup('pipe', 'touch {canary}') }}}}"
    env = {
        **os.environ,
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(home),
        "NOTIFICATION_EMERGENCY_INVENTORY": str(sandbox_host.box.inventory),
        "NOTIFICATION_EMERGENCY_ACTOR": actor,
        "NO_COLOR": "1",
    }

    def cli(*args: str) -> dict[str, Any]:
        proc = subprocess.run([CLI, *args, "--json"], capture_output=True, text=True, env=env, check=False)
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        data: dict[str, Any] = json.loads(proc.stdout)
        data["_rc"] = proc.returncode
        return data

    reason = (
        "Template error: {{ user.name }} undefined in page; "
        f"{{% endraw %}}{{{{ lookup('pipe','id; touch {canary}') }}}}{{% raw %}} "
        "token={{ notification_service_api_token }} key={{ notification_service_secret_key }} "
        f"$(touch {canary}) <script>alert(1)</script> 日本語 🚨"
    )
    assert len(reason) <= 500, len(reason)
    triggered_by = "{{ 7 * 7 }} {# comment #} ${HOME}"
    on = cli("activate-emergency", "--reason", reason, "--triggered-by", triggered_by, "--level", "2")
    assert on["_rc"] == 0, on
    banner = sandbox_host.health()["emergency"]
    assert banner["reason"] == reason and banner["triggered_by"] == triggered_by
    state = json.loads((sandbox_host.root / "state" / "emergency.json").read_text())
    assert state["reason"] == reason
    page = requests.get(f"{sandbox_host.web_url}/", timeout=5).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # escaped by the app
    store = EventStore(home / "events.db")
    [emergency] = store.emergencies()
    assert emergency["reason"] == reason and emergency["actor"] == triggered_by
    [run] = store.runs()
    assert run["inputs"]["reason"] == reason and run["actor"] == actor
    assert any(entry["actor"] == actor for entry in store.audit_trail())

    resolved_by = f"bob {{{{ lookup('pipe','touch {canary}') }}}}"
    off = cli("deactivate-emergency", "--resolved-by", resolved_by)
    assert off["_rc"] == 0, off
    assert sandbox_host.health()["emergency"]["active"] is False
    assert store.emergencies()[0]["actor"] == resolved_by

    message = f"ERROR {{{{ lookup('pipe','touch {canary}') }}}} redis timeout"
    check = cli("health-check", "-m", message, "--affected-users", "u1,alice@example.com")
    assert check["_rc"] in (0, 3) and check["ok"] in (True, False), check
    [health_run] = [r for r in store.runs() if r["action"] == "health-check"]
    assert health_run["inputs"]["messages"] == [message]
    check_mode = cli("activate-emergency", "--reason", reason, "--triggered-by", "x", "--check")
    assert check_mode["_rc"] == 0 and sandbox_host.health()["emergency"]["active"] is False

    everything = json.dumps([on, off, check, check_mode, sandbox_host.health()])
    assert not canary.exists(), "a template ran"
    assert "uid=" not in everything, "a command's output reached the results"
    for path in (home / "artifacts").rglob("*"):
        if path.is_file():
            assert "uid=0(" not in path.read_text(errors="replace"), path
    # The values were never on ansible-playbook's command line (any local user could read them with ps): the
    # recorded command names the run's private extra-vars file, which is gone with the run.
    command = json.loads((home / "artifacts" / run["run_id"] / "command").read_text())["command"]
    assert "reason" not in " ".join(command) and triggered_by not in " ".join(command), command
    extra = [arg for arg in command if arg.startswith("@")]
    assert len(extra) == 1 and not Path(extra[0][1:]).exists(), command


NUMERIC_OPTIONS = [
    ["events", "--last"],
    ["notifications", "--last"],
    ["status", "--timeout"],
    ["activate-emergency", "--reason", "r", "--triggered-by", "a", "--level"],
    ["rollback", "--max-fail-percentage"],
    ["watch", "--interval"],
    ["watch", "--fail-threshold"],
    ["watch", "--ok-threshold"],
    ["watch", "--probe-timeout"],
    ["watch", "--duration"],
    ["watch", "--deep-every"],
    ["test-recovery", "--all", "--interval"],
    ["dashboard", "--probe-interval"],
    ["dashboard", "--port"],
]


@pytest.mark.parametrize("command", NUMERIC_OPTIONS, ids=lambda c: f"{c[0]} {c[-1]}")
@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "1e308", "nan", "inf", "0x10", "١٢"])
def test_every_number_is_bounded_before_anything_runs(command: list[str], value: str, tmp_path: Path) -> None:
    """A number of a few digits too many is refused (exit 2, naming the option), never an overflow deep in
    SQLite or a sleep that never ends."""
    inventory = [] if command[0] in ("events", "notifications") else ["-i", str(tmp_path / "nowhere")]
    result = invoke_cli([*command, value, *inventory], env={"NOTIFICATION_EMERGENCY_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 2, (command, value, result.exit_code, result.output[-500:])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if value == "١٢":  # twelve in Arabic-Indic digits: a number Python reads, refused where 12 is out of range
        assert command[-1] in result.output or "inventory" in result.output or "event store" in result.output
    else:
        assert command[-1] in result.output, (command, value, result.output[-500:])
