#!/usr/bin/env bash
# Install everything ecert needs on a fresh Debian 12 machine: system packages (as root), the venv, the package.
# Usage: scripts/setup.sh [--test]   (--test also installs the test tools and starts PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0; [ "${1:-}" = "--test" ] && want_test=1
if [ "$want_test" = 1 ]; then
  pkgs=$(grep -vE '^\s*(#|$)' scripts/system-packages.txt | sort -u | tr '\n' ' ')
  missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  # PostgreSQL at 127.0.0.1:5432 with trust auth and a database "test" (this machine kind has it running).
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw test; then
    runuser -u postgres -- createdb test 2>/dev/null || true
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1
if [ "$want_test" = 1 ]; then
  .venv/bin/pip install -q -e '.[test]' 2> >(grep -v "^WARNING: Location" >&2)
else
  .venv/bin/pip install -q -e . 2> >(grep -v "^WARNING: Location" >&2)
fi
