"""The failure catalogue's code: it checks the data, classifies health results and merges recovery plans.

The data (levels, escalation, steps, failure types and their signals, and the vocabulary of priorities and
components derived from them) is in ``catalogue_data.py``; this module re-exports all of it, so
``notification_emergency.catalogue`` stays the one import for the toolkit's code.

Both files run in two places. The Python package imports them as ``notification_emergency.catalogue`` and
``notification_emergency.catalogue_data`` (the filter plugins use them on the controller); Ansible ships them
to managed hosts as ``ansible.module_utils.notification_catalogue`` and ``notification_catalogue_data``
(``module_utils/`` holds relative symlinks to both), where ``notification_classify`` uses them. So both stay
stdlib only, Python 3.8+ syntax, and this one imports its data by the name it runs under (see below).

How classification reads the data:

- A *health result* is what ``notification_health`` returns (see docs/health-result.md): ``checks`` maps a
  check name to ``component``, ``kind``, ``critical``, ``status``, ``reason``, ``error`` and ``evidence``.
- A *signal* is one way a failure type shows: a matcher on one check (every given field must match; a list
  means "one of"), or regular expressions searched in the operator's messages / log lines.
- A type is *detected* when one of its signals fires. Its level is the most severe level of the signals
  that fired (most signals carry the type's ``base_level``).
- A detected type can *explain* another detected type (the root cause): the explained one is dropped from
  ``failures`` and listed under ``suppressed``, its plan is dropped, and the explaining type takes over
  its level when that is more severe (impact stays visible, the plan goes to the cause).
- Non-healthy checks that no signal claims become the ``unknown`` type.
- Levels are then raised by the number of affected users (``ESCALATION``), never above level 1.
- The plan is the merged, de-duplicated list of the remaining types' steps, in failure order (level, then
  catalogue order); the first occurrence of a step wins and steps marked ``last`` (escalate) close it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

# The data by the name this module runs under. On a managed host Ansible ships this file as
# ansible.module_utils.notification_catalogue; its module_utils finder reads the import below (one inside an
# ``if`` is an optional one: packed when found, and module_utils/notification_catalogue_data.py is found) and
# ships the data beside it. Everywhere else it is the package's module (also under pytest, where
# tests/conftest.py puts module_utils/ on ansible.module_utils' path: one data module, never two copies).
if __name__.startswith("ansible.module_utils."):  # pragma: no cover - runs on managed hosts
    from ansible.module_utils.notification_catalogue_data import (
        APP_PRIORITY,
        CATALOGUE,
        CATALOGUE_VERSION,
        CHECK_COMPONENTS,
        COMPONENTS,
        ESCALATION,
        FAILURE_COMPONENT,
        LEVEL_PRIORITY,
        LEVELS,
        NO_LEVEL,
        NOT_HEALTHY,
        PRIORITIES,
        RESTARTABLE_COMPONENTS,
        STATUSES,
        STEPS,
        UNKNOWN,
    )
else:
    from notification_emergency.catalogue_data import (
        APP_PRIORITY,
        CATALOGUE,
        CATALOGUE_VERSION,
        CHECK_COMPONENTS,
        COMPONENTS,
        ESCALATION,
        FAILURE_COMPONENT,
        LEVEL_PRIORITY,
        LEVELS,
        NO_LEVEL,
        NOT_HEALTHY,
        PRIORITIES,
        RESTARTABLE_COMPONENTS,
        STATUSES,
        STEPS,
        UNKNOWN,
    )

__all__ = [
    "APP_PRIORITY",
    "CATALOGUE",
    "CATALOGUE_VERSION",
    "CHECK_COMPONENTS",
    "COMPONENTS",
    "ESCALATION",
    "FAILURE_COMPONENT",
    "LEVELS",
    "LEVEL_PRIORITY",
    "NOT_HEALTHY",
    "PRIORITIES",
    "RESTARTABLE_COMPONENTS",
    "STATUSES",
    "STEPS",
    "UNKNOWN",
    "CatalogueError",
    "catalogue_as_dict",
    "classify",
    "count_affected_users",
    "escalate_level",
    "health_summary",
    "level_info",
    "merge_plans",
]

MAX_REASON_TEXT = 300  # characters of a message or error kept as evidence


class CatalogueError(ValueError):
    """Bad input to the catalogue functions (or an inconsistent catalogue); the message names the input."""


_CHECK_MATCHER_KEYS = frozenset({"component", "kind", "status", "reason", "reason_not", "critical", "text", "evidence"})


# -- catalogue consistency (checked once, at import) -----------------------------------------------------


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise CatalogueError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def _validate_catalogue() -> dict[str, re.Pattern[str]]:
    """Check the data's invariants; return the compiled regexes keyed by "type/signal/index"."""
    compiled: dict[str, re.Pattern[str]] = {}
    for step_id, step in STEPS.items():
        if step["touches_data"] and step["automatic"] and not step.get("fallback"):
            raise CatalogueError(f"step {step_id} touches data and must not be automatic")
        if step.get("fallback") and step["action"].get("playbook") != "rollback_to_legacy.yml":
            raise CatalogueError(f"step {step_id}: a fallback step is the rollback to legacy (rollback_to_legacy.yml)")
        action = step["action"]
        if ("playbook" in action) == ("notify" in action):
            raise CatalogueError(f"step {step_id}: action needs exactly one of playbook or notify")
    if tuple(APP_PRIORITY) != PRIORITIES:
        raise CatalogueError(f"APP_PRIORITY must map each priority ({', '.join(PRIORITIES)}), in that order")
    for name, entry in CATALOGUE.items():
        if entry["component"] is not None and entry["component"] not in COMPONENTS:
            raise CatalogueError(f"type {name}: component {entry['component']} is not one of {', '.join(COMPONENTS)}")
        if entry["base_level"] not in LEVELS:
            raise CatalogueError(f"type {name}: base_level {entry['base_level']} is not a level")
        for step_id in entry["plan"]:
            if step_id not in STEPS:
                raise CatalogueError(f"type {name}: plan step {step_id} is not in STEPS")
        if entry["plan"][-1:] != ["escalate"]:
            raise CatalogueError(f"type {name}: a plan ends with escalate")
        for rule in entry["explains"]:
            if rule["type"] not in CATALOGUE or rule["type"] in (name, UNKNOWN):
                raise CatalogueError(f"type {name}: explains unknown or invalid type {rule['type']}")
        for signal in entry["signals"]:
            where = f"{name}/{signal['id']}"
            if ("check" in signal) == ("messages" in signal):
                raise CatalogueError(f"{where}: a signal has exactly one of check or messages")
            if signal.get("level", entry["base_level"]) not in LEVELS:
                raise CatalogueError(f"{where}: level is not a level")
            matcher = signal.get("check", {})
            unknown_keys = set(matcher) - _CHECK_MATCHER_KEYS
            if unknown_keys:
                raise CatalogueError(f"{where}: unknown matcher keys {sorted(unknown_keys)}")
            if not set(matcher.get("component", ())) <= set(CHECK_COMPONENTS):
                raise CatalogueError(f"{where}: a matched component is not one of {', '.join(CHECK_COMPONENTS)}")
            if "text" in matcher:
                compiled[f"{where}/text"] = _compile(matcher["text"], where)
            for index, pattern in enumerate(signal.get("messages", [])):
                compiled[f"{where}/{index}"] = _compile(pattern, where)
    # The explains graph must be acyclic, so that suppression always leaves a root cause.
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 1:
            raise CatalogueError(f"explains cycle: {' -> '.join([*path, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for rule in CATALOGUE[node]["explains"]:
            visit(rule["type"], [*path, node])
        state[node] = 2

    for name in CATALOGUE:
        visit(name, [])
    return compiled


_PATTERNS = _validate_catalogue()
_ORDER = {name: index for index, name in enumerate(CATALOGUE)}


def catalogue_as_dict() -> dict[str, Any]:
    """The whole catalogue as JSON-serialisable data (for docs, the CLI and the dashboard)."""
    return {
        "version": CATALOGUE_VERSION,
        "levels": [copy.deepcopy(LEVELS[level]) for level in sorted(LEVELS)],
        "escalation": copy.deepcopy(ESCALATION),
        "steps": {step_id: _step(step_id) for step_id in STEPS},
        "types": [{"type": name, **copy.deepcopy(entry)} for name, entry in CATALOGUE.items()],
        "vocabulary": {
            "priorities": list(PRIORITIES),
            "app_priority": dict(APP_PRIORITY),
            "components": list(COMPONENTS),
            "check_components": list(CHECK_COMPONENTS),
            "restartable_components": list(RESTARTABLE_COMPONENTS),
        },
    }


# -- argument checks ---------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _level_arg(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in LEVELS:
        if isinstance(value, str) and value.strip().isdigit() and int(value) in LEVELS:
            return int(value)
        raise CatalogueError(f"{name} must be a level 1 (critical) to 4 (low), got {_describe(value)}")
    return value


def count_affected_users(affected_users: Any) -> int | None:
    """A count (int >= 0, or a string of digits) or a list of user ids (unique ids counted); None stays None."""
    message = f"affected_users must be a non-negative count or a list of user ids, got {_describe(affected_users)}"
    if affected_users is None:
        return None
    if isinstance(affected_users, bool):
        raise CatalogueError(message)
    if isinstance(affected_users, int):
        if affected_users < 0:
            raise CatalogueError(message)
        return affected_users
    if isinstance(affected_users, str):
        if not affected_users.strip().isdigit():
            raise CatalogueError(message)
        return int(affected_users.strip())
    if isinstance(affected_users, (list, tuple, set, frozenset)):
        ids = set()
        for item in affected_users:
            if isinstance(item, bool) or not isinstance(item, (str, int)) or (isinstance(item, str) and not item):
                raise CatalogueError(
                    f"affected_users must be a non-negative count or a list of user ids (strings or integers), "
                    f"got the item {_describe(item)}"
                )
            ids.add(str(item))
        return len(ids)
    raise CatalogueError(message)


def _messages_arg(messages: Any) -> list[str]:
    if messages is None:
        return []
    if isinstance(messages, str):
        return [messages]
    if not isinstance(messages, (list, tuple)):
        raise CatalogueError(
            f"messages must be a list of strings (error messages or log lines), got {_describe(messages)}"
        )
    for index, item in enumerate(messages):
        if not isinstance(item, str):
            raise CatalogueError(f"messages must be a list of strings; item {index} is {_describe(item)}")
    return list(messages)


def _checks_arg(health: Any) -> list[dict[str, Any]]:
    """The health result's checks, normalised and sorted by name (so the input order never matters)."""
    if isinstance(health, Mapping) and "checks" not in health and isinstance(health.get("health"), Mapping):
        health = health["health"]  # a registered result that nests the health result
    if not isinstance(health, Mapping) or not isinstance(health.get("checks"), Mapping):
        raise CatalogueError(
            f"health must be a health result (a dict with a checks mapping, see docs/health-result.md), "
            f"got {_describe(health)}"
        )
    checks = []
    for name in sorted(health["checks"], key=str):
        check = health["checks"][name]
        where = f"health.checks.{name}"
        if not isinstance(check, Mapping):
            raise CatalogueError(f"{where} must be a dict (a check result), got {_describe(check)}")
        status = check.get("status")
        if status not in STATUSES:
            raise CatalogueError(f"{where}.status must be one of {', '.join(STATUSES)}, got {_describe(status)}")
        evidence = check.get("evidence")
        checks.append(
            {
                "name": str(name),
                "component": check.get("component") or str(name),
                "kind": check.get("kind"),
                "critical": bool(check.get("critical", True)),
                "status": status,
                "reason": check.get("reason"),
                "error": check.get("error"),
                "evidence": evidence if isinstance(evidence, Mapping) else {},
            }
        )
    return checks


# -- public helpers -----------------------------------------------------------------------------------------


def level_info(level: Any) -> dict[str, Any]:
    """``{"level", "name", "response_minutes", "response"}`` for a level 1-4; None gives the "none" entry."""
    if level is None:
        return dict(NO_LEVEL)
    return dict(LEVELS[_level_arg(level, "level")])


def escalate_level(level: Any, affected_users: Any) -> int:
    """The level raised by the affected users (count or list of ids) per ESCALATION, never above 1."""
    base = _level_arg(level, "level")
    count = count_affected_users(affected_users) or 0
    raise_by = max(
        (threshold["raise_by"] for threshold in ESCALATION["thresholds"] if count >= threshold["min_users"]),
        default=0,
    )
    return max(int(ESCALATION["highest_level"]), base - raise_by)


def health_summary(health: Any) -> str:
    """One line: ``healthy 9, degraded 0, failed 1: websocket (refused)`` (non-healthy checks by name)."""
    checks = _checks_arg(health)
    counts = ", ".join(f"{status} {sum(1 for c in checks if c['status'] == status)}" for status in STATUSES)
    bad = [f"{c['name']} ({c['reason'] or c['error'] or c['status']})" for c in checks if c["status"] in NOT_HEALTHY]
    return counts + (": " + ", ".join(bad) if bad else "")


def _step(step_id: str) -> dict[str, Any]:
    step = STEPS[step_id]
    return {
        "id": step_id,
        "label": step["label"],
        "action": copy.deepcopy(step["action"]),
        "description": step["description"],
        "automatic": step["automatic"],
        "touches_data": step["touches_data"],
        "fallback": bool(step.get("fallback")),
    }


def merge_plans(types: Any, keep_order: bool = False) -> list[dict[str, Any]]:
    """The merged, de-duplicated plan of several failure types.

    Types are taken in catalogue order (severity, then causes before symptoms) unless ``keep_order`` is
    set (classify passes them ordered by their computed level). The first occurrence of a step wins;
    steps marked ``last`` (escalate) close the plan. Each step lists the types that asked for it.
    """
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, (list, tuple)):
        raise CatalogueError(f"types must be a list of failure type names, got {_describe(types)}")
    names: list[str] = []
    for name in types:
        if not isinstance(name, str) or name not in CATALOGUE:
            raise CatalogueError(f"types: {_describe(name)} is not a failure type (known: {', '.join(CATALOGUE)})")
        if name not in names:
            names.append(name)
    if not keep_order:
        names.sort(key=_ORDER.__getitem__)
    steps: dict[str, dict[str, Any]] = {}
    for name in names:
        for step_id in CATALOGUE[name]["plan"]:
            if step_id not in steps:
                steps[step_id] = {**_step(step_id), "for_types": []}
            steps[step_id]["for_types"].append(name)
    ordered = [step for step in steps.values() if not STEPS[step["id"]].get("last")]
    return ordered + [step for step in steps.values() if STEPS[step["id"]].get("last")]


