"""The failure catalogue's data: levels, escalation, recovery steps, failure types and their signals.

Plain data (dicts, lists, strings), checked and applied by ``catalogue.py`` (``notification_emergency.catalogue``).
The vocabulary the rest of the toolkit uses (priorities, components) is derived from it at the end.

The Python package imports this file as ``notification_emergency.catalogue_data``; Ansible ships the same
file to managed hosts as ``ansible.module_utils.notification_catalogue_data`` (``module_utils/`` holds a
relative symlink to it), beside the code. So it stays stdlib only, Python 3.8+ syntax, and imports nothing.
"""

from __future__ import annotations

from typing import Any

CATALOGUE_VERSION = 1
STATUSES = ("healthy", "degraded", "failed")
NOT_HEALTHY = ("degraded", "failed")
UNKNOWN = "unknown"

# -- levels and escalation -----------------------------------------------------------------------------

LEVELS: dict[int, dict[str, Any]] = {
    1: {"level": 1, "name": "critical", "response_minutes": 0, "response": "immediate"},
    2: {"level": 2, "name": "high", "response_minutes": 15, "response": "within 15 minutes"},
    3: {"level": 3, "name": "medium", "response_minutes": 30, "response": "within 30 minutes"},
    4: {"level": 4, "name": "low", "response_minutes": 60, "response": "within 60 minutes"},
}
NO_LEVEL: dict[str, Any] = {"level": None, "name": "none", "response_minutes": None, "response": "none"}

ESCALATION: dict[str, Any] = {
    "description": (
        "Raise every failure's level by the number of affected users, given as a count or as a list of "
        "user ids (each id counted once): the highest threshold reached applies; a level never goes above 1."
    ),
    "thresholds": [
        {"min_users": 1000, "raise_by": 2},
        {"min_users": 100, "raise_by": 1},
    ],
    "highest_level": 1,
}

# -- recovery steps --------------------------------------------------------------------------------------
# action: either {"playbook": <playbooks/ file>, "extra_vars": {...}} (run by the engine through
# ansible-runner) or {"notify": <audience>} (sent by the engine's notifier).
# automatic: the engine may run the step without a human's approval. Steps that touch notification data
# (the database, the pending queue, the flash store) are never automatic, with one exception: a "fallback"
# step (the rollback to flash messages, exactly-once and verified) is automatic under the engine's policy
# switch auto_fallback, so that users keep getting notifications. escalate is a hand-off to a human.
# last: the step closes any merged plan (one hand-off at the end, whatever the type order).

