#!/usr/bin/env bash
# The shell baseline of bench/bench_fleet.py: the rollback to legacy mode done the way the original tool did
# it, one host after the other, with plain commands (no Ansible, no verification of the backup, no lock, no
# automatic restore on failure):
#   bench/baseline_rollback.sh ROOT:WEB_PORT [ROOT:WEB_PORT ...]
# Per host (a sandbox host's root, as playbooks/sandbox_up.yml lays it out): a tar backup of etc/ and templates/,
# pending WebSocket notifications carried into the flash store, the WebSocket service stopped, the legacy
# templates activated, the routes (config.yml) switched to legacy, the WebSocket program disabled, supervisord
# updated, what arrived meanwhile carried, then GET /health and a notification seen as a flash message.
# Exits non-zero at the first host that fails (as the original script did, leaving it half-switched).
set -euo pipefail
bin="${NOTIFICATION_SERVICE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin}"

for spec in "$@"; do
  root="${spec%:*}"
  port="${spec##*:}"
  cfg="$root/etc/config.yml"
  sup=("$bin/supervisorctl" -c "$root/etc/supervisord.conf")
  mkdir -p "$root/baseline-backups"
  tar -czf "$root/baseline-backups/pre-legacy-$(date +%Y%m%dT%H%M%S%N).tgz" -C "$root" etc templates
  "$bin/notification-service" carry-pending --config "$cfg" >/dev/null
  "${sup[@]}" stop notification-websocket >/dev/null
  cp "$root"/templates/legacy/* "$root/templates/active/"
  sed -i -e 's/^mode: websocket$/mode: legacy/' -e '/^websocket:/,/^[a-z]/ s/^  enabled: true$/  enabled: false/' "$cfg"
  sed -i -e 's/^autostart=true$/autostart=false/' -e 's/^autorestart=true$/autorestart=false/' \
    "$root/etc/supervisor.d/notification-websocket.conf"
  "${sup[@]}" update >/dev/null
  "$bin/notification-service" carry-pending --config "$cfg" >/dev/null
  curl -fsS --max-time 10 --retry 10 --retry-delay 1 --retry-all-errors "http://127.0.0.1:$port/health" >/dev/null
  "$bin/notification-service" probe --config="$cfg" --user=baseline --timeout=15 | grep -q '"channel": "flash"'
done
