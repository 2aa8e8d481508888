"""The recovery playbooks on a real sandbox host: no notification lost or shown twice while the host is rolled
back to legacy and restored under a stream of notifications, a killed run taken over, a corrupt backup refused,
check mode changing nothing, the host lock, and the automatic restore when verification fails.

Every test leaves the shared host as it found it: healthy, WebSocket mode, emergency inactive, unlocked (the
``recovery`` fixture checks that after each test, and repairs the host for the next test when a test failed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ansible.conftest import SandboxHost
from tests.ansible.recovery_helpers import (
    FLASH_RE,
    account,
    audit_records,
    backups,
    config_mode,
    kill_when,
    lock_file,
    notification_stream,
    playbook_env,
    report_of,
    run_playbook,
    snapshot,
    snapshot_diff,
    wait_for,
)
from tests.ansible.sandbox import ROOT, PlaybookRun

TEMPLATES_SRC = ROOT / "reference_app" / "notification_service" / "templates"


@dataclass
class Recovery:
    """The shared sandbox host, and playbook runs whose reports go to the test's own directory."""

    host: SandboxHost
    reports: Path

    @property
    def root(self) -> Path:
        return self.host.root

    def play(self, name: str, *args: str, **extra: Any) -> PlaybookRun:
        return run_playbook(self.host, name, *args, extra={"notification_reports_dir": str(self.reports), **extra})

    def websocket_process(self) -> str:
        return self.host.supervisorctl("status", "notification-websocket")

    def problems(self) -> list[str]:
        """How the host differs from the state every test must leave it in."""
        found = []
        try:
            health = self.host.wait_healthy(timeout=15)
        except AssertionError as exc:
            return [str(exc)]
        if health["mode"] != "websocket" or config_mode(self.root) != "websocket":
            found.append(f"mode {health['mode']} (config.yml {config_mode(self.root)})")
        if health["emergency"]["active"]:
            found.append(f"emergency active: {health['emergency']}")
        if "RUNNING" not in self.websocket_process():
            found.append(f"websocket process: {self.websocket_process().strip()}")
        if lock_file(self.root).exists():
            found.append(f"locked: {lock_file(self.root).read_text()}")
        return found


@pytest.fixture
def recovery(sandbox_host: SandboxHost, tmp_path: Path) -> Iterator[Recovery]:
    """The shared host in its normal state; after the test, checked to be in it again (repaired if not)."""
    reports = tmp_path / "reports"
    reports.mkdir()
    recovery = Recovery(sandbox_host, reports)
    assert recovery.problems() == [], "the shared host is not in its normal state before the test"
    yield recovery
    problems = recovery.problems()
    if problems:  # repair for the next tests, then report what this test left behind
        lock_file(recovery.root).unlink(missing_ok=True)
        recovery.play("emergency_deactivate.yml", resolved_by="pytest-teardown")
        recovery.play("restore.yml")
        sandbox_host.mend()
    assert problems == [], f"the test left the host in another state: {problems}"


def one_line(text: str) -> str:
    """Ansible's YAML callback wraps long messages: compare text with the whitespace collapsed."""
    return " ".join(text.split())


# -- 1. exactly once under a stream ---------------------------------------------------------------------


