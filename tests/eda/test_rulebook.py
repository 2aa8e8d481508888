"""rulebooks/notification_alerts.yml: its structure (fast), its source plugins (fast, real HTTP), and the
rulebook for real (slow): ansible-rulebook started with rulebooks/run_rulebook.sh against a private sandbox
host, fed Alertmanager alerts and webhook requests on its ports."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
import yaml
from ansible_rulebook.json_generator import generate_dict_rulesets
from ansible_rulebook.rules_parser import parse_rule_sets
from ansible_rulebook.util import substitute_variables
from ansible_rulebook.validators import Validate

from notification_emergency.inputs import validate_inputs
from tests.ansible.sandbox import Sandbox, SandboxHost, parse_recap, processes_under
from tests.conftest import ROOT, VENV_BIN, free_port_block

RULEBOOK = ROOT / "rulebooks" / "notification_alerts.yml"
SOURCES = ROOT / "rulebooks" / "sources"
ALERTMANAGER_RULESET = "Recover the notification service from Alertmanager alerts"
WEBHOOK_RULESET = "Recover or check the notification service from a generic webhook"
RECOVER_PLAY = "PLAY [Recover the notification service automatically]"
HEALTH_PLAY = "PLAY [Check and classify the health of the notification service]"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def alertmanager_body(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook notification (version 4) carrying ``alerts``."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="test"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "eda",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def alert(alertname: str, host: str | None, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, **({"host": host} if host else {}), **labels},
        "annotations": {"summary": f"{alertname} on {host}"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": f"{alertname}-{host}",
    }


# An event each rule should take, shaped as the sources put them on the queue.
SAMPLE_EVENTS = {
    ALERTMANAGER_RULESET: {
        "alert": alert("NotificationWebSocketDown", "sandbox-01", severity="critical"),
        "labels": {"alertname": "NotificationWebSocketDown", "host": "sandbox-01"},
        "status": "firing",
    },
    WEBHOOK_RULESET: {"payload": {"host": "sandbox-01", "action": "recover"}, "meta": {"endpoint": "hook"}},
}


def load_rulebook() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = yaml.safe_load(RULEBOOK.read_text())
    return data


def load_source(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"eda_source_{name}", SOURCES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- structure (fast) -------------------------------------------------------------------------------------


def test_rulebook_is_valid_and_compiles() -> None:
    data = load_rulebook()
    Validate.rulebook(data)  # ansible-rulebook's own JSON schema
    rulesets = parse_rule_sets(data, {})
    generate_dict_rulesets(rulesets, {})  # every condition compiles to the rules engine's AST
    assert [ruleset.name for ruleset in rulesets] == [ALERTMANAGER_RULESET, WEBHOOK_RULESET]
    for ruleset in data:
        for rule in ruleset["rules"]:
            assert rule["throttle"]["group_by_attributes"], rule["name"]
        source_types = {key for source in ruleset["sources"] for key in source if key != "name"}
        assert source_types <= {"notification_alertmanager", "notification_webhook"}
        for source_type in source_types:
            assert (SOURCES / f"{source_type}.py").is_file()


def test_every_action_runs_a_project_playbook_with_inputs_it_accepts() -> None:
    seen = set()
    for ruleset in load_rulebook():
        event = SAMPLE_EVENTS[ruleset["name"]]
        for rule in ruleset["rules"]:
            for action in rule["actions"]:
                assert set(action) == {"run_playbook"}, rule["name"]
                args = action["run_playbook"]
                playbook = ROOT / args["name"]
                assert playbook.is_file(), f"{rule['name']}: no {args['name']}"
                assert playbook.parent == ROOT / "playbooks"
                rendered = substitute_variables(args.get("extra_vars", {}), {"event": event})
                validate_inputs(playbook.name, rendered)  # the playbook's own argument spec
                seen.add((playbook.name, tuple(sorted(rendered))))
    assert ("auto_recover.yml", ("recover_limit",)) in seen
    assert ("health_check.yml", ("notification_target",)) in seen


def test_the_host_of_an_alert_becomes_the_recover_limit() -> None:
    rules = {rule["name"]: rule for ruleset in load_rulebook() for rule in ruleset["rules"]}
    recover = rules["Recover a host on a firing notification-service alert"]["actions"][0]["run_playbook"]
    event = SAMPLE_EVENTS[ALERTMANAGER_RULESET]
    assert substitute_variables(recover["extra_vars"], {"event": event}) == {"recover_limit": "sandbox-01"}


# -- source plugins over real HTTP (fast) -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _sources(port: int) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """Both source plugins serving on ``port`` (Alertmanager) and ``port + 1`` (webhook), token ``s3cret``;
    yields an HTTP session and, once they stop, fills the mapping with the events each put on its queue."""
    import aiohttp

    alertmanager, webhook = load_source("notification_alertmanager"), load_source("notification_webhook")
    am_queue: asyncio.Queue[Any] = asyncio.Queue()
    hook_queue: asyncio.Queue[Any] = asyncio.Queue()
    tasks = [
        asyncio.create_task(alertmanager.main(am_queue, {"port": port, "token": "s3cret"})),
        asyncio.create_task(webhook.main(hook_queue, {"port": port + 1, "token": "s3cret"})),
    ]
    queued: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port + 1}/"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            yield session, queued
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        queued["alert_events"] = [am_queue.get_nowait() for _ in range(am_queue.qsize())]
        queued["hook_events"] = [hook_queue.get_nowait() for _ in range(hook_queue.qsize())]


async def _exercise_sources(port: int) -> dict[str, Any]:
    auth = {"Authorization": "Bearer s3cret"}
    statuses: dict[str, int] = {}
    async with _sources(port) as (session, queued):
        am, hook = f"http://127.0.0.1:{port}/alerts", f"http://127.0.0.1:{port + 1}/hook"
        body = alertmanager_body(alert("NotificationWebDown", "h1"), alert("Other", "h2", status="resolved"))
        for name, url, kwargs in [
            ("am_ok", am, {"json": body, "headers": auth}),
            ("am_no_token", am, {"json": body}),
            ("am_bad_token", am, {"json": body, "headers": {"Authorization": "Bearer nope"}}),
            ("am_not_json", am, {"data": b"{not json", "headers": auth}),
            ("am_no_alerts", am, {"json": {"status": "firing"}, "headers": auth}),
            ("hook_ok", hook, {"json": {"host": "h1", "action": "recover"}, "headers": auth}),
            ("hook_no_token", hook, {"json": {"host": "h1"}}),
            ("hook_not_json", hook, {"data": b"\xff\xfe", "headers": auth}),
            ("hook_not_object", hook, {"json": [1, 2], "headers": auth}),
        ]:
            async with session.post(url, **kwargs) as response:
                statuses[name] = response.status
    return {"statuses": statuses, **queued}


def test_source_plugins_check_the_token_and_the_body() -> None:
    result = asyncio.run(_exercise_sources(free_port_block(2, start=29500)))
    assert result["statuses"] == {
        "am_ok": 200,
        "am_no_token": 401,
        "am_bad_token": 401,
        "am_not_json": 400,
        "am_no_alerts": 400,
        "hook_ok": 200,
        "hook_no_token": 401,
        "hook_not_json": 400,
        "hook_not_object": 400,
    }
    # One event per alert, each with its own status; nothing from the refused requests.
    events = result["alert_events"]
    assert [(e["labels"]["alertname"], e["status"]) for e in events] == [
        ("NotificationWebDown", "firing"),
        ("Other", "resolved"),
    ]
    assert all(e["alert"]["labels"] == e["labels"] for e in events)
    assert "hosts" not in events[0]["meta"]  # no host limit: auto_recover.yml runs on the control node
    [hook_event] = result["hook_events"]
    assert hook_event["payload"] == {"host": "h1", "action": "recover"}
    assert hook_event["meta"]["endpoint"] == "hook"
    assert "authorization" not in {name.lower() for name in hook_event["meta"]["headers"]}


async def _post_hostile(port: int, strings: list[str]) -> dict[str, Any]:
    """Every hostile string as an alert's host label, alert name and annotation, and as a webhook's host and
    reason, through both source plugins over real HTTP."""
    import json

    headers = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
    statuses: list[int] = []
    async with _sources(port) as (session, queued):
        for text in strings:
            firing = alert(text, text, severity="critical")
            firing["annotations"] = {"summary": text}
            for url, body in (
                (f"http://127.0.0.1:{port}/alerts", alertmanager_body(firing)),
                (f"http://127.0.0.1:{port + 1}/hook", {"host": text, "action": "recover", "reason": text}),
            ):
                # lone surrogates as \ud800 escapes: valid JSON, as a hostile sender would write them
                data = json.dumps(body, ensure_ascii=True).encode()
                async with session.post(url, data=data, headers=headers) as response:
                    statuses.append(response.status)
    return {"statuses": statuses, **queued}


def test_hostile_alert_text_stays_data(tmp_path: Path) -> None:
    """Alert text is data: every hostile string (tests/hostile.py) as an alert's labels and annotation and as
    a webhook's fields reaches the rulebook's events exactly, never a 5xx; and what the rules pass to a playbook
    (rendered by ansible-rulebook's own substitute_variables) is a host name that passed the rule's pattern, or
    nothing. The rest of the event (ansible_eda) is never read by the playbooks; the slow test below proves a
    template in it does not run."""
    from tests.hostile import hostile_strings

    canary = tmp_path / "canary"
    strings = [text for text in hostile_strings(canary) if text and len(text) < 20_000]
    result = asyncio.run(_post_hostile(free_port_block(2, start=29600), strings))
    assert set(result["statuses"]) == {200}, sorted(set(result["statuses"]))
    alerts, hooks = result["alert_events"], result["hook_events"]
    assert [e["labels"]["host"] for e in alerts] == strings
    assert [e["alert"]["annotations"]["summary"] for e in alerts] == strings
    assert [e["payload"]["reason"] for e in hooks] == strings
    rules = {rule["name"]: rule for ruleset in load_rulebook() for rule in ruleset["rules"]}
    pattern = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")  # the rules' own: event...host is match("^[A-Z...{1,253}$")
    assert all(pattern.pattern in rule["condition"] for name, rule in rules.items() if "names none" not in name)
    recover = rules["Recover a host on a firing notification-service alert"]["actions"][0]["run_playbook"]
    check = rules["Check a host on any other request that names it"]["actions"][0]["run_playbook"]
    passed = 0
    for event in alerts:
        if pattern.match(event["labels"]["host"]):
            passed += 1
            rendered = substitute_variables(recover["extra_vars"], {"event": event})
            assert rendered == {"recover_limit": event["labels"]["host"]}
            validate_inputs("auto_recover.yml", rendered)
    for event in hooks:
        if pattern.match(event["payload"]["host"]):
            rendered = substitute_variables(check["extra_vars"], {"event": event})
            assert rendered == {"notification_target": event["payload"]["host"]}
    assert 0 < passed < len(strings) // 4, passed  # plain names pass; every string with braces, $ or ; does not
    assert not canary.exists()


# -- the rulebook for real (slow) -------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (ansible-runner starts ansible-playbook in a session of its own)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Rulebook:
    proc: subprocess.Popen[bytes]
    log: Path
    alertmanager_url: str
    webhook_url: str
    token: str
    store: Path
    host: str
    sandbox: SandboxHost

    def output(self) -> str:
        return ANSI.sub("", self.log.read_text(errors="replace"))

    def post(self, url: str, body: Any = None, *, data: bytes | None = None, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        response = requests.post(url, json=body if data is None else None, data=data, headers=headers, timeout=10)
        return response.status_code

    def wait_for(self, what: str, predicate: Any, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while True:
            output = self.output()
            if predicate(output):
                return output
            if self.proc.poll() is not None:
                raise AssertionError(f"ansible-rulebook exited ({self.proc.returncode}):\n{output[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout}s:\n{output[-4000:]}")
            time.sleep(0.5)

    def audit(self) -> list[dict[str, Any]]:
        if not self.store.exists():
            return []
        with sqlite3.connect(self.store) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute("SELECT * FROM audit_log ORDER BY id")]


def recaps(output: str, play: str) -> list[dict[str, dict[str, int]]]:
    """The PLAY RECAP of each run of ``play`` in the rulebook's output."""
    return [parse_recap(chunk.split("\nPLAY [")[0]) for chunk in output.split(play)[1:]]


@pytest.fixture(scope="module")
def rulebook(tmp_path_factory: pytest.TempPathFactory, sandbox_factory: Callable[..., Sandbox]) -> Iterator[Rulebook]:
    work = tmp_path_factory.mktemp("eda")
    box = sandbox_factory("eda-box", ports=12)
    base = box.base_port  # sandbox host: base..base+2; sources: base+10, base+11
    up = box.playbook("sandbox_up.yml")
    assert up.rc == 0, up.output[-3000:]
    host = "sandbox-01"
    (work / "tmp").mkdir()
    (work / "state").mkdir()
    token = "eda-test-token"
    variables = work / "vars.yml"
    variables.write_text(
        yaml.safe_dump(
            {
                "NOTIFICATION_EDA_ALERTMANAGER_PORT": base + 10,
                "NOTIFICATION_EDA_WEBHOOK_PORT": base + 11,
                "NOTIFICATION_EDA_TOKEN": token,
            }
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTIFICATION_EMERGENCY_", "ANSIBLE_"))},
        "TMPDIR": str(work / "tmp"),  # ansible-rulebook's run directories and the project tarball
        "NOTIFICATION_EMERGENCY_STATE_DIR": str(work / "state"),
        "NOTIFICATION_EMERGENCY_STORE": str(work / "state" / "events.db"),
        "PYTHONUNBUFFERED": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    }
    log = work / "rulebook.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "rulebooks" / "run_rulebook.sh"), "-i", str(box.inventory), "--vars", str(variables)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = Rulebook(
        proc,
        log,
        f"http://127.0.0.1:{base + 10}/alerts",
        f"http://127.0.0.1:{base + 11}/hook",
        token,
        work / "state" / "events.db",
        host,
        SandboxHost(box, host),
    )
    try:
        for url in (handle.alertmanager_url, handle.webhook_url):
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(url, timeout=2).raise_for_status()
                    break
                except requests.RequestException:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"the rulebook's sources did not start:\n{handle.output()}") from None
                    time.sleep(0.3)
        yield handle
    finally:
        # Stop ansible-rulebook and everything it started (ansible-playbook runs in sessions of their own),
        # whatever happened; then anything still running from this test's directories.
        below = descendants(proc.pid)
        kill({proc.pid} | below, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        kill({proc.pid} | below | descendants(proc.pid), signal.SIGKILL)
        proc.wait(timeout=15)
        kill({pid for pid, _ in processes_under(work / "tmp")}, signal.SIGKILL)
        down = box.playbook("sandbox_down.yml")
        assert down.rc == 0, down.output[-3000:]
        assert not processes_under(work), processes_under(work)
        assert not processes_under(box.workdir), processes_under(box.workdir)


def test_rulebook_maps_alerts_and_requests_to_playbooks(rulebook: Rulebook) -> None:
    host = rulebook.host
    # Refused input changes nothing, and the rulebook keeps running.
    assert rulebook.post(rulebook.alertmanager_url, data=b"{not json") == 400
    assert rulebook.post(rulebook.alertmanager_url, {"no": "alerts"}) == 400
    assert rulebook.post(rulebook.alertmanager_url, alertmanager_body(alert("X", host)), token="wrong") == 401
    assert rulebook.post(rulebook.webhook_url, data=b"not json") == 400

    # The WebSocket service goes down; Alertmanager fires. The same firing alert twice within the throttle
    # window, then a resolved alert for the same host (the ruleset handles its events in order, so when that
    # one's health check has run, both firing alerts have been seen).
    rulebook.sandbox.supervisorctl("stop", "notification-websocket")
    assert rulebook.sandbox.health()["status"] != "healthy"
    firing = alertmanager_body(alert("NotificationWebSocketDown", host, severity="critical"))
    # Alert text is data: a template in an annotation (ansible-rulebook hands the whole event to the playbook
    # as ansible_eda) or in a webhook field must never run. The canary would be created if it did.
    canary = rulebook.store.parent / "eda-canary"
    hostile = f"{{{{ lookup('pipe', 'touch {canary}') }}}} {{% endraw %}}{{{{ notification_service_secret_key }}}}"
    firing["alerts"][0]["annotations"] = {"summary": hostile, "description": "$(touch " + str(canary) + ")"}
    assert rulebook.post(rulebook.alertmanager_url, firing) == 200
    assert rulebook.post(rulebook.alertmanager_url, firing) == 200
    resolved = alertmanager_body(alert("NotificationWebSocketDown", host, status="resolved"), status="resolved")
    assert rulebook.post(rulebook.alertmanager_url, resolved) == 200
    output = rulebook.wait_for(
        "health check after the resolved alert", lambda out: any(host in recap for recap in recaps(out, HEALTH_PLAY))
    )

    # auto_recover.yml ran once (throttled per host), on the control node, for that host only.
    [recover] = recaps(output, RECOVER_PLAY)
    assert recover.get("localhost", {}).get("ok", 0) > 0, output[-4000:]
    assert recover["localhost"]["failed"] == 0, output[-4000:]
    started = [row for row in rulebook.audit() if row["action"] == "auto-recover started"]
    assert [row["target"] for row in started] == [host], rulebook.audit()
    # ... and it really recovered the host (the engine's playbook runs nested in ansible-rulebook's run).
    actions = [row["action"] for row in rulebook.audit()]
    assert "auto-recover successful" in actions and "auto-recover:restart_websocket successful" in actions, actions
    assert rulebook.sandbox.health()["status"] == "healthy"
    # The resolved alert went to health_check.yml, on that host; the throttled alert did not fall through.
    [health] = recaps(output, HEALTH_PLAY)
    assert set(health) == {host} and health[host]["failed"] == 0, output[-4000:]

    # A generic webhook request naming the host: a health check of that host.
    request = {"host": host, "reason": "a user reports missing notifications", "detail": hostile}
    assert rulebook.post(rulebook.webhook_url, request) == 200
    output = rulebook.wait_for(
        "health check after the webhook request",
        lambda out: len(recaps(out, HEALTH_PLAY)) == 2 and host in recaps(out, HEALTH_PLAY)[1],
    )
    assert set(recaps(output, HEALTH_PLAY)[1]) == {host}
    assert len(recaps(output, RECOVER_PLAY)) == 1
    assert rulebook.proc.poll() is None, "ansible-rulebook stopped"
    assert not canary.exists(), "a template in an alert ran"
