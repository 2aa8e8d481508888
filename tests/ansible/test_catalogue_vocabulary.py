"""The catalogue's vocabulary (priorities, components), derived from its data: it agrees with the reference
application, the health check's components and the restart playbook. (Moved out of test_catalogue.py, which
holds the classification, to keep both under the line limit.)"""

from __future__ import annotations

import ast
from typing import Any

import yaml

from notification_emergency.catalogue import (
    APP_PRIORITY,
    CATALOGUE,
    CHECK_COMPONENTS,
    COMPONENTS,
    FAILURE_COMPONENT,
    LEVEL_PRIORITY,
    PRIORITIES,
    RESTARTABLE_COMPONENTS,
    level_info,
)
from tests.conftest import ROOT


def test_priorities_are_the_level_names() -> None:
    assert PRIORITIES == ("critical", "high", "medium", "low")
    assert tuple(level_info(level)["name"] for level in (1, 2, 3, 4)) == PRIORITIES
    assert {level: level_info(level)["name"] for level in (1, 2, 3, 4)} == LEVEL_PRIORITY


def test_app_priorities_are_the_reference_applications() -> None:
    from notification_service.names import PRIORITIES as APP_PRIORITIES  # the reference app (pip install -e)

    assert tuple(APP_PRIORITY) == PRIORITIES
    assert sorted(APP_PRIORITY.values()) == sorted(APP_PRIORITIES), "each app priority is used, once"
    assert APP_PRIORITY["medium"] == "normal"


def _option(path: str, *keys: str) -> Any:
    """An option of a module's DOCUMENTATION (the argument spec's source) or of a playbook's input spec."""
    text = (ROOT / path).read_text()
    if path.endswith(".py"):
        assigned = {ast.unparse(n.targets[0]): n.value for n in ast.parse(text).body if isinstance(n, ast.Assign)}
        data: Any = yaml.safe_load(ast.literal_eval(assigned["DOCUMENTATION"]))
    else:
        data = yaml.safe_load(text)[0]["tasks"][0]["ansible.builtin.validate_argument_spec"]
    for key in keys:
        data = data[key]
    return data


def test_components_agree_with_the_health_check_and_the_restart_playbook() -> None:
    assert COMPONENTS == ("web", "websocket", "redis", "database")
    assert CHECK_COMPONENTS[: len(COMPONENTS)] == COMPONENTS
    health = _option("library/notification_health.py", "options", "checks", "suboptions", "component", "choices")
    assert list(CHECK_COMPONENTS) == health
    restart = _option("playbooks/restart_services.yml", "argument_spec", "components", "choices")
    assert list(RESTARTABLE_COMPONENTS) == restart == ["web", "websocket", "redis"]


def test_a_failure_types_component_is_the_one_its_signals_watch() -> None:
    assert FAILURE_COMPONENT == {
        "web_service_down": "web",
        "database_unavailable": "database",
        "redis_unavailable": "redis",
        "redis_write_refused": "redis",
        "websocket_service_down": "websocket",
        "delivery_backlog": "websocket",  # no component signal: a backlog is WebSocket delivery falling behind
    }
    for name, entry in CATALOGUE.items():
        watched = set()
        for signal in entry["signals"]:
            matcher = signal.get("check", {})
            reported = [
                path.split(".")[2] for path in matcher.get("evidence", {}) if path.startswith("json.components.")
            ]
            watched.update(reported or matcher.get("component", []))
        if len(watched) == 1 and watched <= set(COMPONENTS):
            assert entry["component"] == watched.pop(), name
        elif watched:
            assert entry["component"] is None, f"{name} watches {sorted(watched)}: no one component"
