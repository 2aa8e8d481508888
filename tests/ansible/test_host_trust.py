"""What the toolkit (root) trusts on a host whose service runs as its own user (the realistic profile).

The service user cannot change config.yml or secrets.yml (root's, read through the service's group); root-run
modules refuse a database that config.yml (or a backup's config.yml) names outside the service root; and they
follow no symbolic link the service planted in the directories it owns (data/, templates/, state/): a root-only
file outside the root, with a canary in it, is neither read into a backup nor overwritten, and the run fails or
skips it with a message naming the link and the fix.

One realistic host for the module (a private sshd, a bare Python 3.9, the service user notif-<port>), removed at
the end. The tests run in order; each puts the host back as it found it.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.ansible.sandbox import ROOT, PlaybookRun, Sandbox
from tests.conftest import VENV_BIN

HOST = "sandbox-01"


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[..., Sandbox]) -> Iterator[Sandbox]:
    plain = sandbox_factory("trust", ports=14)
    box = Sandbox(plain.workdir, plain.base_port, profile="realistic")
    up = box.playbook("sandbox_up.yml", extra={"sandbox_size": 1})
    if up.rc != 0:
        box.playbook("sandbox_down.yml")
    assert up.rc == 0, up.output[-4000:]
    yield box
    down = box.playbook("sandbox_down.yml")
    assert down.rc == 0, down.output[-3000:]


@pytest.fixture(scope="module")
def outside(host: Sandbox) -> Path:
    """A directory outside the service root that only root may enter (what a link planted by the service could
    name: /etc, /root)."""
    path = host.home / "outside"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def root_of(box: Sandbox) -> Path:
    return Path(box.hosts()[HOST]["notification_service_root"])


def user_of(box: Sandbox) -> str:
    return f"notif-{box.hosts()[HOST]['notification_service_web_port']}"


def as_service(box: Sandbox, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run as the service user (what a compromised service can do)."""
    return subprocess.run(
        ["runuser", "-u", user_of(box), "--", *command],
        capture_output=True,
        text=True,
        cwd=root_of(box),
        check=False,
    )


