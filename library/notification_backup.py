#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_backup
short_description: Back up, verify, restore, prune and list backups of a notification service host
version_added: "0.1.0"
description:
  - A backup is a directory C(<backup_dir>/<UTC YYYYmmddTHHMMSSZ>-<label>) (O(backup_dir) defaults to
    C(<root>/backups); mode C(0700)) with C(manifest.json) (name, host, created_at, label, run_id, the
    service's mode, and per file its sha256, size and mode), C(files/), C(database/) and C(queue/).
  - C(files/) holds, relative to O(root), C(etc/config.yml), C(etc/secrets.yml), C(etc/supervisor.d/*.conf),
    C(templates/websocket/), C(templates/legacy/), C(templates/active/) and C(state/emergency.json), modes
    kept; and the O(extra_files) under C(files/_abs/<path>). A single file that is missing is recorded as
    absent (a restore then removes it).
  - C(database/notifications.db) is a consistent copy of an SQLite database made through SQLite's online
    backup API while the service writes (the source opened read-only, with a busy timeout);
    C(database/dump.sql) a C(pg_dump) of a PostgreSQL database when C(pg_dump) is on the C(PATH) (else a
    warning, and the manifest's C(database) is C(skipped) with the reason C(pg_dump not found)).
    C(queue/pending.json) holds the Redis sorted set C(notification:pending) with its scores. The database
    and Redis come from C(config.yml)'s C(database_url) and C(redis_url). When one of them cannot be read
    the backup goes on without it, with a warning, and the manifest records why (a C(skipped) key with the reason).
  - A backup is built in C(<name>.partial/) and renamed when complete, so an interrupted run never leaves a
    half backup that looks whole. C(.partial) directories are ignored by O(state=query) and C(latest), and
    removed by O(state=pruned) (not while the run building one is alive). Two backups with the same label in
    the same second are named C(<stamp>-<label>), C(<stamp>-<label>-2), C(<stamp>-<label>-3).
  - O(state=present) makes a backup. With O(reuse_unchanged=true) and the files of the newest complete
    backup (whatever its label) identical to the current ones (same paths, same sha256, same absent files),
    it makes none and returns that backup (C(changed=false)); so a second run of a playbook takes no new backup.
  - O(state=verified) recomputes every checksum of a backup; a missing, extra or changed file fails the task
    with a message naming the file and both checksums.
  - O(state=restored) verifies the backup first and refuses a corrupt one before writing anything. It then
    writes back each file that differs (atomically, a temporary file in the same directory and a rename,
    with the mode recorded and the existing owner), removes the files recorded as absent, and makes the
    template directories exactly as in the backup (files not in it are removed). It never touches the
    database unless O(restore_database=true). A second restore changes nothing.
  - O(state=pruned) keeps the newest O(retention_count) backups and deletes the others older than
    O(retention_days), never the newest and never the O(protect)ed ones; and removes leftover C(.partial)
    directories.
  - O(state=query) lists the backups, newest first.
  - Supports check mode (writes nothing) and diff mode (for O(state=restored), the files that change, with
    their checksums before and after).
  - Root runs it, and the service owns directories under O(root) (C(data/), C(templates/), C(state/)), so it
    trusts nothing there. Files under O(root) are read and written one directory at a time without following a
    symbolic link. A backup skips a link (or another non-regular file) where a file is expected, with a warning
    naming it and the fix; a restore replaces or removes such a link, and fails before writing anything when a
    directory on the way (such as C(templates/active)) is a link. The SQLite database that C(config.yml)'s
    C(database_url) names (for O(restore_database), the backup's C(config.yml)) must be under O(root), and
    neither it nor its C(-wal), C(-shm), C(-journal) a link; else the backup or the restore fails before writing
    anything, naming the path, C(database_url) and the fix.
  - C(etc/config.yml) and C(etc/secrets.yml) are restored root's, with the group of C(etc/), mode C(0640) (what
    the deploy writes), whatever the backup recorded, so a backup taken when the service owned them does not give
    them back to it. O(extra_files) are the operator's paths and are used as given.
options:
  root:
    description: The service root, the directory that holds C(etc/config.yml) (for example C(/srv/notification)).
    type: path
    required: true
  state:
    description: What to do (see the description).
    type: str
    default: present
    choices: [present, verified, restored, pruned, query]
  backup_dir:
    description: Where the backups live. Defaults to C(<root>/backups).
    type: path
  label:
    description:
      - Part of a new backup's name, saying why it was taken (C(pre-rollback), C(nightly)). Lower-case
        letters, digits, C(_) and C(-).
    type: str
    default: manual
  run_id:
    description: The id of the run that takes the backup (recorded in the manifest).
    type: str
  name:
    description:
      - The backup to verify or restore (a name O(state=query) lists), or C(latest) for the newest complete
        one. Required when O(state=verified) or O(state=restored).
    type: str
  extra_files:
    description:
      - More files to back up and restore, as absolute paths (for example systemd unit files). Stored under
        C(files/_abs/<path>). A file that does not exist is recorded as absent.
    type: list
    elements: path
    default: []
  include_database:
    description: Copy the database (SQLite copy or C(pg_dump)) with O(state=present).
    type: bool
    default: true
  include_queue:
    description: Save the Redis pending queue with O(state=present).
    type: bool
    default: true
  restore_database:
    description:
      - With O(state=restored), also put back the database (SQLite only). Stop the services first. An older
        copy of the database drops the notifications sent since, so the automatic restore of the playbooks
        never does this; it is a separate, explicit choice.
    type: bool
    default: false
  reuse_unchanged:
    description:
      - With O(state=present), return the newest backup instead of taking one when its files are the current ones.
    type: bool
    default: true
  retention_count:
    description: With O(state=pruned), how many of the newest backups are always kept (1 or more).
    type: int
    default: 10
  retention_days:
    description: With O(state=pruned), backups beyond O(retention_count) are deleted once older than this many days.
    type: int
    default: 14
  protect:
    description: With O(state=pruned), names of backups never to delete (C(latest) allowed).
    type: list
    elements: str
    default: []
  redis_timeout:
    description: Seconds to wait for Redis when saving the queue.
    type: float
    default: 5
  database_timeout:
    description:
      - Seconds to wait for the database, SQLite's busy timeout or PostgreSQL's connect and lock wait timeout.
    type: float
    default: 5
notes:
  - Reads C(config.yml) with PyYAML when the host's Python has it, else with the standard library (the plain
    form the deploy role writes; other YAML is refused with the fix). Needs C(pg_dump) for a PostgreSQL database.
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Back up the host before rolling back to legacy (reuses the newest backup when nothing changed)
  notification_backup:
    root: /srv/notification
    label: pre-rollback
    run_id: "{{ awx_job_id | default('manual-rollback-1') }}"
  register: __notification_backup

- name: Verify the backup just taken
  notification_backup:
    root: /srv/notification
    state: verified
    name: "{{ __notification_backup.backup.name }}"

- name: Back up the files only, with the systemd units, into another directory
  notification_backup:
    root: /srv/sandbox-01
    backup_dir: /srv/sandbox-01/backups-files-only
    label: units
    include_database: false
    include_queue: false
    extra_files:
      - /etc/systemd/system/notification-web.service
      - /etc/systemd/system/notification-websocket.service

- name: List the backups
  notification_backup:
    root: /srv/notification
    state: query
  register: __notification_backups

- name: Put back the files of the newest backup (not the database)
  notification_backup:
    root: /srv/notification
    state: restored
    name: latest

- name: Keep 10 backups, delete older ones after 14 days, never the one above
  notification_backup:
    root: /srv/notification
    state: pruned
    retention_count: 10
    retention_days: 14
    protect:
      - "{{ __notification_backup.backup.name }}"
"""

RETURN = r"""
backup:
  description:
    - The backup made, reused, verified or restored. In check mode with O(state=present), the name it would get.
    - C(database) and C(queue) are the manifest's sections (only a C(skipped) key, the reason, when not copied).
  returned: when state is present, verified or restored
  type: dict
  sample:
    name: 20261127T100000Z-pre-rollback
    path: /srv/notification/backups/20261127T100000Z-pre-rollback
    valid: true
    error: null
    created_at: "2026-11-27T10:00:00Z"
    label: pre-rollback
    run_id: "4711"
    host: web-1
    mode: websocket
    files: 12
    size_bytes: 104857
    database: {dialect: sqlite, source: /srv/notification/data/notifications.db, file: database/notifications.db,
               sha256: 9f8e..., size: 98304, mode: "0600", integrity: ok,
               rows: {users: 3, notifications: 40, deliveries: 95}}
    queue: {key: "notification:pending", source: "redis://127.0.0.1:6379/0", count: 2, file: queue/pending.json,
            sha256: 1a2b..., size: 120, mode: "0600"}
created:
  description: Whether a new backup was made (in check mode, would be).
  returned: when state is present
  type: bool
  sample: true
reused:
  description: Whether the newest backup was returned because the files did not change since.
  returned: when state is present
  type: bool
  sample: false
checked_files:
  description: How many files of the backup were checked.
  returned: when state is verified
  type: int
  sample: 14
restored_files:
  description: Files written back (in check mode, that would be).
  returned: when state is restored
  type: list
  elements: str
  sample: [/srv/notification/etc/config.yml, /srv/notification/templates/active/index.html]
removed_files:
  description: Files removed because the backup does not have them (template sets, absent files).
  returned: when state is restored
  type: list
  elements: str
  sample: [/srv/notification/state/emergency.json]
database_restored:
  description: Whether the database was (in check mode, would be) put back.
  returned: when state is restored
  type: bool
  sample: false
pruned:
  description: Backups deleted (in check mode, that would be).
  returned: when state is pruned
  type: list
  elements: str
  sample: [20261101T020000Z-nightly]
kept:
  description: Backups kept, newest first.
  returned: when state is pruned
  type: list
  elements: str
  sample: [20261127T100000Z-pre-rollback]
removed_partials:
  description: Leftover C(.partial) directories of interrupted runs removed (in check mode, that would be).
  returned: when state is pruned
  type: list
  elements: str
  sample: [20261126T230000Z-nightly.partial]
backups:
  description: Every complete backup, newest first, each as RV(backup).
  returned: when state is query
  type: list
  elements: dict
  sample: [{name: 20261127T100000Z-pre-rollback, created_at: "2026-11-27T10:00:00Z", files: 12, valid: true}]
latest:
  description: Name of the newest complete backup, null when there is none.
  returned: when state is query
  type: str
  sample: 20261127T100000Z-pre-rollback
partials:
  description: C(.partial) directories of interrupted (or running) backups, ignored.
  returned: when state is query
  type: list
  elements: str
  sample: []
backup_dir:
  description: The backup directory used.
  returned: always
  type: str
  sample: /srv/notification/backups
diff:
  description:
    - With O(state=restored), the changed paths, one line each with its checksum and mode (or C((absent))),
      before and after.
  returned: when state is restored, in diff mode
  type: dict
  sample:
    before: "/srv/notification/etc/config.yml sha256=0a1b... mode=0640\n"
    after: "/srv/notification/etc/config.yml sha256=9f8e... mode=0640\n"
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_backup import BackupError, validate
from ansible.module_utils.notification_backup_list import find, prune, query, summary, verify_or_fail
from ansible.module_utils.notification_backup_make import make
from ansible.module_utils.notification_backup_restore import restore


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "verified", "restored", "pruned", "query"]),
            backup_dir=dict(type="path"),
            label=dict(type="str", default="manual"),
            run_id=dict(type="str"),
            name=dict(type="str"),
            extra_files=dict(type="list", elements="path", default=[]),
            include_database=dict(type="bool", default=True),
            include_queue=dict(type="bool", default=True),
            restore_database=dict(type="bool", default=False),
            reuse_unchanged=dict(type="bool", default=True),
            retention_count=dict(type="int", default=10),
            retention_days=dict(type="int", default=14),
            protect=dict(type="list", elements="str", default=[]),
            redis_timeout=dict(type="float", default=5),
            database_timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    root = os.path.abspath(params["root"])
    backup_dir = os.path.abspath(params["backup_dir"] or os.path.join(root, "backups"))
    try:
        validate({**params, "root": root})
        if state == "present":
            result = make(
                root,
                backup_dir,
                params["label"],
                params["run_id"],
                params["extra_files"],
                params["include_database"],
                params["include_queue"],
                params["reuse_unchanged"],
                params["database_timeout"],
                params["redis_timeout"],
                module.check_mode,
                module.warn,
            )
        elif state == "verified":
            entry = find(backup_dir, params["name"])
            result = {"changed": False, "checked_files": verify_or_fail(entry), "backup": summary(entry)}
        elif state == "restored":
            result = restore(root, backup_dir, params["name"], params["restore_database"], module.check_mode)
        elif state == "pruned":
            result = prune(
                backup_dir, params["retention_count"], params["retention_days"], params["protect"], module.check_mode
            )
            unknown = result.pop("unknown_protected")
            if unknown:
                module.warn(f"protect: there is no backup {', '.join(unknown)}; check the names with state=query")
        else:
            result = query(backup_dir)
    except BackupError as exc:
        module.fail_json(msg=str(exc), backup_dir=backup_dir, **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or backup_dir}: {exc.strerror or exc}; fix permissions or run with become")
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(backup_dir=backup_dir, **result)


if __name__ == "__main__":
    main()
