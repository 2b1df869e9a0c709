"""text_overlay through the live Triton: real EasyOCR weights on the session server
(LIVE_WEIGHTS), the tiny synthetic ones on a second small server, and `tiktok-analyzer
analyze` on the generated overlay clip, checked against its truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.analyzers.ocr import character_error_rate, text_similarity
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from .conftest import analyze, validate
from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

MODEL = "text_overlay"
CONTRACT = {"texts", "frames_sampled", "frames_detected", "frames_recognized", "unsafe_zones"}
TRACK = {"text", "start_s", "end_s", "bbox", "kind", "height", "unsafe_overlap", "unsafe_zone"}
WORDS = "HELLO WORLD"


def _frames(n: int = 4, text: str = WORDS, size=(270, 480)) -> np.ndarray:
    """n portrait frames of a flat colour with ``text`` drawn large in the upper third."""
    w, h = size
    img = Image.new("RGB", (w, h), (40, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 120, w - 20, 175), fill=(0, 0, 0))
    draw.text(
        (w // 2, 148), text, fill=(255, 255, 255), anchor="mm", font=ImageFont.load_default(36)
    )
    return np.repeat(np.asarray(img)[None], n, axis=0)


def _ok(env: dict, weights: str) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": "easyocr-en", "weights": weights}
    result = env["result"]
    assert CONTRACT <= set(result)
    for t in result["texts"]:
        assert TRACK <= set(t)
        assert t["kind"] in {"caption", "title", "decorative"}
        assert all(0.0 <= v <= 1.0 for v in t["bbox"]) and t["start_s"] <= t["end_s"]
    return result


def _reads(result: dict, text: str = WORDS) -> None:
    (track,) = result["texts"]
    assert character_error_rate(track["text"], text) <= 0.05, track["text"]
    assert track["kind"] == "title"


@pytest.fixture(scope="module")
def tiny_triton(tmp_path_factory):
    """A second, small server: text_overlay alone on its tiny synthetic weights."""
    env = {
        MODE_ENV: "synthetic-tiny",
        DIR_ENV: str(tmp_path_factory.mktemp("ocr-tiny-weights")),
    }
    with EmbeddedTriton(models=[MODEL], env=env) as server:
        yield server


def test_tiny_synthetic_weights_with_several_frames_in_one_request(tiny_triton):
    frames = _frames(3, size=(90, 160))
    frames[1] = 255 - frames[1]  # two different pictures: CRAFT runs more than once
    env = infer(tiny_triton, MODEL, frames=frames, fps=2.0)
    result = _ok(env, "synthetic-tiny")
    assert result["frames_sampled"] == 3 and result["frames_detected"] >= 2


def test_several_at_once_with_a_bad_neighbour(triton):
    good = _frames()
    envs = infer_many(
        triton,
        MODEL,
        [
            {"frames": good, "fps": 2.0},
            {"frames": np.zeros((0, 480, 270, 3), np.uint8), "fps": 2.0},
            {"frames": _frames(text="GOOD BYE"), "fps": 2.0},
            {"frames": np.zeros((3, 16, 16, 3), np.uint8)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _reads(_ok(envs[0], "real"))
    assert envs[1]["status"] == "skipped" and envs[1]["error"]
    _reads(_ok(envs[2], "real"), "GOOD BYE")
    assert envs[3]["status"] == "failed" and "too small" in envs[3]["error"]


def test_bad_input_never_takes_the_model_down(triton):
    # No FRAMES tensor at all: the server refuses the request (a required input).
    with pytest.raises(InferenceServerException):
        infer(triton, MODEL, meta=meta_for(None, None))
    env = infer(triton, MODEL, frames=np.zeros((0, 64, 36, 3), np.uint8))
    assert env["status"] == "skipped" and "no picture" in env["error"]
    env = infer(triton, MODEL, frames=np.full((4, 16, 16, 3), 200, np.uint8))
    assert env["status"] == "failed" and "16x16" in env["error"]
    # Two 4K frames: read like any other (CRAFT sees them at its canvas size).
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, ::7] = 255
    env = infer(triton, MODEL, frames=big, timeout_s=120)
    assert env["status"] == "ok" or (env["status"] == "failed" and env["error"])
    # And a normal request still answers.
    _reads(_ok(infer(triton, MODEL, frames=_frames(), fps=2.0), "real"))


def test_cli_reads_the_overlay_clip(clip_factory, triton, tmp_path, schema):
    path, truth = clip_factory("text_overlays")
    proc, report = analyze(path, triton, tmp_path, "--analyzers", MODEL)
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    entry = report["analyzers"][MODEL]
    result = _ok(entry, "real")
    texts = result["texts"]
    assert len(texts) == len(truth["overlays"]), [t["text"] for t in texts]
    for ov in truth["overlays"]:
        found = max(texts, key=lambda t: text_similarity(t["text"], ov["text"]))
        assert character_error_rate(found["text"], ov["text"]) <= 0.05, found["text"]
        assert abs(found["start_s"] - ov["start_s"]) <= 0.5, (ov["text"], found["start_s"])
        assert abs(found["end_s"] - ov["end_s"]) <= 0.5, (ov["text"], found["end_s"])
    assert result["frames_recognized"] < result["frames_sampled"]
