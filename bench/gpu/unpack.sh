#!/usr/bin/env bash
# On a GPU host that reaches no package index (the lent H100 of bench/results/gpu_*.md):
# unpack the Python 3.12 packages carried in the given folders (*.tar.xz of installed
# package trees, *.whl) into $GPU_SITE (default /tmp/gpusite, outside the synced tree), which the run then puts first on PYTHONPATH, ahead
# of the host interpreter's numpy 2 (the Triton 2.51 stub needs numpy 1.x).
# bench/gpu/pack.sh builds those folders on a machine with pip access.
set -euo pipefail
cd "$(dirname "$0")/../.."
SITE="${GPU_SITE:-/tmp/gpusite}"
mkdir -p "$SITE"
for d in "$@"; do
    for f in "$d"/*.tar.xz; do
        [ -e "$f" ] && tar -C "$SITE" -xJf "$f"
    done
    for w in "$d"/*.whl; do
        [ -e "$w" ] && python3 -m pip install -q --no-deps --no-index --no-compile --upgrade --ignore-requires-python \
            --target "$SITE" "$w"
    done
done
echo "unpacked into $SITE: $(ls "$SITE" | wc -l) entries"
