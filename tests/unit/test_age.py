"""age_estimation: real face finding (mediapipe's bundled detector) on clips built from
scikit-image's astronaut photograph, the tiny synthetic ViT classifier on the crops; the
range logic on known probabilities; the full architecture against the published size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.analyzers.age import (
    OPEN_AGE_MAX,
    AgeEstimation,
    age_bins,
    age_interval,
    age_order,
    age_span,
)
from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.groundtruth import CATALOG, render
from tiktok_analyzer.groundtruth.clips import ASTRONAUT_HEAD, Photo, load_frames

from .test_eyes import ASTRONAUT_EYES, photo_point

FPS = AgeEstimation.frames.fps
SIDE = AgeEstimation.frames.short_side
LABELS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights.DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        mp.setenv(weights.MODE_ENV, "synthetic-tiny")
        analyzer = AgeEstimation()
    assert analyzer.available, analyzer._unavailable
    return analyzer


def clip_from(frames: np.ndarray, times: np.ndarray) -> Clip:
    h, w = frames.shape[1:3]
    return Clip(
        meta=ClipMeta(duration_s=float(times[-1]) + 1 / FPS, fps=FPS, width=w, height=h),
        frames=frames,
        timestamps_s=times,
        frame_indices=np.arange(len(frames)),
    )


def decoded(clip_factory, name: str, **overrides) -> tuple[Clip, dict]:
    path, truth = clip_factory(name, **overrides)
    frames, times, _ = load_frames(path, SIDE, FPS)
    return clip_from(frames, times), truth


def run(estimator: AgeEstimation, clip: Clip):
    (out,) = estimator.analyze_batch([clip])
    assert not isinstance(out, Exception), out
    return out


@pytest.fixture(scope="module")
def analysed(estimator, clip_factory):
    """analysed(name) -> (clip, truth, result) of a catalog clip, each analysed once."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            clip, truth = decoded(clip_factory, name)
            cache[name] = (clip, truth, run(estimator, clip))
        return cache[name]

    return get


def check_face(face, bins=LABELS) -> None:
    """A valid range: bin edges, ordered, its probability at least range_mass."""
    edges = age_bins(dict(enumerate(bins)))
    assert (face.age_min, face.age_max) != (None, None)
    assert face.age_min in [a for a, _ in edges] and face.age_max in [b for _, b in edges]
    assert 0 <= face.age_min < face.age_max <= OPEN_AGE_MAX
    assert AgeEstimation.Params().range_mass <= face.confidence <= 1.0
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert list(face.probabilities) == bins and face.label in bins
    assert face.age_min <= face.mean_age <= face.age_max or face.confidence < 1


def test_one_face_track_in_the_photo_clip(estimator, analysed):
    clip, truth, res = analysed("face")
    assert estimator.weights == "synthetic-tiny"
    assert res.bins == LABELS and res.faces_max == 1
    assert len(res.faces) == 1
    face = res.faces[0]
    check_face(face)
    assert face.first_s == 0.0 and face.last_s >= truth["duration_s"] - 2 / FPS
    assert face.frames == len(clip.frames)
    assert face.crops == AgeEstimation.Params().crops_per_track
    # The detector's box holds both of her eyes.
    x0, y0, x1, y1 = face.bbox
    for u, v in ASTRONAUT_EYES:
        x, y = photo_point(truth, u, v)
        assert x0 < x < x1 and y0 < y < y1


def test_the_face_box_follows_the_photo(analysed):
    _, truth, centred = analysed("face")
    _, truth_m, moved = analysed("face_moved")
    a, b = centred.faces[0], moved.faces[0]
    shift = (truth_m["photos"][0]["bbox"][0] - truth["photos"][0]["bbox"][0]) / truth["width"]
    assert (b.bbox[0] + b.bbox[2]) / 2 - (a.bbox[0] + a.bbox[2]) / 2 == pytest.approx(
        shift, abs=0.01
    )


