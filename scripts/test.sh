#!/usr/bin/env bash
# Install what the tests need (system packages included), hold the house rules, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The house rules (issue 11 point 8) come first, so a finding fails the run before any test starts:
# lint with the complexity rule (pyproject [tool.ruff]), formatting, and types (strict on core, signer, services).
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy src
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
