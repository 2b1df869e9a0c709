"""camera_analysis against rendered clips whose camera motion is known per shot."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.camera import CameraAnalysis
from tiktok_analyzer.groundtruth import (
    CATALOG,
    ClipSpec,
    Overlay,
    Photo,
    Shot,
    load_frames,
    render,
    scale_spec,
)

from . import upstream as up

SPEC = CameraAnalysis.frames
CUT_GUARD_S = 0.2  # time around each cut left out of the agreement


def _clip(path, info, upstream=None) -> Clip:
    frames, stamps, _ = load_frames(path, short_side=SPEC.short_side, fps=SPEC.fps)
    return Clip(
        meta=ClipMeta(info["duration_s"], info["fps"], info["width"], info["height"]),
        frames=frames,
        timestamps_s=stamps,
        frame_indices=np.rint(stamps * info["fps"]).astype(int),
        upstream=upstream or {},
    )


def _agreement(result, info) -> float:
    """Share of the clip's time (away from cuts) where the segment's motion is the shot's."""
    grid = np.arange(0.0, info["duration_s"], 0.02)
    cuts = np.array([c["time_s"] for c in info["cuts"]])
    if cuts.size:
        grid = grid[np.abs(grid[:, None] - cuts[None, :]).min(axis=1) > CUT_GUARD_S]
    right = 0
    for t in grid:
        want = next(s["motion"] for s in info["shots"] if s["start_s"] <= t < s["end_s"])
        got = next((s.motion for s in result.segments if s.start_s <= t < s.end_s), None)
        right += got == want
    return right / len(grid)


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory):
    # The catalog clip at half size: one 1.75 s shot per motion, hard cuts between.
    spec = dataclasses.replace(scale_spec(CATALOG["camera"], 360, 640), audio=None)
    path = tmp_path_factory.mktemp("camera") / "camera.mp4"
    info = render(spec, path)
    return path, info


@pytest.mark.parametrize("with_cuts", [True, False], ids=["cut_analysis", "own_cuts"])
def test_camera_catalog_labels(camera_clip, with_cuts):
    path, info = camera_clip
    upstream = {}
    if with_cuts:
        upstream = {
            "cut_analysis": up.cuts(
                [c["time_s"] for c in info["cuts"]],
                kinds=[c["kind"] for c in info["cuts"]],
                shots=[(s["start_s"], s["end_s"]) for s in info["shots"]],
            )
        }
    result = CameraAnalysis().analyze(_clip(path, info, upstream))
    assert result.shots_source == ("cut_analysis" if with_cuts else "own")
    assert _agreement(result, info) >= 0.95, result.segments
    # No segment spans a cut.
    for seg in result.segments:
        for c in info["cuts"]:
            assert not (seg.start_s < c["time_s"] - 0.06 and seg.end_s > c["time_s"] + 0.06), seg


# (motion, speed at 720 px short side, expected magnitude or None): pans and tilts in
# short sides per second (speed px/frame * 30 fps / 720 px), zooms in ln(factor) per second.
SINGLE = [
    ("static", None, None),
    ("pan_left", 2.0, 2.0 * 30 / 720),
    ("pan_left", 12.0, 12.0 * 30 / 720),
    ("pan_right", 4.0, 4.0 * 30 / 720),
    ("pan_right", 30.0, 30.0 * 30 / 720),  # 1.25 short sides a second: a whip pan
    ("tilt_up", 3.0, 3.0 * 30 / 720),
    ("tilt_down", 8.0, 8.0 * 30 / 720),
    ("zoom_in", 1.15, np.log(1.15)),
    ("zoom_in", 1.5, np.log(1.5)),
    ("zoom_out", 1.2, np.log(1.2)),
    ("shake", 3.0, None),
    ("shake", 8.0, None),
]