# Two full playbook runs and the drain; the first test of the session also builds the shared sandbox host.
@pytest.mark.timeout(600)
def test_a_stream_is_shown_exactly_once_across_rollback_and_restore(
    recovery: Recovery, capsys: pytest.CaptureFixture[str]
) -> None:
    """While notifications stream in (12/s to 5 users, each with a live Socket.IO client that acks and a browser
    that views its page every 0.5 s), roll back to legacy and restore WebSocket mode: every notification is shown
    exactly once per recipient, by an ack that claimed it or as a flash message, and the database agrees."""
    host = recovery.host
    tag = f"s{uuid.uuid4().hex[:6]}"
    users = [f"{tag}-u{index}" for index in range(5)]
    with notification_stream(host, users, tag, rate=12) as stream:
        sender, sockets, browsers, api = stream["sender"], stream["sockets"], stream["browsers"], stream["api"]
        time.sleep(2)
        rollback = recovery.play("rollback_to_legacy.yml")
        assert rollback.rc == 0, rollback.output[-4000:]
        assert host.health()["mode"] == "legacy"
        # The report says where the host's time went, step by step.
        report = report_of(rollback)
        assert report is not None
        timings = report["hosts"][0]["timings_ms"]
        steps = {"state", "backup", "files", "services", "carry", "health", "probe", "prune", "total"}
        assert steps <= set(timings), timings
        assert timings["total"] >= timings["services"] + timings["probe"] > 0, timings
        assert 0 < timings["process_cpu"] < timings["total"] * 2, timings  # (one module call, two cores at most)
        time.sleep(1)
        restore = recovery.play("restore.yml")
        assert restore.rc == 0, restore.output[-4000:]
        time.sleep(1)
        sender.stop()
        sent = sender.sent
        assert sent.http_errors == [], sent.http_errors[:10]

        # Drain: the clients stay connected and the browsers keep viewing pages until everything is shown.
        def settled() -> bool:
            accounting = account(sent, sockets, browsers)
            return not accounting.missing(sent) and not any(user.waiting_answers() for user in sockets)

        drained = wait_for(settled, timeout=30, interval=0.5)
        time.sleep(1.5)  # a late second showing (a flash after an ack, a replay) would show up now
        for browser in browsers:
            browser.stop()
        accounting = account(sent, sockets, browsers)

        rows: dict[int, dict[str, Any]] = {}
        other_rows = []
        for user in users:
            deliveries = api.deliveries(user)
            assert len(deliveries) < 500, "the listing is capped at 500: send fewer notifications per user"
            for row in deliveries:
                if row["id"] in sent.ids:
                    rows[row["id"]] = row
                else:
                    other_rows.append(row)

        missing = accounting.missing(sent)
        waiting = {user.user: user.waiting_answers() for user in sockets if user.waiting_answers()}
        summary = (
            f"stream: sent {len(sent.ids)}, shown by websocket {sum(accounting.by_socket.values())}, "
            f"by flash {sum(accounting.by_flash.values())}; transport errors (retried) "
            f"{dict(sent.transport_errors)}, orphans shown {sum(accounting.orphans.values())}; "
            f"socket connects {[u.connects for u in sockets]}, disconnects {[dict(u.disconnects) for u in sockets]}, "
            f"acks not claiming {sum(len(u.not_claimed) for u in sockets)}, ack send errors "
            f"{[dict(u.ack_errors) for u in sockets]}; page views "
            f"{[b.views for b in browsers]}, modes seen {[dict(b.modes) for b in browsers]}, "
            f"page errors {[dict(b.errors) for b in browsers]}; drained: {drained}"
        )
        with capsys.disabled():  # shown in the test output even when it passes
            print(f"\n{summary}")
        details = [
            f"{i} {sent.ids[i]}: database {rows.get(i, {}).get('state')}/{rows.get(i, {}).get('channel')}, "
            f"received by socket {any(int(e['id']) == i for u in sockets for e in u.events)}"
            for i in missing[:20]
        ]
        assert missing == [], f"{len(missing)} notifications never shown: {details}; acks unanswered: {waiting}"
        assert accounting.duplicated(sent) == [], accounting.duplicated(sent)[:20]
        assert accounting.strangers == [], accounting.strangers[:20]
        assert all(count == 1 for count in accounting.orphans.values()), accounting.orphans
        assert waiting == {}, f"acks never answered: {waiting}"

        # The database is the arbiter: it says delivered, by the channel that showed it.
        assert sorted(rows) == sorted(sent.ids), "every notification sent has its delivery row"
        wrong = [
            f"{i}: {row['state']}/{row['channel']}, socket {accounting.by_socket[i]}, flash {accounting.by_flash[i]}"
            for i, row in sorted(rows.items())
            if row["state"] != "delivered"
            or row["channel"] != ("websocket" if accounting.by_socket[i] else "flash")
            or row["user"] != sent.ids[i][0]
        ]
        assert wrong == [], wrong[:20]
        undelivered_orphans = [row for row in other_rows if row["state"] != "delivered"]
        assert undelivered_orphans == [], undelivered_orphans
        assert len(other_rows) == len(accounting.orphans), (other_rows, accounting.orphans)

        # The stream did span both modes and both channels.
        assert sum(accounting.by_socket.values()) > 0 and sum(accounting.by_flash.values()) > 0
        assert all(b.modes["legacy"] > 0 and b.modes["websocket"] > 0 for b in browsers), [b.modes for b in browsers]


