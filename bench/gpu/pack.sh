#!/usr/bin/env bash
# Build .gpu/c1, .gpu/c2, ... for the GPU host (bench/gpu/README.md): the Python 3.12
# packages it lacks, this project's wheels and the bench clip, each folder under the 64 MiB a
# call may carry. The selection lives in bench/gpu/pack.py (tested in tests/bench/).
#
#   bench/gpu/pack.sh            # needs pip access; writes .gpu/ (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python bench/gpu/pack.py "$@"
