"""An atheris (libFuzzer) target over the service's probe/decode entry,
:func:`probe_and_decode_isolated`: each input is written to a file and probed and decoded
in the worker process, as the service does with a caller's clip. The input must end as
frames or as BadInput; anything else escapes, and libFuzzer reports it as a crash of this
process, the service's side. Each input's outcome is appended to $FUZZ_LOG as one JSON line.

    FUZZ_LOG=out.jsonl python tests/service/fuzz_probe_decode.py CORPUS_DIR -runs=500 -seed=1

Run as a script (not ``-m``): the worker's forkserver then imports this file once, not
every child. tests/service/test_fuzz.py runs it with a bounded budget.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    # The parent's side of the worker: which outcome an input reached is the coverage
    # libFuzzer can see (the decoders run in the child, out of its sight).
    from tiktok_analyzer.orchestrator.worker import probe_and_decode_isolated

from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator.probe import BadInput, Limits

SPECS = [FrameSpec(short_side=64, every_frame=True), FrameSpec(short_side=128, fps=2.0)]
#: Tighter than the service's defaults, so that a bomb or a hang costs seconds, not minutes.
LIMITS = Limits(worker_memory_bytes=1024**3, probe_timeout_s=5.0, decode_timeout_s=10.0)
WORKDIR = tempfile.mkdtemp(prefix="fuzz-probe-decode-")
LOG = os.environ.get("FUZZ_LOG", os.path.join(WORKDIR, "outcomes.jsonl"))


def outcome_of(message: str) -> str:
    for key in ("failed", "crashed", "ran out of memory", "timed out", "was killed", "exited"):
        if key in message:
            return f"decoder {key}"
    return "refused"


def test_one_input(data: bytes) -> None:
    path = os.path.join(WORKDIR, "input.mp4")
    with open(path, "wb") as f:
        f.write(data)
    try:
        _, decoded = asyncio.run(probe_and_decode_isolated(path, LIMITS, SPECS, True))
        record = {"outcome": "decoded", "frames": decoded.n_frames}
    except BadInput as exc:
        text = str(exc).replace(path, "INPUT")
        record = {"outcome": outcome_of(text), "message": text[:200]}
    with open(LOG, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
