#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_services
short_description: Start, stop or restart the notification service's processes under supervisord or systemd
version_added: "0.1.0"
description:
  - Brings a set of services (for example C(notification-web) and C(notification-websocket)) to a wanted
    state in one call, under either supervisord (sandbox hosts and containers) or systemd (production).
  - With supervisord it first applies changed program definitions (what C(supervisorctl reread) and C(update)
    do), and can start the host's private supervisord when it is not running (O(supervisord_start)).
  - supervisord is asked directly over its XML-RPC interface, the unix socket or HTTP server that
    O(supervisor_config) names (C([supervisorctl] serverurl), else C([unix_http_server] file), with the
    C(username) and C(password) set there), so the Python that runs the module needs no C(supervisor)
    package. Only a configuration that names neither is driven through C(supervisorctl).
  - After starting or restarting it waits until each service is running, and fails with the service's
    state and the tail of its log when it does not come up.
  - Idempotent; supports check mode (reports what it would do and changes nothing).
options:
  manager:
    description: The service manager that runs the services.
    type: str
    required: true
    choices: [supervisord, systemd]
  services:
    description: Names of the supervisord programs or systemd units.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(started) starts services that are not running; C(stopped) stops running ones;
        C(restarted) always restarts (or starts) them.
    type: str
    default: started
    choices: [started, stopped, restarted]
  enabled:
    description:
      - systemd only. Whether the units start at boot. With supervisord, start at boot is the program
        file's C(autostart), which the C(notification_service) role writes.
    type: bool
  supervisor_config:
    description: Path of the supervisord configuration file. Required when O(manager=supervisord).
    type: path
  supervisord_start:
    description: Start supervisord with O(supervisor_config) when it is not running (sandbox hosts).
    type: bool
    default: false
  update:
    description: supervisord only. Apply changed program definitions before acting on the services.
    type: bool
    default: true
  daemon_reload:
    description: systemd only. Run C(systemctl daemon-reload) first (after unit files changed).
    type: bool
    default: false
  bin_dir:
    description:
      - Directory that holds C(supervisord) (to start it, O(supervisord_start)) and C(supervisorctl) (only
        for a O(supervisor_config) without a socket or serverurl). Defaults to the directory of the Python
        interpreter that runs the module, then the C(PATH).
    type: path
  orphans:
    description:
      - supervisord only. C(stop) - before anything else, find the host's processes that no running supervisord
        owns (orphans left by a supervisord that died, which go on holding the host's ports while nothing
        restarts them) and stop them, SIGTERM then, after O(orphan_grace) seconds, SIGKILL; the module fails
        when one survives. C(ignore) leaves every process alone.
      - A process is the host's when its command line names O(root) (or a path under it), when it listens on
        one of O(ports), or when one of O(pid_files) names it and its command line names O(root). This
        process and its ancestors, zombies, kernel threads and terminal sessions that hold no port are never
        counted. Reported in RV(orphans), and as the diff.
    type: str
    default: ignore
    choices: [ignore, stop]
  root:
    description: The host's root directory (O(orphans)). Required with O(orphans=stop).
    type: path
  ports:
    description: The host's TCP ports (O(orphans)); a process on one that supervisord does not run is an orphan.
    type: list
    elements: int
    default: []
  pid_files:
    description: Pid files of the host (O(orphans)); missing ones are skipped.
    type: list
    elements: path
    default: []
  orphan_grace:
    description: Seconds an orphan has to end after SIGTERM before it gets SIGKILL.
    type: float
    default: 10
  verify_all:
    description:
      - supervisord only. At the end, start every program supervisord starts by itself (C(autostart)) that is
        FATAL (supervisord never retries those), STOPPED or EXITED, not only O(services); then wait (up to
        O(timeout)) until every one is RUNNING, and fail naming those that are not. Returned as RV(programs).
    type: bool
    default: false
  reopen_logs:
    description:
      - supervisord only. At the end, when a running program's log file no longer exists (its directory was
        removed and re-created), have supervisord reopen its logs (SIGUSR2), so that nothing more is written
        into deleted files. Reported in RV(manager_actions).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for supervisord to answer (each question, and a started supervisord) and for each
        service to reach running. Starting and stopping a service take as long as supervisord takes
        (the program's C(startsecs) and C(stopwaitsecs)).
    type: float
    default: 20
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Ensure the notification services run on a sandbox host
  notification_services:
    manager: supervisord
    supervisor_config: /srv/sandbox-01/etc/supervisord.conf
    supervisord_start: true
    services: [notification-web, notification-websocket]

- name: Bring back a dead supervisord without orphans, and every program with it
  notification_services:
    manager: supervisord
    supervisor_config: /srv/sandbox-01/etc/supervisord.conf
    supervisord_start: true
    orphans: stop
    root: /srv/sandbox-01
    ports: [8000, 8001, 6379]
    pid_files: [/srv/sandbox-01/run/supervisord.pid]
    verify_all: true
    services: [notification-web, notification-websocket]

- name: Stop the WebSocket service
  notification_services:
    manager: systemd
    services: [notification-websocket]
    state: stopped
    enabled: false

- name: Restart the web service after a config change
  notification_services:
    manager: systemd
    daemon_reload: true
    services: [notification-web]
    state: restarted
"""

RETURN = r"""
services:
  description: Per service, its state after the call and the actions taken (or, in check mode, that would be).
  returned: always
  type: dict
  sample:
    notification-web:
      name: notification-web
      state: RUNNING
      running: true
      pid: 4242
      enabled: null
      detail: "pid 4242, uptime 0:00:03"
      actions: [start]
manager_actions:
  description: What was done to the manager itself (supervisord started, program definitions applied).
  returned: always
  type: list
  elements: str
  sample: ["started supervisord", "notification-web: changed"]
orphans:
  description: The host's processes found outside a running supervisord (O(orphans=stop)), and what was done.
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 4242
      command: /srv/venv/bin/notification-service websocket --config /srv/sandbox-01/etc/config.yml
      why: ["command line names /srv/sandbox-01", "listens on port 8001"]
      ports: [8001]
      outcome: terminated
programs:
  description: With O(verify_all), every program supervisord starts by itself and its state.
  returned: always
  type: dict
  sample: {"notification-web": "RUNNING", "notification-websocket": "RUNNING", "redis": "RUNNING"}
"""

import os
import shutil
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_orphans import (
    find_orphans,
    missing_logs,
    orphan_diff,
    reopen_logs,
    start_stopped,
    stop_processes,
    wait_all_running,
)
from ansible.module_utils.notification_services import (
    ServiceControlError,
    SupervisorBackend,
    SystemdBackend,
    converge,
)


def find_binary(name, bin_dir):
    candidates = []
    if bin_dir:
        candidates.append(os.path.join(bin_dir, name))
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            manager=dict(type="str", required=True, choices=["supervisord", "systemd"]),
            services=dict(type="list", elements="str", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "restarted"]),
            enabled=dict(type="bool"),
            supervisor_config=dict(type="path"),
            supervisord_start=dict(type="bool", default=False),
            update=dict(type="bool", default=True),
            daemon_reload=dict(type="bool", default=False),
            bin_dir=dict(type="path"),
            timeout=dict(type="float", default=20.0),
            orphans=dict(type="str", default="ignore", choices=["ignore", "stop"]),
            root=dict(type="path"),
            ports=dict(type="list", elements="int", default=[]),
            pid_files=dict(type="list", elements="path", default=[]),
            orphan_grace=dict(type="float", default=10.0),
            verify_all=dict(type="bool", default=False),
            reopen_logs=dict(type="bool", default=False),
        ),
        required_if=[("manager", "supervisord", ("supervisor_config",)), ("orphans", "stop", ("root",))],
        supports_check_mode=True,
    )
    params = module.params
    if not params["services"]:
        module.fail_json(msg="services is empty; name at least one supervisord program or systemd unit")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be a positive number of seconds, got {params['timeout']}")

    def run(args):
        return module.run_command(args)

    orphans, diff, programs = [], None, {}
    if params["manager"] != "supervisord" and (
        params["orphans"] == "stop" or params["verify_all"] or params["reopen_logs"]
    ):
        module.fail_json(msg="orphans=stop, verify_all and reopen_logs are for manager=supervisord")
    try:
        if params["manager"] == "supervisord":
            # Both only when needed: supervisord to start it, supervisorctl for a config without a socket.
            ctl = find_binary("supervisorctl", params["bin_dir"])
            daemon = find_binary("supervisord", params["bin_dir"])
            backend = SupervisorBackend(run, params["supervisor_config"], ctl, daemon, params["timeout"])
            if params["orphans"] == "stop":
                orphans, diff = stop_orphans(module, backend)
        else:
            systemctl = find_binary("systemctl", params["bin_dir"])
            if not systemctl:
                module.fail_json(msg="systemctl not found; use manager=supervisord on hosts without systemd")
            backend = SystemdBackend(run, systemctl)
            if params["daemon_reload"] and not module.check_mode:
                backend.daemon_reload()
        changed, services, manager_actions = converge(
            backend,
            params["services"],
            params["state"],
            params["enabled"],
            module.check_mode,
            params["timeout"],
            update=params["update"],
            start_daemon=params["supervisord_start"],
        )
        if params["verify_all"] and backend.reachable():
            started = start_stopped(backend, module.check_mode)
            if started:
                changed = True
                manager_actions.extend(f"started {name}" for name in started)
            if not module.check_mode:
                programs = wait_all_running(backend, params["timeout"])
        if params["reopen_logs"] and params["manager"] == "supervisord" and backend.reachable():
            missing = missing_logs(backend)
            if missing:
                changed = True
                manager_actions.append("reopened the logs (missing: " + ", ".join(missing) + ")")
                if not module.check_mode:
                    reopen_logs(backend)
    except ServiceControlError as exc:
        module.fail_json(msg=str(exc), orphans=orphans)
    result = dict(changed=changed or bool(orphans), services=services, manager_actions=manager_actions, orphans=orphans)
    if diff is not None:
        result["diff"] = diff
    module.exit_json(programs=programs, **result)


def stop_orphans(module, backend):
    """Find the host's processes no running supervisord owns and (unless in check mode) stop them."""
    params = module.params
    managers = []
    if backend.reachable():
        managers.append(int(backend.rpc("supervisor.getPID")))
    found = find_orphans(params["root"], params["ports"], params["pid_files"], managers)
    orphans = [dict(orphan.as_dict(), outcome="would stop" if module.check_mode else "") for orphan in found]
    diff = orphan_diff(found, params["root"]) if found else None
    if not found or module.check_mode:
        return orphans, diff
    outcome = stop_processes([orphan.pid for orphan in found], params["orphan_grace"])
    for orphan in orphans:
        orphan["outcome"] = next((word for word, pids in outcome.items() if orphan["pid"] in pids), "gone")
    if outcome["survived"]:
        raise ServiceControlError(
            f"these processes of {params['root']} outside supervisord survived SIGKILL: "
            + ", ".join(str(pid) for pid in outcome["survived"])
        )
    return orphans, diff


if __name__ == "__main__":
    main()
