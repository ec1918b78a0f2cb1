#!/usr/bin/env bash
# Install what the tests need (system packages included) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