# -- 2. kill in the middle ------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_a_rollback_killed_in_the_middle_is_taken_over_and_completed(recovery: Recovery, module_runner: Any) -> None:
    """SIGKILL rollback_to_legacy.yml (its whole process group, and the module call on the host, as when the
    host crashes) inside the switch, once the WebSocket service is stopped and before its pending notifications
    are carried into the flash store: the host is left half-switched and locked by a dead run. A second run
    takes the lock over (audited), completes the rollback (carrying what was left waiting), verify.yml agrees,
    no notification waiting before the kill is lost, and every backup on the host verifies."""
    host, root = recovery.host, recovery.root
    user = f"k{uuid.uuid4().hex[:6]}"
    api_token = host.box.api_token(host.name)
    waiting = []
    for index in range(3):  # pending WebSocket deliveries: the user has no live page
        response = requests.post(
            f"{host.web_url}/api/notifications",
            json={"user": user, "title": f"{user}-waiting-{index}"},
            headers={"Authorization": f"Bearer {api_token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        waiting.append(f"{user}-waiting-{index}")
    audited = len(audit_records(root))
    try:
        pid, _output = kill_when(
            host,
            "rollback_to_legacy.yml",
            "",
            extra={"notification_reports_dir": str(recovery.reports)},
            ready=lambda: lock_file(root).exists() and "RUNNING" not in recovery.websocket_process(),
            kill_tree=True,
        )
        dead = json.loads(lock_file(root).read_text())
        assert dead["playbook"] == "rollback_to_legacy.yml"
        assert dead["controller"] == socket.gethostname() and dead["controller_pid"] == pid, dead
        half = host.health()
        assert half["components"]["websocket"]["status"] != "healthy", half

        again = recovery.play("rollback_to_legacy.yml")
        assert again.rc == 0, again.output[-4000:]
        assert f"took over the lock of {dead['owner']} (run {dead['run_id']}" in one_line(again.output)
        takeovers = audit_records(root)[audited:]
        assert [(r["action"], r["previous"]["run_id"]) for r in takeovers] == [("took_over", dead["run_id"])]
        assert takeovers[0]["reason"] == f"its controller process {pid} on {socket.gethostname()} is not running"
        assert not lock_file(root).exists()

        verify = recovery.play("verify.yml", expected_mode="legacy")
        assert verify.rc == 0, verify.output[-3000:]
        browser = requests.Session()
        browser.get(f"{host.web_url}/login", params={"user": user}, allow_redirects=False, timeout=10)
        shown = [text for _category, text in FLASH_RE.findall(browser.get(f"{host.web_url}/", timeout=10).text)]
        assert sorted(shown) == sorted(waiting)
        assert FLASH_RE.findall(browser.get(f"{host.web_url}/", timeout=10).text) == []

        names = backups(root)
        assert names, "the rollback took a backup"
        for name in names:
            result, failed = module_runner(
                "notification_backup", {"root": str(root), "state": "verified", "name": name}
            )
            assert not failed, result
        assert not [p.name for p in (root / "backups").iterdir() if p.name.endswith(".partial")]
    finally:
        restore = recovery.play("restore.yml")
    assert restore.rc == 0, restore.output[-4000:]


# -- 3. a corrupt backup is refused ---------------------------------------------------------------------


def test_a_corrupt_backup_is_refused_before_anything_changes(recovery: Recovery) -> None:
    root = recovery.root
    run = recovery.play("backup.yml", backup_label="corrupt-check")
    assert run.rc == 0, run.output[-3000:]
    name = backups(root)[-1]
    target = root / "backups" / name / "files" / "etc" / "config.yml"
    original = target.read_bytes()
    corrupted = bytearray(original)
    corrupted[len(corrupted) // 2] ^= 0x01  # one bit of one byte
    before = {
        path: digest
        for path, digest in snapshot(root).items()
        if path.startswith(("etc/", "templates/", "state/", "backups/"))
    }
    try:
        target.write_bytes(bytes(corrupted))
        refused = recovery.play("restore.yml", restore_backup=name)
        assert refused.rc != 0
        text = one_line(refused.output)
        assert f"backup {name} " in text and "etc/config.yml sha256 is" in text, refused.output[-3000:]
        assert re.search(rf"backup {name} is corrupt: ", text), refused.output[-3000:]
        after = {
            path: digest
            for path, digest in snapshot(root).items()
            if path.startswith(("etc/", "templates/", "state/", "backups/"))
        }
        changed = snapshot_diff(before, after)
        assert [line.split(":")[0] for line in changed] == [f"~ backups/{name}/files/etc/config.yml"], changed
        assert recovery.host.health()["mode"] == "websocket"
    finally:
        target.write_bytes(original)


# -- 4. check mode changes nothing ----------------------------------------------------------------------

CHECK_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("rollback_to_legacy.yml", {}),
    ("restore.yml", {"restore_backup": "latest"}),
    ("emergency_activate.yml", {"reason": "Check mode: nothing happens", "triggered_by": "pytest"}),
    ("backup.yml", {}),
    ("emergency_deactivate.yml", {"resolved_by": "pytest"}),
]


def test_check_mode_changes_nothing(recovery: Recovery) -> None:
    """Each mutating playbook with --check --diff exits 0 and leaves every file under the root as it was:
    configuration, templates, service definitions, state (emergency, lock, audit log) and backups (a check run
    takes none). Left out: log/, run/ (supervisord's socket and pid) and data/ (the SQLite database and its
    -wal/-shm change with every page view and health check, whatever the playbooks do)."""
    root = recovery.root
    if not backups(root):  # restore_backup=latest needs one (when this test runs first)
        assert recovery.play("backup.yml").rc == 0
    before = snapshot(root)
    failed: dict[str, PlaybookRun] = {}
    for name, extra in CHECK_RUNS:
        run = recovery.play(name, "--check", "--diff", **extra)
        assert snapshot_diff(before, snapshot(root)) == [], f"{name} --check changed files"
        report = report_of(run)
        assert report is not None and report["check_mode"] is True, f"{name} --check wrote no check-mode report"
        if run.rc != 0:
            failed[name] = run
    health = recovery.host.health()
    assert health["mode"] == "websocket" and not health["emergency"]["active"], health
    assert {name: run.output[-3000:] for name, run in failed.items()} == {}


# -- 5. the host lock -----------------------------------------------------------------------------------


def test_a_live_lock_stops_a_run_and_an_expired_one_is_taken_over(recovery: Recovery, module_runner: Any) -> None:
    root = recovery.root
    holder = {
        "root": str(root),
        "owner": "pytest-lock-holder",
        "playbook": "test_recovery_playbooks.py",
        "controller": socket.gethostname(),
        "controller_pid": os.getpid(),
    }
    live_run = f"live-{uuid.uuid4().hex[:8]}"
    result, failed = module_runner("notification_lock", {**holder, "state": "acquired", "run_id": live_run, "ttl": 600})
    assert not failed and result["action"] == "acquired", result
    try:
        before = snapshot(root)
        blocked = recovery.play("rollback_to_legacy.yml")
        assert blocked.rc != 0
        assert f"host locked by pytest-lock-holder (run {live_run}, playbook test_recovery_playbooks.py)" in one_line(
            blocked.output
        ), blocked.output[-3000:]
        assert snapshot_diff(before, snapshot(root)) == [], "a locked host is left exactly as it was"
        assert recovery.host.health()["mode"] == "websocket"
        assert json.loads(lock_file(root).read_text())["run_id"] == live_run
    finally:
        result, failed = module_runner(
            "notification_lock", {"root": str(root), "state": "released", "run_id": live_run}
        )
    assert not failed and result["action"] == "released", result
    assert not lock_file(root).exists()

    expired_run = f"expired-{uuid.uuid4().hex[:8]}"
    result, failed = module_runner(
        "notification_lock", {**holder, "state": "acquired", "run_id": expired_run, "ttl": 1}
    )
    assert not failed, result
    audited = len(audit_records(root))
    try:
        time.sleep(2)
        backup = recovery.play("backup.yml")
        assert backup.rc == 0, backup.output[-3000:]
        takeovers = audit_records(root)[audited:]
        assert [(r["action"], r["previous"]["run_id"]) for r in takeovers] == [("took_over", expired_run)], takeovers
        assert takeovers[0]["reason"].startswith("it expired at "), takeovers[0]
        assert takeovers[0]["new"]["playbook"] == "backup.yml"
        assert not lock_file(root).exists(), "the run released the lock it took over"
    finally:
        if lock_file(root).exists() and json.loads(lock_file(root).read_text()).get("run_id") == expired_run:
            module_runner("notification_lock", {"root": str(root), "state": "released", "run_id": expired_run})


def test_a_bad_run_input_is_refused_before_the_host_is_touched(recovery: Recovery) -> None:
    """notification_run checks its inputs and those of the role it runs once per batch (both are imported without
    Ansible's per-host check): a bad one still stops the run before any lock, backup or change, and the message
    names it."""
    before = snapshot(recovery.root)
    bad = [
        ("backup.yml", {"notification_run_lock_ttl": "soon"}, "Validate the run's inputs", "to an int"),
        ("rollback_to_legacy.yml", {"notification_run_lock_ttl": "soon"}, "Validate the run's inputs", "to an int"),
        # an input of the role run under the lock (notification_mode), checked by notification_run too
        (
            "rollback_to_legacy.yml",
            {"notification_mode_verify_timeout": "soon"},
            "Validate the inputs of the role under the lock, notification_mode (main)",
            "to a float",
        ),
    ]
    for playbook, extra, task, problem in bad:
        run = recovery.play(playbook, **extra)
        assert run.rc != 0, run.output[-3000:]
        [name] = extra
        assert f"argument '{name}'" in run.output and problem in run.output, run.output[-3000:]
        assert f"TASK [notification_run : {task}]" in run.output, run.output[-3000:]
        assert not lock_file(recovery.root).exists()
    assert snapshot_diff(before, snapshot(recovery.root)) == [], "a refused run leaves the host exactly as it was"


@pytest.mark.parametrize(
    ("playbook", "lock_tasks"),
    [("rollback_to_legacy.yml", False), ("restore.yml", False), ("backup.yml", True), ("prune.yml", True)],
)
def test_the_lock_tasks_are_there_only_when_the_role_does_not_take_the_lock(playbook: str, lock_tasks: bool) -> None:
    """The lock tasks are imported or not when the playbook is loaded: a rollback (whose switch takes the lock in
    its own module call) has none, not two skipped on every host; a backup has them."""
    listed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "--list-tasks", str(ROOT / "playbooks" / playbook)],
        capture_output=True,
        text=True,
        env=playbook_env(),
        cwd=ROOT,
        check=True,
    ).stdout
    # (--list-tasks shows no rescue or always tasks: the release is checked by the runs of the lock test above)
    assert ("Take the host lock" in listed) == lock_tasks, listed
    # Ansible's own argument checks (a task per host) give way to notification_run's, once per batch.
    assert "Validating arguments against arg spec" not in listed, listed
    assert "Validate the run's inputs" in listed and "Validate the inputs of the role under the lock" in listed