STEPS: dict[str, dict[str, Any]] = {
    "restart_web": {
        "label": "restart web",
        "description": "Restart the web (Flask) process and wait until GET /health answers.",
        "action": {"playbook": "restart_services.yml", "extra_vars": {"components": ["web"]}},
        "automatic": True,
        "touches_data": False,
    },
    "restart_websocket": {
        "label": "restart websocket",
        "description": "Restart the WebSocket (Flask-SocketIO) process; wait until its namespace accepts connections.",
        "action": {"playbook": "restart_services.yml", "extra_vars": {"components": ["websocket"]}},
        "automatic": True,
        "touches_data": False,
    },
    "restart_redis": {
        "label": "restart redis",
        "description": "Restart Redis and wait until it answers PING.",
        "action": {"playbook": "restart_services.yml", "extra_vars": {"components": ["redis"]}},
        "automatic": True,
        "touches_data": False,
    },
    "restart_workers": {
        "label": "restart workers",
        "description": "Gracefully reload the web and WebSocket workers, one process at a time.",
        "action": {"playbook": "restart_services.yml", "extra_vars": {"components": ["web", "websocket"]}},
        "automatic": True,
        "touches_data": False,
    },
    "enable_flash_fallback": {
        "label": "fall back to flash messages",
        "description": (
            "Roll the host back to legacy flash-message mode so that users keep getting notifications: the "
            "rollback playbook (backed up first, pending WebSocket notifications carried into the flash store "
            "each once, verified, put back when its verification fails). Automatic under the engine's "
            "auto_fallback policy (on by default; notification_auto_fallback: false on a host turns it off), "
            "when the steps before it did not restore WebSocket delivery or its budget (60 s from detection) "
            "ran out. The engine then rolls the host forward to WebSocket on its own once the WebSocket "
            "process has been healthy for a sustained period."
        ),
        "action": {"playbook": "rollback_to_legacy.yml", "extra_vars": {"rollback_keep_websocket": True}},
        "automatic": True,
        "touches_data": True,
        "fallback": True,
    },
    "drain_backlog_to_flash": {
        "label": "drain backlog to flash",
        "description": "Move the pending WebSocket backlog from Redis into the flash store, each notification once.",
        "action": {"playbook": "drain_backlog.yml", "extra_vars": {"target": "flash"}},
        "automatic": False,
        "touches_data": True,
    },
    "restore_config": {
        "label": "restore config",
        "description": (
            "Re-deploy config.yml (and the service definitions) from the deployment's declared state, keeping "
            "the host's mode and emergency state; the services re-read it on their next request."
        ),
        "action": {"playbook": "deploy.yml", "extra_vars": {}},
        "automatic": True,
        "touches_data": False,
    },
    "restore_templates": {
        "label": "restore templates",
        "description": (
            "Re-deploy both template sets from the release's sources and activate the set of the host's mode."
        ),
        "action": {"playbook": "deploy.yml", "extra_vars": {}},
        "automatic": True,
        "touches_data": False,
    },
    "restore_last_backup": {
        "label": "restore the last backup's files",
        "description": (
            "Put back the files of the host's last backup (config.yml, both template sets, the service "
            "definitions) with restore.yml: backed up first, a corrupt backup refused, verified. A human "
            "confirms, because the backup may be older than the change that the release needed."
        ),
        "action": {"playbook": "restore.yml", "extra_vars": {"restore_backup": "latest"}},
        "automatic": False,
        "touches_data": False,
    },
    "restore_database": {
        "label": "restore the database from the last backup",
        "description": (
            "Restore the notifications database (SQLite) and the host's files from its last backup with "
            "restore.yml (services stopped, backed up first, verified); notifications written since that "
            "backup are lost, so a human decides: the engine never changes data on its own."
        ),
        "action": {"playbook": "restore.yml", "extra_vars": {"restore_backup": "latest", "restore_database": True}},
        "automatic": False,
        "touches_data": True,
    },
    "prune_logs": {
        "label": "prune logs",
        "description": "Compress and delete rotated service logs beyond the log retention.",
        "action": {"playbook": "prune.yml", "extra_vars": {"prune_items": ["logs"]}},
        "automatic": True,
        "touches_data": False,
    },
    "prune_backups": {
        "label": "prune backups",
        "description": "Delete backups beyond the backup retention, never the last good one.",
        "action": {"playbook": "prune.yml", "extra_vars": {"prune_items": ["backups"]}},
        "automatic": True,
        "touches_data": False,
    },
    "repair_programs": {
        "label": "repair programs",
        "description": (
            "Re-apply the deploy (program definitions, directories, files; the host's mode kept), apply the "
            "definitions to supervisord and start the programs it gave up on (it never retries FATAL by itself); "
            "then every program of the host must be managed and running, or the step fails."
        ),
        "action": {"playbook": "repair_programs.yml", "extra_vars": {}},
        "automatic": True,
        "touches_data": False,
    },
    "restore_process_manager": {
        "label": "restore process manager",
        "description": (
            "Bring back a dead supervisord without orphans: stop the host's processes that no manager owns "
            "(found by pid files, the host's ports and its root in their command line; SIGTERM, a bounded wait, "
            "SIGKILL), start supervisord, and wait until every program of the host runs under it."
        ),
        "action": {"playbook": "restore_process_manager.yml", "extra_vars": {}},
        "automatic": True,
        "touches_data": False,
    },
    "escalate": {
        "label": "escalate",
        "description": (
            "Hand the incident to a human: notify the on-call chain with the classification and what was tried."
        ),
        "action": {"notify": "on_call"},
        "automatic": False,
        "touches_data": False,
        "last": True,
    },
}

