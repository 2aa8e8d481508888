"""Switch a host of the notification service to legacy or WebSocket mode in one call.

Used by the ``notification_mode`` module. A mode switch touched the same few files and one process through a
dozen Ansible tasks, each a module start-up of its own (about half a CPU-second per host on a busy control
node); here it is one process per host:

1. read the state: the template sets, the active set, config.yml and the program files against the wanted
   contents (rendered on the control node), and the WebSocket and web processes;
2. when anything differs: a backup first (module_utils/notification_backup_make.py), then the files (template
   sets, the active set, the program files, config.yml last: the web process re-reads config.yml on its
   next request, so the pages of the new mode are in place before it switches), then the processes
   (supervisord update / systemd daemon-reload, WebSocket service stopped or started, web running), and in
   legacy mode the pending WebSocket notifications carried into the flash store once the WebSocket service
   is down (the web process already writes new ones to the flash store by then, so none falls between);
3. the verification: every component healthy, and a notification seen through the new mode's channel;
4. on any failure after the backup: the backup's files put back and the processes brought to the restored
   mode, and the failure reported with the step that failed.

Nothing here writes in check mode; the result says what would change, with a diff of the text files.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.notification_backup import file_info
from ansible.module_utils.notification_backup_fs import UnsafePath, names_under, read_under, write_under
from ansible.module_utils.notification_backup_list import prune
from ansible.module_utils.notification_backup_make import make
from ansible.module_utils.notification_backup_restore import restore
from ansible.module_utils.notification_common import CheckTimeout
from ansible.module_utils.notification_flash_probe import FlashProbeError, flash_probe
from ansible.module_utils.notification_health import check_health
from ansible.module_utils.notification_mode_processes import Processes
from ansible.module_utils.notification_redis import PENDING_KEY, redis_command
from ansible.module_utils.notification_service_config import read_service_config
from ansible.module_utils.notification_services import ServiceControlError

MODES = ("legacy", "websocket")
TEMPLATE_MODE = 0o644
CONFIG_MODE = 0o640
PROGRAM_MODE = 0o644
ROOT_IDS = (0, 0)  # the owner of the process manager's program definitions
DIR_MODE = 0o755
DIFF_LIMIT = 64 * 1024  # text files larger than this are listed, not shown, in the diff


class SwitchFailed(Exception):
    """A step failed; ``step`` names it the way the operator's output does."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass
class FileChange:
    path: str
    content: bytes | None  # None: remove the file
    mode: int
    before: bytes | None
    reason: str  # created, content, mode, owner, removed

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.reason}


@dataclass
class Switch:
    """The module's inputs, resolved."""

    root: str
    mode: str
    config_content: str
    websocket_enabled: bool
    template_sets: dict[str, dict[str, str]]
    program_files: dict[str, str]
    manager: str
    supervisor_config: str | None
    web_service: str
    websocket_service: str
    service_cli: str
    owner: str | None = None
    group: str | None = None
    backup_label: str = "pre-switch"
    run_id: str | None = None
    extra_files: list[str] = field(default_factory=list)
    retention_count: int = 10
    retention_days: int = 14
    verify: bool = True
    verify_user: str = "notification-emergency-verify"
    verify_timeout: float = 15.0
    health_timeout: float = 30.0
    service_timeout: float = 60.0
    health_params: dict[str, Any] = field(default_factory=dict)
    probe_always: bool = False

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, "etc", "config.yml")

    @property
    def backup_dir(self) -> str:
        return os.path.join(self.root, "backups")

    @property
    def channel(self) -> str:
        return "flash" if self.mode == "legacy" else "websocket"


# -- reading the state ----------------------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    """A root-owned file (config.yml in etc/, a program definition): read as it is."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _rel(root: str, path: str) -> str | None:
    """``path`` relative to the root when it is under it (reached then through directory descriptors, following
    no link: the service owns directories there), else None (a path the operator gave, such as a systemd unit)."""
    return os.path.relpath(path, root) if _under(path, root) else None


def _read_under(root: str, path: str) -> tuple[bytes | None, os.stat_result | None, str | None]:
    """``read_under`` (content, stat, why a link or non-file there is not read); a directory on the way that is a
    link fails the switch before anything changes."""
    try:
        return read_under(root, _rel(root, path), path)
    except UnsafePath as exc:
        raise SwitchFailed("Check the preconditions", f"nothing was changed: {exc}") from None


def _ids(owner: str | None, group: str | None) -> tuple[int, int]:
    """uid and gid to give written files (-1: leave as is)."""
    import grp
    import pwd

    uid = gid = -1
    if owner:
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise SwitchFailed("Check the inputs", f"owner {owner} does not exist on this host") from None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise SwitchFailed("Check the inputs", f"group {group} does not exist on this host") from None
    return uid, gid


