#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_emergency_state
short_description: Read, activate or deactivate the notification service's emergency mode (emergency.json)
version_added: "0.1.0"
description:
  - Emergency mode is a reversible flag in C(emergency.json) that the service shows as a banner. This module
    reads it (O(state=query)), activates it with a level and a reason (O(state=active)) or resolves it
    (O(state=inactive)).
  - The file holds C(active), C(level), C(reason), C(triggered_by), C(since) (ISO 8601 UTC, kept while
    the emergency lasts) and, once resolved, C(resolved_by) and C(resolved_at).
  - Needs neither Redis nor the database, so it works whichever component failed.
  - Idempotent. Activating again with the same level, reason and trigger changes nothing; a different one
    updates the file and keeps the original C(since). Deactivating an inactive (or absent) state changes
    nothing.
  - Every change appends one JSON line (C(timestamp), C(action), C(before), C(after), C(by)) to an
    append-only audit log. Writes are atomic (a temporary file in the same directory, then a rename) and
    leave the file with mode C(0644).
  - An existing file that is not valid JSON (or not a valid state) is reported (RV(readable=false), a
    warning); activating or deactivating overwrites it, and the audit line records its previous content.
  - Supports check mode (computes C(changed), writes nothing) and diff mode (the JSON before and after).
options:
  path:
    description: Path of C(emergency.json). One of O(path) or O(config) is required.
    type: path
  config:
    description:
      - Path of the service's C(config.yml); the module uses its C(emergency_file) (relative to
        C(config.yml) when relative). Read with PyYAML when the host's Python has it, else with the standard
        library (the plain form the deploy role writes).
    type: path
  state:
    description: C(active) activates or updates emergency mode, C(inactive) resolves it, C(query) only reads it.
    type: str
    default: query
    choices: [active, inactive, query]
  level:
    description: Emergency level, 1 (critical) to 4 (low). Required when O(state=active).
    type: int
    choices: [1, 2, 3, 4]
  reason:
    description: What the banner says. Required when O(state=active); not empty, at most 500 characters.
    type: str
  triggered_by:
    description:
      - Who or what activates emergency mode (an operator, C(engine), an AWX job).
      - Required when O(state=active).
    type: str
  resolved_by:
    description: Who or what resolves emergency mode. Required when O(state=inactive).
    type: str
  audit_log:
    description: The append-only audit log. Defaults to C(emergency-audit.log) next to C(emergency.json).
    type: path
requirements:
  - python >= 3.8
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Activate emergency mode for a WebSocket outage
  notification_emergency_state:
    config: /srv/sandbox-01/etc/config.yml
    state: active
    level: 2
    reason: Real-time notifications are delayed; you will see them when you reload the page.
    triggered_by: notification-emergency engine

- name: Read the emergency state
  notification_emergency_state:
    path: /srv/sandbox-01/state/emergency.json
  register: __notification_emergency

- name: Resolve emergency mode
  notification_emergency_state:
    path: /srv/sandbox-01/state/emergency.json
    state: inactive
    resolved_by: alice
"""

RETURN = r"""
state:
  description:
    - The emergency state after the call (in check mode, the state the call would write).
    - null when the file is unreadable and nothing was written (see RV(readable), RV(error)).
  returned: always
  type: dict
  sample:
    active: true
    level: 2
    reason: Real-time notifications are delayed
    triggered_by: notification-emergency engine
    since: "2026-11-27T10:00:00Z"
before:
  description: The state found before the call (null when the file was unreadable).
  returned: always
  type: dict
  sample: {active: false, level: null, reason: "", triggered_by: "", since: null}
action:
  description: What changed (C(activate), C(update), C(deactivate)), or null when nothing did.
  returned: always
  type: str
  sample: activate
emergency_file:
  description: The emergency.json path used (from O(path) or from O(config)'s C(emergency_file)).
  returned: always
  type: str
  sample: /srv/sandbox-01/state/emergency.json
audit_log:
  description: The audit log path used.
  returned: always
  type: str
  sample: /srv/sandbox-01/state/emergency-audit.log
exists:
  description: Whether emergency.json exists (after the call, or as it would in check mode).
  returned: always
  type: bool
  sample: true
readable:
  description: Whether emergency.json holds a valid state (an absent file counts as a readable inactive state).
  returned: always
  type: bool
  sample: true
error:
  description: Why the existing emergency.json could not be used.
  returned: when the existing file is unreadable
  type: str
  sample: "/srv/sandbox-01/state/emergency.json is not valid JSON: Expecting value: line 1 column 1 (char 0)"
diff:
  description: The file's JSON before and after.
  returned: when changed and in diff mode
  type: dict
  sample:
    before: ""
    after: "{\"active\": true, ...}"
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.notification_emergency_state import (
    AUDIT_NAME,
    EmergencyStateError,
    apply,
    emergency_file_from_config,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            config=dict(type="path"),
            state=dict(type="str", default="query", choices=["active", "inactive", "query"]),
            level=dict(type="int", choices=[1, 2, 3, 4]),
            reason=dict(type="str"),
            triggered_by=dict(type="str"),
            resolved_by=dict(type="str"),
            audit_log=dict(type="path"),
        ),
        required_one_of=[("path", "config")],
        mutually_exclusive=[("path", "config")],
        required_if=[
            ("state", "active", ("level", "reason", "triggered_by")),
            ("state", "inactive", ("resolved_by",)),
        ],
        supports_check_mode=True,
    )
    params = module.params
    try:
        path = emergency_file_from_config(params["config"]) if params["config"] else params["path"]
        audit_log = params["audit_log"] or os.path.join(os.path.dirname(path), AUDIT_NAME)
        result = apply(
            path,
            params["state"],
            audit_log,
            move=module.atomic_move,
            check_mode=module.check_mode,
            level=params["level"],
            reason=params["reason"],
            triggered_by=params["triggered_by"],
            resolved_by=params["resolved_by"],
        )
    except EmergencyStateError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot write the emergency state: {exc}")
    if result.get("error"):
        if result["changed"]:
            done = "would be overwritten (check mode)" if module.check_mode else "overwritten"
            module.warn(f"{result['error']}; {done}, the previous content is recorded in {audit_log}")
        else:
            module.warn(f"{result['error']}; activate or deactivate emergency mode to replace it")
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