# -- failure types ---------------------------------------------------------------------------------------
# Order matters: it is the tie-break between types of the same level (causes before symptoms), so it is
# the order of the merged plan. Signal fields: "check" (a matcher on one check: component, kind, status,
# reason: lists of accepted values; reason_not: excluded reasons; critical: bool; text: regex searched in
# the check's error and evidence; evidence: {dotted path: accepted values}) or "messages" (regexes, case
# insensitive). "level" on a signal overrides the type's base_level. "explains": the types this one is the
# root cause of, optionally only when the explained type's checks all have one of "when_reasons".
# "component": the service component (COMPONENTS) the type takes down, or None.
# "context": components whose status the detail text mentions ("... while web is healthy"). unknown has no
# signals: classify gives it the non-healthy checks no other signal claimed (signal id "unclaimed_check").

_NOT_HEALTHY = ["degraded", "failed"]  # lists, not tuples: the data must survive a JSON round trip
_SLOW_OR_BACKLOG = ["slow", "backlog"]
_PAGE_ERRORS = ["bad_status", "bad_answer"]  # the process answers, but with 5xx or a failed /health body
# What a down web explains of the WebSocket's checks: every reason but hung. A hung WebSocket process (its port
# accepts, nothing answers) is a cause of its own, never hidden under a web symptom.
_WEB_OUTAGE_EXPLAINS_WEBSOCKET = [
    *("refused", "timeout", "unreachable", "bad_status", "bad_answer", "auth", "error"),
    *("not_running", "crash_loop", "not_defined", "manager_down"),
]

