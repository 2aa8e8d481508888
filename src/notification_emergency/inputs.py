"""The playbooks' inputs, checked before anything runs: against each playbook's own argument spec, within
the bounds a spec cannot say, and as text that is data. :func:`write_extra_vars` is the one way values reach
Ansible: a private file whose whole mapping is marked ``!unsafe``, so nothing a person or an alert typed is
ever rendered as a template.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from notification_emergency.errors import BadInput
from notification_emergency.paths import project_root
from notification_emergency.text import shown

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
