"""composition_analysis and product_detection (CLIP) through the live Triton on their tiny
synthetic weights: several frames with upstream results, several requests at once with bad
neighbours, and bad frames (none, 16x16, two 2160x3840) that never take a model down."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from ..unit import upstream as up
from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

MODELS = ["composition_analysis", "product_detection"]
NAMES = {
    "composition_analysis": "clip-vit-l-14-openai",
    "product_detection": "clip-vit-b-32-openai",
}

# Upstream results as they would come, built through their Result models: both analyzers
# read them typed.
UPSTREAM = {
    "composition_analysis": {"cut_analysis": up.cuts([0.3], shots=[(0.0, 0.3), (0.3, 0.6)])},
    "product_detection": {
        "object_detection": up.objects(
            [
                up.track(
                    "bottle",
                    1,
                    0.1,
                    0.5,
                    [(0.1, [0.2, 0.2, 0.6, 0.7]), (0.4, [0.25, 0.2, 0.65, 0.7])],
                    share=0.6,
                    confidence=0.9,
                )
            ]
        ),
        "text_overlay": up.texts([up.text("NIKE", 0.2, 0.5, "title", [0.1, 0.1, 0.5, 0.2])]),
    },
}


def _frames(n: int, h: int = 256, w: int = 144, seed: int = 0) -> np.ndarray:
    """Textured frames with a bright disc on the upper-left thirds point."""
    rng = np.random.default_rng(seed)
    frames = np.clip(rng.normal(60, 6, (n, h, w, 3)), 0, 255).astype(np.uint8)
    for f in frames:
        cv2.circle(f, (round(w / 3), round(h / 3)), max(2, w // 10), (245, 225, 90), -1)
    return frames


def _ok(env: dict, model: str) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": NAMES[model], "weights": "synthetic-tiny"}
    result = env["result"]
    # docs/REPORT_CONTRACT.md's fields
    if model == "composition_analysis":
        assert {"shot_types", "labels"} <= set(result)
        for shot in result["shot_types"]:
            assert {"start_s", "end_s", "type"} <= set(shot)
            assert shot["type"] in {"close_up", "medium", "wide"}
        for label in result["labels"]:
            assert {"label", "score"} <= set(label) and 0 <= label["score"] <= 1
    else:
        assert "products" in result
        for p in result["products"]:
            assert {"label", "brand", "first_s", "screen_share", "confidence"} <= set(p)
    return result


@pytest.mark.parametrize("model", MODELS)
def test_several_frames_on_tiny_synthetic_weights(triton, model):
    result = _ok(infer(triton, model, frames=_frames(6), upstream=UPSTREAM[model]), model)
    if model == "composition_analysis":
        assert result["shot_source"] == "cut_analysis"
        assert [(s["start_s"], s["end_s"]) for s in result["shot_types"]] == [
            (0.0, 0.3),
            (0.3, 0.6),
        ]
        assert len(result["labels"]) == 6
        # the weights-independent measure comes through the server too
        assert result["placement"] == "thirds" and result["thirds_score"] >= 0.8
    else:
        assert result["mode"] == "objects" and result["crops_scored"] == 2
        nike = [p for p in result["products"] if p["brand"] == "nike"]
        assert len(nike) == 1 and nike[0]["source"] in {"text", "both"}
        assert nike[0]["first_s"] <= 0.2


@pytest.mark.parametrize("model", MODELS)
def test_several_at_once_with_bad_neighbours(triton, model):
    envs = infer_many(
        triton,
        model,
        [
            {"frames": _frames(4), "upstream": UPSTREAM[model]},
            {"frames": _frames(3, 16, 16)},
            {"frames": _frames(5, seed=1)},
            {"frames": _frames(0)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _ok(envs[0], model)
    _ok(envs[2], model)
    assert envs[1]["status"] == "failed" and "16x16" in envs[1]["error"]
    assert envs[3]["status"] == "skipped" and "no picture" in envs[3]["error"]


@pytest.mark.parametrize("model", MODELS)
def test_bad_frames_never_take_the_model_down(triton, model):
    # No FRAMES tensor at all: the server refuses the request (a required input).
    with pytest.raises(InferenceServerException):
        infer(triton, model, meta=meta_for(None, None))
    env = infer(triton, model, frames=_frames(0))
    assert env["status"] == "skipped" and env["error"]
    env = infer(triton, model, frames=_frames(2, 16, 16))
    assert env["status"] == "failed" and "too small" in env["error"]
    # two 4K frames: resized once per frame to CLIP's square
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, 700:1400, 1200:1900] = 255
    _ok(infer(triton, model, frames=big), model)
    # and a normal request still answers
    _ok(infer(triton, model, frames=_frames(4), upstream=UPSTREAM[model]), model)
