"""speech_emotion through the live Triton on its tiny synthetic weights: espeak-ng speech
against its known span, several requests at once with a bad neighbour, and bad audio (none,
empty, 1 sample, 0.05 s, NaN, 10 minutes) that never takes the model down."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tests.unit.speech_clips import clip_of

from ..unit import upstream as up
from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

MODEL = "speech_emotion"
LABELS = {"neu", "hap", "ang", "sad"}
EDGE_S = 0.3


@pytest.fixture(scope="module")
def speech():
    clip, info = clip_of("speech_160")
    return clip.audio, info["speech"]


def _ok(env: dict) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"]["weights"] == "synthetic-tiny"
    return env["result"]


def _check_result(result: dict) -> None:
    for seg in result["segments"]:
        assert {"start_s", "end_s", "emotion", "confidence"} <= set(seg)
        assert seg["emotion"] in LABELS and 0.0 <= seg["confidence"] <= 1.0
        assert sum(seg["scores"].values()) == pytest.approx(1.0, abs=2e-3)
    assert "dominant" in result
    if result["segments"]:
        assert result["dominant"] in LABELS
    else:
        assert result["dominant"] is None


def test_speech_on_tiny_synthetic_weights(triton, speech):
    audio, truth = speech
    result = _ok(infer(triton, MODEL, audio=audio))
    _check_result(result)
    assert result["source"] == "vad"
    segs = result["segments"]
    assert len(segs) >= 2
    assert abs(segs[0]["start_s"] - truth["start_s"]) <= EDGE_S
    assert abs(segs[-1]["end_s"] - truth["end_s"]) <= EDGE_S
    assert len(result["arc"]) == len(segs)


def test_upstream_spans_arrive_through_meta(triton, speech):
    audio, _ = speech
    # speech_transcription's result as it would come: speech_emotion reads it typed.
    transcript = up.transcript([], [], voiced=[{"start_s": 1.0, "end_s": 4.0}])
    upstream = {"speech_transcription": transcript}
    result = _ok(infer(triton, MODEL, audio=audio, upstream=upstream))
    assert result["source"] == "speech_transcription"
    assert [(s["start_s"], s["end_s"]) for s in result["segments"]] == [(1.0, 4.0)]


def test_several_at_once_with_a_bad_neighbour(triton, speech):
    audio, _ = speech
    envs = infer_many(
        triton,
        MODEL,
        [
            {"audio": audio},
            {"audio": np.zeros(1, np.float32)},
            {"audio": audio[: 16_000 * 4]},
            {"audio": np.full(16_000, np.nan, np.float32)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _check_result(_ok(envs[0]))
    _check_result(_ok(envs[2]))
    assert envs[1]["status"] == "skipped" and "too short" in envs[1]["error"]
    assert envs[3]["status"] == "failed" and "NaN" in envs[3]["error"]


def test_bad_audio_never_takes_the_model_down(triton, speech):
    audio, _ = speech
    # No audio tensor at all: the server refuses the request (AUDIO is a required input;
    # the orchestrator never sends audio analyzers a clip without sound).
    with pytest.raises(InferenceServerException):
        infer(triton, MODEL, meta=meta_for(None, None))
    # An empty track: nothing to hear.
    env = infer(triton, MODEL, audio=np.zeros(0, np.float32))
    assert env["status"] == "skipped" and env["error"]
    # 0.05 s: too short to hold speech.
    env = infer(triton, MODEL, audio=audio[8_000:8_800])
    assert env["status"] in {"ok", "skipped", "failed"}
    assert env["status"] == "ok" or env["error"]
    # Ten minutes of speech: done in a sane time, or refused with a reason.
    long = np.tile(audio, 600 * 16_000 // len(audio) + 1)[: 600 * 16_000]
    start = time.monotonic()
    env = infer(triton, MODEL, audio=long, timeout_s=120)
    elapsed = time.monotonic() - start
    assert elapsed < 60, elapsed
    if env["status"] == "ok":
        result = env["result"]
        _check_result(result)
        assert result["speech_s"] > 400
        assert result["segments"][-1]["end_s"] <= 600.0
    else:
        assert env["status"] == "failed" and env["error"]
    # And a normal request still answers.
    _check_result(_ok(infer(triton, MODEL, audio=audio)))
