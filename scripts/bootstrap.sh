#!/usr/bin/env bash
# Set up everything notification-emergency needs on a Debian-like machine, as root:
#   - system packages that are missing (redis-server for the sandbox hosts' private Redis, chromium for
#     the dashboard's browser tests, prometheus for the metrics and alerting-rule tests, openssh-server and
#     sudo for the realistic sandbox profile),
#   - a Python 3.11 virtual environment in .venv with the pinned packages
#     (requirements/constraints.txt), the toolkit (src/) and the reference service (reference_app/).
# Safe to run again: it only does what is missing, and it reinstalls Python packages only when
# pyproject.toml, reference_app/pyproject.toml or the constraints changed (a stamp in .venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${NOTIFICATION_VENV:-$here/.venv}"
python="${PYTHON:-}"

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

# --- system packages -------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Headless Chromium for the dashboard's browser tests (Playwright drives Debian's build: no browser download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# OpenSSH's server for the realistic sandbox profile (a private sshd per host, started by sandbox_up.yml, never
# as a system service).
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# sudo for the realistic profile's admin login (sandbox_login=sudo: an administrator who becomes root with sudo).
[ -x /usr/bin/sudo ] || missing+=(sudo)
# Prometheus (server and promtool) for the tests of /metrics and of deploy/prometheus/'s alerting rules.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python="$("$candidate" -c "import sys; print(sys.executable)")"; break
    fi
  done
  [ -n "$python" ] || missing+=(python3.11 python3.11-venv)
fi
if [ -n "$python" ] && ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3.11-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them; install them and run again"
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root (or install them yourself) and run again"
  log "installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$python" ] || python="$(command -v python3.11)"
fi

# --- Python virtual environment ---------------------------------------------
stamp="$venv/.bootstrap-stamp"
want="$(cat pyproject.toml reference_app/pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/notification-emergency" ]; then
  log "virtual environment $venv is up to date"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv with $python"
  "$python" -m venv "$venv"
fi
log "installing pinned Python packages (requirements/constraints.txt)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c requirements/constraints.txt -e ".[dev]" -e ./reference_app 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -c 'import notification_emergency, notification_service, ansible_runner' \
  || die "the Python packages did not install; see the pip output above"
echo "$want" > "$stamp"
log "ready: $venv"
