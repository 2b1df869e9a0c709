#!/usr/bin/env bash
# The last device call (bench/gpu/README.md): unpack the folders given, check that every
# part bench/gpu/pack.py made is there and that the wheel was built from this tree, then run
# bench/gpu_bench.py for each precision the call's 10 minutes allow (bf16 first). Results and
# this call's log go under $OUT, which the device sends back.
#
#   bench/gpu/run.sh [--precision bf16,nf4] [--mps] [FOLDER ...] [-- BENCH ARGS ...]
#
# --mps starts NVIDIA's MPS control daemon for this call (pipes and log under /tmp) before
# the server, so the ~20 model processes share the GPU at once instead of taking turns
# (time slices), and stops it at the end. It changes no setting of the GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
VENV="${GPU_VENV:-/tmp/gpuvenv}"
PRECISIONS=bf16
MPS=0
# Seconds this call may use in all (the device stops a call at 600 s).
BUDGET_S="${GPU_CALL_BUDGET_S:-570}"
FOLDERS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --precision) PRECISIONS="$2"; shift 2 ;;
        --mps) MPS=1; shift ;;
        --) shift; break ;;
        *) FOLDERS+=("$1"); shift ;;
    esac
done
echo "== $(date -u +%FT%TZ) run.sh: folders ${FOLDERS[*]:-none}; precisions $PRECISIONS"
if [ ${#FOLDERS[@]} -gt 0 ]; then bench/gpu/unpack.sh "${FOLDERS[@]}"; fi
[ -f "$VENV/MANIFEST" ] || { echo "run.sh: no $VENV/MANIFEST: unpack the last folder (.gpu/cN) first" >&2; exit 1; }
missing=$(awk '$1 == "part" {print $2}' "$VENV/MANIFEST" | while read -r p; do
    grep -qxF "$p" "$VENV/unpacked" 2>/dev/null || echo "$p"; done)
if [ -n "$missing" ]; then
    echo "run.sh: parts never unpacked on this machine: $(echo $missing)." >&2
    echo "  A machine that went cold between calls loses /tmp: make the calls again from c1." >&2
    exit 1
fi
packed=$(awk '$1 == "digest" {print $2}' "$VENV/MANIFEST")
here=$(python3 bench/gpu/pack.py --digest)
if [ "$packed" != "$here" ] && [ -z "${ALLOW_STALE_WHEEL:-}" ]; then
    echo "run.sh: the wheel was packed from another src/ (digest $packed, this tree $here):" >&2
    echo "  run bench/gpu/pack.sh again (or set ALLOW_STALE_WHEEL=1 to measure it anyway)" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
timeout 120 "$VENV/bin/python" bench/gpu/preflight.py || exit 1
CLIP="$VENV/bench30.mp4"
if [ "$MPS" = 1 ]; then
    control=$(command -v nvidia-cuda-mps-control || echo /usr/local/nvidia/bin/nvidia-cuda-mps-control)
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    "$control" -d || { echo "run.sh: the MPS daemon did not start ($control)" >&2; exit 1; }
    trap 'echo quit | "$control"; sleep 1; echo "== MPS log:"; tail -5 "$CUDA_MPS_LOG_DIRECTORY/control.log"' EXIT
    echo "== MPS daemon started ($control)"
    # A container may start the daemon yet refuse its clients: then every GPU model would
    # fail to load and the call would be spent. Check with one CUDA tensor first.
    if ! timeout 90 "$VENV/bin/python" -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
        echo "== MPS: a CUDA client failed under the daemon; quitting it, measuring without MPS"
        echo quit | "$control"; sleep 2; trap - EXIT
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        MPS=0
    fi
fi
first=1
for p in ${PRECISIONS//,/ }; do
    left=$((BUDGET_S - SECONDS))
    # One bench takes ~6-8 minutes on the H100; a second in the same call rarely fits.
    if [ "$first" = 0 ] && [ "$left" -lt 420 ]; then
        echo "== skipped $p: ${left} s left in this call; run: bench/gpu/run.sh --precision $p"
        continue
    fi
    first=0
    echo "== $(date -u +%FT%TZ) bench $p, ${left} s left"
    timeout -k 15 $((left - 15)) "$VENV/bin/python" bench/gpu_bench.py --clip "$CLIP" --llava-precision "$p" \
        --out-dir "$OUT" --deadline-s $((left - 40)) "$@" || echo "== bench $p failed ($?)"
done
echo "== $(date -u +%FT%TZ) done; under $OUT: $(ls "$OUT" | tr '\n' ' ')"
