# Copyright: notification-emergency contributors
# MIT License (see LICENSE)
"""Filters over the failure catalogue: level names, response times, health summaries, plans, classification.

Each filter is a plain function documented by ``filter_plugins/<filter name>.yml`` (``ansible-doc -t filter
<name>``). They call the failure catalogue, the same code as the ``notification_classify`` module and the
Python engine.

Why ``notification_emergency.catalogue`` and not ``ansible.module_utils.notification_catalogue``: the
``module_utils`` setting of ansible.cfg only tells Ansible where to find files to pack into module payloads
for the managed host; on the controller ``ansible.module_utils`` stays the installed ansible-core package,
so a filter cannot import the project's module_utils from there. The package is installed (editable) in
the controller's virtual environment and in the AWX execution environment, and it holds the one source of
the catalogue (catalogue.py and its data, catalogue_data.py) that module_utils/notification_catalogue.py and
module_utils/notification_catalogue_data.py link to.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from notification_emergency import catalogue
except ImportError as exc:  # pragma: no cover - the package is a dependency of the project
    catalogue = None
    CATALOGUE_IMPORT_ERROR: ImportError | None = exc
else:
    CATALOGUE_IMPORT_ERROR = None


def _catalogue(name: str) -> Any:
    if catalogue is None:
        raise AnsibleFilterError(
            f"{name}: the notification_emergency package is not importable on the controller "
            f"({CATALOGUE_IMPORT_ERROR}); install the project into Ansible's Python (pip install -e .)"
        )
    return catalogue


def _call(name: str, function: str, *args: Any, **kwargs: Any) -> Any:
    module = _catalogue(name)
    try:
        return getattr(module, function)(*args, **kwargs)
    except module.CatalogueError as exc:
        raise AnsibleFilterError(f"{name}: {exc}") from exc


def notification_level_name(level: Any) -> str:
    """1 -> critical, 2 -> high, 3 -> medium, 4 -> low; None (healthy) -> none."""
    return str(_call("notification_level_name", "level_info", level)["name"])


def notification_response_time(level: Any) -> str:
    """1 -> immediate, 2 -> within 15 minutes, 3 -> within 30 minutes, 4 -> within 60 minutes; None -> none."""
    return str(_call("notification_response_time", "level_info", level)["response"])


def notification_response_minutes(level: Any) -> int | None:
    """1 -> 0, 2 -> 15, 3 -> 30, 4 -> 60; None -> None."""
    minutes = _call("notification_response_minutes", "level_info", level)["response_minutes"]
    return None if minutes is None else int(minutes)


def notification_health_summary(health: Any) -> str:
    """A health result as one line: ``healthy 9, degraded 0, failed 1: websocket (refused)``."""
    return str(_call("notification_health_summary", "health_summary", health))


def notification_plan_steps(value: Any) -> list[str]:
    """The step descriptions of a classification's plan, or of the merged plan of failure type names."""
    name = "notification_plan_steps"
    if isinstance(value, dict) and "plan" in value:
        plan = value["plan"]
        if not isinstance(plan, list) or not all(isinstance(step, dict) and "description" in step for step in plan):
            raise AnsibleFilterError(f"{name}: the classification's plan must be a list of steps, got {plan!r:.80}")
    elif isinstance(value, (str, list, tuple)):
        plan = _call(name, "merge_plans", list(value) if not isinstance(value, str) else value)
    else:
        raise AnsibleFilterError(
            f"{name}: expects a classification (notification_classify's result) or a list of failure types, "
            f"got {value!r:.80}"
        )
    return [str(step["description"]) for step in plan]


def notification_classify(
    health: Any,
    affected_users: Any = None,
    messages: Any = None,
    previous_level: Any = None,
    host: Any = None,
) -> dict[str, Any]:
    """The notification_classify module's result, computed on the controller by the same catalogue code."""
    result: dict[str, Any] = _call(
        "notification_classify",
        "classify",
        health,
        messages=messages,
        affected_users=affected_users,
        previous_level=previous_level,
        host=host,
    )
    return result


def notification_classify_hosts(
    healths: Any,
    affected_users: Any = None,
    messages: Any = None,
) -> dict[str, dict[str, Any]]:
    """Host name -> health result in, host name -> classification out (each summary starts with its host).

    The fleet's classification in one call on the controller, for a run_once task: a filter inside a Jinja
    loop statement cannot report its error (ansible-core 2.19 drops it), this one can."""
    name = "notification_classify_hosts"
    if not isinstance(healths, dict):
        raise AnsibleFilterError(
            f"{name}: expects a mapping of host name to health result, got {type(healths).__name__}"
        )
    return {
        str(host): _call(name, "classify", health, messages=messages, affected_users=affected_users, host=str(host))
        for host, health in healths.items()
    }


class FilterModule:
    """The notification-emergency filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "notification_level_name": notification_level_name,
            "notification_response_time": notification_response_time,
            "notification_response_minutes": notification_response_minutes,
            "notification_health_summary": notification_health_summary,
            "notification_plan_steps": notification_plan_steps,
            "notification_classify": notification_classify,
            "notification_classify_hosts": notification_classify_hosts,
        }