@pytest.mark.parametrize(("motion", "speed", "magnitude"), SINGLE)
def test_single_motion(tmp_path, motion, speed, magnitude):
    spec = scale_spec(
        ClipSpec(shots=[Shot(2.0, (90, 140, 170), motion=motion, speed=speed)], audio=None),
        180,
        320,
    )
    path = tmp_path / "clip.mp4"
    info = render(spec, path)
    result = CameraAnalysis().analyze(_clip(path, info))
    assert [s.motion for s in result.segments] == [motion], result.segments
    seg = result.segments[0]
    assert seg.start_s == 0.0 and seg.end_s == pytest.approx(info["duration_s"], abs=0.05)
    if magnitude is not None:
        assert seg.magnitude == pytest.approx(magnitude, rel=0.15)


# Layers that hold still over the moving picture, the usual short-form layout: a caption
# box (black, white text, about 8 % of a 720x1280 frame), a logo (a small photo in a
# corner) and letterbox bars (a wide picture in a tall frame).
OVERLAYS = {
    "caption": {"overlays": [Overlay("SO GOOD", 0.0, 10.0, y=0.72, size_px=110)]},
    "logo": {"photos": [Photo("coffee", x=0.82, y=0.1, height=0.12)]},
    "letterbox": {"letterbox": 0.3},
}


@pytest.mark.parametrize("layer", sorted(OVERLAYS))
@pytest.mark.parametrize(
    ("motion", "speed", "magnitude"),
    [
        ("pan_left", 2.0, 2.0 * 30 / 720),
        ("tilt_down", 2.0, 2.0 * 30 / 720),
        ("zoom_in", 1.15, np.log(1.15)),
        ("static", None, None),
    ],
)
def test_motion_under_a_still_overlay(tmp_path, motion, speed, magnitude, layer):
    """The same motion as without the overlay. The picture is faint (texture of +-8 levels):
    the overlay's hard edges outshine every corner of it, as over real footage of a wall
    or the sky, so its corners are most of what the tracker sees."""
    spec = ClipSpec(
        shots=[Shot(2.0, (90, 140, 170), motion=motion, speed=speed, amplitude=8.0)],
        audio=None,
        **OVERLAYS[layer],
    )
    path = tmp_path / "clip.mp4"
    info = render(scale_spec(spec, 180, 320), path)
    if layer == "caption":
        x0, y0, x1, y1 = info["overlays"][0]["box"]
        assert 0.06 <= (x1 - x0) * (y1 - y0) / (180 * 320) <= 0.1
    result = CameraAnalysis().analyze(_clip(path, info))
    assert [s.motion for s in result.segments] == [motion], result.segments
    if magnitude is not None:  # nor do its corners pull the fit
        assert result.segments[0].magnitude == pytest.approx(magnitude, rel=0.15)


def test_pan_then_static_within_one_shot():
    """Motion changes inside a shot split it into segments at about the right time."""
    rng = np.random.default_rng(0)
    canvas = (rng.random((200, 600)) * 255).astype(np.uint8)
    canvas = np.repeat(np.repeat(canvas, 2, axis=0), 2, axis=1)  # blobs of 2x2 px
    frames, t = [], []
    for k in range(40):  # 4 s at 10 fps: 2 s panning 4 px a frame, then 2 s still
        x = 300 - 4 * min(k, 20)  # the view moves left: content moves right (pan_left)
        frames.append(np.repeat(canvas[20:164, x : x + 256, None], 3, axis=2))
        t.append(k / 10)
    clip = Clip(
        meta=ClipMeta(4.0, 10.0, 256, 144),
        frames=np.stack(frames),
        timestamps_s=np.array(t),
        frame_indices=np.arange(40),
    )
    result = CameraAnalysis().analyze(clip)
    assert [s.motion for s in result.segments] == ["pan_left", "static"]
    assert result.segments[0].end_s == pytest.approx(2.0, abs=0.5)
    assert result.dominant in ("pan_left", "static")
    assert sum(result.shares.values()) == pytest.approx(1.0)


def test_one_frame_is_not_applicable():
    clip = Clip(
        meta=ClipMeta(0.1, 10.0, 256, 144),
        frames=np.zeros((1, 144, 256, 3), np.uint8),
        timestamps_s=np.zeros(1),
        frame_indices=np.zeros(1, int),
    )
    with pytest.raises(NotApplicable):
        CameraAnalysis().analyze(clip)
