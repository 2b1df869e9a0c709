"""object_detection and background_segmentation through the live Triton on their tiny
synthetic weights: several frames in one request against the contract's fields (and, for
the green screen, against the known colour of the frames), several requests at once with a
bad neighbour, and bad frames (none, 16x16, 2160x3840) that never take a model down."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.analyzers.objects import ObjectDetection
from tiktok_analyzer.analyzers.segmentation import BackgroundSegmentation

from ..unit import upstream as up
from .raw import infer, infer_many

pytestmark = pytest.mark.live

DETECTION, SEGMENTATION = "object_detection", "background_segmentation"
CHROMA = (0, 177, 64)
RESULTS = {DETECTION: ObjectDetection.Result, SEGMENTATION: BackgroundSegmentation.Result}


def frames_of(n: int, h: int = 640, w: int = 360, colour=None, seed: int = 0) -> np.ndarray:
    """``n`` portrait frames: textured noise, or a flat colour."""
    if colour is not None:
        return np.broadcast_to(np.asarray(colour, np.uint8), (n, h, w, 3)).copy()
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _ok(env: dict, model: str) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"]["weights"] == "synthetic-tiny"
    RESULTS[model].model_validate(env["result"])
    return env["result"]


def _check_objects(result: dict, n_frames: int, fps: float) -> None:
    assert {"objects", "labels", "frames_analyzed"} <= set(result)
    assert result["frames_analyzed"] == n_frames
    last = (n_frames - 1) / fps
    for obj in result["objects"]:
        contract = {"label", "track_id", "first_s", "last_s", "screen_share", "max_confidence"}
        assert contract <= set(obj)
        assert 0.0 <= obj["first_s"] <= obj["last_s"] <= last + 1e-6
        assert 0.0 < obj["screen_share"] <= 1.0 and 0.0 <= obj["max_confidence"] <= 1.0
        assert 1 <= len(obj["boxes"]) <= 8
        for b in obj["boxes"]:
            assert set(b) == {"time_s", "bbox", "confidence"}
            x0, y0, x1, y1 = b["bbox"]
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
    ids = [o["track_id"] for o in result["objects"]]
    assert sorted(ids) == list(range(1, len(ids) + 1))


def _check_background(result: dict) -> None:
    assert {"classes", "foreground_share", "green_screen_likelihood", "scenes"} <= set(result)
    for c in result["classes"]:
        assert set(c) == {"label", "share"} and 0.0 < c["share"] <= 1.0
    assert sum(c["share"] for c in result["classes"]) <= 1.0 + 1e-3  # each rounded to 1e-4
    assert 0.0 <= result["foreground_share"] <= 1.0
    assert 0.0 <= result["green_screen_likelihood"] <= 1.0


def test_object_detection_on_tiny_synthetic_weights(triton):
    frames = frames_of(8)
    result = _ok(infer(triton, DETECTION, frames=frames, fps=2.0), DETECTION)
    _check_objects(result, 8, 2.0)
    # Random weights detect garbage in every frame: followed and capped, never flooding.
    assert result["objects"], "random weights should give (garbage) objects"
    assert len(result["objects"]) <= 100
    assert result["detections"] <= 50 * 8


def test_background_segmentation_on_tiny_synthetic_weights(triton):
    # Two scenes of two frames each (1 fps): a flat chroma-key green screen, then noise.
    frames = np.concatenate([frames_of(2, colour=CHROMA), frames_of(2)])
    # scene_segmentation's result as it would come: background_segmentation reads it typed.
    upstream = {"scene_segmentation": up.scenes([(0.0, 2.0), (2.0, 4.0)])}
    env = infer(triton, SEGMENTATION, frames=frames, fps=1.0, upstream=upstream)
    result = _ok(env, SEGMENTATION)
    _check_background(result)
    assert result["scenes_from"] == "scene_segmentation"
    green, noise = result["scenes"]
    assert (green["start_s"], green["end_s"], green["frames"]) == (0.0, 2.0, 2)
    assert green["green_screen_likelihood"] >= 0.95
    assert noise["green_screen_likelihood"] <= 0.05
    assert result["green_screen_likelihood"] == green["green_screen_likelihood"]
    assert result["green_screen_share"] == 0.5


@pytest.mark.parametrize("model", [DETECTION, SEGMENTATION])
def test_several_at_once_with_a_bad_neighbour(triton, model):
    requests = [
        {"frames": frames_of(4, seed=1), "fps": 2.0},
        {"frames": frames_of(3, 16, 16, seed=2), "fps": 2.0},
        {"frames": frames_of(2, 360, 640, seed=3), "fps": 2.0},
        {"frames": frames_of(3, colour=CHROMA), "fps": 1.0},
    ]
    envs = infer_many(triton, model, requests)
    assert not any(isinstance(e, Exception) for e in envs), envs
    assert envs[1]["status"] == "failed" and "too small" in envs[1]["error"]
    for i in (0, 2, 3):
        result = _ok(envs[i], model)
        if model == DETECTION:
            _check_objects(result, len(requests[i]["frames"]), requests[i]["fps"])
        else:
            _check_background(result)
    if model == SEGMENTATION:
        assert envs[3]["result"]["green_screen_likelihood"] >= 0.95
        assert envs[0]["result"]["green_screen_likelihood"] <= 0.05


@pytest.mark.parametrize("model", [DETECTION, SEGMENTATION])
def test_bad_frames_never_take_the_model_down(triton, model):
    # No FRAMES tensor: the server refuses the request (a required input; the orchestrator
    # never sends picture analyzers a clip without a picture).
    with pytest.raises(InferenceServerException):
        infer(triton, model)
    # An empty frame set: nothing to look at.
    env = infer(triton, model, frames=frames_of(0))
    assert env["status"] == "skipped" and env["error"]
    # 16x16: refused with a reason.
    env = infer(triton, model, frames=frames_of(2, 16, 16))
    assert env["status"] == "failed" and "16x16" in env["error"]
    # Two 4K frames, far over what the analyzers ask for: handled.
    env = infer(triton, model, frames=frames_of(2, 3840, 2160, seed=4), fps=2.0, timeout_s=120)
    assert env["status"] == "ok", env["error"]
    # And a normal request still answers.
    result = _ok(infer(triton, model, frames=frames_of(3, seed=5), fps=2.0), model)
    if model == DETECTION:
        _check_objects(result, 3, 2.0)
    else:
        _check_background(result)
