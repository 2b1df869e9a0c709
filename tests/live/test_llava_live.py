"""video_llava through the live Triton on its tiny synthetic weights: several frames with
scene_segmentation's scenes, several requests at once with bad neighbours, and bad frames
(none, 16x16, two 2160x3840) that never take the model down."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from ..unit import upstream as up
from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

MODEL = "video_llava"
# scene_segmentation's result as it would come: video_llava reads it typed.
SCENES = {"scene_segmentation": up.scenes([(0.0, 0.3), (0.3, 0.8)])}


def _frames(n: int, h: int = 336, w: int = 189, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _ok(env: dict) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": "llava-next-video-7b-hf", "weights": "synthetic-tiny"}
    result = env["result"]
    # docs/REPORT_CONTRACT.md's fields, and what random weights must still give
    assert {"description", "scenes", "hook", "call_to_action"} <= set(result)
    for scene in result["scenes"]:
        assert set(scene) == {"start_s", "end_s", "description"}
    # random weights: the whole budget, as a real answer at its longest
    assert result["new_tokens"] == result["max_new_tokens"] == 384 and not result["parsed"]
    assert result["description"] == result["raw_text"] != ""
    assert result["precision"] == "fp32"
    assert result["timings"]["generate_s"] > 0 and result["timings"]["compiled"] is False
    return result


def test_frames_and_scenes_on_tiny_synthetic_weights(triton):
    result = _ok(infer(triton, MODEL, frames=_frames(8), upstream=SCENES))
    assert result["frames_used"] == 8
    assert result["scenes_from"] == "scene_segmentation"
    assert [(s["start_s"], s["end_s"]) for s in result["scenes"]] == [(0.0, 0.3), (0.3, 0.8)]
    # without the upstream: one scene over the whole clip (8 frames at 10 fps)
    result = _ok(infer(triton, MODEL, frames=_frames(8)))
    assert result["scenes_from"] == "whole_clip"
    assert [(s["start_s"], s["end_s"]) for s in result["scenes"]] == [(0.0, 0.8)]


def test_several_at_once_with_bad_neighbours(triton):
    envs = infer_many(
        triton,
        MODEL,
        [
            {"frames": _frames(4), "upstream": SCENES},
            {"frames": _frames(4, 16, 16)},
            {"frames": _frames(6, seed=1)},
            {"frames": _frames(0)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _ok(envs[0])
    _ok(envs[2])
    assert envs[1]["status"] == "failed" and "16x16" in envs[1]["error"]
    assert envs[3]["status"] == "skipped" and "no picture" in envs[3]["error"]


def test_bad_frames_never_take_the_model_down(triton):
    # No FRAMES tensor at all: the server refuses the request (a required input; the
    # orchestrator never sends picture analyzers a clip without a picture).
    with pytest.raises(InferenceServerException):
        infer(triton, MODEL, meta=meta_for(None, None))
    env = infer(triton, MODEL, frames=_frames(0))
    assert env["status"] == "skipped" and env["error"]
    env = infer(triton, MODEL, frames=_frames(3, 16, 16))
    assert env["status"] == "failed" and "too small" in env["error"]
    # two 4K frames: padded, resized by the processor, described
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, :, :1920] = 255
    result = _ok(infer(triton, MODEL, frames=big))
    assert result["frames_used"] == 2
    # and a normal request still answers
    _ok(infer(triton, MODEL, frames=_frames(4), upstream=SCENES))
