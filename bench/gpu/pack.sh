#!/usr/bin/env bash
# Build the folders .gpu/c1 .. .gpu/c3 that carry this project's Python 3.12 packages to a GPU
# host that reaches no package index (the lent H100 whose image has Python 3.12, torch,
# transformers and numpy 2, see bench/results/gpu_*.md). Each folder stays under the 64 MiB
# a call may carry; bench/gpu/unpack.sh unpacks them there in order.
#
#   bench/gpu/pack.sh            # needs pip access; writes .gpu/ (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."
PLAT=(--python-version 3.12 --implementation cp --only-binary=:all:)
for n in 17 24 27 28 31 34 35; do PLAT+=(--platform "manylinux_2_${n}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
rm -rf .gpu/dl .gpu/site312 .gpu/c1 .gpu/c2 .gpu/c3
mkdir -p .gpu/dl .gpu/c1 .gpu/c2 .gpu/c3
# What the host lacks (or has only for numpy 2: scipy, hence scipy 1.17), at our pins.
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .gpu/dl \
    numpy==1.26.4 scipy==1.17.1 av==18.1.0 nvidia-pytriton==0.7.0 tritonclient==2.51.0 \
    protobuf==4.25.9 python-rapidjson pydantic==2.14.4 pydantic-core annotated-types \
    typing-inspection librosa==0.11.0 soundfile==0.14.0 audioread soxr pooch decorator \
    cffi pycparser open_clip_torch==3.3.0 ftfy wcwidth ultralytics==8.4.190 ultralytics-thop \
    easyocr==1.7.2 python-bidi pyclipper shapely mediapipe==0.10.21 jsonschema==4.26.0 \
    jsonschema-specifications referencing rpds-py bitsandbytes==0.50.2 \
    prometheus-client==0.26.0 ctranslate2==4.8.5 faster-whisper==1.2.1
.venv/bin/pip wheel -q --no-deps -w .gpu/dl openai-whisper==20250625  # sdist only
python3 -m pip install -q --no-deps --no-compile --target .gpu/site312 "${PLAT[@]}" \
    --platform any .gpu/dl/*.whl
S=.gpu/site312
# Only what the server needs, for this Python; bitsandbytes' CUDA 13 library only.
rm -rf "$S"/bin "$S"/nvidia_pytriton.libs/libpython3*
find "$S"/pytriton/tritonserver/python_backend_stubs -mindepth 1 -maxdepth 1 ! -name 3.12 \
    -exec rm -rf {} +
find "$S"/bitsandbytes -maxdepth 1 -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
t() { local out=$1; shift; (cd "$S" && tar -cJf "../../$out" "$@"); }
t .gpu/c1/g1.tar.xz pytriton nvidia_pytriton.libs numpy numpy.libs numpy-1.26.4.dist-info
t .gpu/c1/gA.tar.xz pydantic pydantic_core annotated_types* typing_inspection* tritonclient \
    google protobuf-* librosa soundfile.py _soundfile* soundfile-* audioread* soxr* pooch* \
    decorator* open_clip open_clip_torch-* ftfy* wcwidth* ultralytics ultralytics-* \
    ultralytics_thop* thop easyocr easyocr-* bidi python_bidi* pyclipper* shapely* \
    jsonschema* referencing* rpds* prometheus_client* bitsandbytes bitsandbytes-* whisper \
    openai_whisper-* tritonclient-* cffi* _cffi_backend* pycparser* rapidjson* python_rapidjson*
t .gpu/c2/g2.tar.xz scipy scipy.libs scipy-1.17.1.dist-info
t .gpu/c2/gAV.tar.xz av av.libs av-18.1.0.dist-info
t .gpu/c3/gCT.tar.xz ctranslate2 ctranslate2.libs ctranslate2-* faster_whisper faster_whisper-*
t .gpu/c3/gMP.tar.xz mediapipe mediapipe.libs mediapipe-0.10.21.dist-info
# This project (its code as it is now) and the bench clip.
.venv/bin/pip wheel -q --no-deps -w .gpu/c3 . ./client
[ -f .gpu/bench30.mp4 ] || .venv/bin/python bench/gpu_bench.py --render .gpu/bench30.mp4
cp .gpu/bench30.mp4 .gpu/c3/
du -sh .gpu/c1 .gpu/c2 .gpu/c3
