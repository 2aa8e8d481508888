#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_lock
short_description: Take, release or read the host lock that keeps mutating runs of the toolkit apart
version_added: "0.1.0"
description:
  - One mutating run at a time per host. Every mutating playbook takes this lock first and releases it at
    the end, whatever happens; the Python package, AWX and the recovery engine use the same lock.
  - The lock is a JSON file, by default C(<root>/state/toolkit.lock), holding C(run_id), C(owner),
    C(playbook), C(controller), C(controller_pid), C(acquired_at) and C(expires_at) (ISO 8601 UTC).
  - O(state=acquired) creates it atomically (a temporary file, then C(os.link) to the lock path, which fails
    when the lock exists), so of runs acquiring at once exactly one wins. Held by the same O(run_id), there
    is nothing to do. Held by another run, the task fails with a message naming the holder (owner, run id,
    playbook, since, expires) and what to do.
  - A stale lock (past C(expires_at), or its C(controller) is this machine's host name and its
    C(controller_pid) is not running) is taken over with a warning naming the previous holder. O(force=true)
    takes over a live lock. Every takeover appends one JSON line to the audit log.
  - An existing lock is read, taken over or removed only under C(flock) on the lock file, after checking it
    is still the file at the lock path, so two runs never both take over the same stale lock.
  - O(state=released) removes the lock when O(run_id) holds it, and leaves another run's lock in place
    with a warning. O(state=query) reports the holder.
  - The lock is transient bookkeeping, so the module always reports C(changed=false) (a playbook run leaves
    no lock behind and stays idempotent). Check mode writes nothing; O(state=acquired) then only checks, and
    fails when another live run holds the lock.