# -- 6. automatic restore when verification fails ------------------------------------------------------


def broken_legacy_templates(destination: Path) -> Path:
    """The project's template sets, with a legacy index.html that renders but never shows flashed messages."""
    shutil.copytree(TEMPLATES_SRC, destination)
    index = destination / "legacy" / "index.html"
    source = index.read_text()
    broken = re.sub(
        r"\{% with messages = get_flashed_messages.*?\{% endwith %\}",
        '<p class="empty">No new messages.</p>',
        source,
        flags=re.S,
    )
    assert broken != source
    index.write_text(broken)
    return destination


def test_a_rollback_whose_verification_fails_restores_the_host(recovery: Recovery, tmp_path: Path) -> None:
    """The fault: a legacy template set that renders but shows no flash messages (a bad release of the templates).
    Editing <root>/templates/legacy on the host would not do, since the rollback deploys that set from the
    control node's sources first; so the run gets a copy of the sources with that one template broken
    (notification_service_templates_src). Health stays green, so only the flash probe can catch it: it fails,
    the rescue puts back the files of the run's backup and brings the services back in WebSocket mode, and the
    host is reported failed."""
    host, root = recovery.host, recovery.root
    run_id = f"pytest-{uuid.uuid4().hex[:8]}"
    templates = broken_legacy_templates(tmp_path / "templates")
    try:
        run = recovery.play(
            "rollback_to_legacy.yml", notification_service_templates_src=str(templates), notification_run_id=run_id
        )
        assert run.rc != 0
        text = one_line(run.output)
        assert "failed at See a notification arrive through the channel of mode legacy" in text, run.output[-4000:]
        match = re.search(r"its files were restored from backup (\S+) and its services brought back", text)
        assert match and (root / "backups" / match.group(1) / "manifest.json").exists(), run.output[-4000:]

        health = host.wait_healthy()
        assert health["mode"] == "websocket" and health["components"]["websocket"]["status"] == "healthy", health
        assert "RUNNING" in recovery.websocket_process()
        assert config_mode(root) == "websocket"
        for page in ("index.html", "base.html"):
            assert (root / "templates" / "active" / page).read_text() == (
                TEMPLATES_SRC / "websocket" / page
            ).read_text()
        assert not lock_file(root).exists()

        report_path = recovery.reports / f"rollback_to_legacy-{run_id}.json"
        # Written even though every host of the play failed (the playbook ends there).
        report = json.loads(report_path.read_text())
        assert report["run_id"] == run_id
        assert [(h["host"], h["status"]) for h in report["hosts"]] == [(host.name, "failed")], report
        assert "See a notification arrive" in report["hosts"][0]["error"], report
        assert report_of(run) == report
    finally:
        # The rescue's redeploy wrote the broken legacy set from the broken sources again: put the project's back.
        for page in (TEMPLATES_SRC / "legacy").iterdir():
            shutil.copyfile(page, root / "templates" / "legacy" / page.name)
            (root / "templates" / "legacy" / page.name).chmod(0o644)
    assert sorted(p.name for p in (root / "templates" / "legacy").iterdir()) == ["base.html", "index.html"]