def test_two_faces_are_two_tracks(estimator, tmp_path):
    photos = (
        Photo("astronaut", crop=ASTRONAUT_HEAD, x=0.27, y=0.3, height=0.3),
        Photo("astronaut", crop=ASTRONAUT_HEAD, x=0.73, y=0.7, height=0.3, mirror=True),
    )
    # rendered here: the session factory names files after their overrides, too long here
    path = tmp_path / "two_faces.mp4"
    render(dataclasses.replace(CATALOG["face"], photos=photos), path)
    frames, times, _ = load_frames(path, SIDE, FPS)
    clip = clip_from(frames, times)
    res = run(estimator, clip)
    assert res.faces_max == 2 and len(res.faces) == 2
    centres = sorted(((f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2) for f in res.faces)
    assert centres[0][0] < 0.5 < centres[1][0] and centres[0][1] < 0.5 < centres[1][1]
    for face in res.faces:
        check_face(face)
        assert face.frames == len(clip.frames)


def test_clips_of_a_batch_keep_their_own_outcome(estimator, analysed):
    face, _, alone = analysed("face")
    grey = clip_from(np.full((4, 64, 36, 3), 128, np.uint8), np.arange(4) / FPS)
    broken = clip_from(np.zeros((2, 32, 32, 4), np.uint8), np.arange(2) / FPS)  # RGBA
    empty = Clip(meta=ClipMeta(duration_s=1.0, fps=0.0, width=0, height=0, has_video=False))
    outs = estimator.analyze_batch([grey, face, broken, empty])
    assert outs[0].faces == [] and outs[0].faces_max == 0
    assert len(outs[1].faces) == 1
    assert isinstance(outs[2], ValueError) and "RGB" in str(outs[2])
    assert type(outs[3]).__name__ == "NotApplicable"
    # the same clip alone gave the same answer: crops of a batch do not mix
    assert alone.faces[0].probabilities == pytest.approx(outs[1].faces[0].probabilities, abs=1e-4)


@pytest.mark.parametrize(
    ("label", "span"),
    [
        ("0-2", (0, 2)),
        ("20-29", (20, 29)),
        ("more than 70", (70, OPEN_AGE_MAX)),
        ("70+", (70, 100)),
    ],
)
def test_age_labels_parse(label, span):
    assert age_bins({0: label}) == [span]


def test_a_label_without_years_is_refused():
    with pytest.raises(ValueError, match="not a range"):
        age_bins({0: "adult"})


def test_age_order_puts_any_label_order_into_ascending_bins():
    assert age_order(dict(enumerate(LABELS))) == list(range(9))  # FairFace's own order
    as_text = sorted(LABELS)  # "0-2", "10-19", "20-29", "3-9", ...: what a text sort gives
    order = age_order(dict(enumerate(as_text)))
    assert [as_text[i] for i in order] == LABELS


@pytest.mark.parametrize(
    ("probs", "mass", "expected"),
    [
        ([0.0, 0.1, 0.8, 0.1], 0.5, (2, 2, 0.8)),
        # grows towards the likelier neighbour
        ([0.05, 0.3, 0.4, 0.25], 0.6, (1, 2, 0.7)),
        ([0.05, 0.25, 0.4, 0.3], 0.6, (2, 3, 0.7)),
        # at the edge it can only grow inwards
        ([0.45, 0.3, 0.15, 0.1], 0.9, (0, 2, 0.9)),
        # uniform: as many bins as the mass needs
        ([0.25] * 4, 0.5, (0, 1, 0.5)),
    ],
)
def test_age_span(probs, mass, expected):
    lo, hi, got = age_span(np.array(probs), mass)
    assert (lo, hi) == expected[:2] and got == pytest.approx(expected[2])


#: The demo clip's astronaut as dlib's predictor reads it (years 24 to 53, the rest ~0): a
#: lone peak at 26 and the bulk above it; the expectation is 30.2.
SPIKY = {24: 0.001, 25: 0.002, 26: 0.446, 28: 0.053, 29: 0.079, 30: 0.134, 31: 0.002,
         32: 0.095, 33: 0.022, 35: 0.074, 36: 0.001, 38: 0.014, 43: 0.001, 48: 0.049,
         50: 0.006, 52: 0.011, 53: 0.006}  # fmt: skip


@pytest.mark.parametrize(
    ("probs", "mass", "expected"),
    [
        ([0.0, 0.1, 0.8, 0.1], 0.5, (2, 2, 0.8)),
        # the quantiles fall on bin edges: exactly the middle half
        ([0.25] * 4, 0.5, (1, 2, 0.5)),
        # a heavy first bin: from it to the bin of the 75 % quantile
        ([0.6, 0.1, 0.1, 0.2], 0.5, (0, 2, 0.8)),
        ([0.0, 0.0, 0.0, 1.0], 0.5, (3, 3, 1.0)),
        ([0.1, 0.2, 0.4, 0.2, 0.1], 0.9, (0, 4, 1.0)),
    ],
)
def test_age_interval(probs, mass, expected):
    lo, hi, got = age_interval(np.array(probs), mass)
    assert (lo, hi) == expected[:2] and got == pytest.approx(expected[2])


def test_age_interval_holds_the_expectation_where_the_mode_is_a_lone_peak():
    probs = np.zeros(81)
    for year, p in SPIKY.items():
        probs[year] = p
    probs /= probs.sum()
    mean = float(probs @ np.arange(81))
    assert mean == pytest.approx(30.2, abs=0.2)
    # grown from the most likely year, the range stays below the expectation (down to 0
    # here, over years of zero probability; the model's tiny ones stopped it at 24)
    _, hi, _ = age_span(probs, 0.5)
    assert hi == 28 < mean
    lo, hi, mass = age_interval(probs, 0.5)
    assert (lo, hi) == (26, 32) and lo <= mean <= hi
    assert mass == pytest.approx(probs[26:33].sum()) and mass >= 0.5
    assert probs[:lo].sum() <= 0.25 and probs[hi + 1 :].sum() <= 0.25


def test_full_architecture_is_the_published_vit_base():
    torch = pytest.importorskip("torch")
    from transformers import ViTConfig, ViTForImageClassification

    entry = weights.load_manifest()["age_estimation/fairface-age-vit"]
    config = ViTConfig(**entry.synthetic["full"])
    assert config.num_labels == 9 and [config.id2label[i] for i in range(9)] == LABELS
    assert entry.synthetic["tiny"]["id2label"] == entry.synthetic["full"]["id2label"]
    with torch.device("meta"):
        model = ViTForImageClassification(config)
    n = sum(p.numel() for p in model.parameters())
    assert n == pytest.approx(85.8e6, rel=0.001)  # the model page: "85.8M params"


def test_real_weights_missing_is_unavailable_with_the_pull_command(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(weights.MODE_ENV, "real")
    # named: auto would run the packaged tier instead (tests/unit/test_age_packaged.py)
    analyzer = AgeEstimation(AgeEstimation.Params(model="fairface-age-vit"))
    assert not analyzer.available and analyzer.weights == "none"
    (out,) = analyzer.analyze_batch([clip_from(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1))])
    assert type(out).__name__ == "Unavailable"
    assert "tiktok-analyzer weights pull age_estimation/fairface-age-vit" in str(out)
    # the face finder's weights are bundled: never missing where mediapipe is installed
    detector = weights.load_manifest()["age_estimation/mediapipe-face-detection"]
    assert detector.bundled and weights.model_status(detector).real != "missing"
