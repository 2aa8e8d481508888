#!/usr/bin/env bash
# The shell baseline of bench/bench_fleet.py: the rollback to legacy mode done the way the original tool did
# it, one host after the other, with plain commands (no Ansible, no verification of the backup, no lock, no
# automatic restore on failure):
#   bench/baseline_rollback.sh ROOT:WEB_PORT [ROOT:WEB_PORT ...]                    # the default sandbox profile
#   SSH_KEY=K SSH_KNOWN_HOSTS=F bench/baseline_rollback.sh ROOT:WEB_PORT:SSH_PORT:USER ...   # over SSH
# Per host (a sandbox host's root, as playbooks/sandbox_up.yml lays it out): a tar backup of etc/ and templates/,
# pending WebSocket notifications carried into the flash store, the WebSocket service stopped, the legacy
# templates activated, the routes (config.yml) switched to legacy, the WebSocket program disabled, supervisord
# updated, what arrived meanwhile carried, then GET /health and a notification seen as a flash message.
# With an SSH port (the realistic profile), the same steps run on the host through one `ssh root@127.0.0.1 -p PORT`
# per host, with the host's own tools (supervisorctl on its PATH, the service's CLI in ROOT/venv, run as the
# service's USER through runuser, as an administrator would run it with sudo -u).
# Exits non-zero at the first host that fails (as the original script did, leaving it half-switched).
set -euo pipefail
bin="${NOTIFICATION_SERVICE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin}"

# The steps on one host: rollback_host ROOT WEB_PORT SERVICE_CLI SUPERVISORCTL [USER]
rollback_host() {
  set -euo pipefail
  local root="$1" port="$2" cli="$3" ctl="$4" user="${5:-}"
  local cfg="$root/etc/config.yml" as=()
  [ -z "$user" ] || as=(runuser -u "$user" --)
  local sup=("$ctl" -c "$root/etc/supervisord.conf")
  mkdir -p "$root/baseline-backups"
  tar -czf "$root/baseline-backups/pre-legacy-$(date +%Y%m%dT%H%M%S%N).tgz" -C "$root" etc templates
  "${as[@]}" "$cli" carry-pending --config "$cfg" >/dev/null
  "${sup[@]}" stop notification-websocket >/dev/null
  cp "$root"/templates/legacy/* "$root/templates/active/"
  sed -i -e 's/^mode: websocket$/mode: legacy/' -e '/^websocket:/,/^[a-z]/ s/^  enabled: true$/  enabled: false/' "$cfg"
  sed -i -e 's/^autostart=true$/autostart=false/' -e 's/^autorestart=true$/autorestart=false/' \
    "$root/etc/supervisor.d/notification-websocket.conf"
  "${sup[@]}" update >/dev/null
  "${as[@]}" "$cli" carry-pending --config "$cfg" >/dev/null
  curl -fsS --max-time 10 --retry 10 --retry-delay 1 --retry-all-errors "http://127.0.0.1:$port/health" >/dev/null
  "${as[@]}" "$cli" probe --config="$cfg" --user=baseline --timeout=15 | grep -q '"channel": "flash"'
}

for spec in "$@"; do
  IFS=: read -r root port ssh_port user <<<"$spec"
  if [ -z "${ssh_port:-}" ]; then
    rollback_host "$root" "$port" "$bin/notification-service" "$bin/supervisorctl"
    continue
  fi
  # As root, GNU sed -i and cp keep the owner of the files they rewrite: the host's files stay the service's.
  ssh -p "$ssh_port" -i "${SSH_KEY:?SSH_KEY names the client key}" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="${SSH_KNOWN_HOSTS:?SSH_KNOWN_HOSTS names the known_hosts file}" \
    -o StrictHostKeyChecking=yes root@127.0.0.1 bash -s <<EOF
$(declare -f rollback_host)
rollback_host '$root' '$port' '$root/venv/bin/notification-service' supervisorctl '$user'
EOF
done
