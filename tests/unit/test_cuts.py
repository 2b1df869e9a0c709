"""cut_analysis against rendered ground truth: every cut found within 2 frames (F1), the
right kind, gradual transitions at their centre, flashes and punch-ins not taken for cuts,
and no cuts at all in continuous fast motion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.cuts import CutAnalysis
from tiktok_analyzer.groundtruth import (
    CATALOG,
    ClipSpec,
    Flash,
    Shot,
    load_frames,
    render,
    scale_spec,
)
from tiktok_analyzer.groundtruth.clips import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PINK,
    PURPLE,
    RED,
    TEAL,
    YELLOW,
)

SPEC = CutAnalysis.frames
MATCH_FRAMES = 2

# Harder than the catalog: very fast pans and shake, short and long dissolves, a quick fade,
# shots of the same colour and texture back to back (only the layout changes), flashes of
# 1 to 4 frames over moving pictures, noise and blur. (No noise or shake next to a
# dissolve: the generator cannot render those shots before their start.)
STRESS = ClipSpec(
    shots=[
        Shot(1.0, RED, motion="pan_right", speed=60.0),
        Shot(0.8, ORANGE, motion="shake", speed=14.0),
        Shot(0.8, ORANGE, motion="shake", speed=14.0),
        Shot(1.0, BLUE, motion="tilt_up", speed=45.0),
        Shot(0.8, PURPLE, pattern="flat", transition_in="dissolve", transition_s=0.4),
        Shot(1.0, TEAL, motion="zoom_in", speed=2.5, transition_in="dissolve", transition_s=1.0),
        Shot(0.8, GREEN, pattern="checker", transition_in="fade", transition_s=0.3),
        Shot(0.8, GREY, noise_sigma=16.0),
        Shot(0.8, GREY, noise_sigma=16.0, blur_sigma=2.0),
        Shot(1.0, YELLOW, motion="pan_left", speed=80.0),
        Shot(0.8, PINK, pattern="checker", motion="pan_right", speed=25.0),
    ],
    flashes=[Flash(0.4, 1), Flash(2.2, 4), Flash(5.7, 2), Flash(8.0, 3)],
    audio=None,
    seed=101,
)

# One shot each: continuous motion, no cut anywhere.
CONTINUOUS = {
    "fast_pan": ClipSpec(shots=[Shot(4.0, TEAL, motion="pan_left", speed=90.0, amplitude=80.0)]),
    "noisy_shake": ClipSpec(
        shots=[Shot(4.0, ORANGE, pattern="checker", motion="shake", speed=25.0, noise_sigma=24.0)]
    ),
    "fast_zoom": ClipSpec(shots=[Shot(3.0, PINK, motion="zoom_in", speed=2.5, amplitude=80.0)]),
    "blurred_pan": ClipSpec(
        shots=[Shot(4.0, GREY, pattern="checker", motion="pan_right", speed=60.0, blur_sigma=4.0)]
    ),
}

# A punch-in is the same picture larger; a cut to another shot stays a cut whatever its
# framing, even to a tighter view of the same colours and texture: (clip, scale or None).
FRAMINGS = {
    "tighter_cut": (ClipSpec(shots=[Shot(1.5, ORANGE), Shot(1.5, ORANGE, framing=1.6)]), None),
    "tighter_cut_panning": (
        ClipSpec(
            shots=[
                Shot(1.5, TEAL, motion="pan_left", speed=6.0),
                Shot(1.5, TEAL, motion="pan_left", speed=6.0, framing=2.0),
            ]
        ),
        None,
    ),
    "wider_cut": (ClipSpec(shots=[Shot(1.5, GREEN, framing=1.5), Shot(1.5, GREEN)]), None),
    "punch_in_1.3": (ClipSpec(shots=[Shot(3.0, GREEN, punch_in_s=1.5, punch_in_scale=1.3)]), 1.3),
    "punch_in_1.8_tilting": (
        ClipSpec(
            shots=[
                Shot(3.0, BLUE, motion="tilt_down", speed=2.0, punch_in_s=1.5, punch_in_scale=1.8)
            ]
        ),
        1.8,
    ),
}

CLIPS = {
    "cuts": CATALOG["cuts"],
    "sample": CATALOG["sample"],
    "effects": CATALOG["effects"],
    "stress": STRESS,
    **CONTINUOUS,
    **{name: spec for name, (spec, _) in FRAMINGS.items()},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render each clip once, small and silent, on first use: name -> (truth, Clip)."""
    root = tmp_path_factory.mktemp("cuts")
    cache: dict[str, tuple[dict, Clip]] = {}

    def get(name: str) -> tuple[dict, Clip]:
        if name not in cache:
            spec = dataclasses.replace(scale_spec(CLIPS[name], 180, 320), audio=None)
            path = root / f"{name}.mp4"
            info = render(spec, path)
            frames, stamps, _ = load_frames(path, short_side=SPEC.short_side)
            meta = ClipMeta(info["duration_s"], info["fps"], info["width"], info["height"])
            clip = Clip(
                meta=meta,
                frames=frames,
                timestamps_s=stamps,
                frame_indices=np.rint(stamps * meta.fps).astype(int),
            )
            cache[name] = (info, clip)
        return cache[name]

    return get


