#!/usr/bin/env bash
# On the GPU host (no package index): unpack the folders bench/gpu/pack.py built into one
# venv, $GPU_VENV (default /tmp/gpuvenv, outside the synced tree; /tmp survives between
# calls while the machine stays warm).
#
# Why a venv: the Triton stub's embedded interpreter takes sys.prefix from the first
# `python3` on PATH (the launcher puts the bench interpreter's folder first) and ignores
# PYTHONPATH, so everything must be importable from that interpreter itself. The venv sees
# the host's torch, transformers and CUDA (system site packages, and the host python3's own
# site folders through a .pth, in case that python3 is itself a venv), while what is
# unpacked into the venv's site-packages comes first: numpy 1.26 shadows the host's numpy 2
# (the 2.51 stub needs numpy < 2).
#
#   bench/gpu/unpack.sh .gpu/c1 [.gpu/c2 ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${GPU_VENV:-/tmp/gpuvenv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV" 2>/dev/null \
        || python3 -m venv --system-site-packages --without-pip "$VENV"
    SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    python3 -c "import site; print('\n'.join(site.getsitepackages()))" > "$SITE/zz_host_site.pth"
fi
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# pip of the venv if it has one, else the host's, writing into the venv's site-packages.
if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    PIP=("$VENV/bin/python" -m pip install)
else
    PIP=(python3 -m pip install --target "$SITE" --upgrade)
fi
for d in "$@"; do
    [ -d "$d" ] || { echo "unpack: no folder $d (was it named in carry?)" >&2; exit 1; }
    for f in "$d"/*.tar.xz; do
        [ -e "$f" ] || continue
        tar -C "$SITE" -xJf "$f"
        echo "$(basename "$f")" >> "$VENV/unpacked"
        echo "unpacked $f"
    done
    for w in "$d"/*.whl; do
        [ -e "$w" ] || continue
        "${PIP[@]}" -q --no-deps --no-index --no-compile --ignore-requires-python \
            --force-reinstall "$w"
        echo "installed $w"
    done
    [ -e "$d/MANIFEST" ] && cp "$d/MANIFEST" "$VENV/MANIFEST"
    for c in "$d"/*.mp4; do [ -e "$c" ] && cp "$c" "$VENV/"; done
done
echo "venv $VENV: $(sort -u "$VENV/unpacked" 2>/dev/null | wc -l) parts unpacked into $SITE"
