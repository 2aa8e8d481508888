"""The failure catalogue: every type, escalation, several failures, suppression, unknown, healthy, bad input."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from notification_emergency import catalogue
from notification_emergency.catalogue import (
    CATALOGUE,
    COMPONENTS,
    LEVELS,
    STEPS,
    CatalogueError,
    catalogue_as_dict,
    classify,
    count_affected_users,
    escalate_level,
    health_summary,
    level_info,
    merge_plans,
)
from tests.ansible.catalogue_process_cases import PROCESS_CASES
from tests.conftest import ROOT

# The reference service's default checks (docs/health-result.md): name -> (component, kind).
DEFAULT_CHECKS = {
    "web": ("web", "http"),
    "websocket": ("websocket", "websocket"),
    "redis": ("redis", "redis"),
    "database": ("database", "database"),
    "web_port": ("web", "tcp"),
    "websocket_port": ("websocket", "tcp"),
    "web_process": ("web", "process"),
    "websocket_process": ("websocket", "process"),
    "disk": ("disk", "disk"),
    "config": ("config", "file"),
    "templates": ("templates", "file"),
}


def check(name: str, status: str = "healthy", reason: str | None = None, **fields: Any) -> dict[str, Any]:
    component, kind = DEFAULT_CHECKS.get(name, (name, "tcp"))
    result = {
        "name": name,
        "component": component,
        "kind": kind,
        "critical": True,
        "status": status,
        "latency_ms": 2.0,
        "error": None if status == "healthy" else (reason or "error"),
        "reason": reason,
        "evidence": {},
    }
    result.update(fields)
    return result


def health_result(*changed: dict[str, Any], order: list[str] | None = None) -> dict[str, Any]:
    """The default checks, all healthy, with ``changed`` checks replacing (or adding to) them."""
    checks = {name: check(name) for name in DEFAULT_CHECKS}
    checks.update({c["name"]: c for c in changed})
    names = order or list(checks)
    statuses = [checks[name]["status"] for name in names]
    worst = "failed" if "failed" in statuses else "degraded" if "degraded" in statuses else "healthy"
    return {
        "overall": worst,
        "checked_at": "2026-11-27T10:00:00Z",
        "duration_ms": 40.0,
        "deadline_s": 10.0,
        "counts": {status: statuses.count(status) for status in ("healthy", "degraded", "failed")},
        "checks": {name: checks[name] for name in names},
    }


def plan_ids(result: dict[str, Any]) -> list[str]:
    return [step["id"] for step in result["plan"]]


def types_of(result: dict[str, Any], key: str = "failures") -> list[str]:
    return [failure["type"] for failure in result[key]]


# One health result per catalogue entry: (type, changed checks, messages, level, plan ids).
CASES: dict[str, tuple[list[dict[str, Any]], list[str], int, list[str]]] = {
    **PROCESS_CASES,
    "web_service_down": (
        [
            check("web", "failed", "refused", error="connection refused"),
            check("web_port", "failed", "refused"),
            check("web_process", "failed", "not_running"),
        ],
        [],
        1,
        ["restart_web", "restore_config", "restore_last_backup", "escalate"],
    ),
    "database_unavailable": (
        [check("database", "failed", "refused", error="connection refused")],
        [],
        1,
        ["restore_database", "escalate"],
    ),
    "configuration_error": (
        [check("config", "failed", "missing", evidence={"path": "/srv/etc/config.yml", "exists": False})],
        [],
        2,
        ["restore_config", "restart_web", "restart_websocket", "escalate"],
    ),
    "redis_unavailable": (
        [check("redis", "failed", "refused", error="Error 111 connecting to 127.0.0.1:6379")],
        [],
        2,
        ["restart_redis", "enable_flash_fallback", "escalate"],
    ),
    "configuration_drift": (
        [
            check(
                "drift",
                "failed",
                "drift",
                kind="file",
                component="config",
                evidence={"drift": {"web.port": {"config": 18010, "desired": 18000}}},
            )
        ],
        [],
        2,
        ["restore_config", "restart_web", "restart_websocket", "escalate"],
    ),
    "redis_write_refused": (
        [
            check(
                "redis",
                "failed",
                "write_refused",
                error="Redis answers but refuses writes: READONLY You can't write against a read only replica.",
            )
        ],
        [],
        2,
        ["restart_redis", "enable_flash_fallback", "escalate"],
    ),
    "websocket_service_down": (
        [check("websocket", "failed", "refused", error="connection refused")],
        [],
        2,
        ["restart_websocket", "enable_flash_fallback", "escalate"],
    ),
    "template_error": (
        [check("templates", "failed", "missing")],
        [],
        3,
        ["restore_templates", "restart_web", "escalate"],
    ),
    "delivery_backlog": (
        [check("redis", "degraded", "backlog", evidence={"pending_queue_length": 5000, "pending_oldest_age_s": 900})],
        [],
        3,
        ["restart_websocket", "drain_backlog_to_flash", "escalate"],
    ),
    "disk_pressure": (
        [check("disk", "failed", "low_space", evidence={"free_percent": 2.0})],
        [],
        3,
        ["prune_logs", "prune_backups", "escalate"],
    ),
    "performance_degradation": (
        [check("web", "degraded", "slow", error="answered in 2400 ms, over the 500 ms threshold")],
        [],
        3,
        ["restart_workers", "escalate"],
    ),
    "unknown": (
        [check("host", "failed", "unreachable", error="no route to host")],
        [],
        3,
        ["escalate"],
    ),
}


def test_every_catalogue_entry_has_a_case() -> None:
    assert set(CASES) == set(CATALOGUE)


@pytest.mark.parametrize("failure_type", list(CASES))
def test_each_type_is_detected_with_its_level_and_plan(failure_type: str) -> None:
    changed, messages, level, steps = CASES[failure_type]
    result = classify(health_result(*changed), messages=messages, host="sandbox-01")
    assert types_of(result) == [failure_type]
    assert result["suppressed"] == []
    assert result["primary"] == failure_type
    assert result["level"] == level
    assert result["level_name"] == LEVELS[level]["name"]
    assert result["response_minutes"] == LEVELS[level]["response_minutes"]
    assert plan_ids(result) == steps
    assert result["failures"][0]["plan"] == CATALOGUE[failure_type]["plan"] == steps
    assert sorted(result["failures"][0]["evidence"]["checks"]) == sorted(c["name"] for c in changed)
    assert result["summary"].startswith(f"sandbox-01: {failure_type}, level {level} ({LEVELS[level]['name']}")
    assert not result["healthy"]


def test_the_websocket_summary_reads_like_the_design() -> None:
    result = classify(
        health_result(check("websocket", "failed", "refused", error="connection refused")), host="sandbox-01"
    )
    assert result["summary"] == (
        "sandbox-01: websocket_service_down, level 2 (high, respond within 15 minutes): "
        "websocket check failed (connection refused) while web is healthy; "
        "plan: restart websocket \u2192 fall back to flash messages \u2192 escalate"
    )


def test_performance_is_level_4_when_only_a_non_critical_check_is_slow() -> None:
    slow = check("metrics", "degraded", "slow", critical=False)
    result = classify(health_result(slow))
    assert types_of(result) == ["performance_degradation"]
    assert result["level"] == 4 and result["level_name"] == "low" and result["response"] == "within 60 minutes"
    both = classify(health_result(slow, check("web", "degraded", "slow")))
    assert both["level"] == 3
    assert both["failures"][0]["evidence"]["signals"] == ["check_slow", "critical_check_slow"]


@pytest.mark.parametrize(
    ("message", "failure_type"),
    [
        (
            "notification-web                 FATAL     Exited too quickly (process log may have details)",
            "web_service_down",
        ),
        ("GET /api/notifications -> 500 Internal Server Error", "web_service_down"),
        ("sqlite3.OperationalError: database is locked", "database_unavailable"),
        ("config.yml: mode 'websockets' is not one of websocket, legacy; set mode: websocket", "configuration_error"),
        (
            "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.",
            "redis_unavailable",
        ),
        ("notification-websocket           EXITED    Nov 27 10:00 AM", "websocket_service_down"),
        ("jinja2.exceptions.TemplateNotFound: index.html", "template_error"),
        ("pending notifications too old: backlog of 4211 since 10:02", "delivery_backlog"),
        ("OSError: [Errno 28] No space left on device: '/srv/backups/x.tar.gz'", "disk_pressure"),
        ("[2026-11-27 10:00:00 +0000] [42] [CRITICAL] WORKER TIMEOUT (pid:43)", "performance_degradation"),
    ],
)
def test_messages_alone_identify_a_type(message: str, failure_type: str) -> None:
    result = classify(health_result(), messages=["user alice logged in", message])
    assert types_of(result) == [failure_type]
    assert result["failures"][0]["evidence"]["messages"] == [" ".join(message.split())], "whitespace folded"
    assert result["failures"][0]["evidence"]["checks"] == []


def test_messages_that_match_nothing_leave_a_healthy_result() -> None:
    result = classify(health_result(), messages=["user alice logged in", "GET / 200"])
    assert result["healthy"] and result["failures"] == []


def test_web_health_evidence_names_the_failing_component() -> None:
    web = check(
        "web",
        "degraded",
        "bad_answer",
        error="status is 'degraded', expected 'healthy'",
        evidence={"status_code": 200, "json": {"status": "degraded", "components": {"redis": {"status": "failed"}}}},
    )
    result = classify(health_result(web, check("redis", "failed", "refused")))
    assert types_of(result) == ["redis_unavailable"]
    assert result["failures"][0]["evidence"]["checks"] == ["redis", "web"]
    templates = check(
        "web",
        "degraded",
        "bad_answer",
        evidence={
            "json": {"status": "degraded", "components": {"web": {"error": "no index.html in templates_dir /x"}}}
        },
    )
    assert types_of(classify(health_result(templates))) == ["template_error"]
    reload_failed = check("web", "degraded", "bad_answer", error="config reload failed: config.yml: mode ...")
    assert types_of(classify(health_result(reload_failed))) == ["configuration_error"]


# -- escalation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "users", "expected"),
    [
        (3, None, 3),
        (3, 0, 3),
        (3, 99, 3),
        (3, 100, 2),
        (3, 999, 2),
        (3, 1000, 1),
        (4, 1000, 2),
        (2, 100, 1),
        (2, 5000, 1),
        (1, 5000, 1),
        (3, "150", 2),
    ],
)
def test_escalation_by_count(level: int, users: Any, expected: int) -> None:
    assert escalate_level(level, users) == expected


def test_escalation_by_a_list_counts_unique_ids() -> None:
    ninety_nine_twice = [f"user-{i}" for i in range(99)] * 2
    assert count_affected_users(ninety_nine_twice) == 99
    assert escalate_level(3, ninety_nine_twice) == 3
    assert escalate_level(3, [*ninety_nine_twice, "user-99"]) == 2
    assert count_affected_users([1, "1", 2]) == 2, "an id counts once whether given as a number or a string"
    assert count_affected_users(list(range(1500)) + list(range(1500))) == 1500
    assert escalate_level(4, list(range(1500))) == 2


def test_classify_raises_levels_by_affected_users() -> None:
    changed, _, _, _ = CASES["template_error"]
    by_list = classify(health_result(*changed), affected_users=[f"u{i % 150}" for i in range(400)])
    assert by_list["affected_users"] == 150
    assert by_list["level"] == 2
    assert by_list["failures"][0]["level_basis"] == ["base level 3", "raised to 2 for 150 affected users"]
    by_count = classify(health_result(*changed), affected_users=1000)
    assert by_count["level"] == 1 and by_count["response"] == "immediate"
    unknown = classify(health_result(check("host", "failed", "error")), affected_users=[str(i) for i in range(2000)])
    assert types_of(unknown) == ["unknown"] and unknown["level"] == 1


@pytest.mark.parametrize("bad", [-3, True, 1.5, "many", [None], [["a"]], ["ok", ""], {"alice": 1}])
def test_bad_affected_users_name_the_argument(bad: Any) -> None:
    with pytest.raises(CatalogueError, match="affected_users must be a non-negative count or a list of user ids"):
        count_affected_users(bad)
    with pytest.raises(CatalogueError, match="affected_users"):
        classify(health_result(), affected_users=bad)


def test_the_error_message_shows_the_bad_value() -> None:
    with pytest.raises(CatalogueError) as info:
        escalate_level(2, -3)
    assert str(info.value) == "affected_users must be a non-negative count or a list of user ids, got -3"
    assert isinstance(info.value, ValueError)


# -- several failures, determinism ---------------------------------------------------------------------------

SEVERAL = [
    check("redis", "failed", "refused", error="connection refused"),
    check("templates", "failed", "missing"),
    check("disk", "degraded", "low_space"),
    check("web", "degraded", "slow"),
]


def test_several_failures_give_the_most_severe_level_and_one_merged_plan() -> None:
    result = classify(health_result(*SEVERAL), messages=["OSError: [Errno 28] No space left on device"])
    assert types_of(result) == [
        "redis_unavailable",
        "template_error",
        "disk_pressure",
        "performance_degradation",
    ]
    assert result["level"] == 2 and result["primary"] == "redis_unavailable"
    assert plan_ids(result) == [
        "restart_redis",
        "enable_flash_fallback",
        "restore_templates",
        "restart_web",
        "prune_logs",
        "prune_backups",
        "restart_workers",
        "escalate",
    ]
    assert len(plan_ids(result)) == len(set(plan_ids(result)))
    escalate = result["plan"][-1]
    assert escalate["for_types"] == types_of(result)
    assert escalate["automatic"] is False
    assert (
        "also template_error (level 3), disk_pressure (level 3), performance_degradation (level 3)"
        in (result["summary"])
    )


def test_merged_plan_first_occurrence_wins() -> None:
    plan = merge_plans(["delivery_backlog", "websocket_service_down", "delivery_backlog"])
    assert [step["id"] for step in plan] == [
        "restart_websocket",
        "enable_flash_fallback",
        "drain_backlog_to_flash",
        "escalate",
    ]
    assert plan[0]["for_types"] == ["websocket_service_down", "delivery_backlog"]
    kept = merge_plans(["delivery_backlog", "websocket_service_down"], keep_order=True)
    assert [step["id"] for step in kept][:2] == ["restart_websocket", "drain_backlog_to_flash"]
    step_keys = {"id", "label", "action", "description", "automatic", "touches_data"}
    assert set(plan[0]) == step_keys | {"fallback", "for_types"}


@pytest.mark.parametrize("seed", range(5))
def test_same_input_same_output_whatever_the_order(seed: int) -> None:
    messages = ["OSError: [Errno 28] No space left on device", "jinja2.exceptions.TemplateNotFound: x.html"]
    reference = classify(health_result(*SEVERAL), messages=messages, affected_users=["b", "a", "b"])
    shuffled_names = list(health_result(*SEVERAL)["checks"])
    random.Random(seed).shuffle(shuffled_names)
    shuffled_messages = list(reversed(messages)) if seed % 2 else messages
    again = classify(
        health_result(*reversed(SEVERAL), order=shuffled_names),
        messages=shuffled_messages,
        affected_users=["a", "b"],
    )
    assert json.dumps(again, sort_keys=True) == json.dumps(reference, sort_keys=True)
    assert again == reference


# -- suppression ---------------------------------------------------------------------------------------------


def test_redis_explains_websocket_and_backlog() -> None:
    result = classify(
        health_result(
            check("redis", "failed", "refused"),
            check("websocket", "failed", "bad_answer", error="round trip failed"),
        ),
        messages=["pending notifications too old: backlog of 4211"],
    )
    assert types_of(result) == ["redis_unavailable"]
    assert result["failures"][0]["explains"] == ["websocket_service_down", "delivery_backlog"]
    assert types_of(result, "suppressed") == ["websocket_service_down", "delivery_backlog"]
    assert result["suppressed"][0]["explained_by"] == ["redis_unavailable"]
    assert result["suppressed"][1]["explained_by"] == ["redis_unavailable", "websocket_service_down"]
    assert plan_ids(result) == ["restart_redis", "enable_flash_fallback", "escalate"]
    assert "explains websocket_service_down, delivery_backlog" in result["summary"]


def test_database_explains_web_5xx_but_not_a_dead_web_process() -> None:
    database = check("database", "failed", "error", error="OperationalError: unable to open database file")
    web_503 = check("web", "failed", "bad_status", evidence={"status_code": 503})
    explained = classify(health_result(database, web_503))
    assert types_of(explained) == ["database_unavailable"]
    assert types_of(explained, "suppressed") == ["web_service_down"]
    both = classify(health_result(database, check("web", "failed", "refused")))
    assert types_of(both) == ["web_service_down", "database_unavailable"]
    assert plan_ids(both) == ["restart_web", "restore_config", "restore_last_backup", "restore_database", "escalate"]


def test_the_root_cause_takes_the_level_of_what_it_explains() -> None:
    web_500 = check("web", "failed", "bad_status", error="HTTP 500", evidence={"status_code": 500})
    result = classify(health_result(web_500, check("templates", "failed", "missing")))
    assert types_of(result) == ["template_error"] and types_of(result, "suppressed") == ["web_service_down"]
    assert result["level"] == 1
    assert result["failures"][0]["base_level"] == 3
    assert result["failures"][0]["level_basis"] == [
        "base level 3",
        "takes level 1 from web_service_down, which it explains",
    ]
    assert plan_ids(result) == ["restore_templates", "restart_web", "escalate"]


def test_web_down_suppresses_websocket_down() -> None:
    result = classify(health_result(check("web", "failed", "refused"), check("websocket", "failed", "refused")))
    assert types_of(result) == ["web_service_down"]
    assert types_of(result, "suppressed") == ["websocket_service_down"]


def test_suppression_chains_to_the_root_cause() -> None:
    result = classify(
        health_result(
            check("config", "failed", "missing"),
            check("web", "failed", "refused"),
            check("websocket", "failed", "refused"),
        )
    )
    assert types_of(result) == ["configuration_error"]
    assert types_of(result, "suppressed") == ["web_service_down", "websocket_service_down"]
    assert result["level"] == 1
    disk = classify(
        health_result(check("disk", "failed", "low_space"), check("database", "failed", "error")),
        messages=["sqlite3.OperationalError: database or disk is full"],
    )
    assert types_of(disk) == ["disk_pressure"] and types_of(disk, "suppressed") == ["database_unavailable"]
    assert disk["level"] == 1


# -- unknown and healthy -------------------------------------------------------------------------------------


def test_unclaimed_checks_give_unknown_next_to_known_types() -> None:
    result = classify(
        health_result(check("websocket", "failed", "refused"), check("host", "degraded", "error", error="load 40"))
    )
    assert types_of(result) == ["websocket_service_down", "unknown"]
    assert result["failures"][1]["evidence"] == {"checks": ["host"], "messages": [], "signals": ["unclaimed_check"]}
    assert plan_ids(result) == ["restart_websocket", "enable_flash_fallback", "escalate"]
    assert result["plan"][-1]["for_types"] == ["websocket_service_down", "unknown"]


def test_a_degraded_websocket_round_trip_is_unknown() -> None:
    result = classify(health_result(check("websocket", "degraded", "bad_answer")))
    assert types_of(result) == ["unknown"]


def test_healthy_input() -> None:
    result = classify(health_result(), host="sandbox-01")
    assert result["healthy"] is True
    assert result["level"] is None and result["level_name"] == "none"
    assert result["response_minutes"] is None and result["response"] == "none"
    assert result["plan"] == [] and result["failures"] == [] and result["suppressed"] == []
    assert result["primary"] is None
    assert result["summary"] == "sandbox-01: healthy, no failure detected (11 checks)"
    assert result["counts"] == {"healthy": 11, "degraded": 0, "failed": 0}


def test_legacy_mode_disabled_websocket_checks_are_healthy() -> None:
    disabled = [
        check(name, evidence={"disabled": True}) for name in ("websocket", "websocket_port", "websocket_process")
    ]
    assert classify(health_result(*disabled))["healthy"]


@pytest.mark.parametrize(
    ("previous", "changed", "trend"),
    [
        (None, [], "unchanged"),
        (None, CASES["template_error"][0], "new"),
        (4, CASES["template_error"][0], "escalated"),
        (3, CASES["template_error"][0], "unchanged"),
        (1, CASES["template_error"][0], "improved"),
        (2, [], "resolved"),
    ],
)
def test_trend_against_the_previous_level(previous: int | None, changed: list[dict[str, Any]], trend: str) -> None:
    result = classify(health_result(*changed), previous_level=previous)
    assert result["trend"] == trend and result["previous_level"] == previous


def test_a_registered_result_nesting_the_health_result_is_accepted() -> None:
    nested = {"changed": False, "health": health_result(check("redis", "failed", "refused"))}
    assert types_of(classify(nested)) == ["redis_unavailable"]


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: classify(["web"]), "health must be a health result"),
        (lambda: classify({"overall": "healthy"}), "health must be a health result"),
        (lambda: classify({"checks": {"web": "up"}}), "health.checks.web must be a dict"),
        (lambda: classify({"checks": {"web": {"status": "ok"}}}), "health.checks.web.status must be one of"),
        (lambda: classify(health_result(), messages=42), "messages must be a list of strings"),
        (lambda: classify(health_result(), messages=["ok", {"line": 1}]), "messages must be a list of strings; item 1"),
        (lambda: classify(health_result(), previous_level=7), "previous_level must be a level"),
        (lambda: classify(health_result(), host=3), "host must be a string"),
        (lambda: level_info(0), "level must be a level 1"),
        (lambda: level_info("critical"), "level must be a level 1"),
        (lambda: escalate_level(True, 1), "level must be a level 1"),
        (lambda: merge_plans(["redis_unavailable", "cosmic_rays"]), "'cosmic_rays' is not a failure type"),
        (lambda: merge_plans({"redis_unavailable": 1}), "types must be a list"),
    ],
)
def test_bad_input_names_the_argument(call: Any, message: str) -> None:
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# -- the data ------------------------------------------------------------------------------------------------


def test_levels_and_level_info() -> None:
    assert [(level_info(n)["name"], level_info(n)["response_minutes"]) for n in (1, 2, 3, 4)] == [
        ("critical", 0),
        ("high", 15),
        ("medium", 30),
        ("low", 60),
    ]
    assert level_info(1)["response"] == "immediate" and level_info(2)["response"] == "within 15 minutes"
    assert level_info(None) == {"level": None, "name": "none", "response_minutes": None, "response": "none"}
    level_info(1)["name"] = "changed"
    assert LEVELS[1]["name"] == "critical", "level_info returns a copy"


def test_catalogue_as_dict_is_json_and_complete() -> None:
    data = catalogue_as_dict()
    assert json.loads(json.dumps(data)) == data
    assert [entry["type"] for entry in data["types"]] == list(CATALOGUE)
    assert [level["level"] for level in data["levels"]] == [1, 2, 3, 4]
    assert data["escalation"]["thresholds"] == [{"min_users": 1000, "raise_by": 2}, {"min_users": 100, "raise_by": 1}]
    assert data["vocabulary"]["components"] == list(COMPONENTS) and data["types"][0]["component"] == "web"
    data["types"][0]["plan"].append("mutated")
    assert "mutated" not in CATALOGUE[data["types"][0]["type"]]["plan"], "a copy, not the live data"


def test_step_invariants() -> None:
    referenced = {step for entry in CATALOGUE.values() for step in entry["plan"]}
    assert referenced == set(STEPS), "every step is used and every used step is defined"
    for step_id, step in STEPS.items():
        assert not (step["touches_data"] and step["automatic"]) or step.get("fallback"), step_id
        assert ("playbook" in step["action"]) != ("notify" in step["action"]), step_id
    assert STEPS["escalate"]["automatic"] is False
    assert STEPS["restore_database"] == {**STEPS["restore_database"], "automatic": False, "touches_data": True}
    assert [step_id for step_id, step in STEPS.items() if step.get("fallback")] == ["enable_flash_fallback"]
    for entry in CATALOGUE.values():
        assert entry["plan"][-1] == "escalate"


def test_every_step_of_every_plan_is_real() -> None:
    """A plan names only steps that exist, and every step's playbook is a playbook of this repository that
    accepts the step's extra vars (its argument spec): no plan promises what this version cannot do."""
    from notification_emergency.inputs import validate_inputs

    for name, entry in CATALOGUE.items():
        for step_id in entry["plan"]:
            action = STEPS[step_id]["action"]
            if "notify" in action:
                continue
            playbook = ROOT / "playbooks" / action["playbook"]
            assert playbook.is_file(), f"{name}: step {step_id} names {action['playbook']}, which does not exist"
            validate_inputs(action["playbook"], dict(action.get("extra_vars") or {}))


