"""audio_environment and sound_effects through the live Triton on their tiny synthetic
weights: generated sound with known content in one request, several requests at once with a
bad neighbour, and bad audio (none, empty, 1 sample, 0.05 s, NaN, 10 minutes) that never
takes a model down."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.groundtruth import render_sound

from ..unit.upstream import cuts as upstream_cuts
from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

SR = 16_000
MODELS = ("audio_environment", "sound_effects")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, tuple[np.ndarray, dict]]:
    """The catalog's sound_events and music_only sound (audio only, through AAC) and their
    truth (the full clip's: its cuts come from the shots)."""
    root = tmp_path_factory.mktemp("sound_live")
    out = {}
    for name in ("sound_events", "music_only"):
        out[name] = render_sound(name, root / f"{name}.m4a")
    return out


def _ok(env: dict) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"]["weights"] == "synthetic-tiny"
    return env["result"]


def _check(model: str, result: dict) -> None:
    """The contract's fields (docs/REPORT_CONTRACT.md) and their ranges."""
    if model == "audio_environment":
        assert result["scene"] and all(
            set(s) == {"label", "score"} and 0.0 <= s["score"] <= 1.0 for s in result["scene"]
        )
        for key in ("music_share", "speech_share", "noise_share"):
            assert 0.0 <= result[key] <= 1.0
        assert isinstance(result["snr_db"], float)
        assert result["reverberation"]["label"] in {"dry", "room", "hall", "unknown"}
    else:
        for e in result["events"]:
            assert {"label", "start_s", "end_s", "confidence", "on_cut", "cut_offset_s"} <= set(e)
            assert 0.0 <= e["start_s"] < e["end_s"] and 0.0 <= e["confidence"] <= 1.0
        assert 0.0 <= result["on_cut_share"] <= 1.0


def test_environment_hears_music_as_music(triton, sounds):
    audio, _ = sounds["music_only"]
    result = _ok(infer(triton, "audio_environment", audio=audio))
    _check("audio_environment", result)
    assert result["music_share"] > result["speech_share"]
    assert result["shares_source"] == "dsp"


def test_effects_found_and_placed_against_the_cuts(triton, sounds):
    audio, info = sounds["sound_events"]
    # cut_analysis's result as it would come: sound_effects reads it typed.
    times = [c["time_s"] for c in info["cuts"]]
    upstream = {"cut_analysis": upstream_cuts(times, info["duration_s"])}
    result = _ok(infer(triton, "sound_effects", audio=audio, upstream=upstream))
    _check("sound_effects", result)
    onsets = [e["start_s"] for e in result["events"]]
    assert len(onsets) == len(info["sound_events"])
    for truth_event in info["sound_events"]:
        assert min(abs(t - truth_event["onset_s"]) for t in onsets) <= 0.2, (truth_event, onsets)
    # The ding at 3.0 s lands on the clip's cut (3.0 s): upstream results reach the model.
    assert [e["on_cut"] for e in result["events"]] == [False, False, True, False, False]
    assert result["on_cut_share"] == pytest.approx(0.2)


@pytest.mark.parametrize("model", MODELS)
def test_several_at_once_with_a_bad_neighbour(triton, sounds, model):
    audio, _ = sounds["sound_events"]
    envs = infer_many(
        triton,
        model,
        [
            {"audio": audio},
            {"audio": np.zeros(1, np.float32)},
            {"audio": audio[: 4 * SR]},
            {"audio": np.full(SR, np.nan, np.float32)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _check(model, _ok(envs[0]))
    _check(model, _ok(envs[2]))
    assert envs[1]["status"] == "failed" and "too short" in envs[1]["error"]
    assert envs[3]["status"] == "failed" and "NaN" in envs[3]["error"]


@pytest.mark.parametrize("model", MODELS)
def test_bad_audio_never_takes_the_model_down(triton, sounds, model):
    audio, _ = sounds["sound_events"]
    # No audio tensor at all: the server refuses the request (AUDIO is a required input;
    # the orchestrator never sends audio analyzers a clip without sound, it skips them).
    with pytest.raises(InferenceServerException):
        infer(triton, model, meta=meta_for(None, None))
    # An empty track: nothing to hear.
    env = infer(triton, model, audio=np.zeros(0, np.float32))
    assert env["status"] == "skipped" and env["error"]
    # 0.05 s: short, but a spectrum's worth.
    _check(model, _ok(infer(triton, model, audio=audio[SR : SR + SR // 20])))
    # Ten minutes: done in a sane time (windows are sampled, events capped), or refused
    # with a reason.
    long = np.tile(audio, 600 * SR // len(audio) + 1)[: 600 * SR]
    start = time.monotonic()
    env = infer(triton, model, audio=long, timeout_s=120)
    assert time.monotonic() - start < 60
    if env["status"] == "ok":
        _check(model, env["result"])
    else:
        assert env["status"] == "failed" and env["error"]
    # And a normal request still answers.
    _check(model, _ok(infer(triton, model, audio=audio)))
