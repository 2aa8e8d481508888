"""The runner refuses bad input before anything runs: each playbook's own argument spec (read from the
playbook), and --limit against the real inventory (read with ansible-inventory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from notification_emergency.errors import BadInput
from notification_emergency.inputs import playbook_spec, validate_inputs
from notification_emergency.inventory import Inventory, load_inventory, resolve_limit

INVENTORY = """\
all:
  children:
    notification_hosts:
      children:
        eu:
          hosts:
            web-eu-1: {}
            web-eu-2: {}
        us:
          hosts:
            web-us-1: {}
    controller:
      hosts:
        localhost: {}
"""


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(INVENTORY)
    return load_inventory(path)


def test_the_spec_is_read_from_the_playbook() -> None:
    spec = playbook_spec("emergency_activate.yml")
    assert spec["reason"]["required"] is True and spec["level"]["choices"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("playbook", "inputs", "message"),
    [
        ("emergency_activate.yml", {"triggered_by": "a"}, "missing required arguments: reason"),
        ("emergency_activate.yml", {"reason": "r", "triggered_by": "a", "level": 7}, "level must be one of: 1, 2"),
        ("restart_services.yml", {"components": ["database"]}, "components must be one or more of: web, websocket"),
        ("backup.yml", {"backup_lable": "x"}, "backup.yml does not take backup_lable; its inputs are: backup_label"),
        ("no_such.yml", {}, "no playbook 'no_such.yml'"),
    ],
)
def test_bad_inputs_are_named(playbook: str, inputs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_inputs(playbook, inputs)
    assert message in str(caught.value)


def test_inputs_are_converted_to_their_declared_types() -> None:
    validated = validate_inputs("emergency_activate.yml", {"reason": "r", "triggered_by": "a", "level": "3"})
    assert validated["level"] == 3


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        (None, ["web-eu-1", "web-eu-2", "web-us-1"]),
        ("eu", ["web-eu-1", "web-eu-2"]),
        ("web-us-1,web-eu-2", ["web-eu-2", "web-us-1"]),
        ("all:!us", ["web-eu-1", "web-eu-2"]),
        ("web-*-1", ["web-eu-1", "web-us-1"]),
        ("eu:&web-eu-2", ["web-eu-2"]),
    ],
)
def test_limit_patterns_resolve_like_ansible(inventory: Inventory, limit: str | None, hosts: list[str]) -> None:
    assert resolve_limit(inventory, limit) == hosts


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        ("~web-eu-.*", ["web-eu-1", "web-eu-2"]),  # a regular expression, as Ansible reads it
        ("eu[0]", ["web-eu-1"]),  # a slice of a group
        ("!us", ["web-eu-1", "web-eu-2"]),  # only an exclusion: every host but those
        ("eu,!web-eu-1", ["web-eu-2"]),
    ],
)
def test_ansible_pattern_syntax_is_resolved_by_ansibles_own_code(
    inventory: Inventory, limit: str, hosts: list[str]
) -> None:
    assert resolve_limit(inventory, limit) == hosts


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("web-eu-3", "'web-eu-3' matches no host or group of inventory"),
        ("eu,asia", "'asia' matches no host or group"),
        ("zzz*", "'zzz*' matches no host or group"),  # a wildcard that matches nothing is not "every host"
        ("wbe-eu-*", "did you mean web-eu-"),  # a typo: the hosts it could have meant are named
        ("~web-01", "'~web-01' matches no host"),
        ("", "names no host: leave --limit out to run on every host"),  # an empty $HOST in a script
        (" ", "names no host"),
        (",", "names no host"),
        (" , :", "names no host"),
        ("~[", "is an empty pattern"),  # Ansible reads it as "~": the empty regex, every host
        ("!", "is an empty pattern"),
        ("@/etc/passwd", "limit files (@FILE) are not accepted"),
        ("localhost", "--limit 'localhost' leaves no host of group notification_hosts"),
        ("us:!web-us-1", "leaves no host of group notification_hosts"),
        ("~(", "Invalid host list pattern"),
    ],
)
def test_a_limit_that_names_nothing_is_refused(inventory: Inventory, limit: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        resolve_limit(inventory, limit)
    assert message in str(caught.value)
    assert "the hosts of notification_hosts are: web-eu-1, web-eu-2, web-us-1" in str(caught.value)


def test_a_missing_inventory_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"inventory .*/nowhere does not exist"):
        load_inventory(tmp_path / "nowhere")


def test_every_catalogue_step_with_a_playbook_passes_that_playbooks_argument_spec() -> None:
    """The catalogue names playbooks and their inputs; the engine runs them through validate_inputs. A step
    whose playbook exists must pass (steps without one are skipped by the engine, which says so)."""
    from notification_emergency.catalogue import STEPS
    from notification_emergency.paths import project_root

    checked = 0
    for step_id, step in STEPS.items():
        action = step.get("action") or {}
        playbook = action.get("playbook")
        if playbook and (project_root() / "playbooks" / playbook).is_file():
            validate_inputs(playbook, action.get("extra_vars") or {})
            checked += 1
        assert playbook or action.get("notify"), step_id
    assert checked >= 9


def test_the_reason_bound_is_the_one_the_host_enforces() -> None:
    """A reason the emergency-state module would refuse on the host is refused before the run."""
    from ansible.module_utils.notification_emergency_state import MAX_REASON

    from notification_emergency.inputs import MAX_CHARS

    assert MAX_CHARS["reason"] == MAX_REASON
    validate_inputs("emergency_activate.yml", {"reason": "r" * MAX_REASON, "triggered_by": "a"})
    with pytest.raises(BadInput, match=r"--reason \(reason\) is 501 characters long; at most 500"):
        validate_inputs("emergency_activate.yml", {"reason": "r" * (MAX_REASON + 1), "triggered_by": "a"})


@pytest.mark.parametrize(
    ("playbook", "inputs", "message"),
    [
        ("rollback_to_legacy.yml", {"rollback_serial": "0"}, "--serial (rollback_serial) '0': hosts per batch"),
        ("rollback_to_legacy.yml", {"rollback_serial": "-1"}, "--serial (rollback_serial) '-1'"),
        ("restore.yml", {"restore_serial": "abc"}, "--serial (restore_serial) 'abc'"),
        ("restore.yml", {"restore_serial": "101%"}, "--serial (restore_serial) '101%'"),
        ("restore.yml", {"restore_backup": "../../x"}, "--backup (restore_backup) '../../x' is not a backup name"),
        ("backup.yml", {"backup_label": "Before Upgrade"}, "--label (backup_label) 'Before Upgrade': use 1 to 64"),
        ("health_check.yml", {"affected_users": "-5"}, "'-5' is neither a whole count nor a user id"),
        ("health_check.yml", {"affected_users": "1e99"}, "'1e99' is neither a whole count nor a user id"),
        ("health_check.yml", {"affected_users": 10**12}, "out of range"),
        ("health_check.yml", {"messages": ["m"] * 101}, "101 messages given, at most 100"),
        ("emergency_activate.yml", {"reason": "a\x1b[2Jb", "triggered_by": "x"}, "control character U+001B at"),
        ("emergency_activate.yml", {"reason": "bad \udcff", "triggered_by": "x"}, "a byte that is not UTF-8"),
        ("emergency_activate.yml", {"reason": "r", "triggered_by": "x" * 4097}, "is 4097 characters long"),
    ],
)
def test_inputs_are_bounded_before_a_run(playbook: str, inputs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_inputs(playbook, inputs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("playbook", "inputs", "expected"),
    [
        ("restart_services.yml", {"components": ["web", "websocket", "web"]}, {"components": ["web", "websocket"]}),
        ("rollback_to_legacy.yml", {"rollback_serial": 2}, {"rollback_serial": "2"}),
        ("rollback_to_legacy.yml", {"rollback_serial": " 25% "}, {"rollback_serial": "25%"}),
        ("restore.yml", {"restore_backup": "20261203T101500Z-manual"}, {"restore_backup": "20261203T101500Z-manual"}),
        ("health_check.yml", {"affected_users": "250"}, {"affected_users": 250}),
        ("health_check.yml", {"affected_users": "u1, abc,u1"}, {"affected_users": ["u1", "abc"]}),
        ("emergency_activate.yml", {"reason": "tab\tand\nnewline {{ x }}", "triggered_by": "a"}, {}),
    ],
)
def test_good_inputs_pass_normalised(playbook: str, inputs: dict[str, object], expected: dict[str, object]) -> None:
    """restart -c web -c web restarts web once; a count is an int; a pasted reason with braces is fine."""
    validated = validate_inputs(playbook, inputs)
    for name, value in expected.items():
        assert validated[name] == value


def test_a_bad_actor_is_refused_before_a_run_is_recorded(tmp_path: Path, inventory: Inventory) -> None:
    """NOTIFICATION_EMERGENCY_ACTOR is text too: refused (naming it) before the store records a run, so no run
    is left 'running' for a command that never started one."""
    from notification_emergency.api import EmergencyToolkit

    toolkit = EmergencyToolkit(
        inventory=list(inventory.sources), store=tmp_path / "events.db", home=tmp_path, actor="op\x1b[2J"
    )
    with pytest.raises(
        BadInput, match=r"^NOTIFICATION_EMERGENCY_ACTOR \(notification_run_owner\) contains the control"
    ):
        toolkit.backup()
    assert not (tmp_path / "events.db").exists() or toolkit.store.runs() == []