CATALOGUE: dict[str, dict[str, Any]] = {
    "web_service_down": {
        "title": "Web service down",
        "description": "The web application does not serve: its /health check, port or process failed, or 5xx errors.",
        "component": "web",
        "base_level": 1,
        "signals": [
            {
                "id": "web_check_failed",
                "description": "a web-component check failed (not merely slow)",
                "check": {"component": ["web"], "status": ["failed"], "reason_not": _SLOW_OR_BACKLOG},
            },
            {
                "id": "web_error_logged",
                "description": "a message reports the web process dead or answering 5xx",
                "messages": [
                    r"\bnotification-web\b.*\b(FATAL|BACKOFF|EXITED|crashed)\b",
                    r"\b50[0234] (Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)\b",
                    r"\bHTTP(/\d(\.\d)?)? 50[0234]\b",
                ],
            },
        ],
        "explains": [{"type": "websocket_service_down", "when_reasons": _WEB_OUTAGE_EXPLAINS_WEBSOCKET}],
        "plan": ["restart_web", "restore_config", "restore_last_backup", "escalate"],
    },
    "database_unavailable": {
        "title": "Database unavailable",
        "description": "The notifications database does not answer queries or refuses writes.",
        "component": "database",
        "base_level": 1,
        "signals": [
            {
                "id": "database_check_failed",
                "description": "a database-component check failed",
                "check": {"component": ["database"], "status": ["failed"], "reason_not": ["slow", "write_refused"]},
            },
            {
                # Its own signal, not its own type: the same level and plan fit (a read-only file or filesystem,
                # a standby, a write lock held for long are repaired by a human; the engine never touches data).
                "id": "database_refuses_writes",
                "description": "the database answers queries but refuses the write probe (reason write_refused)",
                "check": {"component": ["database"], "status": ["failed"], "reason": ["write_refused"]},
            },
            {
                "id": "web_reports_database_failed",
                "description": "the web's /health reports the database failed",
                "check": {"component": ["web"], "evidence": {"json.components.database.status": ["failed"]}},
            },
            {
                "id": "database_error_logged",
                "description": "a message carries a database driver error",
                "messages": [
                    r"\bsqlite3\.(OperationalError|DatabaseError)\b",
                    r"\bpsycopg2?\.(errors\.)?(OperationalError|InterfaceError)\b",
                    r"\bsqlalchemy\.exc\.(OperationalError|InterfaceError|DisconnectionError)\b",
                    r"\bdatabase is locked\b",
                    r"\bdatabase or disk is full\b",
                    r"\bcould not connect to server\b",
                    r"\bno such table\b",
                ],
            },
        ],
        "explains": [{"type": "web_service_down", "when_reasons": _PAGE_ERRORS}],
        "plan": ["restore_database", "escalate"],
    },
    "process_manager_down": {
        "title": "Process manager down",
        "description": (
            "supervisord (or systemd) itself does not answer: the host's programs are not managed. Those still "
            "running are orphans (nothing restarts them, they keep the host's ports); a new supervisord cannot "
            "start its programs beside them."
        ),
        "component": None,
        "base_level": 2,
        "signals": [
            {
                "id": "process_manager_unreachable",
                "description": "a process check finds the service manager itself down (reason manager_down)",
                "check": {"kind": ["process"], "status": ["failed"], "reason": ["manager_down"]},
            },
            {
                "id": "process_manager_down_logged",
                "description": "a message reports supervisord's socket gone or refusing",
                "messages": [
                    r"\bunix://\S+supervisor\S*\.sock\b.{0,20}\b(no such file|refused connection)\b",
                    r"\bsupervisord is not running\b",
                    r"\bFailed to connect to bus\b",
                ],
            },
        ],
        # Everything a dead manager takes down with it: its programs are gone, or cannot be (re)started.
        "explains": [
            {"type": "crash_loop"},
            {"type": "web_service_down", "when_reasons": ["manager_down", "refused", "not_running"]},
            {"type": "websocket_service_down", "when_reasons": ["manager_down", "refused", "not_running"]},
            {"type": "redis_unavailable", "when_reasons": ["manager_down", "refused", "not_running"]},
        ],
        "plan": ["restore_process_manager", "escalate"],
    },
    "crash_loop": {
        "title": "Crash loop",
        "description": (
            "The process manager gave up on a program or cannot start it (supervisord FATAL or BACKOFF: "
            '"Exited too quickly", a spawn error such as ENOENT for a missing log directory; a systemd unit '
            "in failed; a program it has no definition of): a restart alone does not help, the deployed "
            "definition, directories and files are re-applied first."
        ),
        "component": None,
        "base_level": 2,
        "signals": [
            {
                "id": "program_gave_up",
                "description": "a process check finds a program its manager gave up on or has no definition of",
                "check": {"kind": ["process"], "status": ["failed"], "reason": ["crash_loop", "not_defined"]},
            },
            {
                "id": "crash_loop_logged",
                "description": "a message reports supervisord giving up on a program or failing to spawn it",
                "messages": [
                    r"\bgave up: \S+ entered FATAL state\b",
                    r"\bspawn ?err(or)?\b",
                    r"\bcan't find command\b",
                ],
            },
        ],
        # The program it gave up on is down: its refused ports and failed checks are this, not a restartable outage.
        "explains": [
            {"type": "websocket_service_down"},
            {"type": "web_service_down", "when_reasons": ["crash_loop", "not_defined", "refused", "not_running"]},
        ],
        # A WebSocket program that still cannot run after the repair: users get flash messages meanwhile.
        "plan": ["repair_programs", "enable_flash_fallback", "escalate"],
    },
    "configuration_drift": {
        "title": "Configuration drift",
        "description": (
            "config.yml on the host differs from the desired state, the inventory (a web or WebSocket port or "
            "host changed): the service answers where config.yml says, not where the inventory, the direct "
            "probes and the dashboard look for it. Re-applying the deploy writes config.yml from the inventory "
            "and restarts the programs on it (its handler), so they listen where they should."
        ),
        "component": None,
        "base_level": 2,
        "signals": [
            {
                "id": "config_drifted",
                "description": "the drift check finds config.yml different from the inventory (reason drift)",
                "check": {"component": ["config"], "status": ["failed"], "reason": ["drift"]},
            },
        ],
        # Where the inventory says the service answers, nothing does: those refused checks are the drift.
        "explains": [
            {"type": "web_service_down", "when_reasons": ["refused"]},
            {"type": "websocket_service_down", "when_reasons": ["refused"]},
            {"type": "template_error", "when_reasons": ["refused"]},
        ],
        "plan": ["restore_config", "restart_web", "restart_websocket", "escalate"],
    },
    "configuration_error": {
        "title": "Configuration error",
        "description": "config.yml is missing, changed from the deployed one, or rejected by the service.",
        "component": None,
        "base_level": 2,
        "signals": [
            {
                "id": "config_check_unhealthy",
                "description": "the config file check failed or is degraded (missing, checksum, stale; not drift)",
                "check": {"component": ["config"], "status": _NOT_HEALTHY, "reason_not": ["drift"]},
            },
            {
                "id": "web_reports_config_error",
                "description": "the web's /health reports a config reload failure",
                "check": {
                    "component": ["web"],
                    "status": _NOT_HEALTHY,
                    "text": r"config reload failed|\bconfig\.ya?ml:|\bConfigError\b",
                },
            },
            {
                "id": "config_error_logged",
                "description": "a message carries a configuration error (config.yml: <key> ...)",
                "messages": [
                    r"\bconfig\.ya?ml:",
                    r"\bConfigError\b",
                    r"\binvalid (YAML|configuration)\b",
                    r"\brequired key \S+ is missing\b",
                ],
            },
        ],
        "explains": [{"type": "web_service_down"}, {"type": "websocket_service_down"}],
        "plan": ["restore_config", "restart_web", "restart_websocket", "escalate"],
    },
    "redis_write_refused": {
        "title": "Redis refuses writes",
        "description": (
            "Redis answers PING but refuses writes (a read-only replica, out of memory under noeviction, MISCONF "
            "after a failed save): notifications are stored but no longer queued or published live. A restart "
            "resets runtime settings (CONFIG SET, REPLICAOF) to the deployed ones; users go on flash messages "
            "when it does not help."
        ),
        "component": "redis",
        "base_level": 2,
        "signals": [
            {
                "id": "redis_write_probe_refused",
                "description": "the redis check's write probe got an error reply (reason write_refused)",
                "check": {"component": ["redis"], "status": ["failed"], "reason": ["write_refused"]},
            },
            {
                "id": "redis_write_refused_logged",
                "description": "a message carries Redis's refusal of a write (READONLY, OOM, MISCONF)",
                "messages": [
                    r"\bredis\.exceptions\.(ReadOnlyError|OutOfMemoryError)\b",
                    r"\bREADONLY You can't write against a read only replica\b",
                    r"\bOOM command not allowed\b",
                    r"\bMISCONF\b",
                ],
            },
        ],
        # The web's /health reports Redis failed (its own write probe): that is this refusal, not an outage.
        "explains": [{"type": "redis_unavailable", "when_reasons": ["bad_answer", "bad_status"]}],
        "plan": ["restart_redis", "enable_flash_fallback", "escalate"],
    },
    "redis_unavailable": {
        "title": "Redis unavailable",
        "description": "Redis (message queue and pending store) does not answer PING or refuses commands.",
        "component": "redis",
        "base_level": 2,
        "signals": [
            {
                "id": "redis_check_failed",
                "description": "a redis-component check failed: refused, hung... (not slow, no backlog)",
                "check": {
                    "component": ["redis"],
                    "status": ["failed"],
                    "reason_not": [*_SLOW_OR_BACKLOG, "write_refused"],
                },
            },
            {
                "id": "web_reports_redis_failed",
                "description": "the web's /health reports Redis failed (down, hung: the web answered)",
                "check": {"component": ["web"], "evidence": {"json.components.redis.status": ["failed"]}},
            },
            {
                "id": "redis_error_logged",
                "description": "a message carries a Redis connection error",
                "messages": [
                    r"\bredis\.exceptions\.(ConnectionError|TimeoutError|BusyLoadingError|ReadOnlyError|AuthenticationError)\b",
                    r"\bError \d+ connecting to \S+:\d+",
                    r"\bMISCONF\b",
                    r"\bOOM command not allowed\b",
                    r"\bredis\b.{0,40}\b(connection refused|timed out|unreachable)\b",
                ],
            },
        ],
        "explains": [{"type": "websocket_service_down"}, {"type": "delivery_backlog"}],
        "plan": ["restart_redis", "enable_flash_fallback", "escalate"],
    },
    "websocket_service_down": {
        "title": "WebSocket service down",
        "description": (
            "Real-time delivery is down: a websocket-component check (handshake, port, process) failed. "
            "When the web failed too, it is suppressed under web_service_down (a whole-service outage)."
        ),
        "component": "websocket",
        "base_level": 2,
        "context": ["web"],
        "signals": [
            {
                "id": "websocket_check_failed",
                "description": "a websocket-component check failed: refused, hung (accepts, no answer)... (not slow)",
                "check": {"component": ["websocket"], "status": ["failed"], "reason_not": _SLOW_OR_BACKLOG},
            },
            {
                "id": "web_reports_websocket_failed",
                "description": "the web's /health reports the WebSocket process failed (down, hung: the web answered)",
                "check": {"component": ["web"], "evidence": {"json.components.websocket.status": ["failed"]}},
            },
            {
                "id": "websocket_error_logged",
                "description": "a message reports the WebSocket process dead or refusing connections",
                "messages": [
                    r"\bnotification-websocket\b.*\b(FATAL|BACKOFF|EXITED|crashed)\b",
                    r"\b(websocket|socket\.?io)\b.{0,60}\b(connection refused|handshake failed|connect_error)\b",
                ],
            },
        ],
        "explains": [{"type": "delivery_backlog"}],
        "plan": ["restart_websocket", "enable_flash_fallback", "escalate"],
    },
    "template_error": {
        "title": "Template error",
        "description": "Pages fail to render: the active template set is missing or changed, or Jinja2 errors.",
        "component": None,
        "base_level": 3,
        "signals": [
            {
                "id": "templates_check_unhealthy",
                "description": "the templates file check failed or is degraded (missing, checksum)",
                "check": {"component": ["templates"], "status": _NOT_HEALTHY},
            },
            {
                "id": "web_reports_template_error",
                "description": "a failed/degraded web check mentions a template or Jinja2 error",
                "check": {
                    "component": ["web"],
                    "status": _NOT_HEALTHY,
                    "text": r"TemplateNotFound|TemplateSyntaxError|UndefinedError|jinja2|\btemplates?(_dir)?\b",
                },
            },
            {
                "id": "template_error_logged",
                "description": "a message carries a Jinja2 template error",
                "messages": [
                    r"\bjinja2\.exceptions\.\w+",
                    r"\b(TemplateNotFound|TemplateSyntaxError|TemplateAssertionError)\b",
                    r"\btemplate\b.{0,80}\b(not found|missing|error|failed)\b",
                ],
            },
        ],
        "explains": [{"type": "web_service_down", "when_reasons": _PAGE_ERRORS}],
        "plan": ["restore_templates", "restart_web", "escalate"],
    },
    "delivery_backlog": {
        "title": "Delivery backlog",
        "description": "Pending notifications pile up: the pending queue is too long or too old.",
        "component": "websocket",
        "base_level": 3,
        "signals": [
            {
                "id": "backlog_reported",
                "description": "a check reports reason backlog (pending queue too long or too old)",
                "check": {"reason": ["backlog"], "status": _NOT_HEALTHY},
            },
            {
                "id": "backlog_logged",
                "description": "a message reports a growing or old pending queue",
                "messages": [
                    r"\bpending (notifications?|queue)\b.{0,80}\b(backlog|too (old|long)|growing)\b",
                    r"\bnotification backlog\b",
                ],
            },
        ],
        "explains": [],
        "plan": ["restart_websocket", "drain_backlog_to_flash", "escalate"],
    },
    "disk_pressure": {
        "title": "Disk pressure",
        "description": "Free disk space is under the threshold on the service's filesystem.",
        "component": None,
        "base_level": 3,
        "signals": [
            {
                "id": "disk_check_unhealthy",
                "description": "the disk check failed or is degraded",
                "check": {"component": ["disk"], "status": _NOT_HEALTHY},
            },
            {
                "id": "low_space_reported",
                "description": "any check reports reason low_space",
                "check": {"reason": ["low_space"], "status": _NOT_HEALTHY},
            },
            {
                "id": "disk_full_logged",
                "description": "a message reports a full disk",
                "messages": [
                    r"\bNo space left on device\b",
                    r"\bENOSPC\b",
                    r"\bdatabase or disk is full\b",
                    r"\bdisk (is )?full\b",
                ],
            },
        ],
        # A full disk makes SQLite writes and Redis persistence fail with errors (not with refused/timeout).
        "explains": [
            {"type": "database_unavailable", "when_reasons": ["error", "bad_answer", "write_refused"]},
            {"type": "redis_unavailable", "when_reasons": ["error", "bad_answer"]},
        ],
        "plan": ["prune_logs", "prune_backups", "escalate"],
    },
    "performance_degradation": {
        "title": "Performance degradation",
        "description": "Checks answer over their latency threshold: level 3 when a critical check is slow, else 4.",
        "component": None,
        "base_level": 4,
        "signals": [
            {
                "id": "critical_check_slow",
                "description": "a critical check is slow",
                "check": {"reason": ["slow"], "critical": True, "status": _NOT_HEALTHY},
                "level": 3,
            },
            {
                "id": "check_slow",
                "description": "a non-critical check is slow",
                "check": {"reason": ["slow"], "critical": False, "status": _NOT_HEALTHY},
            },
            {
                "id": "worker_timeout_logged",
                "description": "a message reports a worker timeout (gunicorn WORKER TIMEOUT)",
                "messages": [r"\bWORKER TIMEOUT\b"],
                "level": 3,
            },
            {
                "id": "slowness_logged",
                "description": "a message reports latency over a threshold",
                "messages": [r"\b(slow|latency)\b.{0,60}\b(threshold|exceeded)\b"],
            },
        ],
        "explains": [],
        "plan": ["restart_workers", "escalate"],
    },
    UNKNOWN: {
        "title": "Unknown failure",
        "description": (
            "A failed or degraded check that no signal of another type claims. Its level comes from the "
            "affected users: base level 3, raised like every type by ESCALATION."
        ),
        "component": None,
        "base_level": 3,
        "signals": [],
        "explains": [],
        "plan": ["escalate"],
    },
}