def _match(truth: list[int], found: list[int], tol: int) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (truth index, found index) closest first, within tol."""
    pairs = sorted(
        (abs(t - f), i, j)
        for i, t in enumerate(truth)
        for j, f in enumerate(found)
        if abs(t - f) <= tol
    )
    used_t: set[int] = set()
    used_f: set[int] = set()
    out = []
    for _, i, j in pairs:
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            out.append((i, j))
    return out


@pytest.mark.parametrize("name", ["cuts", "sample", "effects", "stress"])
def test_cuts_match_truth(rendered, name):
    info, clip = rendered(name)
    result = CutAnalysis().analyze(clip)
    truth = [c["frame"] for c in info["cuts"]]
    found = [c.frame for c in result.cuts]
    pairs = _match(truth, found, MATCH_FRAMES)
    precision = len(pairs) / max(len(found), 1)
    recall = len(pairs) / max(len(truth), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    assert f1 >= 0.95, (name, f1, truth, found)
    # The kind is right for (nearly) every matched cut.
    kinds_ok = [info["cuts"][i]["kind"] == result.cuts[j].kind for i, j in pairs]
    assert np.mean(kinds_ok) >= 0.9, [(info["cuts"][i], result.cuts[j]) for i, j in pairs]


@pytest.mark.parametrize("name", ["cuts", "sample", "stress"])
def test_gradual_transitions_span_their_centre(rendered, name):
    info, clip = rendered(name)
    result = CutAnalysis().analyze(clip)
    gradual = [c for c in result.cuts if c.kind != "hard"]
    assert gradual, "the clip has fades and dissolves"
    for c in gradual:
        assert c.start_s < c.time_s < c.end_s, c
        assert c.end_s - c.start_s <= 1.2, c
    for c in result.cuts:
        if c.kind == "hard":
            assert c.start_s == c.end_s == c.time_s, c


@pytest.mark.parametrize("name", ["cuts", "sample", "stress"])
def test_flashes_are_reported_not_cut(rendered, name):
    info, clip = rendered(name)
    result = CutAnalysis().analyze(clip)
    flashes = result.model_dump()["flashes"]
    want = [f["frame"] for f in info["flashes"]]
    got = [f["frame"] for f in flashes]
    assert len(_match(want, got, 1)) == len(want) == len(got), (want, got)
    for f in info["flashes"]:
        near = [c for c in result.cuts if abs(c.frame - f["frame"]) <= f["frames"] + 2]
        assert not near, (f, near)


def test_punch_in_is_not_a_cut(rendered):
    info, clip = rendered("effects")
    result = CutAnalysis().analyze(clip).model_dump()
    punch = next(s["punch_in_s"] for s in info["shots"] if s["punch_in_s"] is not None)
    assert all(abs(c["time_s"] - punch) > 0.1 for c in result["cuts"])
    assert len(result["punch_ins"]) == 1, result["punch_ins"]
    assert result["punch_ins"][0]["time_s"] == pytest.approx(punch, abs=0.05)
    assert result["punch_ins"][0]["scale"] == pytest.approx(1.4, abs=0.1)


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_punch_in_only_when_the_picture_repeats_larger(rendered, name):
    info, clip = rendered(name)
    scale = FRAMINGS[name][1]
    result = CutAnalysis().analyze(clip)
    if scale is None:
        assert [c.frame for c in result.cuts] == [c["frame"] for c in info["cuts"]], result.cuts
        assert result.punch_ins == [], result.punch_ins
    else:
        punch = next(s["punch_in_s"] for s in info["shots"] if s["punch_in_s"] is not None)
        assert result.cuts == [], result.cuts
        assert len(result.punch_ins) == 1, result.punch_ins
        assert result.punch_ins[0].time_s == pytest.approx(punch, abs=0.05)
        assert result.punch_ins[0].scale == pytest.approx(scale, abs=0.1)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_no_cuts_in_continuous_motion(rendered, name):
    _, clip = rendered(name)
    result = CutAnalysis().analyze(clip).model_dump()
    assert result["cuts"] == [] and result["flashes"] == [] and result["punch_ins"] == []
    assert result["shot_count"] == 1


def test_shots_tile_the_clip(rendered):
    info, clip = rendered("cuts")
    result = CutAnalysis().analyze(clip).model_dump()
    shots = result["shots"]
    assert len(shots) == len(result["cuts"]) + 1 == result["shot_count"]
    assert shots[0]["start_s"] == 0.0
    assert shots[-1]["end_s"] == pytest.approx(info["duration_s"], abs=1e-6)
    for prev, nxt, cut in zip(shots[:-1], shots[1:], result["cuts"], strict=True):
        assert prev["end_s"] == nxt["start_s"] == cut["time_s"]
    lengths = [s["end_s"] - s["start_s"] for s in shots]
    assert result["mean_shot_s"] == pytest.approx(np.mean(lengths), abs=1e-3)
    assert result["median_shot_s"] == pytest.approx(np.median(lengths), abs=1e-3)
    assert result["min_shot_s"] == pytest.approx(min(lengths), abs=1e-3)
    assert result["max_shot_s"] == pytest.approx(max(lengths), abs=1e-3)
    assert result["cuts_per_minute"] == pytest.approx(
        len(result["cuts"]) / info["duration_s"] * 60, abs=1e-2
    )


def test_frame_is_the_decoded_stream_index():
    # Two flat colours, cut after 10 frames; the frames came from a stream whose indices
    # start at 500 (a clip cut out of a longer decode).
    frames = np.zeros((20, 64, 36, 3), np.uint8)
    frames[:10] = (200, 40, 40)
    frames[10:] = (40, 40, 200)
    rng = np.random.default_rng(0)
    frames = np.clip(frames + rng.normal(0, 2, frames.shape), 0, 255).astype(np.uint8)
    clip = Clip(
        meta=ClipMeta(duration_s=20 / 30, fps=30.0, width=36, height=64),
        frames=frames,
        timestamps_s=np.arange(20) / 30,
        frame_indices=np.arange(500, 520),
    )
    (cut,) = CutAnalysis().analyze(clip).cuts
    assert (cut.frame, cut.kind) == (510, "hard")
    assert cut.time_s == pytest.approx(10 / 30, abs=1e-3)


def test_too_few_frames_is_not_applicable():
    clip = Clip(
        meta=ClipMeta(duration_s=0.1, fps=30.0, width=36, height=64),
        frames=np.zeros((2, 64, 36, 3), np.uint8),
        timestamps_s=np.array([0.0, 1 / 30]),
        frame_indices=np.array([0, 1]),
    )
    with pytest.raises(NotApplicable):
        CutAnalysis().analyze(clip)


# ---------------------------------------------------------------------------------------
# Wipes: the clip generator makes none, so they are built here at the analyzer's frame size.

WIPE_H, WIPE_W = 114, 64


def _texture(seed: int, color: tuple[int, int, int]) -> np.ndarray:
    """A periodic blob texture of the frame's size around ``color``, float32 RGB."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.standard_normal((WIPE_H, WIPE_W)))
    fy, fx = np.fft.fftfreq(WIPE_H)[:, None], np.fft.rfftfreq(WIPE_W)[None, :]
    noise = np.fft.irfft2(spectrum * np.exp(-(fy**2 + fx**2) * 2 * np.pi**2 * 1.5**2))
    noise = np.clip(noise / noise.std() / 2.5, -1, 1)
    return np.clip(np.asarray(color, np.float32) + 45 * noise[..., None], 0, 255)


