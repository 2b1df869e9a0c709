"""A bounded fuzz run (atheris) over the service's probe/decode entry: mutated clips
(bit flips, byte insertions and deletions, splices of the seeds) go through the worker
process as a caller's clip would; every one must end as frames or as BadInput, and the
fuzzing process, standing for the service, must never crash. A decoder crash in the child
is tolerated (that is what the worker is for); an exception of our own code there is not.

Found by this run and fixed: a video stream with no decoder (probe read a missing codec
context), tags in a broken encoding (PyAV's strict UTF-8 refused to open the file), a
container that finds its streams only while probing (PyAV refused per-stream options), and an
audio stream whose rate or layout changes midway, or a frame of 48 channels (the resampler
refused them). Inputs that found a defect are kept in fuzz_found/ and seed every run."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from tests.hostile_media import claim_duration, claim_size, tiny_h264, tiny_mpeg_ps

pytestmark = pytest.mark.slow
pytest.importorskip("atheris", reason="atheris is in the test extras")

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("fuzz_probe_decode.py")
FOUND = Path(__file__).with_name("fuzz_found")
#: Seconds of fuzzing: CI-sized. Override with $FUZZ_SECONDS for a longer hunt.
BUDGET_S = int(os.environ.get("FUZZ_SECONDS", "20"))


def _with_audio(path: Path) -> Path:
    """A real clip with both streams: 10 frames of 64x64 H.264, 1 s of AAC."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=16000, layout="mono")
        for i in range(10):
            picture = np.full((64, 64, 3), i * 20, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, "rgb24")):
                out.mux(packet)
        tone = np.sin(np.arange(16000) * 0.1).astype(np.float32)[None] * 0.3
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in audio.encode(frame):
            out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    _with_audio(seeds / "both.mp4")
    _with_audio(seeds / "both.mkv")
    tiny_mpeg_ps(seeds / "tiny.mpg")
    tiny = tiny_h264(tmp_path / "tiny.mp4")
    claim_size(tiny, seeds / "claims_30000.mp4", 30000, 30000)
    claim_duration(tiny, seeds / "claims_10h.mp4", 36000)
    # what earlier runs found, so that every run tries them and their mutants again
    for found in FOUND.iterdir():
        shutil.copy(found, seeds / found.name)
    return seeds


def test_fuzzing_probe_and_decode_never_crashes_the_parent(corpus, tmp_path):
    log = tmp_path / "outcomes.jsonl"
    # Linux keeps ru_maxrss across execve: the harness starts with this process's peak (the
    # unit tier's torch models), which libFuzzer would count as its own. Its own 2 GB budget
    # comes on top.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(corpus),
            f"-max_total_time={BUDGET_S}",
            "-seed=1",
            "-timeout=30",
            "-print_final_stats=1",
            f"-rss_limit_mb={inherited_mb + 2048}",
        ],
        env={**os.environ, "FUZZ_LOG": str(log), "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BUDGET_S + 120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    outcomes = [json.loads(line) for line in log.read_text().splitlines()]
    counts = Counter(o["outcome"] for o in outcomes)
    print(f"\n{len(outcomes)} inputs in {BUDGET_S} s: {dict(counts)}")
    assert len(outcomes) >= 100, counts
    # an exception of our own code in the child (refused, but a defect): none
    assert counts["decoder failed"] == 0, [o for o in outcomes if o["outcome"] == "decoder failed"]
    # the run went both ways: mutants that still decode, and mutants refused
    assert counts["decoded"] > 0 and counts["refused"] > 0, counts