# -- the vocabulary: priorities and components ---------------------------------------------------------------
# The one place for these names: the notifier, the channels, the CLI, the dashboard and the filters import them.

# A notification's priority is the name of its emergency level: critical, high, medium, low.
PRIORITIES: tuple[str, ...] = tuple(str(LEVELS[level]["name"]) for level in sorted(LEVELS))
LEVEL_PRIORITY: dict[int, str] = {level: str(info["name"]) for level, info in LEVELS.items()}
# The reference application's priorities (reference_app/notification_service/names.py) for the toolkit's.
APP_PRIORITY: dict[str, str] = {"critical": "critical", "high": "high", "medium": "normal", "low": "low"}

# The notification service's components (docs/health-result.md): a failure type's "component" is the one it
# takes down, the one a notification channel must not depend on.
COMPONENTS: tuple[str, ...] = ("web", "websocket", "redis", "database")
# What a health check names as its component: the service's components, its files, the disk and the host.
CHECK_COMPONENTS: tuple[str, ...] = (*COMPONENTS, "config", "templates", "disk", "host")
# failure type -> the component it takes down (only the types that take one down).
FAILURE_COMPONENT: dict[str, str] = {
    name: str(entry["component"]) for name, entry in CATALOGUE.items() if entry["component"] is not None
}
# The components a recovery step restarts (restart_services.yml's choices), in COMPONENTS order.
RESTARTABLE_COMPONENTS: tuple[str, ...] = tuple(
    component
    for component in COMPONENTS
    if any(component in step["action"].get("extra_vars", {}).get("components", ()) for step in STEPS.values())
)
