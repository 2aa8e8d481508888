"""notification_classify in-process, and one real ansible-playbook run of the policy layer."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from notification_emergency.catalogue import classify
from tests.ansible.test_catalogue import CASES, SEVERAL, check, health_result
from tests.conftest import ROOT, VENV_BIN


@pytest.mark.parametrize("failure_type", list(CASES))
def test_module_gives_the_catalogue_classification(module_runner: Any, failure_type: str) -> None:
    changed_checks, _, level, steps = CASES[failure_type]
    health = health_result(*changed_checks)
    result, failed = module_runner("notification_classify", {"health": health, "host": "sandbox-01"})
    assert not failed and result["changed"] is False
    assert result["primary"] == failure_type and result["level"] == level
    assert [step["id"] for step in result["plan"]] == steps
    expected = classify(health, host="sandbox-01")
    assert {key: result[key] for key in expected} == expected


def test_several_failures_messages_and_users(module_runner: Any) -> None:
    args = {
        "health": health_result(*SEVERAL),
        "messages": ["jinja2.exceptions.TemplateNotFound: index.html"],
        "affected_users": ["u1", "u2", "u1"],
        "previous_level": 3,
    }
    result, failed = module_runner("notification_classify", args)
    assert not failed
    assert result["level"] == 2 and result["level_name"] == "high" and result["response"] == "within 15 minutes"
    assert result["affected_users"] == 2 and result["trend"] == "escalated"
    assert result["primary"] == result["failures"][0]["type"] == "redis_unavailable"
    ids = [step["id"] for step in result["plan"]]
    assert len(ids) == len(set(ids)) and ids[-1] == "escalate"
    assert "jinja2.exceptions.TemplateNotFound: index.html" in result["failures"][1]["evidence"]["messages"]


@pytest.mark.parametrize(("users", "level"), [(150, 1), ("150", 1), (list(range(1200)), 1), ([7] * 500, 2), (0, 2)])
def test_affected_users_as_count_or_list(module_runner: Any, users: Any, level: int) -> None:
    health = health_result(check("redis", "failed", "refused"))
    result, failed = module_runner("notification_classify", {"health": health, "affected_users": users})
    assert not failed and result["level"] == level


def test_healthy_and_check_mode(module_runner: Any) -> None:
    result, failed = module_runner("notification_classify", {"health": health_result()}, check_mode=True)
    assert not failed and not result["changed"]
    assert result["healthy"] is True and result["level"] is None and result["level_name"] == "none"
    assert result["response_minutes"] is None and result["plan"] == [] and result["primary"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "health"),
        ({"health": "not a dict"}, "health"),
        ({"health": {"overall": "healthy"}}, "health must be a health result"),
        ({"health": {"checks": {"web": {"status": "ok"}}}}, "health.checks.web.status must be one of"),
        ({"health": health_result(), "affected_users": -3}, "affected_users must be a non-negative count"),
        ({"health": health_result(), "affected_users": {"a": 1}}, "affected_users"),
        ({"health": health_result(), "previous_level": 9}, "previous_level"),
        ({"health": health_result(), "messages": "x", "bogus": 1}, "bogus"),
    ],
)
def test_bad_arguments_name_the_parameter(module_runner: Any, args: dict[str, Any], message: str) -> None:
    result, failed = module_runner("notification_classify", args)
    assert failed and message in result["msg"]


# -- a real ansible-playbook: the symlinked module_utils and the filter plugins load for real -------------

PLAYBOOK = textwrap.dedent(
    """\
    ---
    - name: Classify a failure and raise emergency mode
      hosts: all
      gather_facts: false
      vars:
        __health: "{{ lookup('ansible.builtin.file', health_file) | from_json }}"
      tasks:
        - name: Classify the health result
          notification_classify:
            health: "{{ __health }}"
            affected_users: [alice, bob, alice]
            host: "{{ inventory_hostname }}"
          register: __classification

        - name: Activate emergency mode at the classified level
          notification_emergency_state:
            path: "{{ emergency_file }}"
            state: active
            level: "{{ __classification.level }}"
            reason: "{{ __classification.primary }}: {{ __health | notification_health_summary }}"
            triggered_by: pytest
          register: __emergency

        - name: Activate again (idempotent)
          notification_emergency_state:
            path: "{{ emergency_file }}"
            state: active
            level: "{{ __classification.level }}"
            reason: "{{ __classification.primary }}: {{ __health | notification_health_summary }}"
            triggered_by: pytest
          register: __again

        - name: Report what the module, the filters and the state say
          ansible.builtin.copy:
            dest: "{{ report_file }}"
            mode: "0644"
            content: "{{ report | to_nice_json }}"
          vars:
            report:
              module: "{{ __classification }}"
              filter: "{{ __health | notification_classify(['alice', 'bob', 'alice'], host=inventory_hostname) }}"
              level_name: "{{ __classification.level | notification_level_name }}"
              response: "{{ __classification.level | notification_response_time }}"
              steps: "{{ __classification | notification_plan_steps }}"
              emergency_changed: "{{ __emergency.changed }}"
              again_changed: "{{ __again.changed }}"
              state: "{{ __emergency.state }}"
    """
)


def test_a_real_playbook_classifies_and_activates_emergency_mode(tmp_path: Path) -> None:
    health = health_result(check("websocket", "failed", "refused", error="connection refused"))
    (tmp_path / "health.json").write_text(json.dumps(health))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    run = subprocess.run(
        [
            VENV_BIN / "ansible-playbook",
            "-i",
            "sandbox-01,",
            "-e",
            "ansible_connection=local",
            "-e",
            f"ansible_python_interpreter={VENV_BIN / 'python'}",
            "-e",
            f"health_file={tmp_path / 'health.json'}",
            "-e",
            f"emergency_file={tmp_path / 'emergency.json'}",
            "-e",
            f"report_file={tmp_path / 'report.json'}",
            tmp_path / "play.yml",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # nothing found by adjacency: library, module_utils and filters come from ansible.cfg
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    module = report["module"]
    assert module["primary"] == "websocket_service_down" and module["level"] == 2
    assert module["affected_users"] == 2
    assert module["summary"].startswith("sandbox-01: websocket_service_down, level 2 (high, respond within 15 minutes)")
    assert {key: module[key] for key in report["filter"]} == report["filter"], "module and filter agree"
    assert report["level_name"] == "high" and report["response"] == "within 15 minutes"
    assert report["steps"][0] == module["plan"][0]["description"]
    assert report["emergency_changed"] is True and report["again_changed"] is False
    state = json.loads((tmp_path / "emergency.json").read_text())
    assert state == report["state"]
    assert state["active"] is True and state["level"] == 2 and state["triggered_by"] == "pytest"
    assert state["reason"] == "websocket_service_down: healthy 10, degraded 0, failed 1: websocket (refused)"
    audit = (tmp_path / "emergency-audit.log").read_text().splitlines()
    assert [json.loads(line)["action"] for line in audit] == ["activate"]
