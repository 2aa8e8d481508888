#!/usr/bin/python
# Copyright: notification-emergency contributors
# MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_health
short_description: Check every component of the notification service in one call
version_added: "0.1.0"
description:
  - Checks the web process (C(GET /health)), the WebSocket process (a real Socket.IO handshake on the
    namespace and an acknowledged C(ping) round trip), Redis (C(PING), memory, the C(notification:pending)
    backlog and a write probe), the database (a query and a write probe), TCP ports, the supervisord or
    systemd services, free disk space and files, and returns one structured result (C(docs/health-result.md)
    is the contract).
  - Every protocol is spoken with the Python standard library (the WebSocket upgrade, Engine.IO, Socket.IO
    and Redis RESP by hand), and so is O(config) read when the host's Python has no PyYAML (the plain form the
    deploy role writes); only a PostgreSQL database check needs psycopg on the host.
  - With O(config) the checks are derived from the service's C(config.yml); O(checks) adds checks, adjusts
    or replaces the derived ones, or disables them.
  - Checks run concurrently. Each is bounded by its own O(timeout) and the call by O(deadline); a check still
    running then is reported C(failed) with reason C(hung) when the server accepted its connection, else
    C(timeout). The call never waits for the sum.
  - The module does not fail when the service is unhealthy (only on bad arguments) unless
    O(fail_on_unhealthy=true). It changes nothing the service reads (C(changed) is always false; the write
    probes write an expiring key of their own and roll back their transaction) and behaves the same in check
    mode.
  - Passwords in URLs are masked in the result and the API token never appears in it.
