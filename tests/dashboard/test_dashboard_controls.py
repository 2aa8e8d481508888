"""The dashboard's smaller controls over HTTP, for real (issue 22, part 5): backup, drain the backlog and
restore a backup by name (inputs checked, each refused to viewers and without the CSRF token, each behind the
same confirmation), cancelling a running action (a real playbook run on the shared sandbox host, stopped by
ansible-runner and recorded ``canceled``), the recent actions read back from the store after a restart, and
a host's timeline and backups (a real SQLite store, seeded through its own API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from notification_emergency.dashboard import Dashboard, create_app
from tests.ansible.conftest import SandboxHost
from tests.dashboard.test_dashboard_http import act, login, wait_job


def _client(dashboard: Dashboard) -> FlaskClient:
    return create_app(dashboard).test_client()


def test_backup_drain_and_restore_by_name_check_their_inputs(
    make_dashboard: Callable[..., Dashboard], offline_inventory: Path
) -> None:
    dashboard = make_dashboard(offline_inventory)
    viewer = _client(dashboard)
    bob = login(viewer, "bob")
    for action in ("backup", "drain-backlog", "restore-backup"):
        refused = act(viewer, bob, {"action": action, "inputs": {}})
        assert refused.status_code == 403 and "bob is a viewer" in refused.json["error"], action
    refusals = {e["action"] for e in dashboard.store.audit_trail() if e["actor"] == "bob"}
    assert {f"dashboard {a} refused" for a in ("backup", "drain-backlog", "restore-backup")} <= refusals

    client = _client(dashboard)
    token = login(client, "alice")
    assert act(client, "forged", {"action": "backup"}).status_code == 403, "the CSRF token is checked"
    assert act(client, None, {"action": "drain-backlog"}).status_code == 403

    def bad(body: dict[str, object], *words: str) -> None:
        answer = act(client, token, body)
        assert answer.status_code == 400, (body, answer.json)
        for word in words:
            assert word in answer.json["error"], (body, answer.json["error"])

    bad({"action": "backup", "inputs": {"label": "../etc"}}, "label", "lower-case letters")
    bad({"action": "backup", "inputs": {"label": "Before Upgrade"}}, "label", "before-upgrade")
    bad({"action": "backup", "inputs": {"label": 5}}, "label must be text")
    bad({"action": "backup", "inputs": {"name": "x"}}, "backup takes label", "name")
    bad({"action": "drain-backlog", "inputs": {"force": True}}, "drain-backlog takes no inputs")
    bad({"action": "restore-backup", "inputs": {}}, "backup is required", "latest")
    bad({"action": "restore-backup", "inputs": {"backup": "../../etc/passwd"}}, "backup", "is not a backup name")
    bad({"action": "restore-backup", "inputs": {"backup": "20261203T101500Z-x; rm -rf /"}}, "is not a backup name")
    bad({"action": "restore-backup", "inputs": {"backup": ["latest"]}}, "backup is required")
    bad({"action": "restore-backup", "inputs": {"backup": "latest", "database": True}}, "restore-backup takes backup")

    preview = act(client, token, {"action": "backup", "inputs": {"label": "before-upgrade"}})
    assert preview.status_code == 200 and preview.json["kind"] == "change"
    assert "labelled before-upgrade on offline-01" in preview.json["confirm"]
    preview = act(client, token, {"action": "backup"})
    assert preview.json["inputs"] == {"label": "dashboard"}, "a backup without a label is labelled dashboard"
    preview = act(client, token, {"action": "drain-backlog"})
    assert preview.status_code == 200 and preview.json["kind"] == "danger"
    assert "pending WebSocket backlog of offline-01" in preview.json["confirm"]
    preview = act(client, token, {"action": "restore-backup", "inputs": {"backup": "20261203T101500Z-manual"}})
    assert preview.status_code == 200 and preview.json["kind"] == "danger"
    assert "Restore backup 20261203T101500Z-manual on offline-01" in preview.json["confirm"]
    assert dashboard.jobs.to_json() == [], "a preview starts nothing"


def test_cancel_checks_the_role_the_token_and_the_action(
    make_dashboard: Callable[..., Dashboard], offline_inventory: Path
) -> None:
    dashboard = make_dashboard(offline_inventory)
    client = _client(dashboard)
    token = login(client, "alice")
    started = act(client, token, {"action": "health-check", "confirmed": True})
    assert started.status_code == 202
    job = wait_job(client, started.json["job"]["id"])  # the host is down: the check ends at once

    viewer = _client(dashboard)
    bob = login(viewer, "bob")
    refused = viewer.post(f"/api/actions/{job['id']}/cancel", headers={"X-CSRF-Token": bob})
    assert refused.status_code == 403 and "only operators can cancel" in refused.json["error"]
    assert any(e["action"] == "dashboard cancel refused" for e in dashboard.store.audit_trail() if e["actor"] == "bob")
    assert client.post(f"/api/actions/{job['id']}/cancel").status_code == 403, "no CSRF token"
    assert client.post(f"/api/actions/{job['id']}/cancel", headers={"X-CSRF-Token": "forged"}).status_code == 403
    missing = client.post("/api/actions/0123456789ab/cancel", headers={"X-CSRF-Token": token})
    assert missing.status_code == 404 and "GET /api/actions" in missing.json["error"]
    ended = client.post(f"/api/actions/{job['id']}/cancel", headers={"X-CSRF-Token": token})
    assert ended.status_code == 409 and "is not running" in ended.json["error"]


def test_a_running_action_is_canceled_and_recorded_so(
    make_dashboard: Callable[..., Dashboard], dashboard_host: SandboxHost
) -> None:
    dashboard = make_dashboard(dashboard_host.box.inventory)
    client = _client(dashboard)
    token = login(client, "alice")
    started = act(client, token, {"action": "health-check", "confirmed": True})
    assert started.status_code == 202
    job_id = started.json["job"]["id"]
    canceled = client.post(f"/api/actions/{job_id}/cancel", headers={"X-CSRF-Token": token})
    assert canceled.status_code == 202 and canceled.json["job"]["canceled_by"] == "alice"
    job = wait_job(client, job_id)
    assert job["state"] == "canceled", job
    assert job["exit_code"] == 130 and job["canceled_by"] == "alice"
    runs = dashboard.store.runs()
    assert [run["status"] for run in runs] == ["canceled"], runs
    trail = [e["action"] for e in dashboard.store.audit_trail() if e["actor"] == "alice"]
    assert "dashboard health-check cancel" in trail and "dashboard health-check canceled" in trail


def test_the_recent_actions_survive_a_restart(
    make_dashboard: Callable[..., Dashboard], offline_inventory: Path
) -> None:
    first = make_dashboard(offline_inventory)
    client = _client(first)
    token = login(client, "alice")
    started = act(client, token, {"action": "backup", "inputs": {"label": "before-restart"}, "confirmed": True})
    assert started.status_code == 202
    before = wait_job(client, started.json["job"]["id"])
    assert before["state"] == "failed" and before["message"], "the host is down: the backup fails, and says why"
    # A request whose end was never recorded: the dashboard was killed while it ran.
    first.store.audit(
        actor="alice",
        action="dashboard drain-backlog",
        target="offline-01",
        details={"inputs": {}, "job": "deadbeef0001"},
    )
    # A refused request (another action ran on the host) is no action.
    first.store.audit(actor="alice", action="dashboard restart", target="offline-01", details={"job": "refused00001"})
    first.store.audit(
        actor="alice", action="dashboard restart refused", target="offline-01", details={"job": "refused00001"}
    )
    first.stop()

    second = make_dashboard(offline_inventory)
    client = _client(second)
    login(client, "alice")
    jobs = {job["id"]: job for job in client.get("/api/actions").json["jobs"]}
    assert set(jobs) == {before["id"], "deadbeef0001"}, jobs
    again = jobs[before["id"]]
    for key in ("action", "label", "hosts", "user", "inputs", "state", "message", "exit_code", "run_ids"):
        assert again[key] == before[key], key
    assert again["started_at"][:19] == before["started_at"][:19], "the time of its request, to the second"
    assert "labelled before-restart on offline-01" in again["description"]
    assert jobs["deadbeef0001"]["state"] == "abandoned" and "stopped while it ran" in jobs["deadbeef0001"]["message"]
    assert client.get(f"/api/actions/{before['id']}").json["state"] == "failed"


def test_a_hosts_timeline_and_backups(make_dashboard: Callable[..., Dashboard], offline_inventory: Path) -> None:
    dashboard = make_dashboard(offline_inventory)
    store = dashboard.store

    def run(run_id: str, limit: str, backup: str | None, host: str = "offline-01") -> None:
        store.start_run(run_id, action="backup", playbook="backup.yml", actor="t", inputs={}, limit=limit, check=False)
        row = {"host": host, "status": "ok", "backup": backup}
        store.finish_run(run_id, status="successful", rc=0, hosts={host: {"ok": 1}}, report={"hosts": [row]})

    run("r1", "offline-01", "20261201T080000Z-manual")
    run("r2", "offline-01,offline-010", "20261203T101500Z-dashboard")
    run("r3", "offline-010", "20261204T000000Z-other", host="offline-010")
    run("r4", "offline-1", None, host="offline-1")
    incident = store.open_incident(failure_type="redis_down", level=2, hosts=["offline-01"], summary="redis down")
    store.add_incident_action(incident, action="restart_redis", outcome="recovered")
    store.open_incident(failure_type="web_service_down", level=1, hosts=["offline-010"], summary="elsewhere")
    store.record_emergency(action="activated", hosts=["offline-01"], actor="t", reason="r", level=2)
    store.record_emergency(action="activated", hosts=["offline-0"], actor="t", reason="r", level=2)

    client = _client(dashboard)
    login(client, "alice")
    events = client.get("/api/hosts/offline-01/timeline").json["events"]
    refs = {(event["kind"], event["ref"]) for event in events}
    assert {("run", "r1"), ("run", "r2"), ("incident", incident), ("emergency", 1)} <= refs, events
    assert ("run", "r3") not in refs and ("run", "r4") not in refs, "another host's runs (a name that contains it)"
    assert [e["kind"] for e in events].count("incident") == 1 and [e["kind"] for e in events].count("emergency") == 1
    assert any(e["kind"] == "action" and "restart_redis" in e["summary"] for e in events)
    assert not any(e["kind"] in ("audit", "notification") for e in events)
    assert len(client.get("/api/hosts/offline-01/timeline?limit=2").json["events"]) <= 2 * 4
    assert client.get("/api/hosts/offline-01/timeline?limit=x").status_code == 400

    backups = client.get("/api/hosts/offline-01/backups").json
    assert backups == {"host": "offline-01", "backups": ["20261203T101500Z-dashboard", "20261201T080000Z-manual"]}
    for path in ("/api/hosts/nowhere/timeline", "/api/hosts/nowhere/backups", "/api/hosts/a%2Fb/timeline"):
        answer = client.get(path)
        assert answer.status_code == 404 and "is not shown by this dashboard" in answer.json["error"], path
