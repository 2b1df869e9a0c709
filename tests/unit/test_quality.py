"""content_quality: scores must order rendered clips the way their injected blur and noise
do, and react to exposure and coding blocks on synthetic frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.quality import ContentQuality
from tiktok_analyzer.groundtruth import CATALOG, load_frames, render, scale_spec

SPEC = ContentQuality.frames
BLUR = ["quality_blur_0", "quality_blur_1", "quality_blur_2", "quality_blur_4"]
NOISE = ["quality_noise_0", "quality_noise_8", "quality_noise_16", "quality_noise_32"]


def _clip(frames, stamps, width, height, fps=30.0) -> Clip:
    return Clip(
        meta=ClipMeta(float(stamps[-1]) + 0.5, fps, width, height),
        frames=frames,
        timestamps_s=stamps,
        frame_indices=np.rint(stamps * fps).astype(int),
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """content_quality of each catalog quality clip, rendered at 360x640 (the analysis
    size, so the encoder's output is what the analyzer sees) and silent."""
    out = tmp_path_factory.mktemp("quality")
    done = {}
    for name in BLUR + NOISE:
        spec = dataclasses.replace(scale_spec(CATALOG[name], 360, 640), audio=None)
        same = next((n for n in done if CATALOG[n] == CATALOG[name]), None)
        if same is not None:  # quality_blur_0 and quality_noise_0 are one clip
            done[name] = done[same]
            continue
        render(spec, out / f"{name}.mp4")
        frames, stamps, _ = load_frames(
            out / f"{name}.mp4", short_side=SPEC.short_side, fps=SPEC.fps
        )
        done[name] = ContentQuality().analyze(_clip(frames, stamps, spec.width, spec.height))
    return done


def _strictly(values, direction):
    steps = np.diff(values)
    return bool(np.all(steps < 0)) if direction == "down" else bool(np.all(steps > 0))


def test_blur_lowers_sharpness_and_overall(results):
    sharp = [results[n].sharpness for n in BLUR]
    overall = [results[n].overall for n in BLUR]
    assert _strictly(sharp, "down"), sharp
    assert _strictly(overall, "down"), overall
    # Blur is not noise: the noise estimate must not grow with blur.
    noise = [results[n].noise for n in BLUR]
    assert max(noise) <= noise[0] + 0.05, noise


def test_noise_raises_noise_and_lowers_overall(results):
    noise = [results[n].noise for n in NOISE]
    overall = [results[n].overall for n in NOISE]
    assert _strictly(noise, "up"), noise
    assert _strictly(overall, "down"), overall
    # Noise is not detail: sharpness stays within a few points of the clean clip's.
    sharp = [results[n].sharpness for n in NOISE]
    assert max(abs(s - sharp[0]) for s in sharp) < 5.0, sharp
    # The estimate is in grey levels: sigma 32 injected reads as several levels after coding.
    assert results["quality_noise_32"].noise > 8 * results["quality_noise_0"].noise


def test_per_second_covers_the_clip(results):
    r = results["quality_blur_0"]
    assert [s.time_s for s in r.per_second] == [float(t) for t in range(6)]
    for s in r.per_second:
        assert 0 <= s.overall <= 100 and 0 <= s.sharpness <= 100
    assert r.overall == pytest.approx(np.mean([s.overall for s in r.per_second]), abs=0.5)


def _texture(seed=0, size=(640, 360), scales=(1.0, 3.0, 9.0)) -> np.ndarray:
    """A mid-grey RGB picture with detail at the given scales (px)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w), np.float32)
    for s in scales:
        img += cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s) * s
    img = 128 + 40 * img / img.std()
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


# (how the picture is changed, expected exposure range)
EXPOSURE = [
    (lambda x: x, (90.0, 100.0)),
    (lambda x: (x * 0.25).astype(np.uint8), (40.0, 70.0)),  # dark, nothing crushed
    (lambda x: np.clip(x.astype(int) + 130, 0, 255).astype(np.uint8), (0.0, 30.0)),  # blown
    (lambda x: np.full_like(x, 255), (0.0, 0.0)),  # all white
]


@pytest.mark.parametrize(("change", "expected"), EXPOSURE)
def test_exposure(change, expected):
    frames = np.stack([change(_texture(i)) for i in range(2)])
    r = ContentQuality().analyze(_clip(frames, np.array([0.0, 0.5]), 360, 640))
    assert expected[0] <= r.exposure <= expected[1], r.exposure


def test_blockiness_follows_jpeg_quality():
    """Coding blocks of a heavily compressed 720 px picture stay visible at 360 px."""
    # Smooth content (no 1 px detail): blocks show where the picture is otherwise calm.
    big = cv2.resize(_texture(3, scales=(3.0, 9.0)), (720, 1280), interpolation=cv2.INTER_CUBIC)
    scores = []
    for q in (90, 20, 10):
        ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, q])
        small = cv2.resize(
            cv2.imdecode(buf, cv2.IMREAD_COLOR), (360, 640), interpolation=cv2.INTER_AREA
        )
        r = ContentQuality().analyze(_clip(small[None], np.zeros(1), 720, 1280))
        scores.append(r.blockiness)
    assert scores[0] < 10 and _strictly(scores, "up") and scores[2] > 50, scores