def _wipe_clip(direction: str, length: int) -> Clip:
    """1 s of a slowly panning shot, a wipe of ``length`` frames revealing a still shot
    from the left, the top or the top-left corner, then 1 s of the new shot."""
    a, b = _texture(1, (200, 80, 60)), _texture(2, (60, 120, 200))
    ys = np.arange(WIPE_H)[:, None] / WIPE_H
    xs = np.arange(WIPE_W)[None, :] / WIPE_W
    position = {"left": xs + 0 * ys, "top": ys + 0 * xs, "diagonal": (xs + ys) / 2}[direction]
    frames = [np.roll(a, k, axis=1) for k in range(30)]
    for k in range(length):
        revealed = (position < (k + 0.5) / length)[..., None]
        frames.append(np.where(revealed, b, np.roll(a, 30 + k, axis=1)))
    frames += [b] * 30
    rng = np.random.default_rng(3)
    stack = np.stack(frames)
    stack = np.clip(np.rint(stack + rng.normal(0, 2.0, stack.shape)), 0, 255).astype(np.uint8)
    n = len(stack)
    return Clip(
        meta=ClipMeta(duration_s=n / 30, fps=30.0, width=WIPE_W, height=WIPE_H),
        frames=stack,
        timestamps_s=np.arange(n) / 30,
        frame_indices=np.arange(n),
    )