def test_an_inconsistent_catalogue_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STEPS, "bad", {**STEPS["restore_database"], "automatic": True})
    with pytest.raises(CatalogueError, match="step bad touches data and must not be automatic"):
        catalogue._validate_catalogue()
    monkeypatch.delitem(STEPS, "bad")
    cyclic = {**CATALOGUE["delivery_backlog"], "explains": [{"type": "redis_unavailable"}]}
    monkeypatch.setitem(CATALOGUE, "delivery_backlog", cyclic)
    with pytest.raises(CatalogueError, match="explains cycle"):
        catalogue._validate_catalogue()
    monkeypatch.setitem(CATALOGUE, "delivery_backlog", {**cyclic, "explains": [], "component": "cache"})
    with pytest.raises(CatalogueError, match="delivery_backlog: component cache is not one of web, websocket"):
        catalogue._validate_catalogue()
    signal = {"id": "cpu", "description": "cpu", "check": {"component": ["cpu"]}}
    monkeypatch.setitem(CATALOGUE, "delivery_backlog", {**cyclic, "explains": [], "signals": [signal]})
    with pytest.raises(CatalogueError, match="delivery_backlog/cpu: a matched component is not one of web,"):
        catalogue._validate_catalogue()


def test_health_summary() -> None:
    result = health_result(check("websocket", "failed", "refused"), check("disk", "degraded", "low_space"))
    assert health_summary(result) == "healthy 9, degraded 1, failed 1: disk (low_space), websocket (refused)"
    assert health_summary(health_result()) == "healthy 11, degraded 0, failed 0"