def digest(path: Path) -> tuple[str, int]:
    """(sha256, mtime in ns) of a file, read as root, to show it was neither changed nor replaced."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def canary_db(path: Path) -> str:
    """A root-only SQLite database (0600) holding a canary: what a root-run backup that follows a link would copy."""
    canary = f"CANARY-{uuid.uuid4().hex}"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE secret (value TEXT)")
        conn.execute("INSERT INTO secret VALUES (?)", (canary,))
    conn.close()
    path.chmod(0o600)
    return canary


def canary_file(path: Path) -> str:
    canary = f"CANARY-{uuid.uuid4().hex}"
    path.write_text(f"root only: {canary}\n")
    path.chmod(0o600)
    return canary


def backups_hold(root: Path, canary: str) -> list[str]:
    """Files under backups/ that contain ``canary``, at any depth (SQLite copies included)."""
    found = []
    for directory, _subdirs, names in os.walk(root / "backups"):
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink() and canary.encode() in path.read_bytes():
                found.append(str(path))
    return found


def clear_backups(root: Path) -> None:
    """No backup to reuse: the next backup reads every file again."""
    if (root / "backups").exists():
        for path in (root / "backups").iterdir():
            shutil.rmtree(path)


def module(box: Sandbox, **args: object) -> PlaybookRun:
    """notification_backup run on the host over SSH by an ad-hoc command (as root, as the playbooks run it)."""
    command = [
        str(VENV_BIN / "ansible"),
        HOST,
        "-i",
        str(box.inventory),
        "-m",
        "notification_backup",
        "-a",
        json.dumps({"root": str(root_of(box)), **args}),
    ]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    return PlaybookRun(done.returncode, done.stdout, done.stderr, 0.0)


def healthy(box: Sandbox) -> dict[str, object]:
    port = box.hosts()[HOST]["notification_service_web_port"]
    return dict(requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json())


def refused(run: PlaybookRun, *words: str) -> None:
    assert run.rc != 0, run.output[-3000:]
    for word in words:
        assert word in run.output, f"{word!r} not in the output:\n{run.output[-3000:]}"


def test_the_service_user_cannot_write_its_configuration(host: Sandbox) -> None:
    root = root_of(host)
    user = user_of(host)
    for name in ("config.yml", "secrets.yml"):
        path = root / "etc" / name
        info = path.stat()
        assert (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name) == ("root", user), path
        assert info.st_mode & 0o777 == 0o640, f"{path}: {info.st_mode:o}"
        before = digest(path)
        write = as_service(host, "sh", "-c", f"echo 'database_url: sqlite:////etc/passwd' >> {path}")
        assert write.returncode != 0 and "Permission denied" in write.stderr, write
        assert as_service(host, "chmod", "0666", str(path)).returncode != 0
        assert as_service(host, "mv", str(path), f"{path}.moved").returncode != 0, "etc/ is root's"
        assert digest(path) == before
        # ... and still reads it: the group's read bit.
        assert as_service(host, "cat", str(path)).returncode == 0
    assert healthy(host)["status"] == "healthy"


def test_a_backup_of_a_host_deployed_before_is_restored_roots(host: Sandbox) -> None:
    """On a host deployed before config.yml and secrets.yml were root's (the service's, secrets.yml 0600), a backup
    taken then and restored puts them back root's, with the service's group, 0640: not the service's again, and
    still readable by it. (The playbooks redeploy after a restore; the module alone must not reopen the gap.)"""
    root = root_of(host)
    user = pwd.getpwnam(user_of(host))
    etc = [root / "etc" / "config.yml", root / "etc" / "secrets.yml"]
    for path in etc:  # the layout of a host deployed before
        os.chown(path, user.pw_uid, user.pw_gid)
    etc[1].chmod(0o600)
    clear_backups(root)
    taken = host.playbook("backup.yml", extra={"backup_label": "pre-change"})
    assert taken.rc == 0, taken.output[-3000:]
    [backup] = [path for path in (root / "backups").iterdir() if path.name.endswith("-pre-change")]
    assert json.loads((backup / "manifest.json").read_text())["files"]["etc/secrets.yml"]["mode"] == "0600"
    for path in etc:  # they change, so the restore writes both
        path.write_text(path.read_text() + "# changed after the backup\n")
    restored = module(host, state="restored", name=backup.name)
    assert restored.rc == 0, restored.output[-3000:]
    for path in etc:
        info = path.stat()
        assert "# changed after the backup" not in path.read_text(), path
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, user.pw_gid, 0o640), (
            f"{path}: {info.st_uid}:{info.st_gid} {info.st_mode & 0o777:o}"
        )
    assert as_service(host, "cat", str(etc[1])).returncode == 0
    deployed = host.playbook("deploy.yml")
    assert deployed.rc == 0, deployed.output[-3000:]
    assert deployed.changed() == {HOST: 0}, "the restore left them as the deploy writes them"
    assert healthy(host)["status"] == "healthy"


def test_a_database_linked_out_of_the_root_is_neither_backed_up_nor_overwritten(host: Sandbox, outside: Path) -> None:
    root = root_of(host)
    database = root / "data" / "notifications.db"
    secret = outside / "secret.db"
    canary = canary_db(secret)
    before = digest(secret)
    clear_backups(root)
    good = host.playbook("backup.yml", extra={"backup_label": "before-link"})
    assert good.rc == 0, good.output[-3000:]
    [kept] = list((root / "backups").iterdir())
    os.rename(kept, outside / kept.name)  # no backup to reuse: the next one reads the database again
    # The service moves its database aside and plants a link to the root-only file (it owns data/).
    assert as_service(host, "mv", str(database), f"{database}.real").returncode == 0
    try:
        assert as_service(host, "ln", "-s", str(secret), str(database)).returncode == 0
        backup = host.playbook("backup.yml", extra={"backup_label": "linked"})
        assert backups_hold(root, canary) == [], "the root-only file was copied into a backup"
        refused(backup, "database_url", str(database), str(secret), "outside the service root")
        assert list((root / "backups").iterdir()) == [], "nothing written, no partial backup left"

        os.rename(outside / kept.name, kept)
        restore = module(host, state="restored", name=kept.name, restore_database=True)
        assert digest(secret) == before, "the root-only file was overwritten"
        refused(restore, "restore_database refused, nothing was restored", str(database), "outside the service root")
        assert database.is_symlink(), "nothing written: not even the link replaced"
        assert backups_hold(root, canary) == []
    finally:
        database.unlink(missing_ok=True)
        os.rename(f"{database}.real", database)
    assert digest(secret) == before


def test_a_database_url_out_of_the_root_is_refused_by_the_backup(host: Sandbox, outside: Path) -> None:
    """config.yml names a database outside the root (only root can write config.yml now; before, the service
    could): the backup refuses to read it."""
    root = root_of(host)
    config = root / "etc" / "config.yml"
    secret = outside / "named.db"
    canary = canary_db(secret)
    before = digest(secret)
    original = config.read_text()
    url_line = next(line for line in original.splitlines() if line.startswith("database_url:"))
    clear_backups(root)
    try:
        config.write_text(original.replace(url_line, f"database_url: sqlite:///{secret}"))
        backup = host.playbook("backup.yml", extra={"backup_label": "named-outside"})
        assert backups_hold(root, canary) == [], "the file outside the root was copied into a backup"
        refused(backup, "database_url", str(secret), "outside the service root", "deploy again")
    finally:
        config.write_text(original)
    assert digest(secret) == before


def test_a_backup_whose_database_url_is_out_of_the_root_is_not_restored(host: Sandbox, outside: Path) -> None:
    """An older backup whose config.yml names a file outside the root (the service wrote it when it owned
    config.yml): restore_database refuses to write there, and nothing of the backup is restored."""
    root = root_of(host)
    config = root / "etc" / "config.yml"
    secret = outside / "overwritten.db"
    canary_db(secret)
    before = digest(secret)
    original = config.read_text()
    url_line = next(line for line in original.splitlines() if line.startswith("database_url:"))
    good = host.playbook("backup.yml", extra={"backup_label": "good"})
    assert good.rc == 0, good.output[-3000:]
    [backup_dir] = [path for path in (root / "backups").iterdir() if path.name.endswith("-good")]
    old = root / "backups" / "20200101T000000Z-compromised"
    shutil.copytree(backup_dir, old)
    copy = old / "files" / "etc" / "config.yml"
    copy.write_text(original.replace(url_line, f"database_url: sqlite:///{secret}"))
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["files"]["etc/config.yml"]["sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
    manifest["name"] = old.name
    (old / "manifest.json").write_text(json.dumps(manifest))
    config_before = digest(config)
    restore = host.playbook("restore.yml", extra={"restore_backup": old.name, "restore_database": True})
    assert digest(secret) == before, "the file outside the root was overwritten"
    refused(restore, "restore_database", "database_url", str(secret), "outside the service root")
    assert config.read_text() == original and digest(config)[0] == config_before[0], "config.yml half-restored"
    shutil.rmtree(old)
    again = host.playbook("deploy.yml")
    assert again.rc == 0, again.output[-3000:]
    assert healthy(host)["status"] == "healthy"


def test_template_links_are_not_followed_by_backup_rollback_or_restore(host: Sandbox, outside: Path) -> None:
    root = root_of(host)
    secret = outside / "page.html"
    canary = canary_file(secret)
    before = digest(secret)
    link = root / "templates" / "active" / "stolen.html"
    assert as_service(host, "ln", "-s", str(secret), str(link)).returncode == 0
    clear_backups(root)
    try:
        backup = host.playbook("backup.yml", extra={"backup_label": "template-link"})
        assert backups_hold(root, canary) == [], "the root-only file was copied into a backup"
        assert backup.rc == 0, backup.output[-3000:]
        assert "not backed up" in backup.output and str(link) in backup.output and "rm " in backup.output

        rollback = host.playbook("rollback_to_legacy.yml")
        assert rollback.rc == 0, rollback.output[-3000:]
        assert not link.is_symlink(), "the rollback removes the link (not what it points to)"
        assert digest(secret) == before and canary not in rollback.output
        assert backups_hold(root, canary) == []
        assert healthy(host)["mode"] == "legacy"
        # A deploy after the rollback changes nothing: the switch wrote config.yml as the deploy does.
        deploy = host.playbook("deploy.yml")
        assert deploy.rc == 0, deploy.output[-3000:]
        assert deploy.changed() == {HOST: 0}, deploy.changed()

        assert as_service(host, "ln", "-s", str(secret), str(link)).returncode == 0
        forward = host.playbook("restore.yml")
        assert forward.rc == 0, forward.output[-3000:]
        assert not link.is_symlink() and digest(secret) == before
        assert healthy(host)["mode"] == "websocket"
    finally:
        link.unlink(missing_ok=True)
    assert digest(secret) == before


def test_a_template_directory_linked_out_of_the_root_stops_the_rollback_and_the_deploy(
    host: Sandbox, outside: Path
) -> None:
    """templates/active replaced by a link to a root-only directory: a switch that followed it would write its
    pages there and remove every other file in it; the deploy would copy into it and chown it to the service.
    templates/ is root's, so the service cannot do that any more; on a host deployed before (templates/ the
    service's) the link is refused."""
    root = root_of(host)
    templates = root / "templates"
    active = templates / "active"
    assert templates.stat().st_uid == 0 and templates.stat().st_mode & 0o022 == 0
    assert as_service(host, "mv", str(active), f"{active}.real").returncode != 0, "templates/ is root's"
    target = outside / "etc-like"
    target.mkdir(mode=0o700)
    (target / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    before = {path.name: digest(path) for path in target.iterdir()}
    user = pwd.getpwnam(user_of(host))
    os.chown(templates, user.pw_uid, user.pw_gid)  # the layout of a host deployed before
    assert as_service(host, "mv", str(active), f"{active}.real").returncode == 0
    try:
        assert as_service(host, "ln", "-s", str(target), str(active)).returncode == 0
        rollback = host.playbook("rollback_to_legacy.yml")
        assert {path.name: digest(path) for path in target.iterdir()} == before, "the directory was written to"
        refused(rollback, str(active), "symbolic link", "rm ")
        assert backups_hold(root, "root:x:0:0") == []
        deploy = host.playbook("deploy.yml")
        assert {path.name: digest(path) for path in target.iterdir()} == before, "the deploy wrote there"
        assert target.stat().st_uid == 0, "the deploy gave the directory the link names to the service"
        refused(deploy, str(active), "symbolic link", f"rm {active}")
    finally:
        active.unlink(missing_ok=True)
        os.rename(f"{active}.real", active)
    deploy = host.playbook("deploy.yml")
    assert deploy.rc == 0, deploy.output[-3000:]
    assert templates.stat().st_uid == 0, "the deploy makes templates/ root's again"
    assert healthy(host)["mode"] == "websocket"


def test_a_lock_link_in_state_is_not_followed(host: Sandbox, outside: Path) -> None:
    root = root_of(host)
    secret = outside / "state-secret"
    canary = canary_file(secret)
    before = digest(secret)
    lock = root / "state" / "toolkit.lock"
    lock_audit = root / "state" / "lock-audit.log"
    assert as_service(host, "ln", "-s", str(secret), str(lock)).returncode == 0
    try:
        # Even a forced takeover (whose audit line records an unreadable lock's content, in a file of state/ that
        # the service can read) reads nothing through the link.
        backup = host.playbook("backup.yml", extra={"backup_label": "lock-link", "notification_lock_force": True})
        assert canary not in backup.output
        assert not lock_audit.exists() or canary not in lock_audit.read_text(), "the root-only file leaked"
        refused(backup, str(lock), "symbolic link", f"rm {lock}")
    finally:
        lock.unlink(missing_ok=True)
    assert digest(secret) == before


def test_an_emergency_audit_link_in_state_is_not_followed(host: Sandbox, outside: Path) -> None:
    root = root_of(host)
    secret = outside / "appended"
    canary_file(secret)
    before = digest(secret)
    audit = root / "state" / "emergency-audit.log"
    saved = audit.read_bytes() if audit.exists() else None
    audit.unlink(missing_ok=True)
    assert as_service(host, "ln", "-s", str(secret), str(audit)).returncode == 0
    try:
        activate = host.playbook(
            "emergency_activate.yml", extra={"reason": "trust test", "triggered_by": "pytest", "level": 3}
        )
        assert digest(secret) == before, "an audit line was appended to the root-only file"
        refused(activate, str(audit), "symbolic link")
    finally:
        audit.unlink(missing_ok=True)
        if saved is not None:
            audit.write_bytes(saved)
    assert not healthy(host)["emergency"]["active"]  # type: ignore[index]
