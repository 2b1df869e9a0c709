#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, then every tier (unit, adapter, live
# Triton, CLI). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
