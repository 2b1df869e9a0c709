"""The one batch path of the learned analyzers (_learned.py): each clip checked and prepared
alone, every clip's inputs through the model in shared batches, outputs split back, and a
bad clip or a failed batch kept to the clips it concerns. The device is a constructor
argument."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, warm_up_clip
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    AnalyzerResult,
    Clip,
    ClipMeta,
    FrameSpec,
    NotApplicable,
)
from tiktok_analyzer.analyzers.weights import MODE_ENV

META = ClipMeta(duration_s=1.0, fps=1.0, width=8, height=8)


class Summed(LearnedAnalyzer):
    """Sums each number it is given: a "model" whose answer is known, so what comes back
    to each clip proves the split. A number <= -100 makes the model fail its batch;
    audio of another length is another input shape (a batch group)."""

    name = "audio_environment"  # any manifest entry: its synthetic config resolves
    frames = None
    audio = True

    @dataclass
    class Params:
        batch_size: int = 3

    class Result(AnalyzerResult):
        total: float
        parts: int

    def load(self, weights) -> None:
        self.calls: list[list[float]] = []

    def prepare(self, clip: Clip) -> Prepared:
        if np.isnan(clip.audio).any():
            raise ValueError("audio holds NaN")
        return Prepared(inputs=[float(x) for x in clip.audio], state=len(clip.audio))

    def batch_group(self, item: float) -> bool:
        return item >= 1000  # large numbers apart, as frames of another shape

    def batch_order(self, item: float) -> float:
        return -item

    def infer(self, inputs: list[float]) -> list[float]:
        self.calls.append(list(inputs))
        if min(inputs) <= -100:
            raise RuntimeError("the model failed")
        return [2 * x for x in inputs]

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[float]) -> Result:
        assert len(outputs) == prepared.state
        return self.Result(total=sum(outputs) / 2, parts=len(outputs))


def _clip(*values: float) -> Clip:
    return Clip(meta=META, audio=np.array(values, np.float32))


@pytest.fixture
def summed(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    return Summed(device="cpu")


def test_each_clip_gets_its_own_outputs_from_shared_batches(summed):
    out = summed.analyze_batch([_clip(1, 2), _clip(3, 4, 5), _clip(6)])
    assert [(r.total, r.parts) for r in out] == [(3, 2), (12, 3), (6, 1)]
    # 6 inputs in batches of 3 across clips, largest first (batch_order)
    assert summed.calls == [[6, 5, 4], [3, 2, 1]]


def test_a_bad_clip_fails_alone(summed):
    no_audio = Clip(meta=META, audio=np.zeros(0, np.float32))
    out = summed.analyze_batch([_clip(1), _clip(np.nan), no_audio, _clip(2)])
    assert isinstance(out[1], ValueError) and "NaN" in str(out[1])
    assert isinstance(out[2], NotApplicable)
    assert (out[0].total, out[3].total) == (1, 2)


def test_a_failed_batch_fails_only_the_clips_it_held(summed):
    # batch_order puts -500 last: the batches are [9, 8, 7] and [1, -500]
    out = summed.analyze_batch([_clip(9, 8), _clip(7), _clip(1, -500)])
    assert (out[0].total, out[1].total) == (17, 7)
    assert isinstance(out[2], RuntimeError) and "model failed" in str(out[2])


def test_groups_never_share_a_call(summed):
    out = summed.analyze_batch([_clip(1, 2000), _clip(3000, 4)])
    assert [r.total for r in out] == [2001, 3004]
    assert sorted(map(sorted, summed.calls)) == [[1, 4], [2000, 3000]]


def test_a_model_giving_the_wrong_number_of_outputs_fails_its_clips(summed, monkeypatch):
    monkeypatch.setattr(summed, "infer", lambda inputs: [0.0])
    (out,) = summed.analyze_batch([_clip(1, 2)])
    assert isinstance(out, RuntimeError) and "1 outputs for 2 inputs" in str(out)


def test_analyze_is_the_batch_of_one(summed):
    assert summed.analyze(_clip(1, 2, 3)).total == 6
    with pytest.raises(ValueError, match="NaN"):
        summed.analyze(_clip(np.nan))


def test_the_device_is_a_constructor_argument(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    assert Summed(device="cuda:3").device == "cuda:3"  # taken as given; load() places
    assert Summed.from_strings({"batch_size": "2"}, device="cpu").device == "cpu"
    assert Summed.from_strings({}).device in ("cpu", "cuda")  # torch's own view


def test_a_gpu_instance_warms_its_model_with_one_clip_at_load(monkeypatch):
    """A model's first call pays CUDA's lazy loading: on a GPU the constructor sends one
    made-up clip through the whole batch path; on a CPU it sends nothing."""
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    on_cpu = Summed(device="cpu")
    assert on_cpu.calls == []
    on_gpu = Summed(device="cuda:0")  # Summed's "model" touches no GPU
    # one clip: its 2 s of audio at 16 kHz, one "input" a sample, in batches of 3
    assert sum(len(c) for c in on_gpu.calls) == 2 * AUDIO_RATE
    assert max(len(c) for c in on_gpu.calls) == 3


def test_the_warm_up_fills_a_frame_batch_and_starts_another(monkeypatch):
    """A frame model's warm-up clip runs one full batch of its ``batch_size`` and a part
    of the next, so a real clip's batches meet kernels already loaded."""
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")

    class Framed(Summed):
        frames = FrameSpec(short_side=64, fps=1.0)

        @dataclass
        class Params:
            batch_size: int = 8

    assert Framed(device="cpu").warm_up_seconds() == 9.0  # 9 frames at 1 a second
    assert warm_up_clip(Framed.frames, False, 9.0).frames.shape[0] == 9
    assert Summed(device="cpu").warm_up_seconds() == 2.0  # no frames: 2 s as before
    Framed.frames = FrameSpec(short_side=64, fps=10.0)
    assert Framed(device="cpu").warm_up_seconds() == 2.0  # 20 frames fill 8 and start 9


def test_a_warm_up_that_fails_does_not_stop_the_load(monkeypatch, caplog):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")

    class Broken(Summed):
        def prepare(self, clip):
            raise RuntimeError("no")

        def analyze_batch(self, clips):
            raise RuntimeError("broken before any clip")

    with caplog.at_level("ERROR"):
        model = Broken(device="cuda:0")
    assert model.available
    assert "first-call warm-up failed" in caplog.text


@pytest.mark.parametrize(
    ("spec", "audio", "shape"),
    [
        (FrameSpec(short_side=64, every_frame=True), False, (60, 114, 64, 3)),
        (FrameSpec(short_side=480, fps=4.0), True, (8, 854, 480, 3)),
        (FrameSpec(short_side=336, count=32), False, (32, 598, 336, 3)),
        (None, True, None),
    ],
)
def test_the_warm_up_clip_has_the_shapes_the_orchestrator_sends(spec, audio, shape):
    clip = warm_up_clip(spec, audio)
    assert (None if clip.frames is None else clip.frames.shape) == shape
    assert clip.meta.has_video == (shape is not None)
    if shape is not None:
        assert clip.frames.dtype == np.uint8 and clip.frames.std() > 10  # not one flat grey
        assert len(clip.timestamps_s) == len(clip.frame_indices) == shape[0]
        assert clip.timestamps_s[-1] < clip.meta.duration_s
    if audio:
        assert clip.audio.dtype == np.float32 and clip.audio.shape == (2 * AUDIO_RATE,)
        assert 0.1 < float(np.abs(clip.audio).max()) <= 1.0
    else:
        assert clip.audio is None
