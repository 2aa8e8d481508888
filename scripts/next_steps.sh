#!/usr/bin/env bash
# Print what a user can try next on the sandbox that `make demo` brought up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
inventory=inventories/sandbox/hosts.yml
[ -f "$inventory" ] || { echo "no sandbox is up; run: make demo" >&2; exit 1; }
.venv/bin/python - "$inventory" <<'PY'
import sys
import yaml

inventory = yaml.safe_load(open(sys.argv[1]))
sandbox = inventory["all"]["children"]["sandbox"]
home = sandbox["vars"]["notification_sandbox_home"]
hosts = sandbox["hosts"]
first, first_vars = next(iter(hosts.items()))
web = f"http://127.0.0.1:{first_vars['notification_service_web_port']}"
root = first_vars["notification_service_root"]
bold, off = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
print(f"""
{bold}The sandbox is up: {len(hosts)} host(s).{off}
  {', '.join(f"{name} -> http://127.0.0.1:{v['notification_service_web_port']}" for name, v in hosts.items())}

{bold}Try next{off}
  Open the app as a user (WebSocket mode shows notifications live):
    {web}/login?user=alice
  Send that user a notification through the API (the token is generated per host):
    curl -s -X POST {web}/api/notifications \\
      -H "Authorization: Bearer $(cat {home}/credentials/{first}-api_token)" \\
      -H 'Content-Type: application/json' \\
      -d '{{"user": "alice", "title": "Hello", "message": "It works", "priority": "normal"}}'
  Health of every component:
    curl -s {web}/health | python3 -m json.tool
  Receive one with a real Socket.IO client:
    .venv/bin/notification-service probe --config {root}/etc/config.yml --user bob
  Status of every host (mode, emergency, health, level, open incidents):
    .venv/bin/notification-emergency status
  Break it (stop the WebSocket process), see what the engine would do, then let it recover:
    .venv/bin/supervisorctl -c {root}/etc/supervisord.conf stop notification-websocket
    .venv/bin/notification-emergency explain
    .venv/bin/notification-emergency auto-recover
  Watch and recover on its own (Ctrl-C stops it), or run every recovery drill:
    .venv/bin/notification-emergency watch
    .venv/bin/notification-emergency test-recovery --all
  Roll back to legacy flash messages and forward again; what happened:
    .venv/bin/notification-emergency rollback && .venv/bin/notification-emergency restore
    .venv/bin/notification-emergency events --since 1h
  Watch it all in the browser (create an operator first; the password is read from the terminal):
    .venv/bin/notification-emergency dashboard --add-user alice --role operator
    .venv/bin/notification-emergency dashboard          # http://127.0.0.1:5001
  Tell users and operators (channels: docs/notifications.md); the on-call's page: docs/emergency-procedures.md
    .venv/bin/notification-emergency send-notification --title "Notifications delayed" --priority high
  More hosts, or none:
    make sandbox-up SANDBOX_SIZE=3
    make sandbox-down
  Everything else:
    .venv/bin/notification-emergency --help
""")
PY