# -- 7. prune (the disk_pressure steps) -----------------------------------------------------------------


def test_prune_deletes_only_what_is_past_its_retention(recovery: Recovery) -> None:
    """Rotated logs older than the retention go, younger ones and live logs stay; backups beyond the newest
    N that are old enough go, the newest stay. --check deletes nothing; a second run changes nothing."""
    root = recovery.root
    old = time.time() - 10 * 86400
    rotated = {name: root / "log" / name for name in ("notification-web.log.1", "redis.log.2.gz", "extra.log-2026")}
    for path in rotated.values():
        path.write_text("rotated\n")
        os.utime(path, (old, old))
    fresh = root / "log" / "notification-web.log.3"
    fresh.write_text("recent\n")
    live = sorted(p.name for p in (root / "log").glob("*.log"))
    for label in ("prune-a", "prune-b", "prune-c"):
        assert recovery.play("backup.yml", backup_label=label).rc == 0
        (root / "etc" / "config.yml").touch()  # a new backup is taken only when something changed
    kept_before = backups(root)
    try:
        checked = recovery.play("prune.yml", "--check", backup_retention_count=1, backup_retention_days=0)
        assert checked.rc == 0 and all(p.exists() for p in rotated.values()) and backups(root) == kept_before
        run = recovery.play("prune.yml", backup_retention_count=1, backup_retention_days=0)
        assert run.rc == 0, run.output[-3000:]
        assert not any(p.exists() for p in rotated.values()) and fresh.exists()
        assert sorted(p.name for p in (root / "log").glob("*.log")) == live, "live logs are never touched"
        assert backups(root) == kept_before[-1:], "only the newest backup is kept"
        report = report_of(run)
        assert report is not None and report["hosts"][0]["logs_removed"] == 3, report
        again = recovery.play("prune.yml", backup_retention_count=1, backup_retention_days=0)
        assert again.rc == 0 and again.changed() == {recovery.host.name: 0}, again.output[-3000:]
    finally:
        fresh.unlink(missing_ok=True)