def _want(root: str, path: str, content: bytes, mode: int, ids: tuple[int, int]) -> FileChange | None:
    before, st, odd = _read_under(root, path)
    if odd is not None:
        return FileChange(path, content, mode, None, "replaces a link or another non-regular file")
    if before is None or st is None:
        return FileChange(path, content, mode, None, "created")
    if before != content:
        return FileChange(path, content, mode, before, "content")
    if st.st_mode & 0o7777 != mode:
        return FileChange(path, content, mode, before, "mode")
    if (ids[0] != -1 and st.st_uid != ids[0]) or (ids[1] != -1 and st.st_gid != ids[1]):
        return FileChange(path, content, mode, before, "owner")
    return None


def _names(root: str, directory: str) -> list[str] | None:
    """The names in a directory under the root (None when it does not exist), reached following no link."""
    try:
        return names_under(root, _rel(root, directory) or "")
    except UnsafePath as exc:
        raise SwitchFailed("Check the preconditions", f"nothing was changed: {exc}") from None


def _under(path: str, root: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(root).rstrip("/") + "/")


def plan_files(switch: Switch, ids: tuple[int, int]) -> list[FileChange]:
    """Every file that differs from what the mode wants, in the order they are written."""
    changes: list[FileChange] = []
    root = switch.root
    templates = os.path.join(root, "templates")
    for name, files in sorted(switch.template_sets.items()):
        for filename, text in sorted(files.items()):
            change = _want(root, os.path.join(templates, name, filename), text.encode(), TEMPLATE_MODE, ids)
            if change:
                changes.append(change)
    # The active set: exactly the mode's set (its files as sent, else as they are on the host).
    wanted = switch.template_sets.get(switch.mode)
    source = os.path.join(templates, switch.mode)
    if wanted is None:
        names = _names(root, source)
        if names is None:
            raise SwitchFailed(
                "Check the preconditions",
                f"the template set {source} is missing; deploy the service first (playbooks/deploy.yml)",
            )
        wanted = {}
        for filename in names:
            data, _st, _odd = _read_under(root, os.path.join(source, filename))
            if data is not None:  # regular files only: a link there is not read
                wanted[filename] = data.decode("utf-8", errors="surrogateescape")
    if not wanted:
        raise SwitchFailed("Check the preconditions", f"the template set of mode {switch.mode} is empty")
    active = os.path.join(templates, "active")
    for filename, text in sorted(wanted.items()):
        data = text.encode("utf-8", errors="surrogateescape")
        change = _want(root, os.path.join(active, filename), data, TEMPLATE_MODE, ids)
        if change:
            changes.append(change)
    for filename in sorted(set(_names(root, active) or []) - set(wanted)):
        path = os.path.join(active, filename)
        content, st, _odd = _read_under(root, path)
        if st is not None and not stat.S_ISDIR(st.st_mode):  # a file, a link (removed itself, not followed)
            changes.append(FileChange(path, None, 0, content, "removed"))
    for path, text in sorted(switch.program_files.items()):
        # Program definitions are root's wherever they are, as the deploy writes them: the process manager runs
        # as root and starts each program as its user=, so a definition the service could edit would let the
        # service run anything as root.
        change = _want(root, path, text.encode(), PROGRAM_MODE, ROOT_IDS)
        if change:
            changes.append(change)
    # config.yml last: the web process switches on its next request, once the pages are in place. Root's and
    # readable by the service's group, as the deploy writes it: the service reads it, root-run modules trust it.
    change = _want(root, switch.config_path, switch.config_content.encode(), CONFIG_MODE, config_ids(ids))
    if change:
        changes.append(change)
    return changes


def config_ids(ids: tuple[int, int]) -> tuple[int, int]:
    """The owner of config.yml: root, and the service's group."""
    return 0, ids[1]


def diff_of(changes: list[FileChange]) -> list[dict[str, str]]:
    """Ansible's diff format, one entry per text file."""
    diffs = []
    for change in changes:
        before = change.before or b""
        after = change.content or b""
        if len(before) > DIFF_LIMIT or len(after) > DIFF_LIMIT:
            before, after = b"(large file)\n", b"(large file, changed)\n"
        diffs.append(
            {
                "before_header": change.path if change.before is not None else "/dev/null",
                "after_header": change.path if change.content is not None else "/dev/null",
                "before": before.decode("utf-8", errors="replace"),
                "after": after.decode("utf-8", errors="replace"),
            }
        )
    return diffs