options:
  root:
    description:
      - The service root, the directory that holds C(etc/config.yml) (for example C(/srv/notification)).
      - The lock is C(<root>/state/toolkit.lock); C(<root>/state) is created when missing.
      - One of O(root) or O(path) is required.
    type: path
  path:
    description:
      - The lock file, instead of the one under O(root). Its directory must exist.
    type: path
    aliases: [lock_path]
  state:
    description:
      - C(acquired) takes the lock, C(released) gives it back, C(query) only reads it.
    type: str
    default: acquired
    choices: [acquired, released, query]
  run_id:
    description:
      - The id of this run (an AWX job id, a UUID), the same for O(state=acquired) and O(state=released).
      - Required when O(state=acquired) or O(state=released). With O(state=query), RV(held) tells whether it
        holds the lock.
    type: str
  owner:
    description: Who runs it (a user name, C(awx), C(engine)); shown to runs that find the host locked.
    type: str
  playbook:
    description: What runs (the playbook's file name); shown to runs that find the host locked.
    type: str
  controller:
    description:
      - Host name of the machine that runs the playbook. With O(controller_pid), a lock whose controller is
        this host and whose process is gone is stale.
    type: str
  controller_pid:
    description: Process id of C(ansible-playbook) (or the Python wrapper) on O(controller).
    type: int
  ttl:
    description:
      - Seconds the lock is valid; past C(acquired_at + ttl) it is stale and another run may take it over.
        Longer than the longest run.
    type: int
    default: 1800
  force:
    description:
      - Take the lock over even from a live run (logged in the audit log). Only when that run is known to be
        dead; playbooks expose it as C(-e notification_lock_force=true).
    type: bool
    default: false
  audit_log:
    description: Append-only log of takeovers. Defaults to C(lock-audit.log) next to the lock file.
    type: path
notes:
  - Supports check mode. Diff mode shows nothing (the lock is not a change).
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take the host lock for this run
  notification_lock:
    root: /srv/notification
    state: acquired
    run_id: "{{ awx_job_id | default('manual-rollback-1') }}"
    owner: "{{ awx_user_name | default('operator') }}"
    playbook: rollback_to_legacy.yml
    controller: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    ttl: 3600

- name: Read who holds the lock
  notification_lock:
    root: /srv/notification
    state: query
  register: __notification_lock

- name: Give the lock back
  notification_lock:
    root: /srv/notification
    state: released
    run_id: "{{ awx_job_id | default('manual-rollback-1') }}"

- name: Take over the lock of a run known to be dead
  notification_lock:
    path: /srv/sandbox-01/state/toolkit.lock
    state: acquired
    run_id: manual-repair-2
    owner: alice
    playbook: restore.yml
    force: true

- name: Release the lock taken over above
  notification_lock:
    path: /srv/sandbox-01/state/toolkit.lock
    state: released
    run_id: manual-repair-2
"""

RETURN = r"""
action:
  description:
    - What the call did (in check mode, would do) to the lock; null when it changed nothing.
    - C(acquired) (it was free), C(kept) (already held by O(run_id)), C(took_over) (stale), C(forced)
      (O(force=true) on a live lock), C(released).
  returned: always
  type: str
  sample: acquired
locked:
  description: Whether a lock file exists after the call.
  returned: always
  type: bool
  sample: true
held:
  description: Whether O(run_id) holds the lock after the call.
  returned: always
  type: bool
  sample: true
holder:
  description:
    - The lock after the call (null when free). An unreadable lock file shows as C(unreadable) (why),
      C(content) and C(age_s).
    - When the task fails because the host is locked, the failed result holds it too.
  returned: always
  type: dict
  sample:
    run_id: "4711"
    owner: alice
    playbook: rollback_to_legacy.yml
    controller: awx-1
    controller_pid: 31337
    acquired_at: "2026-11-27T10:00:00Z"
    expires_at: "2026-11-27T10:30:00Z"
previous_holder:
  description: The lock that was taken over (C(took_over), C(forced)) or released.
  returned: always
  type: dict
  sample: {run_id: "4702", owner: bob, playbook: restore.yml, controller: awx-1, controller_pid: 30001,
           acquired_at: "2026-11-27T09:00:00Z", expires_at: "2026-11-27T09:30:00Z"}
took_over:
  description: Whether the call took over (in check mode, would take over) another run's lock.
  returned: always
  type: bool
  sample: false
stale:
  description: Why the lock found was stale (null when it was live or absent).
  returned: always
  type: str
  sample: "it expired at 2026-11-27T09:30:00Z"
lock_path:
  description: The lock file used.
  returned: always
  type: str
  sample: /srv/notification/state/toolkit.lock
audit_log:
  description: The audit log used.
  returned: always
  type: str
  sample: /srv/notification/state/lock-audit.log
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_lock import (
    LockError,
    LockHeld,
    query,
    release,
    resolve_paths,
    take,
    validate,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path"),
            path=dict(type="path", aliases=["lock_path"]),
            state=dict(type="str", default="acquired", choices=["acquired", "released", "query"]),
            run_id=dict(type="str"),
            owner=dict(type="str"),
            playbook=dict(type="str"),
            controller=dict(type="str"),
            controller_pid=dict(type="int"),
            ttl=dict(type="int", default=1800),
            force=dict(type="bool", default=False),
            audit_log=dict(type="path"),
        ),
        required_one_of=[("root", "path")],
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    warnings = []
    try:
        lock_path, audit_log = resolve_paths(params["root"], params["path"], params["audit_log"])
        if state == "acquired":
            result, warnings = take(
                lock_path, audit_log, params, check_mode=module.check_mode, create_directory=not params["path"]
            )
        else:
            validate(state, params["run_id"], params["ttl"], params["controller_pid"])
            if state == "released":
                result, warnings = release(lock_path, audit_log, params["run_id"], check_mode=module.check_mode)
            else:
                result = query(lock_path, audit_log, params["run_id"])
    except LockHeld as exc:
        module.fail_json(msg=str(exc), holder=exc.holder, lock_path=lock_path, locked=True, held=False)
    except LockError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot use the lock file: {exc}")
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
