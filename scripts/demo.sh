#!/usr/bin/env bash
# Install ecert and run the CA on its embedded default: SQLite and encrypted key files under ./data,
# a demo hierarchy made on first start, the web service on http://127.0.0.1:8000/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export ECERT_DATA_DIR="${ECERT_DATA_DIR:-$PWD/data}"
exec .venv/bin/ecert-ca serve --demo --host 127.0.0.1 --port "${PORT:-8000}"
