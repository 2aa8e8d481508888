#!/usr/bin/env bash
# Run rulebooks/notification_alerts.yml with the project's own source plugins (rulebooks/sources) and the
# project as a tarball (--project-tarball): ansible-rulebook unpacks it for each playbook it runs, so the
# playbooks run with the project's ansible.cfg (modules, filters, roles) and auto_recover.yml finds the
# project (NOTIFICATION_EMERGENCY_PROJECT is its playbook's parent directory). Arguments go to
# ansible-rulebook; give at least the inventory:
#   rulebooks/run_rulebook.sh -i inventories/sandbox [--vars rulebooks/vars.yml] [--print-events] [-v]
# The tarball is a snapshot: restart the rulebook after changing a playbook or a role.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv_bin="$root/.venv/bin"
# One tarball per checkout and user, replaced atomically: a rulebook already running keeps reading its own.
cache="${TMPDIR:-/tmp}/notification-emergency-eda-$(id -u)"
mkdir -p "$cache"
tarball="$cache/project-$(printf '%s' "$root" | sha256sum | cut -c1-12).tar.gz"
tar -C "$root" --dereference --exclude=__pycache__ --exclude='*.pyc' \
  -czf "$tarball.tmp.$$" ansible.cfg playbooks roles library action_plugins module_utils filter_plugins strategy_plugins \
  callback_plugins
mv -f "$tarball.tmp.$$" "$tarball"

# ansible-runner starts the ansible-playbook it finds on PATH: the project's.
export PATH="$venv_bin:$PATH"
exec "$venv_bin/ansible-rulebook" \
  --rulebook "$root/rulebooks/notification_alerts.yml" \
  --source-dir "$root/rulebooks/sources" \
  --project-tarball "$tarball" \
  "$@"
