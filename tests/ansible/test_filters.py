"""The notification filters: each one, its errors (naming the filter), and its ansible-doc page."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from notification_emergency.catalogue import classify, merge_plans
from tests.ansible.test_catalogue import CASES, SEVERAL, check, health_result
from tests.conftest import ROOT, VENV_BIN

FILTERS = [
    "notification_level_name",
    "notification_response_time",
    "notification_response_minutes",
    "notification_health_summary",
    "notification_plan_steps",
    "notification_classify",
    "notification_classify_hosts",
]


def load_filters() -> ModuleType:
    spec = importlib.util.spec_from_file_location("filter_notification", ROOT / "filter_plugins" / "notification.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN = load_filters()
F: dict[str, Any] = PLUGIN.FilterModule().filters()


def test_filter_module_maps_names_to_plain_functions() -> None:
    assert sorted(F) == sorted(FILTERS)
    for name, function in F.items():
        assert function is getattr(PLUGIN, name)


@pytest.mark.parametrize(
    ("level", "name", "response", "minutes"),
    [
        (1, "critical", "immediate", 0),
        (2, "high", "within 15 minutes", 15),
        (3, "medium", "within 30 minutes", 30),
        (4, "low", "within 60 minutes", 60),
        ("2", "high", "within 15 minutes", 15),
        (None, "none", "none", None),
    ],
)
def test_level_filters(level: Any, name: str, response: str, minutes: int | None) -> None:
    assert F["notification_level_name"](level) == name
    assert F["notification_response_time"](level) == response
    assert F["notification_response_minutes"](level) == minutes


def test_health_summary() -> None:
    health = health_result(check("websocket", "failed", "refused", error="connection refused"))
    assert F["notification_health_summary"](health) == "healthy 10, degraded 0, failed 1: websocket (refused)"
    no_reason = health_result(check("host", "degraded", None, error="load 40"))
    assert F["notification_health_summary"](no_reason) == "healthy 11, degraded 1, failed 0: host (load 40)"


def test_plan_steps_of_a_classification_and_of_types() -> None:
    classification = classify(health_result(*SEVERAL))
    assert F["notification_plan_steps"](classification) == [step["description"] for step in classification["plan"]]
    types = ["websocket_service_down", "redis_unavailable"]
    assert F["notification_plan_steps"](types) == [step["description"] for step in merge_plans(types)]
    assert F["notification_plan_steps"]("unknown") == [merge_plans(["unknown"])[0]["description"]]
    assert F["notification_plan_steps"](classify(health_result())) == []


def test_classify_is_the_catalogue_classification() -> None:
    changed, _, level, steps = CASES["template_error"]
    health = health_result(*changed)
    result = F["notification_classify"](health, ["u1", "u2", "u1"], ["TemplateNotFound: index.html"])
    assert result == classify(health, messages=["TemplateNotFound: index.html"], affected_users=["u1", "u2", "u1"])
    assert result["level"] == level and [step["id"] for step in result["plan"]] == steps
    assert result["affected_users"] == 2
    assert F["notification_classify"](health, 1000, host="h1")["summary"].startswith("h1: template_error, level 1")


def test_classify_hosts_gives_each_host_its_own_classification() -> None:
    changed, _, level, _ = CASES["template_error"]
    broken, fine = health_result(*changed), health_result()
    result = F["notification_classify_hosts"]({"h1": broken, "h2": fine}, 150)
    assert set(result) == {"h1", "h2"}
    assert result["h1"] == F["notification_classify"](broken, 150, host="h1")
    assert result["h1"]["summary"].startswith("h1: template_error") and result["h1"]["level"] == level - 1
    assert result["h2"]["level"] is None


@pytest.mark.parametrize(
    ("name", "args", "detail"),
    [
        ("notification_level_name", (0,), "level must be a level 1"),
        ("notification_level_name", ("critical",), "level must be a level 1"),
        ("notification_response_time", (5,), "level must be a level 1"),
        ("notification_response_minutes", ([1],), "level must be a level 1"),
        ("notification_health_summary", ("healthy",), "health must be a health result"),
        ("notification_health_summary", ({"checks": {"web": {"status": "ok"}}},), "health.checks.web.status"),
        ("notification_plan_steps", (42,), "expects a classification"),
        ("notification_plan_steps", (["cosmic_rays"],), "'cosmic_rays' is not a failure type"),
        ("notification_plan_steps", ({"plan": "x"},), "plan must be a list of steps"),
        ("notification_classify", ([],), "health must be a health result"),
        ("notification_classify", (health_result(), -3), "affected_users must be a non-negative count"),
        ("notification_classify", (health_result(), None, [3]), "messages must be a list of strings"),
        ("notification_classify_hosts", ([health_result()],), "expects a mapping of host name"),
        ("notification_classify_hosts", ({"h1": health_result()}, -3), "affected_users must be a non-negative count"),
        ("notification_classify_hosts", ({"h1": {}},), "health must be a health result"),
    ],
)
def test_bad_input_raises_an_error_naming_the_filter(name: str, args: tuple[Any, ...], detail: str) -> None:
    with pytest.raises(AnsibleFilterError) as info:
        F[name](*args)
    assert str(info.value).startswith(f"{name}: ")
    assert detail in str(info.value)


def test_a_missing_package_is_reported_naming_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PLUGIN, "catalogue", None)
    monkeypatch.setattr(PLUGIN, "CATALOGUE_IMPORT_ERROR", ImportError("No module named 'notification_emergency'"))
    with pytest.raises(AnsibleFilterError, match=r"^notification_level_name: the notification_emergency package"):
        F["notification_level_name"](1)


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_shows_the_filter(name: str) -> None:
    doc = subprocess.run(
        [VENV_BIN / "ansible-doc", "-t", "filter", name],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert doc.returncode == 0, doc.stderr
    assert f"filter_plugins/{name}.yml" in doc.stdout
    assert "EXAMPLES" in doc.stdout and "RETURN VALUES" in doc.stdout and "POSITIONAL: _input" in doc.stdout