# -- writing --------------------------------------------------------------------------------------------------


def write_file(root: str, change: FileChange, ids: tuple[int, int]) -> None:
    """Write atomically (a temporary file in the same directory, renamed over the old one). Under the root through
    directory descriptors, following no link: a link at the path is replaced (or removed), never followed."""
    rel = _rel(root, change.path)
    if rel is not None:
        write_under(root, rel, change.content, change.mode, ids, DIR_MODE)
        return
    if change.content is None:
        os.unlink(change.path)
        return
    directory = os.path.dirname(change.path)
    if not os.path.isdir(directory):
        os.makedirs(directory, DIR_MODE)
        if ids != (-1, -1):
            os.chown(directory, *ids)
    fd, temp = tempfile.mkstemp(prefix=".notification-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(change.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, change.mode)
        if ids != (-1, -1):
            os.chown(temp, *ids)
        os.rename(temp, change.path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# -- the service CLI (carry-pending, probe) ------------------------------------------------------------------


def _as_owner(switch: Switch) -> Any:
    """A preexec_fn that runs the service's CLI as the service's own user when this module runs as root and the
    service has another owner: what the CLI writes (the SQLite database and its journal) stays the service's.
    None when there is nothing to change (subprocess's user= needs Python 3.9; hosts may run 3.8)."""
    uid, gid = _ids(switch.owner, switch.group)
    if os.geteuid() != 0 or uid in (-1, 0):
        return None
    import pwd

    entry = pwd.getpwuid(uid)
    gid = gid if gid != -1 else entry.pw_gid

    def drop() -> None:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)

    return drop


def run_cli(switch: Switch, step: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``notification-service <args>`` (as the service's owner) and return its JSON answer; a failure names
    ``step``."""
    command = [switch.service_cli, *args]
    drop = _as_owner(switch)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=drop,
            cwd=switch.root if drop else None,  # the module's own directory may be closed to the service's user
        )
    except subprocess.TimeoutExpired:
        raise SwitchFailed(step, f"{' '.join(command)} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise SwitchFailed(step, f"cannot run {switch.service_cli}: {exc.strerror or exc}") from None
    try:
        answer: dict[str, Any] = json.loads(done.stdout or "{}")
    except ValueError:
        answer = {}
    if done.returncode != 0:
        detail = answer.get("error") or (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SwitchFailed(step, f"{' '.join(args[:1])} failed (rc={done.returncode}): {detail}")
    return answer


# -- verification ---------------------------------------------------------------------------------------------


def wait_healthy(
    switch: Switch, sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.monotonic
) -> dict[str, Any]:
    """Every component healthy within ``health_timeout`` (checked once a second), else SwitchFailed."""
    params: dict[str, Any] = {
        "config": switch.config_path,
        "manager": switch.manager,
        "supervisor_config": switch.supervisor_config,
        "bin_dir": None,
        "services": {"web": switch.web_service, "websocket": switch.websocket_service},
        "checks": None,
        "include": None,
        "exclude": None,
        "timeout": 2.0,
        "deadline": 10.0,
        "websocket_roundtrip": True,
        "latency_degraded_ms": 1000.0,
        "pending_max_length": 1000,
        "pending_max_age_s": 300.0,
        "disk_min_free_percent": 5.0,
        **switch.health_params,
    }
    end = now() + switch.health_timeout
    while True:
        result, _secrets = check_health(params)
        if result["overall"] == "healthy":
            return result
        if now() >= end:
            details = "; ".join(
                f"{name}: {result['checks'][name].get('reason')} ({result['checks'][name].get('error')})"
                for name in result.get("failed_checks", []) + result.get("degraded_checks", [])
            )
            raise SwitchFailed(
                "Wait until every component is healthy",
                f"still {result['overall']} after {switch.health_timeout:g}s - {details or 'see the health checks'}",
            )
        sleep(1.0)


def probe(switch: Switch) -> dict[str, Any]:
    step = f"See a notification arrive through the channel of mode {switch.mode}"
    if switch.mode == "legacy":
        # From outside, as a browser: a sign-in, the API, two pages (module_utils/notification_flash_probe.py). Its
        # import stays at the top of this file: Mitogen ships only the module_utils imported there (a function-level
        # import failed with ModuleNotFoundError under Mitogen; AnsiballZ found it).
        try:
            return flash_probe(switch.config_path, switch.verify_user, switch.verify_timeout)
        except FlashProbeError as exc:
            raise SwitchFailed(step, str(exc)) from None
    answer = run_cli(
        switch,
        step,
        [
            "probe",
            f"--config={switch.config_path}",
            f"--user={switch.verify_user}",
            f"--timeout={switch.verify_timeout:g}",
        ],
        switch.verify_timeout + 10,
    )
    if answer.get("channel") != switch.channel:
        raise SwitchFailed(step, f"the notification came through {answer.get('channel')!r}, not {switch.channel}")
    return answer


def verify(switch: Switch, changed: bool, timer: StepTimer) -> dict[str, Any]:
    """Every component healthy; and, when the call changed the host (or ``probe_always``), a notification seen
    through the mode's channel."""
    health = wait_healthy(switch)
    timer.mark("health")
    if not (changed or switch.probe_always):
        return {"health": health["overall"], "channel": None, "ok": True, "probed": False}
    answer = probe(switch)
    timer.mark("probe")
    return {"health": health["overall"], **answer, "probed": True}


# -- the switch -----------------------------------------------------------------------------------------------


def current_mode(root: str) -> str:
    text = (_read(os.path.join(root, "etc", "config.yml")) or b"").decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.startswith("mode:"):
            value = line.split(":", 1)[1].strip().strip("'\"")
            return value if value in MODES else "unknown"
    return "unknown"


def pending_count(switch: Switch) -> int | None:
    """Notifications waiting for the WebSocket service (the Redis sorted set), None when it cannot be read."""
    try:
        url = read_service_config(switch.config_path).get("redis_url")
        return int(redis_command(str(url), ["ZCARD", PENDING_KEY], 5.0)) if url else None
    except Exception:  # unreadable: the caller carries anyway (carry-pending reports what it could not do)
        return None


def preconditions(switch: Switch) -> None:
    if switch.mode not in MODES:
        raise SwitchFailed("Check the inputs", f"mode must be one of {', '.join(MODES)}, got {switch.mode!r}")
    if switch.mode == "websocket" and not switch.websocket_enabled:
        raise SwitchFailed("Check the inputs", "mode websocket needs websocket_enabled=true")
    info = file_info(switch.config_path) if os.path.exists(switch.config_path) else None
    if info is None or not os.access(switch.config_path, os.W_OK):
        raise SwitchFailed(
            "Check the preconditions",
            f"{switch.config_path} is missing or not writable: deploy the service first (playbooks/deploy.yml) "
            "or run with the privileges that own it (become)",
        )
    if not os.access(switch.service_cli, os.X_OK):
        raise SwitchFailed(
            "Check the preconditions",
            f"{switch.service_cli} is not an executable: set notification_service_python to the service's venv",
        )


class StepTimer:
    """Milliseconds spent in each step of the call, reported as ``timings_ms``: where a host's time went."""

    def __init__(self, into: dict[str, float], now: Callable[[], float] = time.monotonic) -> None:
        self.into = into
        self.now = now
        self.started = now()
        self.last = self.started

    def mark(self, step: str) -> None:
        """The time since the previous mark (or the start) is step's."""
        current = self.now()
        self.into[step] = round(self.into.get(step, 0.0) + (current - self.last) * 1000, 1)
        self.last = current

    def total(self) -> None:
        self.into["total"] = round((self.now() - self.started) * 1000, 1)
        # The CPU of the interpreter that ran the call, its start-up and imports included (under Mitogen, of
        # the host's interpreter since it started): on a sandbox fleet the hosts' share of the control node's
        # CPU, which a real fleet spends on the hosts themselves.
        self.into["process_cpu"] = round(time.process_time() * 1000, 1)


def run_switch(switch: Switch, check_mode: bool, warn: Callable[[str], None]) -> dict[str, Any]:
    """Bring the host to ``switch.mode``; returns the module result (raises SwitchFailed with ``result``)."""
    timings: dict[str, float] = {}
    timer = StepTimer(timings)
    preconditions(switch)
    ids = _ids(switch.owner, switch.group)
    changes = plan_files(switch, ids)
    processes = Processes(switch)
    websocket_running = processes.running(switch.websocket_service)
    web_running = processes.running(switch.web_service)
    process_actions = []
    if websocket_running != switch.websocket_enabled:
        process_actions.append(f"{switch.websocket_service}: {'start' if switch.websocket_enabled else 'stop'}")
    if not web_running:
        process_actions.append(f"{switch.web_service}: start")
    previous = current_mode(switch.root)
    result: dict[str, Any] = {
        "changed": bool(changes or process_actions),
        "mode": switch.mode,
        "previous_mode": previous,
        "files": [change.as_dict() for change in changes],
        "processes": process_actions,
        "backup": None,
        "carried": 0,
        "verified": None,
        "restored_from": None,
        "pruned": [],
        "diff": diff_of([c for c in changes if c.reason in ("created", "content", "removed")]),
        "timings_ms": timings,
    }
    timer.mark("state")
    if check_mode:
        timer.total()
        return result

    if result["changed"]:
        made = make(
            switch.root,
            switch.backup_dir,
            switch.backup_label,
            switch.run_id,
            switch.extra_files,
            include_database=True,
            include_queue=True,
            reuse_unchanged=True,
            database_timeout=5,
            redis_timeout=5,
            check_mode=False,
            warn=warn,
        )
        result["backup"] = made["backup"]["name"]
        timer.mark("backup")
        step = "Write the templates, routes and service definitions of mode " + switch.mode
        try:
            for change in changes:
                if change.path in switch.program_files:
                    write_file(switch.root, change, ROOT_IDS)  # root's, see plan_files
                elif change.path == switch.config_path:
                    write_file(switch.root, change, config_ids(ids))
                else:
                    write_file(switch.root, change, ids if _under(change.path, switch.root) else (-1, -1))
            timer.mark("files")
            step = "Bring the services to mode " + switch.mode
            definitions = any(change.path in switch.program_files for change in changes)
            result["processes"] = processes.converge(switch.websocket_enabled, definitions)
            timer.mark("services")
            # One Redis read first: the carry is a Python start-up on the host, for nothing when none waits.
            if switch.mode == "legacy" and pending_count(switch) != 0:
                step = "Carry pending WebSocket notifications into the flash store"
                carried = run_cli(switch, step, ["carry-pending", "--config", switch.config_path], 120)
                result["carried"] = int(carried.get("carried", 0))
            timer.mark("carry")
            if switch.verify:
                result["verified"] = verify(switch, True, timer)
        except (SwitchFailed, ServiceControlError, CheckTimeout, OSError) as exc:
            failure = exc if isinstance(exc, SwitchFailed) else SwitchFailed(step, _message(exc))
            timer.mark("failed step")
            result["restored_from"] = _put_back(switch, processes, result["backup"], failure)
            result["failed_step"] = failure.step
            timer.mark("put back")
            timer.total()
            raise SwitchError(failure, result) from None
    else:
        try:
            # In legacy mode, notifications still waiting for the WebSocket service (a run killed between the
            # switch and its carry, or written by a request that read the old config.yml) are carried now:
            # one Redis read when there are none, so the second run stays cheap.
            if switch.mode == "legacy" and pending_count(switch) != 0:
                step = "Carry pending WebSocket notifications into the flash store"
                carried = run_cli(switch, step, ["carry-pending", "--config", switch.config_path], 120)
                result["carried"] = int(carried.get("carried", 0))
                result["changed"] = result["carried"] > 0
            timer.mark("carry")
            if switch.verify:
                result["verified"] = verify(switch, result["changed"], timer)
        except SwitchFailed as failure:
            result["failed_step"] = failure.step
            timer.total()
            raise SwitchError(failure, result) from None

    pruned = prune(
        switch.backup_dir,
        switch.retention_count,
        switch.retention_days,
        [result["backup"]] if result["backup"] else [],
        check_mode=False,
    )
    result["pruned"] = pruned["pruned"]
    timer.mark("prune")
    timer.total()
    return result


def _message(exc: BaseException) -> str:
    if isinstance(exc, CheckTimeout):
        return "the process manager did not answer in time"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return str(exc)


class SwitchError(Exception):
    """The switch failed; ``result`` is what the module reports with fail_json."""

    def __init__(self, failure: SwitchFailed, result: dict[str, Any]) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.result = result


def _put_back(switch: Switch, processes: Processes, backup: str, failure: SwitchFailed) -> str | None:
    """Restore the files of ``backup`` and bring the processes to the restored mode; the backup's name."""
    try:
        restore(switch.root, switch.backup_dir, backup, False, False)
        restored_websocket = _websocket_enabled(switch.config_path)
        processes.converge(restored_websocket, True)
    except Exception as exc:  # the report must say the host is half-switched, not hide the first failure
        failure.message += f"; putting back backup {backup} failed too: {_message(exc)}"
        return None
    return backup


def _websocket_enabled(config_path: str) -> bool:
    """websocket.enabled of a config.yml (read with a pattern: a broken file must not stop the put-back)."""
    text = (_read(config_path) or b"").decode("utf-8", errors="replace")
    in_websocket = False
    for line in text.splitlines():
        if not line.startswith((" ", "\t")):
            in_websocket = line.startswith("websocket:")
            continue
        stripped = line.strip()
        if in_websocket and stripped.startswith("enabled:"):
            return stripped.split(":", 1)[1].strip().lower() in ("true", "yes", "on", "1")
    return False