@pytest.mark.parametrize("direction", ["left", "top", "diagonal"])
@pytest.mark.parametrize("length", [8, 15, 30])
def test_wipes(direction, length):
    result = CutAnalysis().analyze(_wipe_clip(direction, length))
    (cut,) = result.cuts
    assert cut.kind == "wipe"
    assert abs(cut.frame - (30 + length // 2)) <= MATCH_FRAMES
    assert cut.start_s <= 30 / 30 + 0.1 and cut.end_s >= (30 + length - 1) / 30 - 0.1


def test_continuity_in_threads_gives_exactly_what_one_thread_gives(monkeypatch) -> None:
    """continuity() splits its frame pairs over threads: each pair's correlation and shift
    must be the one a single loop finds (a panning picture, a flat stretch, a cut)."""
    from tiktok_analyzer.analyzers import _frames

    rng = np.random.default_rng(7)
    scene = rng.uniform(0, 255, (160, 200)).astype(np.float32)
    other = rng.uniform(0, 255, (140, 200)).astype(np.float32)
    frames = [scene[10 + t % 20 : 124 + t % 20, t % 40 : 64 + t % 40] for t in range(200)]
    frames += [np.full((114, 64), 30, np.float32)] * 20  # featureless
    frames += [other[t % 9 : 114 + t % 9, 5:69] for t in range(80)]
    gray = np.ascontiguousarray(np.stack(frames))
    monkeypatch.setattr(_frames, "_CONTINUITY_THREADS", 1)
    corr1, shift1 = _frames.continuity(gray)
    monkeypatch.setattr(_frames, "_CONTINUITY_THREADS", 4)
    monkeypatch.setattr(_frames.os, "cpu_count", lambda: 4)
    corr4, shift4 = _frames.continuity(gray)
    np.testing.assert_array_equal(corr4, corr1)
    np.testing.assert_array_equal(shift4, shift1)
    # and it measured something: the pan is continuous, the cut into the flat frames not
    assert corr1[5] > 0.9 and corr1[200] < 0.5 and corr1[210] == 1.0
    assert abs(abs(shift1[5][0]) - 1.0) < 0.2
