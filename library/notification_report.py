#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_report
short_description: Write a run's report on the control node
version_added: "0.1.0"
description:
  - Writes O(content) to O(path) on the B(control node), as one step (a temporary file renamed over the old
    one, so a reader sees the old report or the new one, never a part), creating the directory when it is
    missing.
  - An action plugin (C(action_plugins/notification_report.py)). It runs in the play's own process and reaches
    no host, so a report costs no module start-up and no connection. The C(notification_run) role writes every
    run's JSON report with it.
  - A symbolic link at O(path) is refused, not followed.
  - Reports C(changed) when it wrote. A record on the control node is no change to a managed host, so the role
    sets C(changed_when) to false.
  - Writes in check mode too when the task says C(check_mode) false, as the role's does (the report of a run in
    check mode says what the run would do); otherwise it is skipped in check mode.
options:
  path:
    description: The report file on the control node.
    type: path
    required: true
  content:
    description: What to write (the report as text, for example C({{ report | to_nice_json }})).
    type: str
    required: true
  mode:
    description: The file's permissions, octal, quoted.
    type: raw
    default: "0640"
  directory_mode:
    description: The permissions of the directory when it is created, octal, quoted.
    type: raw
    default: "0750"
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the report of the run
  notification_report:
    path: "{{ playbook_dir }}/../reports/{{ run_id }}.json"
    content: "{{ report | to_nice_json }}\n"
  changed_when: false
  check_mode: false
  run_once: true
"""

RETURN = r"""
path:
  description: The file written.
  returned: success
  type: str
  sample: /srv/notification-emergency/reports/rollback_to_legacy-20261204T175307Z-o9pq8a.json
size:
  description: Bytes written.
  returned: success
  type: int
  sample: 2048
directory_created:
  description: Whether the directory was created by this call.
  returned: success
  type: bool
  sample: false
"""