# -- classification ------------------------------------------------------------------------------------------


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _check_text(check: Mapping[str, Any]) -> str:
    parts = [str(check["error"] or "")]

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key in sorted(value, key=str):
                parts.append(str(key))
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif value is not None:
            parts.append(str(value))

    walk(check["evidence"])
    return "\n".join(parts)


def _check_matches(check: Mapping[str, Any], matcher: Mapping[str, Any], text: re.Pattern[str] | None) -> bool:
    for key in ("component", "kind", "status", "reason"):
        if key in matcher and check[key] not in matcher[key]:
            return False
    if check["reason"] in matcher.get("reason_not", ()):
        return False
    if "critical" in matcher and check["critical"] != matcher["critical"]:
        return False
    for path, accepted in matcher.get("evidence", {}).items():
        if _lookup(check["evidence"], path) not in accepted:
            return False
    return text is None or bool(text.search(_check_text(check)))


def _clip(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_REASON_TEXT else text[: MAX_REASON_TEXT - 3] + "..."


def _check_detail(check: Mapping[str, Any]) -> str:
    why = check["error"] or check["reason"]
    return f"{check['name']} check {check['status']}" + (f" ({_clip(why)})" if why else "")


class _Detection:
    """What fired for one type: the signals, the checks and messages they matched, the signal level."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.signals: set[str] = set()
        self.checks: dict[str, dict[str, Any]] = {}
        self.messages: set[str] = set()
        self.level = 5  # lowered by each signal that fires

    def fire(self, signal: Mapping[str, Any]) -> None:
        self.signals.add(signal["id"])
        self.level = min(self.level, signal.get("level", CATALOGUE[self.name]["base_level"]))

    @property
    def reasons(self) -> set[Any]:
        return {check["reason"] for check in self.checks.values()}


def _detect(checks: list[dict[str, Any]], messages: list[str]) -> dict[str, _Detection]:
    detections: dict[str, _Detection] = {}
    for name, entry in CATALOGUE.items():
        found = _Detection(name)
        for signal in entry["signals"]:
            where = f"{name}/{signal['id']}"
            if "check" in signal:
                text = _PATTERNS.get(f"{where}/text")
                for check in checks:
                    if _check_matches(check, signal["check"], text):
                        found.fire(signal)
                        found.checks[check["name"]] = check
            else:
                for message in messages:
                    if any(_PATTERNS[f"{where}/{i}"].search(message) for i in range(len(signal["messages"]))):
                        found.fire(signal)
                        found.messages.add(_clip(message))
        if found.signals:
            detections[name] = found
    claimed = {check_name for found in detections.values() for check_name in found.checks}
    unclaimed = [check for check in checks if check["status"] in NOT_HEALTHY and check["name"] not in claimed]
    if unclaimed:
        found = _Detection(UNKNOWN)
        found.signals.add("unclaimed_check")
        found.level = CATALOGUE[UNKNOWN]["base_level"]
        found.checks = {check["name"]: check for check in unclaimed}
        detections[UNKNOWN] = found
    return detections


def _explanations(detections: Mapping[str, _Detection]) -> dict[str, list[str]]:
    """explainer -> the detected types it explains (a rule's when_reasons must cover the explained checks)."""
    explains: dict[str, list[str]] = {name: [] for name in detections}
    for name in detections:
        for rule in CATALOGUE[name]["explains"]:
            target = detections.get(rule["type"])
            if target is None:
                continue
            if "when_reasons" in rule and not target.reasons <= set(rule["when_reasons"]):
                continue
            explains[name].append(rule["type"])
    return explains


def _descendants(name: str, explains: Mapping[str, list[str]]) -> list[str]:
    seen: list[str] = []
    todo = list(explains[name])
    while todo:
        current = todo.pop(0)
        if current not in seen:
            seen.append(current)
            todo.extend(explains[current])
    return sorted(seen, key=_ORDER.__getitem__)


def _failure(
    found: _Detection,
    level: int,
    basis: list[str],
    checks: list[dict[str, Any]],
) -> dict[str, Any]:
    entry = CATALOGUE[found.name]
    info = LEVELS[level]
    details = [_check_detail(check) for check in sorted(found.checks.values(), key=lambda c: c["name"])]
    details += [f'message "{message}"' for message in sorted(found.messages)]
    detail = "; ".join(details)
    for component in entry.get("context", []):
        context = sorted(c["status"] for c in checks if c["component"] == component and c["name"] not in found.checks)
        if context and detail:
            worst = "failed" if "failed" in context else "degraded" if "degraded" in context else "healthy"
            detail += f" while {component} is {worst}"
    return {
        "type": found.name,
        "title": entry["title"],
        "level": level,
        "level_name": info["name"],
        "response_minutes": info["response_minutes"],
        "response": info["response"],
        "base_level": entry["base_level"],
        "level_basis": basis,
        "detail": detail,
        "evidence": {
            "checks": sorted(found.checks),
            "messages": sorted(found.messages),
            "signals": sorted(found.signals),
        },
        "plan": list(entry["plan"]),
    }


def _respond(info: Mapping[str, Any]) -> str:
    return "respond immediately" if info["response_minutes"] == 0 else f"respond {info['response']}"


def _trend(level: int | None, previous: int | None) -> str:
    if previous is None:
        return "new" if level is not None else "unchanged"
    if level is None:
        return "resolved"
    if level < previous:
        return "escalated"
    return "improved" if level > previous else "unchanged"


def _summary(
    host: str | None,
    failures: list[dict[str, Any]],
    suppressed: list[dict[str, Any]],
    plan: list[dict[str, Any]],
    checked: int,
) -> str:
    """One line: the primary failure, its level and detail, the others, what it explains, the plan."""
    prefix = f"{host}: " if host else ""
    if not failures:
        return f"{prefix}healthy, no failure detected ({checked} checks)"
    primary = failures[0]
    info = LEVELS[primary["level"]]
    summary = f"{prefix}{primary['type']}, level {primary['level']} ({info['name']}, {_respond(info)})" + (
        f": {primary['detail']}" if primary["detail"] else ""
    )
    if len(failures) > 1:
        summary += "; also " + ", ".join(f"{f['type']} (level {f['level']})" for f in failures[1:])
    if suppressed:
        summary += "; explains " + ", ".join(f["type"] for f in suppressed)
    return summary + "; plan: " + " \u2192 ".join(step["label"] for step in plan)


def classify(
    health: Any,
    messages: Any = None,
    affected_users: Any = None,
    previous_level: Any = None,
    host: Any = None,
) -> dict[str, Any]:
    """Classify a health result (plus optional messages and affected users) with the catalogue.

    Deterministic: checks are read in name order and every list in the result is sorted, so the same
    input gives the same output whatever the order of checks or messages.
    """
    checks = _checks_arg(health)
    lines = _messages_arg(messages)
    users = count_affected_users(affected_users)
    previous = None if previous_level is None else _level_arg(previous_level, "previous_level")
    if host is not None and not isinstance(host, str):
        raise CatalogueError(f"host must be a string (the inventory hostname), got {_describe(host)}")

    detections = _detect(checks, lines)
    explains = _explanations(detections)
    explained_by: dict[str, list[str]] = {name: [] for name in detections}
    for name, targets in explains.items():
        for target in targets:
            explained_by[target].append(name)

    failures: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    for name, found in detections.items():
        basis = [f"{'signal' if found.level != CATALOGUE[name]['base_level'] else 'base'} level {found.level}"]
        level = found.level
        if not explained_by[name]:
            for other in _descendants(name, explains):
                if detections[other].level < level:
                    level = detections[other].level
                    basis.append(f"takes level {level} from {other}, which it explains")
        escalated = escalate_level(level, users)
        if escalated != level:
            basis.append(f"raised to {escalated} for {users} affected users")
        failure = _failure(found, escalated, basis, checks)
        if explained_by[name]:
            failure["explained_by"] = sorted(explained_by[name], key=_ORDER.__getitem__)
            suppressed.append(failure)
        else:
            failure["explains"] = _descendants(name, explains)
            failures.append(failure)

    def order(failure: dict[str, Any]) -> tuple[int, int]:
        return failure["level"], _ORDER[failure["type"]]

    failures.sort(key=order)
    suppressed.sort(key=order)
    plan = merge_plans([failure["type"] for failure in failures], keep_order=True)
    worst: int | None = failures[0]["level"] if failures else None
    info = level_info(worst)
    counts = {status: sum(1 for check in checks if check["status"] == status) for status in STATUSES}
    return {
        "healthy": not failures,
        "primary": failures[0]["type"] if failures else None,
        "level": worst,
        "level_name": info["name"],
        "response_minutes": info["response_minutes"],
        "response": info["response"],
        "failures": failures,
        "suppressed": suppressed,
        "plan": plan,
        "summary": _summary(host, failures, suppressed, plan, len(checks)),
        "affected_users": users,
        "previous_level": previous,
        "trend": _trend(worst, previous),
        "counts": counts,
        "catalogue_version": CATALOGUE_VERSION,
    }
