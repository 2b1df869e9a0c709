# syntax=docker/dockerfile:1
# The orchestrator service: probes and decodes clips, fans out to Triton over gRPC, serves
# the gRPC API (50051) and the HTTP compatibility API with /metrics (8003).
#
#   docker build -f docker/orchestrator.Dockerfile -t tiktok-analyzer/orchestrator:0.1.0 .
#
# Build context: the repository root (docker/orchestrator.Dockerfile.dockerignore trims it).

# pyproject.toml requires Python 3.11 (the pins are resolved for it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: build the wheels of the project and of its gRPC client package (client/, which
# holds the generated protobuf modules the service serves), so the runtime image carries no
# source tree.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml ./
COPY src/ src/
COPY client/ client/
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . ./client

# Stage 2: the runtime, without the [server] extra (no torch, no analyzer libraries): the
# orchestrator only decodes and ships; it reads each model's declarations (what to decode)
# from the model repository inside the package. Both wheels in one pip call, so the
# project's pins and the client's ranges resolve together. Every pinned dependency ships a
# manylinux wheel (PyAV bundles FFmpeg), so no compiler or apt package is needed.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /tmp/wheels
RUN python -m pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels

# Fail the build, not the first request, if the declarations or analyzer classes don't load.
RUN tiktok-analyzer models > /dev/null

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tiktok
# Without --job-store, jobs live in SQLite under $XDG_STATE_HOME/tiktok-analyzer: a folder the
# service user owns (the user has no home). Mount a volume there to keep jobs across containers.
RUN install -d -o 10001 -g 10001 /var/lib/tiktok-analyzer
ENV XDG_STATE_HOME=/var/lib/tiktok-analyzer
USER 10001
WORKDIR /app

EXPOSE 50051 8003

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8003/health', timeout=2)"

# --triton-url takes a comma-separated list of Triton gRPC endpoints; the orchestrator spreads
# requests over the ready ones. Clips are read only under --allowed-root.
ENTRYPOINT ["tiktok-analyzer", "serve"]
CMD ["--triton-url", "triton:8001", \
     "--grpc-port", "50051", \
     "--http-port", "8003", \
     "--host", "0.0.0.0", \
     "--allowed-root", "/data"]
