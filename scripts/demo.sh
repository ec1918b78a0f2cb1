#!/usr/bin/env bash
# Install ecert and run the CA on its embedded default: SQLite and encrypted key files under ./data,
# a demo hierarchy made on first start, the web service on http://127.0.0.1:8000/.
#
# So that a whole journey (register, validate, issue, install) works on one machine without the internet,
# the demo also starts, on loopback only, and stops them when it stops:
#   - a stand-in DNS resolver on 127.0.0.1:5353 (scripts/demo_dns.py): every name has A 127.0.0.1, no CAA,
#     and the TXT records `scripts/demo_dns.py add NAME VALUE` puts in data/demo-dns.json;
#   - an SMTP sink on 127.0.0.1:8025 that prints the mails it gets (the invitation, DCV e-mails).
# and points the CA at them: ECERT_DNS_RESOLVERS, ECERT_SMTP_PORT and ECERT_SMTP_PORT_FOR_DCV, and for the
# website method ECERT_ALLOW_PRIVATE_ADDRESSES=true with ECERT_HTTP_PORT=8080 (the port DCV fetches on:
# serve a web root there with `python3 -m http.server 8080 --bind 127.0.0.1`). A real instance keeps the
# defaults: a validating recursive resolver, public addresses only, ports 80 and 443 (BR 3.2.2.4.18).
# Every value can be overridden from the environment; DEMO_HELPERS=0 starts the CA alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export ECERT_DATA_DIR="${ECERT_DATA_DIR:-$PWD/data}"
mkdir -p "$ECERT_DATA_DIR"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
if [ "${DEMO_HELPERS:-1}" = 1 ]; then
  dns_port="${DEMO_DNS_PORT:-5353}"
  smtp_port="${DEMO_SMTP_PORT:-8025}"
  .venv/bin/python scripts/demo_dns.py serve --port "$dns_port" --records "$ECERT_DATA_DIR/demo-dns.json" &
  pids+=($!)
  .venv/bin/python -m aiosmtpd -n -l "127.0.0.1:$smtp_port" &
  pids+=($!)
  export ECERT_DNS_RESOLVERS="${ECERT_DNS_RESOLVERS:-127.0.0.1:$dns_port}"
  export ECERT_SMTP_HOST="${ECERT_SMTP_HOST:-127.0.0.1}"
  export ECERT_SMTP_PORT="${ECERT_SMTP_PORT:-$smtp_port}"
  export ECERT_SMTP_PORT_FOR_DCV="${ECERT_SMTP_PORT_FOR_DCV:-$smtp_port}"
  export ECERT_ALLOW_PRIVATE_ADDRESSES="${ECERT_ALLOW_PRIVATE_ADDRESSES:-true}"
  export ECERT_HTTP_PORT="${ECERT_HTTP_PORT:-8080}"
  echo "demo: resolver 127.0.0.1:$dns_port, mail sink 127.0.0.1:$smtp_port, website DCV on port $ECERT_HTTP_PORT"
fi
# The same settings for the commands of the README's tour in another shell: `. data/demo.env`.
{
  echo "# written by scripts/demo.sh: the settings the running demo uses"
  for v in ECERT_DATA_DIR ECERT_DNS_RESOLVERS ECERT_SMTP_HOST ECERT_SMTP_PORT ECERT_SMTP_PORT_FOR_DCV \
           ECERT_ALLOW_PRIVATE_ADDRESSES ECERT_HTTP_PORT; do
    [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'export ECERT_CA_URL=%q\n' "http://127.0.0.1:${PORT:-8000}"
} > "$ECERT_DATA_DIR/demo.env"
.venv/bin/ecert-ca serve --demo --host 127.0.0.1 --port "${PORT:-8000}" &
pids+=($!)
wait "${pids[-1]}"
