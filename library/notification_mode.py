#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_mode
short_description: Switch a notification service host to legacy or WebSocket mode in one call
version_added: "0.1.0"
description:
  - Puts a host of the notification service in O(mode) (C(legacy) Flask flash messages, or C(websocket)) in one
    module call, losing no notification; what took a dozen tasks (a module start-up each) before.
  - Compares the template sets, the active template set, the program files and C(etc/config.yml) with the wanted
    contents (rendered on the control node by the role notification_service), and the web and WebSocket
    processes with the wanted states. When all match it changes nothing (and still verifies, with O(verify)).
  - Otherwise it takes a backup first (as M(notification_backup) with O(backup_label)), writes the files
    atomically (C(config.yml) last, so the pages of the new mode are in place when the web process, which
    re-reads it on its next request, switches), applies the program definitions (supervisord update, or systemd
    daemon-reload), stops or starts the WebSocket service (gracefully), keeps the web service running and, in
    legacy mode, carries the pending WebSocket notifications into the flash store once the WebSocket service is
    down (C(notification-service carry-pending)).
  - Then verifies (O(verify)) that every component is healthy (as M(notification_health), within
    O(health_timeout)) and that a notification arrives through the new mode's channel
    (C(notification-service probe)).
  - When a step after the backup fails, it puts the backup's files back, brings the processes to the restored
    mode and fails with the step (RV(failed_step)) and the backup restored (RV(restored_from)).
  - Keeps the newest backups (O(retention_count), O(retention_days)), never the one it took.
  - Supports check mode (writes nothing, starts or stops nothing) and diff mode (the text files that change).
  - Under O(root) it follows no symbolic link (the service owns C(templates/)). A link where a template file is
    expected is replaced (or removed), never read or written through; a link where a directory is expected (such
    as C(templates/active)) fails the call before anything changes, naming the link and the fix.
options:
  root:
    description: Root directory of the service on the host (C(etc/), C(templates/), C(backups/)).
    type: path
    required: true
  mode:
    description: The mode to put the host in.
    type: str
    required: true
    choices: [legacy, websocket]
  config_content:
    description: The wanted content of C(<root>/etc/config.yml) (rendered by the role from C(config.yml.j2)).
    type: str
    required: true
  websocket_enabled:
    description: Whether the WebSocket service runs in this mode (C(websocket.enabled) of the config).
    type: bool
    required: true
  template_sets:
    description:
      - Per template set (C(websocket), C(legacy)), the wanted files (name to content) of
        C(<root>/templates/<set>/). Files of a set that are not listed are left alone.
      - The active set C(<root>/templates/active/) is made exactly the set of O(mode) (files not in it are
        removed); without that set here, as it is on the host.
    type: dict
    default: {}
  program_files:
    description: The wanted program definitions (path to content), supervisord program files or systemd units.
    type: dict
    default: {}
  owner:
    description:
      - Owner of the template files written (the existing owner when omitted). C(config.yml) is always root's
        (with O(group)), and the program definitions root's, as the deploy writes them.
    type: str
  group:
    description: Group of the files written, C(config.yml) included (the existing group when omitted).
    type: str
  manager:
    description: The process manager.
    type: str
    choices: [supervisord, systemd]
    default: systemd
  supervisor_config:
    description: The supervisord configuration file (with O(manager=supervisord)).
    type: path
  services:
    description: Names of the web and WebSocket services.
    type: dict
    default: {}
    suboptions:
      web:
        description: The web service.
        type: str
        default: notification-web
      websocket:
        description: The WebSocket service.
        type: str
        default: notification-websocket
  service_cli:
    description: The service's own command (C(notification-service) in its virtual environment).
    type: path
    required: true
  backup_label:
    description: Label of the backup taken before anything changes.
    type: str
    default: pre-switch
  run_id:
    description: The run that takes the backup (recorded in its manifest).
    type: str
  extra_files:
    description: Absolute paths outside O(root) to back up too (systemd unit files).
    type: list
    elements: path
    default: []
  retention_count:
    description: Backups kept on the host (the newest ones).
    type: int
    default: 10
  retention_days:
    description: Backups younger than this many days are kept too.
    type: int
    default: 14
  verify:
    description: Verify at the end (every component healthy, a notification seen through the mode's channel).
    type: bool
    default: true
  verify_user:
    description: The user the verification sends its notification to.
    type: str
    default: notification-emergency-verify
  verify_timeout:
    description: Seconds the verification notification may take to arrive.
    type: float
    default: 15
  health_timeout:
    description: Seconds every component has to become healthy (checked once a second).
    type: float
    default: 30
  service_timeout:
    description: Seconds a service has to start or stop, and supervisord to answer.
    type: float
    default: 60
  health:
    description:
      - Options of the health checks (as M(notification_health)), for example C(pending_max_length) or
        C(websocket_roundtrip).
    type: dict
    default: {}
  probe:
    description:
      - When the verification also sends a notification through the mode's channel (C(notification-service
        probe), a Python start-up on the host). C(changed) (the default) probes when the call changed the
        host; a call that changed nothing is verified by the health checks alone (in WebSocket mode they
        include a Socket.IO round trip). C(always) probes on every call.
    type: str
    choices: [always, changed]
    default: changed
  lock:
    description:
      - Take the host lock (as M(notification_lock), C(<root>/state/toolkit.lock)) for the call and release it
        at the end, whatever happens, so the lock costs no module calls of its own. A lock held by a live run
        stops the call before anything is read or changed (RV(locked)); the lock of a dead or expired run is
        taken over, audited and warned about.
    type: dict
    suboptions:
      run_id:
        description: The run that holds the lock.
        type: str
        required: true
      owner:
        description: Who runs it (recorded in the lock).
        type: str
      playbook:
        description: The playbook that runs it.
        type: str
      controller:
        description: The control node's host name.
        type: str
      controller_pid:
        description: The ansible-playbook process on the control node (a lock whose process is gone is stale).
        type: int
      ttl:
        description: Seconds after which the lock may be taken over.
        type: int
        default: 1800
      force:
        description: Take over a live lock (audited).
        type: bool
        default: false
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Roll a sandbox host back to legacy mode in one call
  notification_mode:
    root: /srv/sandbox-01
    mode: legacy
    websocket_enabled: false
    config_content: "{{ lookup('ansible.builtin.template', 'config.yml.j2') }}"
    manager: supervisord
    supervisor_config: /srv/sandbox-01/etc/supervisord.conf
    service_cli: /srv/notification/venv/bin/notification-service
    backup_label: pre-legacy
    run_id: 20261127T101500Z-abc123
  register: switched