options:
  config:
    description:
      - Path of the service's C(config.yml) on the host. The default checks are derived from it -
        C(web) (http C(GET /health); JSON C(status) other than C(healthy) makes it degraded),
        C(websocket) (Socket.IO handshake on C(websocket.public_url) and C(websocket.namespace) with
        the C(api_token) of its C(secrets_file) sent as auth key C(api_token), and a round trip with the
        C(ping) event),
        C(redis), C(database), C(web_port) and C(websocket_port) (tcp), C(web_process) and
        C(websocket_process) (process, only with O(manager)), C(disk) (the service root, the parent of
        C(etc/)), C(config) (the file itself) and C(templates) (C(index.html) of C(templates_dir)).
      - In C(legacy) mode the C(websocket), C(websocket_port) and C(websocket_process) checks are not run
        and are reported C(healthy) with evidence C(disabled=true).
      - A key missing from C(config.yml) makes the checks that need it fail (reason C(error)); a missing file
        or invalid YAML fails the module.
      - One of O(config) and O(checks) is required.
    type: path
  manager:
    description:
      - The service manager of process checks. With O(config), the C(web_process) and C(websocket_process)
        checks are only derived when it is set.
    type: str
    choices: [supervisord, systemd]
  supervisor_config:
    description:
      - Path of supervisord's configuration for process checks with O(manager=supervisord).
      - Defaults to C(etc/supervisord.conf) under the service root when O(config) is given.
    type: path
  bin_dir:
    description:
      - Directory that holds C(supervisorctl) or C(systemctl). Defaults to the directory of the Python
        interpreter that runs the module, then the C(PATH).
    type: path
  services:
    description: Names of the service's supervisord programs or systemd units, for the derived process checks.
    type: dict
    suboptions:
      web:
        description: The web process.
        type: str
        default: notification-web
      websocket:
        description: The WebSocket process.
        type: str
        default: notification-websocket
  desired:
    description:
      - The desired state of the service, from the inventory (C(playbooks/health_check.yml) passes the
        C(notification_service_*) variables the deploy renders C(config.yml) from). With O(config), the derived
        checks look for the service where it says (the C(web), C(page), C(web_port), C(websocket) and
        C(websocket_port) checks), as the direct probes and the dashboard do, not where C(config.yml) says.
      - With O(config), a C(drift) check (file, component C(config)) compares C(config.yml) with the values given
        and fails with reason C(drift) when one differs (evidence C(drift) lists C(config) and C(desired) per key).
      - Only the values given are used and compared; without O(desired), C(config.yml) alone decides.
    type: dict
    suboptions:
      web_host:
        description: The web process's bind host (C(web.host)).
        type: str
      web_port:
        description: The web process's port (C(web.port)).
        type: int
      websocket_host:
        description: The WebSocket process's bind host (C(websocket.host)).
        type: str
      websocket_port:
        description: The WebSocket process's port (C(websocket.port)).
        type: int
      websocket_public_url:
        description: The URL clients reach the WebSocket process at (C(websocket.public_url)).
        type: str
  checks:
    description:
      - Checks to run besides (or instead of) those derived from O(config).
      - A check named like a derived one replaces it when it sets O(checks[].kind); without O(checks[].kind)
        it adjusts the derived check (for example only its O(checks[].timeout)).
      - O(checks[].enabled=false) removes a check.
    type: list
    elements: dict
    suboptions:
      name:
        description: Unique name of the check; the key of the check in the result.
        type: str
        required: true
      kind:
        description: What the check does. Required unless the check adjusts a derived check of the same name.
        type: str
        choices: [http, websocket, redis, database, tcp, process, disk, file]
      component:
        description:
          - The part of the service the check is about, read by the classification.
          - Defaults by kind - http C(web), websocket C(websocket), redis C(redis), database C(database),
            tcp and process C(host), disk C(disk), file C(config).
        type: str
        choices: [web, websocket, redis, database, config, templates, disk, host]
      critical:
        description:
          - Whether the check decides the overall status. A non-critical check that fails makes the overall
            status at most C(degraded).
          - Defaults to true.
        type: bool
      enabled:
        description: V(false) removes the check (also a derived one).
        type: bool
      timeout:
        description: Seconds this check may take; defaults to O(timeout). At most O(deadline).
        type: float
      url:
        description:
          - http - the URL to request (C(http://) or C(https://); user and password in it are sent as basic auth).
          - websocket - the server's URL (C(http(s)://) or C(ws(s)://)); the Engine.IO path is O(checks[].path).
          - redis - C(redis://[[user]:password@]host:port/db), C(rediss://...) or C(unix:///path?db=0).
          - database - C(sqlite:////absolute/path.db), C(postgresql://...) or C(postgresql+psycopg://...).
        type: str
      latency_degraded_ms:
        description:
          - http, websocket, redis, database, tcp - a check that answers correctly but takes longer than this
            is C(degraded) with reason C(slow). Defaults to O(latency_degraded_ms).
        type: float
      method:
        description: http - the request method (default C(GET)).
        type: str
      headers:
        description: http - extra request headers.
        type: dict
      expected_status:
        description:
          - http - the HTTP status codes that count as an answer (default C([200])); others fail with reason
            C(bad_status).
        type: list
        elements: int
      json:
        description:
          - http - keys (or dotted paths such as C(components.redis.status)) and the values the JSON body must
            have; a list value means any of its items. A mismatch has reason C(bad_answer).
        type: dict
      body_regex:
        description: http - a regular expression the body must contain; the evidence reports C(body_match).
        type: str
      mismatch:
        description:
          - http - the status of a check whose body does not match O(checks[].json) or O(checks[].body_regex)
            (default C(failed); the derived C(web) check uses C(degraded)).
        type: str
        choices: [failed, degraded]
      validate_certs:
        description:
          - http, websocket, redis - verify TLS certificates of C(https), C(wss) and C(rediss) URLs (default true).
        type: bool
      namespace:
        description: websocket - the Socket.IO namespace to connect to (default C(/)).
        type: str
      path:
        description:
          - websocket - the Engine.IO path (default C(/socket.io/)).
          - disk - a path on the filesystem to measure.
          - file - the file (or directory) to check.
        type: path
      auth:
        description:
          - websocket - the Socket.IO auth object sent with the namespace CONNECT packet. A refused connect
            (C(44) packet) fails with reason C(auth).
        type: dict
      roundtrip:
        description:
          - websocket - after connecting, emit O(checks[].event) with an acknowledgement and expect
            O(checks[].expect) back. Defaults to O(websocket_roundtrip).
        type: bool
      event:
        description: websocket - the event of the round trip (default C(ping)).
        type: str
      expect:
        description: websocket - the first acknowledgement argument the round trip expects (default C(pong)).
        type: str
      key:
        description:
          - redis - the sorted set of pending notifications (default C(notification:pending)); its scores are
            creation times in unix seconds.
        type: str
      pending_max_length:
        description: redis - more pending notifications than this is C(degraded) with reason C(backlog).
          Defaults to O(pending_max_length).
        type: int
      pending_max_age_s:
        description: redis - an oldest pending notification older than this is C(degraded) with reason
          C(backlog). Defaults to O(pending_max_age_s).
        type: float
      write_probe:
        description:
          - redis - after the reads, C(SET notification:health:probe <time> PX 10000) (a key of its own that
            expires, never the pending queue); an error reply (a read-only replica, C(OOM) with noeviction,
            C(MISCONF)) fails the check with reason C(write_refused) and the server's error as evidence.
          - database - SQLite, a write transaction on a read-write connection of its own that is rolled back
            (a read-only file or filesystem, a database locked for writes refuse it); PostgreSQL,
            C(pg_is_in_recovery()) (a standby refuses writes). A refusal is reason C(write_refused).
          - Default true; V(false) for a Redis user or database role that may only read.
        type: bool
      query:
        description:
          - database - the read-only query to run (default C(SELECT count(*\) FROM notifications)); evidence
            C(rows) is the number it answers (a count) or else the number of rows.
        type: str
      host:
        description: tcp - host to connect to.
        type: str
      port:
        description: tcp - port to connect to.
        type: int
      service:
        description: process - the supervisord program or systemd unit; C(RUNNING) or C(active) is healthy.
        type: str
      manager:
        description: process - the service manager; defaults to O(manager).
        type: str
        choices: [supervisord, systemd]
      supervisor_config:
        description: process - supervisord's configuration; defaults to O(supervisor_config).
        type: path
      min_free_percent:
        description: disk - less free space than this percentage fails with reason C(low_space).
          Defaults to O(disk_min_free_percent).
        type: float
      min_free_bytes:
        description: disk - fewer free bytes than this fails with reason C(low_space).
        type: int
      warn_free_percent:
        description: disk - less free space than this percentage is C(degraded) with reason C(low_space).
        type: float
      warn_free_bytes:
        description: disk - fewer free bytes than this is C(degraded) with reason C(low_space).
        type: int
      max_age_s:
        description: file - a file last modified longer ago than this fails with reason C(stale).
        type: float
      sha256:
        description: file - the expected SHA-256 of the file; a different one fails with reason C(checksum).
        type: str
      min_size:
        description: file - a smaller file fails with reason C(bad_answer).
        type: int
      desired:
        description:
          - file - a YAML file's keys (dotted, such as C(web.port)) and the values they must have; a difference
            fails with reason C(drift). The derived C(drift) check uses it with the module's O(desired).
        type: dict
  include:
    description: Run only the checks with these names.
    type: list
    elements: str
  exclude:
    description: Do not run the checks with these names.
    type: list
    elements: str
  timeout:
    description: Seconds each check may take unless it sets its own O(checks[].timeout).
    type: float
    default: 2
  deadline:
    description: Seconds the whole call may take; checks still running then are reported failed (C(timeout)).
    type: float
    default: 10
  websocket_roundtrip:
    description: Whether websocket checks emit the C(ping) event and wait for its acknowledgement by default.
    type: bool
    default: true
  latency_degraded_ms:
    description: Default latency over which a correct answer is C(degraded) with reason C(slow).
    type: float
    default: 1000
  pending_max_length:
    description: Default length of the pending queue over which redis checks are C(degraded) (C(backlog)).
    type: int
    default: 1000
  pending_max_age_s:
    description: Default age in seconds of the oldest pending notification over which redis checks are
      C(degraded) (C(backlog)).
    type: float
    default: 300
  disk_min_free_percent:
    description: Default free space percentage under which disk checks fail (C(low_space)).
    type: float
    default: 5
  fail_on_unhealthy:
    description:
      - Fail the task when the overall status is C(failed). A C(degraded) service does not fail it; use
        C(failed_when) on RV(overall) for a stricter gate.
    type: bool
    default: false
requirements:
  - python >= 3.8
  - psycopg (only for a PostgreSQL database check)
notes:
  - Supports check mode; the module only reads, so check mode runs the same checks.
  - The Socket.IO handshake is done without an C(Origin) header, as a server-side client.
seealso:
  - module: notification_services
author:
  - notification-emergency contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check a sandbox host, with a slower Redis allowed and without the round trip
  notification_health:
    config: /srv/sandbox-01/etc/config.yml
    manager: supervisord
    supervisor_config: /srv/sandbox-01/etc/supervisord.conf
    websocket_roundtrip: false
    checks:
      - name: redis
        latency_degraded_ms: 250
      - name: templates
        enabled: false
  register: __notification_health

- name: Show what is not healthy
  ansible.builtin.debug:
    msg: "{{ __notification_health.overall }}: {{ __notification_health.failed_checks }}"
  when: __notification_health.overall != 'healthy'

- name: Check the notification service as deployed by the notification_service role (production)
  notification_health:
    config: /srv/notification/etc/config.yml
    manager: systemd

- name: Check single components without a config.yml and fail when one is down
  notification_health:
    fail_on_unhealthy: true
    timeout: 3
    deadline: 5
    checks:
      - name: web
        kind: http
        url: http://127.0.0.1:8000/health
        json:
          status: healthy
          components.database.status: [healthy, degraded]
      - name: websocket
        kind: websocket
        url: http://127.0.0.1:8001
        namespace: /notifications
        auth:
          api_token: "{{ notification_service_api_token }}"
      - name: queue
        kind: redis
        url: redis://:{{ redis_password }}@127.0.0.1:6379/0
        pending_max_age_s: 60
      - name: database
        kind: database
        url: postgresql+psycopg://notification@db.example.com/notification
      - name: backup
        kind: file
        component: database
        critical: false
        path: /srv/notification/backup/latest.sql.gz
        max_age_s: 90000
"""

RETURN = r"""
overall:
  description:
    - C(healthy), C(degraded) or C(failed) - the worst status of the critical checks; a non-critical check
      that fails or is degraded makes it at most C(degraded).
  returned: always
  type: str
  sample: healthy
checked_at:
  description: When the checks started, UTC, ISO 8601.
  returned: always
  type: str
  sample: "2026-11-27T10:00:00Z"
duration_ms:
  description: Wall time of the whole call in milliseconds (the checks run concurrently).
  returned: always
  type: float
  sample: 42.1
deadline_s:
  description: The deadline of the call in seconds.
  returned: always
  type: float
  sample: 10.0
counts:
  description: How many checks are healthy, degraded and failed.
  returned: always
  type: dict
  sample: {"healthy": 9, "degraded": 0, "failed": 0}
checks:
  description:
    - One entry per check, keyed by its name - C(name), C(component), C(kind), C(critical), C(status),
      C(latency_ms), C(error) (short text when not healthy), C(reason) (C(refused), C(timeout), C(hung) (the
      connection accepted, no answer in time), C(unreachable), C(bad_status), C(bad_answer), C(slow), C(auth),
      C(missing), C(stale), C(checksum), C(low_space),
      C(backlog), C(write_refused) (Redis or the database answers but refuses writes), C(drift) (C(config.yml)
      differs from O(desired)), C(not_running),
      C(crash_loop) (the manager gave up on the program - FATAL, BACKOFF, a spawn error), C(not_defined),
      C(manager_down) (supervisord or systemd itself does not answer) or C(error)) and
      C(evidence), whose keys depend on the kind (C(docs/health-result.md) lists them).
  returned: always
  type: dict
  sample:
    web:
      name: web
      component: web
      kind: http
      critical: true
      status: healthy
      latency_ms: 3.2
      error: null
      reason: null
      evidence: {"url": "http://127.0.0.1:8000/health", "status_code": 200, "json": {"status": "healthy"}}
    redis:
      name: redis
      component: redis
      kind: redis
      critical: true
      status: degraded
      latency_ms: 1.4
      error: "1500 pending notifications in notification:pending, more than 1000"
      reason: backlog
      evidence:
        url: "redis://:***@127.0.0.1:6379/0"
        ping: PONG
        used_memory: 1048576
        pending_queue_length: 1500
        pending_oldest_age_s: 42.0
failed_checks:
  description: Names of the failed checks, in check order.
  returned: always
  type: list
  elements: str
  sample: ["websocket", "websocket_process"]
degraded_checks:
  description: Names of the degraded checks, in check order.
  returned: always
  type: list
  elements: str
  sample: ["redis"]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.notification_common import HealthArgumentError, MissingLibrary
from ansible.module_utils.notification_health import check_health


def main():
    check_options = dict(
        name=dict(type="str", required=True),
        kind=dict(type="str", choices=["http", "websocket", "redis", "database", "tcp", "process", "disk", "file"]),
        component=dict(
            type="str", choices=["web", "websocket", "redis", "database", "config", "templates", "disk", "host"]
        ),
        critical=dict(type="bool"),
        enabled=dict(type="bool"),
        timeout=dict(type="float"),
        url=dict(type="str"),
        latency_degraded_ms=dict(type="float"),
        # Kind-specific options have no argument_spec default so that a check adjusting a derived one does not
        # overwrite it; the documented defaults are applied in module_utils.
        method=dict(type="str"),
        headers=dict(type="dict"),
        expected_status=dict(type="list", elements="int"),
        json=dict(type="dict"),
        body_regex=dict(type="str"),
        mismatch=dict(type="str", choices=["failed", "degraded"]),
        validate_certs=dict(type="bool"),
        namespace=dict(type="str"),
        path=dict(type="path"),
        auth=dict(type="dict", no_log=True),
        roundtrip=dict(type="bool"),
        event=dict(type="str"),
        expect=dict(type="str"),
        key=dict(type="str", no_log=False),
        pending_max_length=dict(type="int"),
        pending_max_age_s=dict(type="float"),
        write_probe=dict(type="bool"),
        query=dict(type="str"),
        host=dict(type="str"),
        port=dict(type="int"),
        service=dict(type="str"),
        manager=dict(type="str", choices=["supervisord", "systemd"]),
        supervisor_config=dict(type="path"),
        min_free_percent=dict(type="float"),
        min_free_bytes=dict(type="int"),
        warn_free_percent=dict(type="float"),
        warn_free_bytes=dict(type="int"),
        max_age_s=dict(type="float"),
        sha256=dict(type="str"),
        min_size=dict(type="int"),
        desired=dict(type="dict"),
    )

    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path"),
            manager=dict(type="str", choices=["supervisord", "systemd"]),
            supervisor_config=dict(type="path"),
            bin_dir=dict(type="path"),
            services=dict(
                type="dict",
                apply_defaults=True,
                options=dict(
                    web=dict(type="str", default="notification-web"),
                    websocket=dict(type="str", default="notification-websocket"),
                ),
            ),
            desired=dict(
                type="dict",
                options=dict(
                    web_host=dict(type="str"),
                    web_port=dict(type="int"),
                    websocket_host=dict(type="str"),
                    websocket_port=dict(type="int"),
                    websocket_public_url=dict(type="str"),
                ),
            ),
            checks=dict(type="list", elements="dict", options=check_options),
            include=dict(type="list", elements="str"),
            exclude=dict(type="list", elements="str"),
            timeout=dict(type="float", default=2.0),
            deadline=dict(type="float", default=10.0),
            websocket_roundtrip=dict(type="bool", default=True),
            latency_degraded_ms=dict(type="float", default=1000.0),
            pending_max_length=dict(type="int", default=1000),
            pending_max_age_s=dict(type="float", default=300.0),
            disk_min_free_percent=dict(type="float", default=5.0),
            fail_on_unhealthy=dict(type="bool", default=False),
        ),
        required_one_of=[("config", "checks")],
        supports_check_mode=True,
    )

    try:
        result, secrets = check_health(module.params)
    except MissingLibrary as exc:
        module.fail_json(msg=missing_required_lib(exc.name, reason=exc.reason))
    except HealthArgumentError as exc:
        module.fail_json(msg=str(exc))
    # Already masked in the result; also keep them out of anything Ansible logs or shows.
    module.no_log_values.update(secret for secret in secrets if len(secret) >= 8)

    if module.params["fail_on_unhealthy"] and result["overall"] == "failed":
        details = "; ".join(
            f"{name}: {result['checks'][name]['reason']} ({result['checks'][name]['error']})"
            for name in result["failed_checks"]
        )
        module.fail_json(msg=f"the notification service is failed - {details}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
