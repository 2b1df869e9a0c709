"""Before the bench on the GPU host: can this interpreter import what every model needs?

A module missing there shows up in the bench only as a model that failed to load, one at a
time, deep in Triton's log; this lists them all at once, with the package to add to
PACKAGES in bench/gpu/pack.py. numpy 2 first on the path is fatal (the Triton 2.51 stub
cannot use it); anything else missing is reported and the bench still runs.

    /tmp/gpuvenv/bin/python bench/gpu/preflight.py
"""

from __future__ import annotations

import importlib
import sys

#: module -> the package that brings it (what is imported lazily, inside the analyzers).
MODULES = {
    "torch": "the host's torch",
    "transformers": "the host's transformers",
    "cv2": "opencv (the host's)",
    "scipy": "scipy",
    "av": "av",
    "tritonclient.grpc": "tritonclient, grpcio",
    "tritonclient.utils.shared_memory": "tritonclient, setuptools (pkg_resources)",
    "pydantic": "pydantic",
    "librosa": "librosa",
    "soundfile": "soundfile",
    "pooch": "pooch, platformdirs",
    "whisper": "openai-whisper, tiktoken",
    "faster_whisper": "faster-whisper",
    "ctranslate2": "ctranslate2",
    "onnxruntime": "onnxruntime (faster-whisper's VAD)",
    "open_clip": "open_clip_torch, ftfy, wcwidth",
    "ultralytics": "ultralytics",
    "easyocr": "easyocr",
    "mediapipe": "mediapipe",
    "bitsandbytes": "bitsandbytes",
}


def main() -> int:
    try:
        import numpy
    except ImportError as exc:
        print(f"preflight: numpy cannot be imported here: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    print(
        f"python {sys.version.split()[0]} at {sys.prefix}; numpy {numpy.__version__} "
        f"from {numpy.__file__}",
        flush=True,
    )
    if int(numpy.__version__.split(".")[0]) >= 2:
        print("preflight: numpy 2 comes first: unpack numpy 1.26 into this venv", file=sys.stderr)
        return 1
    missing = []
    for module, package in MODULES.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure to import is the finding
            missing.append(f"{module} ({package}): {type(exc).__name__}: {exc}")
    from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class

    for name in ANALYZER_NAMES:
        try:
            load_class(name)
        except Exception as exc:  # noqa: BLE001
            missing.append(f"analyzer {name}: {type(exc).__name__}: {exc}")
    for line in missing:
        print(f"preflight: cannot import {line}", flush=True)
    print(
        f"preflight: {len(MODULES) + len(ANALYZER_NAMES) - len(missing)} imports ok, "
        f"{len(missing)} not",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