- name: See what rolling forward to WebSocket mode would change
  notification_mode:
    root: /srv/notification
    mode: websocket
    websocket_enabled: true
    config_content: "{{ lookup('ansible.builtin.template', 'config.yml.j2') }}"
    service_cli: /srv/notification/venv/bin/notification-service
  check_mode: true
  diff: true
"""

RETURN = r"""
mode:
  description: The mode the host is in after the call (or would be, in check mode).
  returned: always
  type: str
  sample: legacy
previous_mode:
  description: The C(mode) of C(config.yml) before the call (C(unknown) when unreadable).
  returned: always
  type: str
  sample: websocket
files:
  description: The files written or removed (or that would be), with the kind of change.
  returned: always
  type: list
  elements: dict
  sample: [{path: /srv/sandbox-01/etc/config.yml, change: content}]
processes:
  description: What was done to the processes (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["notification-websocket: stopped", "notification-websocket: updated process group"]
backup:
  description: The backup taken before the change (null when nothing changed).
  returned: always
  type: str
  sample: 20261127T101500Z-pre-legacy
carried:
  description: Pending WebSocket notifications carried into the flash store (legacy mode).
  returned: always
  type: int
  sample: 3
verified:
  description: The verification (health, and the probe's answer), null without O(verify) or in check mode.
  returned: always
  type: dict
  sample: {health: healthy, channel: flash, ok: true, latency_ms: 12.5, user: notification-emergency-verify}
restored_from:
  description: On failure, the backup whose files were put back (null when nothing had changed yet).
  returned: failure
  type: str
failed_step:
  description: On failure, the step that failed.
  returned: failure
  type: str
  sample: See a notification arrive through the channel of mode legacy
pruned:
  description: Backups removed by the retention.
  returned: always
  type: list
  elements: str
timings_ms:
  description:
    - Milliseconds spent in each step of the call, for the steps it went through - C(state) (reading the
      host), C(backup), C(files), C(services), C(carry), C(health), C(probe), C(prune), on failure C(failed step)
      and C(put back) - and C(total).
    - C(process_cpu) is not a step - the CPU milliseconds of the interpreter that ran the call, its start-up and
      imports included (under Mitogen, of the host's interpreter since it started).
    - Where a host's time went; C(bench/bench_fleet.py) and the fleet-speed notes read them.
  returned: when the call got past its preconditions
  type: dict
  sample:
    {state: 3.1, backup: 41.0, files: 2.2, services: 1210.5, carry: 0.4, health: 55.1, probe: 402.7,
     prune: 1.2, total: 1716.2, process_cpu: 310.0}
locked:
  description: True when a live run holds the host lock (nothing was read or changed).
  returned: failure
  type: bool
holder:
  description: The lock's holder when RV(locked).
  returned: failure
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_backup import BackupError
from ansible.module_utils.notification_lock import (
    LockError,
    LockHeld,
    release,
    resolve_paths,
    take,
)
from ansible.module_utils.notification_mode import Switch, SwitchError, SwitchFailed, run_switch


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            mode=dict(type="str", required=True, choices=["legacy", "websocket"]),
            config_content=dict(type="str", required=True),
            websocket_enabled=dict(type="bool", required=True),
            template_sets=dict(type="dict", default={}),
            program_files=dict(type="dict", default={}),
            owner=dict(type="str"),
            group=dict(type="str"),
            manager=dict(type="str", default="systemd", choices=["supervisord", "systemd"]),
            supervisor_config=dict(type="path"),
            services=dict(
                type="dict",
                default={},
                options=dict(
                    web=dict(type="str", default="notification-web"),
                    websocket=dict(type="str", default="notification-websocket"),
                ),
            ),
            service_cli=dict(type="path", required=True),
            backup_label=dict(type="str", default="pre-switch"),
            run_id=dict(type="str"),
            extra_files=dict(type="list", elements="path", default=[]),
            retention_count=dict(type="int", default=10),
            retention_days=dict(type="int", default=14),
            verify=dict(type="bool", default=True),
            verify_user=dict(type="str", default="notification-emergency-verify"),
            verify_timeout=dict(type="float", default=15.0),
            health_timeout=dict(type="float", default=30.0),
            service_timeout=dict(type="float", default=60.0),
            health=dict(type="dict", default={}),
            probe=dict(type="str", default="changed", choices=["always", "changed"]),
            lock=dict(
                type="dict",
                options=dict(
                    run_id=dict(type="str", required=True),
                    owner=dict(type="str"),
                    playbook=dict(type="str"),
                    controller=dict(type="str"),
                    controller_pid=dict(type="int"),
                    ttl=dict(type="int", default=1800),
                    force=dict(type="bool", default=False),
                ),
            ),
        ),
        required_if=[("manager", "supervisord", ["supervisor_config"])],
        supports_check_mode=True,
    )
    params = module.params
    root = os.path.abspath(params["root"])
    services = params["services"] or {}
    switch = Switch(
        root=root,
        mode=params["mode"],
        config_content=params["config_content"],
        websocket_enabled=params["websocket_enabled"],
        template_sets={name: dict(files or {}) for name, files in (params["template_sets"] or {}).items()},
        program_files=dict(params["program_files"] or {}),
        manager=params["manager"],
        supervisor_config=params["supervisor_config"],
        web_service=services.get("web") or "notification-web",
        websocket_service=services.get("websocket") or "notification-websocket",
        service_cli=params["service_cli"],
        owner=params["owner"],
        group=params["group"],
        backup_label=params["backup_label"],
        run_id=params["run_id"],
        extra_files=params["extra_files"],
        retention_count=params["retention_count"],
        retention_days=params["retention_days"],
        verify=params["verify"],
        verify_user=params["verify_user"],
        verify_timeout=params["verify_timeout"],
        health_timeout=params["health_timeout"],
        service_timeout=params["service_timeout"],
        health_params=dict(params["health"] or {}),
        probe_always=params["probe"] == "always",
    )
    lock = params["lock"]
    if lock:
        lock_path, audit_log = resolve_paths(root, None, None)
        try:
            _taken, warnings = take(lock_path, audit_log, lock, check_mode=module.check_mode, create_directory=True)
        except LockHeld as exc:
            module.fail_json(msg=str(exc), holder=exc.holder, lock_path=lock_path, locked=True, changed=False)
        except (LockError, OSError) as exc:
            module.fail_json(msg=f"cannot take the host lock {lock_path}: {exc}", changed=False)
        for warning in warnings:
            module.warn(warning)
    try:
        outcome = switch_outcome(switch, module.check_mode, module.warn, root)
    finally:
        if lock:
            try:
                _released, warnings = release(lock_path, audit_log, lock["run_id"], check_mode=module.check_mode)
                for warning in warnings:
                    module.warn(warning)
            except (LockError, OSError) as exc:
                module.warn(f"could not release the host lock {lock_path}: {exc}")
    failed, result = outcome
    if failed:
        module.fail_json(**result)
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


def switch_outcome(switch: Switch, check_mode: bool, warn, root: str) -> tuple[bool, dict]:
    """(failed, what the module reports) of the switch; every failure becomes a result, none escapes."""
    try:
        return False, run_switch(switch, check_mode, warn)
    except SwitchError as exc:
        failed = {key: value for key, value in exc.result.items() if key != "diff"}
        return True, {**failed, "msg": f"{exc.failure.step}: {exc.failure.message}"}
    except SwitchFailed as exc:
        return True, {"msg": str(exc), "failed_step": exc.step, "changed": False}
    except BackupError as exc:
        return True, {"msg": f"Back up what the switch changes: {exc}", "failed_step": "backup", "changed": False}
    except OSError as exc:
        return True, {
            "msg": f"{exc.filename or root}: {exc.strerror or exc}; fix permissions or run with become",
            "changed": False,
        }


if __name__ == "__main__":
    main()
