#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_classify
short_description: Classify a notification service health result with the failure catalogue
version_added: "0.1.0"
description:
  - Reads the health result of M(notification_health) (see C(docs/health-result.md)), optional error
    messages or log lines and the affected users, and returns the detected failure types, the emergency
    level and the merged recovery plan.
  - The logic and data are the failure catalogue (C(src/notification_emergency/catalogue.py) and its data
    C(catalogue_data.py), shipped as C(module_utils/notification_catalogue.py) and
    C(module_utils/notification_catalogue_data.py)); the C(notification_classify) filter and the Python engine
    use the same code, so all three give the same answer.
  - Several failures give the most severe level and one merged, de-duplicated plan. A type that explains
    another (the root cause) suppresses it. Non-healthy checks that no signal claims give C(unknown).
  - Levels are 1 critical (immediate), 2 high (15 minutes), 3 medium (30 minutes), 4 low (60 minutes),
    raised by one level from 100 affected users and by two from 1000, never above 1.
  - Deterministic (the same input gives the same output, whatever the order of checks or messages).
    Read-only; supports check mode.
options:
  health:
    description: The health result (a dict with C(checks)), as registered from M(notification_health).
    type: dict
    required: true
  messages:
    description: Error messages or log lines to classify along with the checks (matched by regular expressions).
    type: list
    elements: str
    default: []
  affected_users:
    description:
      - The users affected, as a count or as a list of user ids (each id counted once).
      - A string of digits counts as a count (as C(-e affected_users=150) passes it).
    type: raw
  previous_level:
    description: The level of the previous classification of the same incident; sets RV(trend).
    type: int
    choices: [1, 2, 3, 4]
  host:
    description: The host name that starts RV(summary) (usually C(inventory_hostname)).
    type: str
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the notification service
  notification_health:
    config: /srv/sandbox-01/etc/config.yml
  register: __notification_health

- name: Classify the health result
  notification_classify:
    health: "{{ __notification_health }}"
    affected_users: "{{ __notification_affected_user_ids }}"
    host: "{{ inventory_hostname }}"
  register: __notification_classification

- name: Show the classification
  ansible.builtin.debug:
    msg: "{{ __notification_classification.summary }}"
"""

RETURN = r"""
healthy:
  description: Whether no failure was detected.
  returned: always
  type: bool
  sample: false
primary:
  description: The failure type to act on first (the most severe, root causes before symptoms); null when healthy.
  returned: always
  type: str
  sample: websocket_service_down
level:
  description: The most severe level of the failures (1 critical to 4 low); null when healthy.
  returned: always
  type: int
  sample: 2
level_name:
  description: C(critical), C(high), C(medium), C(low), or C(none) when healthy.
  returned: always
  type: str
  sample: high
response_minutes:
  description: Minutes within which to respond (0, 15, 30 or 60); null when healthy.
  returned: always
  type: int
  sample: 15
response:
  description: The response time as text (C(immediate), C(within 15 minutes) ...), or C(none).
  returned: always
  type: str
  sample: within 15 minutes
failures:
  description:
    - The detected failure types, most severe first, each with its level, title, detail text, evidence (the
      checks, messages and signals that matched), the types it explains and its own plan (step ids).
  returned: always
  type: list
  elements: dict
  sample:
    - type: websocket_service_down
      title: WebSocket service down
      level: 2
      level_name: high
      response_minutes: 15
      response: within 15 minutes
      base_level: 2
      level_basis: [base level 2]
      detail: websocket check failed (connection refused) while web is healthy
      evidence: {checks: [websocket], messages: [], signals: [websocket_check_failed]}
      explains: []
      plan: [restart_websocket, enable_flash_fallback, escalate]
suppressed:
  description: Detected types explained by another one (listed in their C(explained_by)); their plans are dropped.
  returned: always
  type: list
  elements: dict
  sample: []
plan:
  description:
    - The merged, de-duplicated recovery plan, in failure order; the first occurrence of a step wins and
      C(escalate) comes last.
    - C(automatic) is false for steps that touch notification data and for C(escalate), except the
      C(fallback) step (the verified rollback to flash messages, automatic under the engine's policy).
  returned: always
  type: list
  elements: dict
  sample:
    - id: restart_websocket
      label: restart websocket
      action: {playbook: restart_services.yml, extra_vars: {components: [websocket]}}
      description: Restart the WebSocket (Flask-SocketIO) process; wait until its namespace accepts connections.
      automatic: true
      touches_data: false
      fallback: false
      for_types: [websocket_service_down]
summary:
  description: One line for humans.
  returned: always
  type: str
  sample: >-
    sandbox-01: websocket_service_down, level 2 (high, respond within 15 minutes): websocket check failed
    (connection refused) while web is healthy; plan: restart websocket → fall back to flash messages →
    escalate
affected_users:
  description: The number of affected users counted (unique ids of a list), or null when not given.
  returned: always
  type: int
  sample: 150
previous_level:
  description: O(previous_level) as given.
  returned: always
  type: int
  sample: 3
trend:
  description: C(new), C(escalated), C(unchanged), C(improved) or C(resolved), compared with O(previous_level).
  returned: always
  type: str
  sample: new
counts:
  description: The number of checks per status.
  returned: always
  type: dict
  sample: {healthy: 9, degraded: 0, failed: 1}
catalogue_version:
  description: The version of the failure catalogue's data.
  returned: always
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_catalogue import LEVELS, CatalogueError, classify


def main():
    module = AnsibleModule(
        argument_spec=dict(
            health=dict(type="dict", required=True),
            messages=dict(type="list", elements="str", default=[]),
            affected_users=dict(type="raw"),
            previous_level=dict(type="int", choices=sorted(LEVELS)),
            host=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = classify(
            params["health"],
            messages=params["messages"],
            affected_users=params["affected_users"],
            previous_level=params["previous_level"],
            host=params["host"],
        )
    except CatalogueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
