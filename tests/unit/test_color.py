"""color_analysis: CIEDE2000 against the published test data, the palette against rendered
flat shots of known colours and durations, and the scalar statistics on plain frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.color import ColorAnalysis, delta_e_2000, rgb_to_lab
from tiktok_analyzer.groundtruth import CATALOG, load_frames, render, scale_spec

from . import upstream as up

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", table 1 (pairs 1, 2,
# 7, 17-20, 24): (Lab 1, Lab 2, Delta-E 2000).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (50.0, 3.2592, 0.3350), 1.0000),
]


def test_delta_e_2000_matches_published_pairs():
    lab1 = np.array([p[0] for p in SHARMA])
    lab2 = np.array([p[1] for p in SHARMA])
    want = np.array([p[2] for p in SHARMA])
    np.testing.assert_allclose(delta_e_2000(lab1, lab2), want, atol=1e-4)
    np.testing.assert_allclose(delta_e_2000(lab2, lab1), want, atol=1e-4)


SPEC = ColorAnalysis.frames


@pytest.fixture(scope="module")
def colors_clip(tmp_path_factory):
    # The catalog's flat shots (red 3 s, green 2 s, blue 4 s, yellow 1 s), small and silent.
    spec = dataclasses.replace(scale_spec(CATALOG["colors"], 180, 320), audio=None)
    path = tmp_path_factory.mktemp("colors") / "colors.mp4"
    info = render(spec, path)
    frames, stamps, _ = load_frames(path, short_side=SPEC.short_side, fps=SPEC.fps)
    meta = ClipMeta(info["duration_s"], info["fps"], info["width"], info["height"])
    return info, meta, frames, stamps


def _clip(meta, frames, stamps, upstream=None) -> Clip:
    return Clip(
        meta=meta,
        frames=frames,
        timestamps_s=stamps,
        frame_indices=np.rint(stamps * meta.fps).astype(int),
        upstream=upstream or {},
    )


def _truth_colors(info) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct shot colour (Lab) and its share of the clip's duration."""
    share: dict[tuple[int, ...], float] = {}
    for s in info["shots"]:
        key = tuple(s["color"])
        share[key] = share.get(key, 0.0) + (s["end_s"] - s["start_s"]) / info["duration_s"]
    rgb = np.array(list(share), np.uint8)
    return rgb_to_lab(rgb[:, None, :])[:, 0, :], np.array(list(share.values()))


def test_palette_matches_shot_colors(colors_clip):
    info, meta, frames, stamps = colors_clip
    result = ColorAnalysis().analyze(_clip(meta, frames, stamps))
    want_lab, want_share = _truth_colors(info)
    got_lab = np.array([c.lab for c in result.palette])
    # Each truth colour has a palette entry within Delta-E 5 whose share is within 0.1.
    d = delta_e_2000(want_lab[:, None, :], got_lab[None, :, :])
    nearest = d.argmin(axis=1)
    assert d[np.arange(len(want_lab)), nearest].max() < 5.0, (d.min(axis=1), result.palette)
    got_share = np.array([result.palette[j].share for j in nearest])
    np.testing.assert_allclose(got_share, want_share, atol=0.1)
    # Nothing else of substance: the four colours are the palette's four largest entries.
    assert sorted(nearest.tolist()) == [0, 1, 2, 3]
    assert sum(c.share for c in result.palette) == pytest.approx(1.0, abs=0.03)
    for c in result.palette:
        assert c.hex == "#{:02x}{:02x}{:02x}".format(*c.rgb)
    assert result.per_scene_source == "windows"
    assert result.variety.max_delta_e > 30  # the cuts between colours
    assert result.variety.mean_delta_e < result.variety.max_delta_e


def test_per_scene_follows_scene_segmentation(colors_clip):
    info, meta, frames, stamps = colors_clip
    scenes = up.scenes([(s["start_s"], s["end_s"]) for s in info["shots"]])
    result = ColorAnalysis().analyze(_clip(meta, frames, stamps, {"scene_segmentation": scenes}))
    scenes = scenes["scenes"]
    assert result.per_scene_source == "scene_segmentation"
    assert [(s.start_s, s.end_s) for s in result.per_scene] == [
        (pytest.approx(s["start_s"]), pytest.approx(s["end_s"])) for s in scenes
    ]
    for scene, shot in zip(result.per_scene, info["shots"], strict=True):
        top = scene.palette[0]
        want = rgb_to_lab(np.array([[shot["color"]]], np.uint8))[0, 0]
        assert float(delta_e_2000(want, np.array(top.lab))) < 5.0
        assert top.share > 0.9


# (RGB of a plain frame, brightness, saturation, warmth): expected ranges (lo, hi).
PLAIN = [
    ((0, 0, 0), (0.0, 0.01), (0.0, 0.01), (-0.01, 0.01)),
    ((255, 255, 255), (0.99, 1.0), (0.0, 0.01), (-0.01, 0.01)),
    ((128, 128, 128), (0.5, 0.56), (0.0, 0.01), (-0.01, 0.01)),
    ((230, 40, 30), (0.45, 0.6), (0.85, 0.9), (0.75, 0.8)),
    ((30, 60, 230), (0.3, 0.4), (0.85, 0.9), (-0.8, -0.75)),
    ((240, 200, 40), (0.8, 0.9), (0.8, 0.85), (0.75, 0.8)),
]


@pytest.mark.parametrize(("rgb", "brightness", "saturation", "warmth"), PLAIN)
def test_plain_frame_statistics(rgb, brightness, saturation, warmth):
    frames = np.broadcast_to(np.array(rgb, np.uint8), (4, 64, 36, 3)).copy()
    stamps = np.arange(4) / 2.0
    result = ColorAnalysis().analyze(_clip(ClipMeta(2.0, 30.0, 36, 64), frames, stamps))
    assert brightness[0] <= result.brightness <= brightness[1]
    assert saturation[0] <= result.saturation <= saturation[1]
    assert warmth[0] <= result.warmth <= warmth[1]
    assert len(result.palette) == 1 and result.palette[0].share == pytest.approx(1.0)
    assert np.abs(np.array(result.palette[0].rgb) - rgb).max() <= 2
    assert result.variety.max_delta_e == pytest.approx(0.0, abs=1e-6)


def test_colorfulness_orders_grey_below_vivid():
    grey = np.full((2, 32, 32, 3), 128, np.uint8)
    vivid = grey.copy()
    vivid[:, :, :16] = (250, 20, 20)
    vivid[:, :, 16:] = (20, 20, 250)
    stamps = np.arange(2) / 2.0
    meta = ClipMeta(1.0, 30.0, 32, 32)
    low = ColorAnalysis().analyze(_clip(meta, grey, stamps)).colorfulness
    high = ColorAnalysis().analyze(_clip(meta, vivid, stamps)).colorfulness
    assert low < 1.0 < 80.0 < high
