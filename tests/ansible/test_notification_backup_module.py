"""notification_backup: make, reuse, verify, restore, prune and list backups of a service root.

Real files, a real SQLite database written by a thread while it is copied, a private redis-server with the
pending queue, and a real PostgreSQL database with pg_dump.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ansible.module_utils._internal
import ansible.module_utils.common.warnings
import psycopg
import pytest

from tests.ansible.health_servers import RedisServer

MODULE = "notification_backup"
REDIS_PASSWORD = "s3cret-backup"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, created_at TEXT);
CREATE TABLE notifications (id INTEGER PRIMARY KEY, user_id TEXT, title TEXT, message TEXT, priority TEXT,
                            created_at TEXT);
CREATE TABLE deliveries (notification_id INTEGER, user_id TEXT, channel TEXT, state TEXT, created_at TEXT,
                         delivered_at TEXT, PRIMARY KEY (notification_id, user_id));
"""


@pytest.fixture(autouse=True)
def module_side_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Return module.warn() in the result, as on a managed host (see the emergency state module's tests)."""
    monkeypatch.setattr(ansible.module_utils._internal, "is_controller", False)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-backup"), password=REDIS_PASSWORD)
    yield server
    server.stop()


def write_config(root: Path, database_url: str, redis_url: str, mode: str = "websocket") -> None:
    (root / "etc" / "config.yml").write_text(
        f"mode: {mode}\n"
        "websocket:\n  enabled: true\n  host: 127.0.0.1\n  port: 18001\n"
        "web:\n  host: 127.0.0.1\n  port: 18000\n"
        f"redis_url: {redis_url}\n"
        f"database_url: {database_url}\n"
        f"templates_dir: {root}/templates/active\n"
        f"emergency_file: {root}/state/emergency.json\n"
        f"secrets_file: {root}/etc/secrets.yml\n"
    )


def add_notifications(db: Path, count: int) -> None:
    """``count`` notifications, each with two deliveries (the invariant a consistent copy keeps)."""
    with sqlite3.connect(db, timeout=10) as conn:
        for _ in range(count):
            cursor = conn.execute(
                "INSERT INTO notifications (user_id, title, message, priority, created_at) "
                "VALUES (NULL, 't', 'm', 'normal', datetime('now'))"
            )
            for user in ("alice", "bob"):
                conn.execute(
                    "INSERT INTO deliveries VALUES (?, ?, 'websocket', 'pending', datetime('now'), NULL)",
                    (cursor.lastrowid, user),
                )
    conn.close()


@pytest.fixture
def root(tmp_path: Path, redis_server: RedisServer) -> Path:
    """A service root as the notification_service role lays it out, with an SQLite database in WAL mode."""
    root = tmp_path / "srv"
    for directory in ("etc/supervisor.d", "templates/websocket/partials", "templates/legacy", "state", "data"):
        (root / directory).mkdir(parents=True)
    (root / "etc" / "secrets.yml").write_text("api_token: token-123456\nsecret_key: key-1234567\n")
    (root / "etc" / "secrets.yml").chmod(0o640)  # root's, readable by the service's group, as the deploy writes it
    for name in ("notification-web", "notification-websocket", "redis"):
        (root / "etc" / "supervisor.d" / f"{name}.conf").write_text(f"[program:{name}]\ncommand=/bin/true\n")
    (root / "etc" / "supervisord.conf").write_text("[supervisord]\n")
    for template_set in ("websocket", "legacy"):
        (root / "templates" / template_set / "index.html").write_text(f"<html>{template_set} index</html>\n")
        (root / "templates" / template_set / "base.html").write_text(f"<html>{template_set} base</html>\n")
    (root / "templates" / "websocket" / "partials" / "socket.html").write_text("<script>io()</script>\n")
    shutil.copytree(root / "templates" / "websocket", root / "templates" / "active")
    db = root / "data" / "notifications.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    conn.close()
    add_notifications(db, 5)
    write_config(root, f"sqlite:///{db}", redis_server.url(db=4, password=REDIS_PASSWORD))
    (root / "etc" / "config.yml").chmod(0o640)
    client = redis_server.client()
    client.select(4)
    client.delete("notification:pending")
    client.zadd("notification:pending", {"1:alice": 1764237600.25, "1:bob": 1764237600.5, "2:alice": 1764237601})
    return root


def run(module_runner: Any, root: Path, check_mode: bool = False, **args: Any) -> tuple[dict[str, Any], bool]:
    # Warnings are kept process-wide until the process ends, as on a managed host where it ends after one run.
    ansible.module_utils.common.warnings._global_warnings.clear()
    result: tuple[dict[str, Any], bool] = module_runner(MODULE, {"root": str(root), **args}, check_mode=check_mode)
    return result


def ok(module_runner: Any, root: Path, check_mode: bool = False, **args: Any) -> dict[str, Any]:
    result, failed = run(module_runner, root, check_mode=check_mode, **args)
    assert not failed, result.get("msg")
    return result


def tree(path: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``path``: relative path -> (sha256, mode)."""
    found = {}
    for directory, _subdirs, names in os.walk(path):
        for name in names:
            file = Path(directory) / name
            found[str(file.relative_to(path))] = (
                hashlib.sha256(file.read_bytes()).hexdigest(),
                stat.S_IMODE(file.stat().st_mode),
            )
    return found


def rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM notifications").fetchone()[0])
    finally:
        conn.close()


def warnings_of(result: dict[str, Any]) -> str:
    return json.dumps(result.get("warnings", []))


# -- present ---------------------------------------------------------------------------------------------


def test_present_makes_a_complete_backup(module_runner: Any, root: Path) -> None:
    result = ok(module_runner, root, label="pre-rollback", run_id="run-1")
    assert result["changed"] and result["created"] and not result["reused"]
    backup = result["backup"]
    path = Path(backup["path"])
    assert path.parent == root / "backups" and backup["name"].endswith("Z-pre-rollback")
    assert stat.S_IMODE((root / "backups").stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o700
    assert not list((root / "backups").glob("*.partial"))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["name"] == backup["name"] and manifest["label"] == "pre-rollback"
    assert manifest["run_id"] == "run-1" and manifest["mode"] == "websocket" and manifest["host"]
    assert set(manifest["files"]) == {
        "etc/config.yml",
        "etc/secrets.yml",
        "etc/supervisor.d/notification-web.conf",
        "etc/supervisor.d/notification-websocket.conf",
        "etc/supervisor.d/redis.conf",
        *(f"templates/{s}/{f}" for s in ("websocket", "active") for f in ("index.html", "base.html")),
        "templates/websocket/partials/socket.html",
        "templates/active/partials/socket.html",
        "templates/legacy/index.html",
        "templates/legacy/base.html",
    }
    assert manifest["absent"] == ["state/emergency.json"]
    for rel, info in manifest["files"].items():
        copy = path / "files" / rel
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == info["sha256"]
        assert info["mode"] == f"{stat.S_IMODE((root / rel).stat().st_mode):04o}"
        assert info["mode"] == f"{stat.S_IMODE(copy.stat().st_mode):04o}", "the copy keeps the mode"
    assert manifest["files"]["etc/secrets.yml"]["mode"] == "0640"
    database = manifest["database"]
    assert database["dialect"] == "sqlite" and database["integrity"] == "ok" and database["rows"]["notifications"] == 5
    assert rows(path / "database" / "notifications.db") == 5
    queue = json.loads((path / "queue" / "pending.json").read_text())
    assert queue["items"] == [
        {"member": "1:alice", "score": 1764237600.25},
        {"member": "1:bob", "score": 1764237600.5},
        {"member": "2:alice", "score": 1764237601.0},
    ]
    assert manifest["queue"]["count"] == 3 and REDIS_PASSWORD not in json.dumps(manifest)
    assert backup["files"] == len(manifest["files"]) and backup["queue"]["count"] == 3
    checked = ok(module_runner, root, state="verified", name=backup["name"])
    assert not checked["changed"] and checked["checked_files"] == len(manifest["files"]) + 2


def test_sqlite_copy_is_consistent_while_the_service_writes(module_runner: Any, root: Path) -> None:
    db = root / "data" / "notifications.db"
    add_notifications(db, 3000)  # a database big enough for the copy to overlap the writes
    stop = threading.Event()
    written = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            add_notifications(db, 1)
            written.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert written.wait(5)
        before = rows(db)
        result = ok(module_runner, root, include_queue=False)
        after = rows(db)
    finally:
        stop.set()
        thread.join(10)
    copy = Path(result["backup"]["path"]) / "database" / "notifications.db"
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        notifications = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    finally:
        conn.close()
    assert before <= notifications <= after and before < after, "the writer ran during the copy"
    assert deliveries == 2 * notifications, "no transaction was copied halfway"
    assert not list(copy.parent.glob("*-wal")), "the copy is one self-contained file"


def test_postgresql_database_is_dumped_with_pg_dump(module_runner: Any, root: Path) -> None:
    if not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not on the PATH of this machine, so the PostgreSQL dump cannot be exercised")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"notif_backup_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
                conn.execute("CREATE TABLE notifications (id serial PRIMARY KEY, title text)")
                conn.execute("INSERT INTO notifications (title) VALUES ('first-notice'), ('second-notice')")
            redis_url = "redis://127.0.0.1:1/0"
            write_config(root, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", redis_url)
            result = ok(module_runner, root, include_queue=False)
            database = json.loads((Path(result["backup"]["path"]) / "manifest.json").read_text())["database"]
            assert database["dialect"] == "postgresql" and database["file"] == "database/dump.sql"
            assert database["pg_dump"].startswith("pg_dump")
            dump = (Path(result["backup"]["path"]) / "database" / "dump.sql").read_text()
            assert "CREATE TABLE public.notifications" in dump and "second-notice" in dump
            assert stat.S_IMODE((Path(result["backup"]["path"]) / "database" / "dump.sql").stat().st_mode) == 0o600
            refused, failed = run(module_runner, root, state="restored", name="latest", restore_database=True)
            assert failed and "SQLite only" in refused["msg"] and "psql" in refused["msg"]
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_without_pg_dump_the_database_is_skipped_with_a_warning(
    module_runner: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(root, "postgresql+psycopg://postgres:pw@127.0.0.1:5432/nowhere", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PATH", str(root))  # no pg_dump there
    result = ok(module_runner, root, include_queue=False)
    assert result["backup"]["database"] == {"skipped": "pg_dump not found"}
    assert "pg_dump not found" in warnings_of(result)
    assert not (Path(result["backup"]["path"]) / "database" / "dump.sql").exists()


def test_unreachable_redis_skips_the_queue_with_a_warning(module_runner: Any, root: Path) -> None:
    write_config(root, f"sqlite:///{root}/data/notifications.db", "redis://:pw@127.0.0.1:1/0")
    result = ok(module_runner, root, redis_timeout=1)
    assert "refused" in result["backup"]["queue"]["skipped"]
    assert "no queue copy" in warnings_of(result) and ":pw@" not in json.dumps(result)
    assert result["backup"]["database"]["integrity"] == "ok"


def test_reuse_unchanged_and_name_collisions(module_runner: Any, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ansible.module_utils.notification_backup_make as backup_utils

    moment = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(backup_utils, "utc_now", lambda: moment)
    first = ok(module_runner, root, label="nightly")
    again = ok(module_runner, root, label="pre-rollback")
    assert not again["changed"] and again["reused"] and not again["created"], "the label does not matter"
    assert again["backup"]["name"] == first["backup"]["name"] == "20261127T100000Z-nightly"
    add_notifications(root / "data" / "notifications.db", 2)  # the database does not count, only files/
    assert ok(module_runner, root)["reused"]
    (root / "templates" / "active" / "index.html").write_text("<html>changed</html>\n")
    changed = ok(module_runner, root, label="nightly")
    assert changed["created"] and changed["backup"]["name"] == "20261127T100000Z-nightly-2"
    forced = ok(module_runner, root, label="nightly", reuse_unchanged=False)
    assert forced["created"] and forced["backup"]["name"] == "20261127T100000Z-nightly-3"
    listed = ok(module_runner, root, state="query")
    assert listed["latest"] == "20261127T100000Z-nightly-3"
    assert [b["name"] for b in listed["backups"]] == [f"20261127T100000Z-nightly{s}" for s in ("-3", "-2", "")]
    (root / "state" / "emergency.json").write_text('{"active": true, "level": 2}\n')
    assert ok(module_runner, root)["created"], "a file that appeared is a change"


def test_a_damaged_newest_backup_is_not_reused(module_runner: Any, root: Path) -> None:
    first = ok(module_runner, root)
    (Path(first["backup"]["path"]) / "files" / "etc" / "config.yml").write_text("mode: legacy\n")
    second = ok(module_runner, root, label="after")
    assert second["created"] and second["backup"]["name"] != first["backup"]["name"]
    assert "damaged" in warnings_of(second)


def test_check_mode_present_verified_and_query_write_nothing(module_runner: Any, root: Path) -> None:
    before = tree(root)
    predicted = ok(module_runner, root, check_mode=True, label="pre-rollback")
    assert predicted["changed"] and predicted["created"] and predicted["backup"]["name"].endswith("-pre-rollback")
    assert tree(root) == before and not (root / "backups").exists()
    made = ok(module_runner, root)
    snapshot = tree(root)
    reused = ok(module_runner, root, check_mode=True)
    assert not reused["changed"] and reused["backup"]["name"] == made["backup"]["name"]
    verified = ok(module_runner, root, check_mode=True, state="verified", name="latest")
    listed = ok(module_runner, root, check_mode=True, state="query")
    assert not verified["changed"] and listed["latest"] == made["backup"]["name"]
    assert tree(root) == snapshot


# -- verified and restored -------------------------------------------------------------------------------


def test_a_corrupt_backup_fails_verification_and_is_not_restored(module_runner: Any, root: Path) -> None:
    backup = ok(module_runner, root)["backup"]
    copy = Path(backup["path"]) / "files" / "templates" / "active" / "base.html"
    expected = hashlib.sha256(copy.read_bytes()).hexdigest()
    data = bytearray(copy.read_bytes())
    data[3] ^= 0x01  # one byte of one file
    copy.write_bytes(bytes(data))
    got = hashlib.sha256(bytes(data)).hexdigest()
    (root / "etc" / "config.yml").write_text("mode: legacy\n")  # something a restore would put back
    before = tree(root)
    verified, failed = run(module_runner, root, state="verified", name=backup["name"])
    message = (
        f"backup {backup['name']} is corrupt: files/templates/active/base.html sha256 is {got}, the manifest "
        f"says {expected}; it will not be restored. List the backups with state=query and pick another"
    )
    assert failed and verified["msg"] == message, "state=verified and state=restored say the same"
    for check_mode in (True, False):
        refused, failed = run(module_runner, root, check_mode=check_mode, state="restored", name="latest")
        assert failed and refused["msg"] == message
        assert tree(root) == before, "nothing on disk changed"


def test_missing_and_extra_files_fail_verification(module_runner: Any, root: Path) -> None:
    backup = ok(module_runner, root)["backup"]
    path = Path(backup["path"])
    (path / "files" / "etc" / "secrets.yml").unlink()
    (path / "files" / "stray.txt").write_text("x")
    result, failed = run(module_runner, root, state="verified", name="latest")
    assert failed and "files/etc/secrets.yml is missing" in result["msg"] and "1 more problem" in result["msg"]
    assert {p["path"] for p in result["problems"]} == {"files/etc/secrets.yml", "files/stray.txt"}


def test_restore_puts_back_every_file_and_a_second_restore_changes_nothing(module_runner: Any, root: Path) -> None:
    name = ok(module_runner, root)["backup"]["name"]
    original = tree(root / "etc") | {f"t/{k}": v for k, v in tree(root / "templates").items()}
    (root / "etc" / "config.yml").write_text("mode: legacy\n")
    (root / "etc" / "secrets.yml").chmod(0o644)
    (root / "etc" / "supervisor.d" / "notification-websocket.conf").unlink()
    shutil.rmtree(root / "templates" / "active")
    shutil.copytree(root / "templates" / "legacy", root / "templates" / "active")
    (root / "templates" / "active" / "extra").mkdir()
    (root / "templates" / "active" / "extra" / "stray.html").write_text("stray\n")
    (root / "state" / "emergency.json").write_text('{"active": true}\n')
    changed = tree(root)

    predicted = ok(module_runner, root, check_mode=True, _ansible_diff=True, state="restored", name=name)
    assert tree(root) == changed, "check mode writes nothing"
    result = ok(module_runner, root, _ansible_diff=True, state="restored", name=name)
    for key in ("changed", "restored_files", "removed_files", "diff"):
        assert result[key] == predicted[key], key
    assert result["changed"] and not result["database_restored"]
    assert set(result["restored_files"]) == {
        str(root / "etc" / "config.yml"),
        str(root / "etc" / "secrets.yml"),
        str(root / "etc" / "supervisor.d" / "notification-websocket.conf"),
        str(root / "templates" / "active" / "index.html"),
        str(root / "templates" / "active" / "base.html"),
        str(root / "templates" / "active" / "partials" / "socket.html"),
    }
    assert set(result["removed_files"]) == {
        str(root / "state" / "emergency.json"),
        str(root / "templates" / "active" / "extra" / "stray.html"),
    }
    assert tree(root / "etc") | {f"t/{k}": v for k, v in tree(root / "templates").items()} == original
    assert not (root / "templates" / "active" / "extra").exists() and not (root / "state" / "emergency.json").exists()
    before_lines, after_lines = result["diff"]["before"].splitlines(), result["diff"]["after"].splitlines()
    assert len(before_lines) == len(after_lines) == 8, "one line per changed path"
    config_line = next(line for line in before_lines if line.startswith(str(root / "etc" / "config.yml")))
    assert "sha256=" in config_line and "mode=0640" in config_line
    assert f"{root / 'state' / 'emergency.json'} (absent)" in after_lines
    assert not list(root.rglob("*.restore.tmp"))

    snapshot = tree(root)
    again = ok(module_runner, root, state="restored", name=name)
    assert not again["changed"] and again["restored_files"] == [] and again["removed_files"] == []
    assert tree(root) == snapshot


def test_restore_database_puts_the_sqlite_copy_back(module_runner: Any, root: Path) -> None:
    db = root / "data" / "notifications.db"
    name = ok(module_runner, root)["backup"]["name"]
    add_notifications(db, 4)
    assert rows(db) == 9
    plain = ok(module_runner, root, state="restored", name=name)
    assert not plain["changed"] and rows(db) == 9, "without restore_database the database is left alone"
    snapshot = tree(root)
    predicted = ok(module_runner, root, check_mode=True, state="restored", name=name, restore_database=True)
    assert predicted["changed"] and predicted["database_restored"] and tree(root) == snapshot
    result = ok(module_runner, root, state="restored", name=name, restore_database=True)
    assert result["changed"] and result["database_restored"] and rows(db) == 5
    assert not (root / "data" / "notifications.db-wal").exists()
    again = ok(module_runner, root, state="restored", name=name, restore_database=True)
    assert not again["changed"] and not again["database_restored"]


def test_extra_files_are_backed_up_and_restored_by_absolute_path(
    module_runner: Any, root: Path, tmp_path: Path
) -> None:
    unit = tmp_path / "systemd" / "notification-web.service"
    unit.parent.mkdir()
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    unit.chmod(0o640)
    missing = tmp_path / "systemd" / "notification-websocket.service"
    backup = ok(module_runner, root, extra_files=[str(unit), str(missing)], include_database=False)["backup"]
    manifest = json.loads((Path(backup["path"]) / "manifest.json").read_text())
    rel = "_abs" + str(unit)
    assert manifest["files"][rel]["mode"] == "0640" and (Path(backup["path"]) / "files" / rel).is_file()
    assert "_abs" + str(missing) in manifest["absent"]
    assert ok(module_runner, root, extra_files=[str(unit), str(missing)])["reused"]
    unit.write_text("broken\n")
    missing.write_text("appeared\n")
    result = ok(module_runner, root, state="restored", name=backup["name"])
    assert result["restored_files"] == [str(unit)] and result["removed_files"] == [str(missing)]
    assert unit.read_text() == "[Service]\nExecStart=/bin/true\n" and stat.S_IMODE(unit.stat().st_mode) == 0o640


# -- partial backups, retention, query -------------------------------------------------------------------


def test_an_interrupted_backup_is_ignored_and_pruned(module_runner: Any, root: Path) -> None:
    complete = ok(module_runner, root)["backup"]
    partial = root / "backups" / "20991231T235959Z-manual.partial"
    shutil.copytree(complete["path"], partial)  # newer than the complete one, and whole but for its rename
    (partial / ".in-progress").write_text(json.dumps({"pid": 999999999, "host": os.uname().nodename}))
    listed = ok(module_runner, root, state="query")
    assert listed["latest"] == complete["name"] and [b["name"] for b in listed["backups"]] == [complete["name"]]
    assert listed["partials"] == [partial.name]
    refused, failed = run(module_runner, root, state="restored", name="20991231T235959Z-manual")
    assert failed and "incomplete" in refused["msg"] and complete["name"] in refused["msg"]
    assert ok(module_runner, root, state="verified", name="latest")["backup"]["name"] == complete["name"]
    sleeper = subprocess.Popen(["sleep", "30"])
    try:  # a .partial whose run is alive is being built: left alone
        running = root / "backups" / "20991231T235958Z-manual.partial"
        running.mkdir()
        (running / ".in-progress").write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        predicted = ok(module_runner, root, check_mode=True, state="pruned")
        assert predicted["changed"] and predicted["removed_partials"] == [partial.name] and partial.exists()
        pruned = ok(module_runner, root, state="pruned")
        assert pruned["removed_partials"] == [partial.name] and pruned["pruned"] == []
        assert not partial.exists() and running.exists() and Path(complete["path"]).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_retention_by_count_and_by_age(module_runner: Any, root: Path) -> None:
    names = []
    for index in range(6):
        (root / "templates" / "legacy" / "index.html").write_text(f"<html>v{index}</html>\n")
        made = ok(module_runner, root, label=f"b{index}", include_database=False, include_queue=False)
        names.append(made["backup"]["name"])
    now = datetime.now(UTC)
    ages = [40, 30, 20, 10, 2, 0]  # days; names[5] is the newest
    for name, age in zip(names, ages, strict=True):
        manifest_path = root / "backups" / name / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["created_at"] = (now - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest_path.write_text(json.dumps(manifest))
    before = tree(root)
    args = {"state": "pruned", "retention_count": 2, "retention_days": 14, "protect": [names[1]]}
    predicted = ok(module_runner, root, check_mode=True, **args)
    # The 2 newest stay; of the others, those older than 14 days go, but for the protected one.
    assert predicted["changed"] and predicted["pruned"] == [names[2], names[0]] and tree(root) == before
    result = ok(module_runner, root, **args)
    assert result["pruned"] == [names[2], names[0]]
    assert result["kept"] == [names[5], names[4], names[3], names[1]]
    assert sorted(p.name for p in (root / "backups").iterdir()) == sorted([names[1], names[3], names[4], names[5]])
    by_count = ok(module_runner, root, state="pruned", retention_count=1, retention_days=0)
    assert by_count["pruned"] == [names[4], names[3], names[1]] and by_count["kept"] == [names[5]]
    assert not ok(module_runner, root, state="pruned", retention_count=1, retention_days=0)["changed"]


def test_query_without_backups(module_runner: Any, root: Path) -> None:
    result = ok(module_runner, root, state="query")
    assert result == {**result, "changed": False, "backups": [], "latest": None, "partials": []}
    assert result["backup_dir"] == str(root / "backups") and not (root / "backups").exists()


# -- bad arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"root": "{tmp}/nowhere"}, "root {tmp}/nowhere does not exist; set root to the directory that holds"),
        ({"root": "{tmp}"}, "is not a notification service root: {tmp}/etc/config.yml does not exist"),
        ({"label": "Pre Rollback"}, "label 'Pre Rollback' is not usable"),
        ({"label": ""}, "label '' is not usable"),
        ({"state": "verified"}, "name is required with state=verified"),
        ({"state": "restored"}, "name is required with state=restored"),
        ({"state": "restored", "name": "20260101T000000Z-nope"}, "there is no backup 20260101T000000Z-nope"),
        ({"state": "verified", "name": "latest"}, "name=latest: there is no complete backup"),
        ({"state": "verified", "name": "../etc"}, "name '../etc' is not a backup name"),
        ({"state": "pruned", "retention_count": 0}, "retention_count must be 1 or more"),
        ({"state": "pruned", "retention_days": -1}, "retention_days must be 0 or more"),
        ({"extra_files": ["relative/unit.service"]}, "extra_files: 'relative/unit.service' is not an absolute path"),
        ({"redis_timeout": 0}, "redis_timeout must be a positive number"),
        ({"state": "paused"}, "state"),
    ],
)
def test_bad_arguments_name_the_parameter(
    module_runner: Any, root: Path, tmp_path: Path, args: dict[str, Any], message: str
) -> None:
    args = {"root": str(root), **args}
    args = {key: value.format(tmp=tmp_path) if isinstance(value, str) else value for key, value in args.items()}
    before = tree(tmp_path)
    result, failed = module_runner(MODULE, args)
    assert failed and message.format(tmp=tmp_path) in result["msg"], result["msg"]
    assert tree(tmp_path) == before


def test_an_unknown_name_lists_the_available_backups(module_runner: Any, root: Path) -> None:
    name = ok(module_runner, root)["backup"]["name"]
    result, failed = run(module_runner, root, state="verified", name="20260101T000000Z-nope")
    assert failed and f"available backups, newest first: {name}" in result["msg"] and "name=latest" in result["msg"]
