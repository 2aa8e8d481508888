"""The faults a drill injects into a sandbox host, each with the failure type the engine must find and
whether it must recover it (or escalate). A fault returns its undo: what the drill runs afterwards to leave
the host as it found it (a no-op when the engine's recovery is the undo)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
import yaml

from notification_emergency.drills import config_faults, hang_faults, process_faults, resource_faults
from notification_emergency.drills.sandbox import SandboxHost, Undo
from notification_emergency.errors import BadInput


def _kill(program: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        os.kill(host.pid(program), signal.SIGKILL)
        return lambda: None  # supervisord restarts it; the engine makes sure

    return inject


def _stop(program: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        host.supervisorctl("stop", program)

        def undo() -> None:
            host.supervisorctl("start", program)

        return undo

    return inject


def _rewrite(relative: str, content: str) -> Callable[[SandboxHost], Undo]:
    def inject(host: SandboxHost) -> Undo:
        path = host.root / relative
        original = path.read_bytes()
        path.write_text(content)

        def undo() -> None:
            if path.read_text() == content:  # the engine did not put it back: do it
                path.write_bytes(original)

        return undo

    return inject


OUTAGE_S = 45.0  # how long the prolonged outage holds the WebSocket port: past the restart and the fallback


def hold_port(port: int) -> Callable[[], None]:
    """Another program takes ``port`` on 127.0.0.1: it accepts each connection and closes it at once (so a
    client fails fast, as with a wrong server, rather than hanging), and the service cannot bind it. Returns
    the release."""
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            squatter.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    squatter.listen(16)
    squatter.settimeout(0.2)
    released = threading.Event()

    def serve() -> None:
        while not released.is_set():
            try:
                connection, _address = squatter.accept()
                connection.close()
            except OSError:  # the accept timed out, or the socket is closed
                continue

    server = threading.Thread(target=serve, name=f"squatter-{port}", daemon=True)
    server.start()

    def release() -> None:
        released.set()
        squatter.close()
        server.join(timeout=2)

    return release


def _take_websocket_port(host: SandboxHost) -> Undo:
    """Stop the WebSocket service and hold its port with another program for OUTAGE_S seconds: no restart
    can bring it back meanwhile, so the engine puts the host on flash messages; once the port is free, it
    must roll the host forward to WebSocket on its own."""
    host.supervisorctl("stop", "notification-websocket")
    release_port = hold_port(host.websocket_port)
    release = threading.Timer(OUTAGE_S, release_port)
    release.daemon = True
    release.start()

    def undo() -> None:
        release.cancel()
        release_port()
        if "RUNNING" not in host.supervisorctl("status", "notification-websocket"):
            host.supervisorctl("start", "notification-websocket")

    return undo


def _back_up_queue(host: SandboxHost) -> Undo:
    """Pile up notifications for a user who is not connected, one more than the host's pending-queue limit:
    real notifications through the service's own API, each a pending WebSocket delivery in the database and
    an entry in the Redis pending queue. The engine must not move them (that touches data): it escalates,
    and the drill then does what the on-call would, runs drain_backlog.yml."""
    limit = int(host.variables.get("notification_pending_max_length", 1000))
    secrets = yaml.safe_load((host.root / "etc" / "secrets.yml").read_text())
    headers = {"Authorization": f"Bearer {secrets['api_token']}"}
    url = f"{host.target.web_url}/api/notifications"

    def post(number: int) -> None:
        body = {"user": "drill-offline-user", "title": f"backlog drill {number}", "priority": "low"}
        requests.post(url, json=body, headers=headers, timeout=10).raise_for_status()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, range(limit + 1 + 10)))

    def undo() -> None:
        assert host.toolkit is not None
        host.toolkit.drain_backlog(limit=host.target.host)

    return undo


def _fill_log_volume(host: SandboxHost) -> Undo:
    """Give the host's log directory a small filesystem of its own (a 16 MiB tmpfs, as a log volume would be)
    and fill it with rotated logs past their retention until its free space is under the host's threshold.
    prune.yml (step prune_logs) deletes exactly those files, so the engine can recover it."""
    log_dir = host.root / "log"
    if os.path.ismount(log_dir):
        raise BadInput(f"{log_dir} is a mount point already: a previous disk drill did not finish; umount it")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "notification-drill", str(log_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise BadInput(
            f"the disk drill gives {log_dir} a small tmpfs of its own and could not mount it "
            f"({mounted.stderr.strip()}); run it as root on a machine that allows mounts"
        )
    threshold = float(host.variables.get("notification_disk_min_free_percent", 5))
    old = time.time() - 30 * 86400
    chunk = b"x" * (1024 * 1024)  # rotated logs of a MiB each
    number = 0
    try:
        while True:
            usage = shutil.disk_usage(log_dir)
            if usage.free / usage.total * 100 < threshold / 2:
                break
            number += 1
            path = log_dir / f"notification-drill.log.{number}"
            try:
                path.write_bytes(chunk)
            except OSError:  # full: that is the point
                break
            os.utime(path, (old, old))
    except BaseException:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)
        raise

    def undo() -> None:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)

    return undo


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    expects: str  # the failure type the engine should find
    recovers: bool  # True: recovered automatically; False: must escalate
    inject: Callable[[SandboxHost], Undo]
    self_heals: bool = False  # the process manager may bring it back before anything is detected
    deep: bool = False  # only the watch's deep check (the health playbook) sees it, not the probes
    falls_back: bool = False  # recovered by way of flash messages: the engine's fallback, then its roll-forward


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "websocket_killed",
            "The WebSocket process is killed (SIGKILL).",
            "websocket_service_down",
            True,
            _kill("notification-websocket"),
            self_heals=True,
        ),
        Fault(
            "web_killed",
            "The web server's master process is killed (SIGKILL); its workers may go on serving a while.",
            "web_service_down",
            True,
            _kill("notification-web"),
            self_heals=True,
        ),
        Fault("redis_stopped", "Redis is stopped.", "redis_unavailable", True, _stop("redis")),
        Fault(
            "websocket_hung",
            "The WebSocket process hangs (SIGSTOP, master and worker): its port accepts connections, nothing "
            "answers; supervisord still shows it running.",
            "websocket_service_down",
            True,
            hang_faults.websocket_hung,
        ),
        Fault(
            "redis_hung",
            "Redis hangs (SIGSTOP): its port accepts connections, nothing answers.",
            "redis_unavailable",
            True,
            hang_faults.redis_hung,
        ),
        Fault(
            "web_hung",
            "The web server hangs (SIGSTOP, the gunicorn master and its workers): its port accepts connections, "
            "nothing answers.",
            "web_service_down",
            True,
            hang_faults.web_hung,
        ),
        Fault(
            "websocket_stopped",
            "The WebSocket service is stopped (and stays stopped: supervisord does not restart it).",
            "websocket_service_down",
            True,
            _stop("notification-websocket"),
        ),
        Fault(
            "config_invalid",
            "config.yml is replaced by invalid YAML.",
            "configuration_error",
            True,
            _rewrite("etc/config.yml", "mode: [websocket\nthis is: not: valid yaml\n"),
        ),
        Fault(
            "template_broken",
            "The active page template has a syntax error (pages answer 500).",
            "template_error",
            True,
            _rewrite("templates/active/index.html", "{% extends 'base.html' %}{% block content %}{{ broken(\n"),
        ),
        Fault(
            "websocket_port_taken",
            f"A prolonged WebSocket outage: another process holds its port for {OUTAGE_S:.0f} s, so no restart "
            "helps; users must go on flash messages, and back on WebSocket once it can run again.",
            "websocket_service_down",
            True,
            _take_websocket_port,
            falls_back=True,
        ),
        Fault(
            "queue_backed_up",
            "Notifications pile up for a user who is not connected, past the host's pending-queue limit.",
            "delivery_backlog",
            False,
            _back_up_queue,
            deep=True,
        ),
        Fault(
            "disk_full",
            "The host's log volume (a small filesystem of its own) fills with old rotated logs.",
            "disk_pressure",
            True,
            _fill_log_volume,
            deep=True,
        ),
        Fault(
            "websocket_crash_loop",
            "The WebSocket program's definition gets a bad command: supervisord gives up on it (FATAL "
            '"Exited too quickly"); a restart cannot help, the deployed definition must come back.',
            "crash_loop",
            True,
            process_faults.websocket_crash_loop,
        ),
        Fault(
            "log_dir_removed",
            "The host's log directory is removed and the WebSocket program restarted: supervisord cannot open "
            "its log (spawn error, ENOENT) and gives up on it.",
            "crash_loop",
            True,
            process_faults.log_dir_removed,
        ),
        Fault(
            "supervisord_killed",
            "The host's supervisord is killed (SIGKILL): its programs go on as orphans holding the host's ports, "
            "and nothing manages them.",
            "process_manager_down",
            True,
            process_faults.supervisord_killed,
            deep=True,
        ),
        Fault(
            "redis_read_only",
            "Redis becomes a read-only replica of a master that does not exist: it answers PING and reads, and "
            "refuses every write (READONLY), so no notification is queued or published live.",
            "redis_write_refused",
            True,
            resource_faults.redis_read_only,
        ),
        Fault(
            "redis_out_of_memory",
            "Redis runs out of memory under the noeviction policy (maxmemory far under its use): it answers PING "
            "and reads, and refuses writes (OOM).",
            "redis_write_refused",
            True,
            resource_faults.redis_out_of_memory,
        ),
        Fault(
            "config_drift",
            "The web port in the host's config.yml is changed by hand and the web program restarted: it answers "
            "on the new port while the inventory, the probes and the dashboard look for it on the deployed one.",
            "configuration_drift",
            True,
            config_faults.config_drift,
        ),
    )
}
