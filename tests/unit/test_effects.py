"""visual_effects against rendered ground truth (flash, split screen, freeze, punch-in, colour
casts), no freeze on live static shots, and whip pans, speed ramps and a horizontal split
(which the clip generator cannot make) on frames built here."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.cuts import CutAnalysis
from tiktok_analyzer.analyzers.effects import VisualEffects
from tiktok_analyzer.groundtruth import CATALOG, ClipSpec, Shot, load_frames, render, scale_spec
from tiktok_analyzer.groundtruth.clips import GREY, ORANGE, TEAL

SPEC = VisualEffects.frames
assert CutAnalysis.frames == SPEC, "both read the same frame set"
TOLERANCE_S = 0.2
# Kinds whose every report must be in the truth (casts and looks are judged apart).
EVENT_KINDS = {"flash", "split_screen", "freeze", "punch_in", "punch_out", "whip_pan", "speed_ramp"}

# Live static shots carry sensor noise; a frozen one repeats one noisy picture.
STILLS = ClipSpec(
    shots=[
        Shot(2.0, TEAL, noise_sigma=6.0),
        Shot(2.0, ORANGE, noise_sigma=6.0, freeze=True),
        Shot(2.0, GREY, pattern="checker", noise_sigma=6.0),
    ],
    audio=None,
    seed=31,
)


def _with_cuts(clip: Clip) -> Clip:
    """The clip as visual_effects receives it: cut_analysis's result upstream."""
    upstream = {"cut_analysis": CutAnalysis().analyze(clip).model_dump()}
    return dataclasses.replace(clip, upstream=upstream)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("effects")
    out = {}
    for name, spec in (("effects", CATALOG["effects"]), ("stills", STILLS)):
        path = root / f"{name}.mp4"
        info = render(dataclasses.replace(scale_spec(spec, 180, 320), audio=None), path)
        frames, stamps, _ = load_frames(path, short_side=SPEC.short_side)
        meta = ClipMeta(info["duration_s"], info["fps"], info["width"], info["height"])
        clip = Clip(
            meta=meta,
            frames=frames,
            timestamps_s=stamps,
            frame_indices=np.rint(stamps * meta.fps).astype(int),
        )
        out[name] = (info, _with_cuts(clip))
    return out


def _matches(want: dict, got) -> bool:
    return (
        got.kind == want["kind"]
        and abs(got.start_s - want["start_s"]) <= TOLERANCE_S
        and abs(got.end_s - want["end_s"]) <= TOLERANCE_S
    )


@pytest.mark.parametrize("name", ["effects", "stills"])
def test_effects_match_truth(rendered, name):
    info, clip = rendered[name]
    effects = VisualEffects().analyze(clip).effects
    assert info["effects"], "the clip has effects to find"
    for want in info["effects"]:
        assert any(_matches(want, e) for e in effects), (want, effects)
    for e in effects:
        if e.kind in EVENT_KINDS:
            assert any(_matches(w, e) for w in info["effects"]), (e, info["effects"])


def test_split_screen_seam_position(rendered):
    _, clip = rendered["effects"]
    (split,) = [e for e in VisualEffects().analyze(clip).effects if e.kind == "split_screen"]
    kind, position = split.detail.split(" seam at ")
    assert kind == "vertical" and float(position) == pytest.approx(0.5, abs=0.05)


def test_punch_in_scale(rendered):
    _, clip = rendered["effects"]
    (punch,) = [e for e in VisualEffects().analyze(clip).effects if e.kind == "punch_in"]
    assert float(punch.detail.removeprefix("scale ")) == pytest.approx(1.4, abs=0.1)


@pytest.mark.parametrize(
    ("name", "shot", "kind", "detail"),
    [
        ("effects", 0, "color_cast", "warm"),  # red
        ("effects", 1, None, None),  # blue | yellow split: the halves' casts cancel
        ("effects", 2, "color_cast", "green"),
        ("effects", 3, "color_cast", "purple"),
        ("stills", 0, "color_cast", "cyan"),  # teal
        ("stills", 2, "monochrome", None),  # grey checkerboard
    ],
)
def test_grading_per_shot(rendered, name, shot, kind, detail):
    info, clip = rendered[name]
    span = info["shots"][shot]
    looks = [
        e
        for e in VisualEffects().analyze(clip).effects
        if e.kind in ("color_cast", "monochrome")
        and abs(e.start_s - span["start_s"]) <= TOLERANCE_S
        and abs(e.end_s - span["end_s"]) <= TOLERANCE_S
    ]
    if kind is None:
        assert looks == []
    else:
        assert [(e.kind, e.detail) for e in looks] == [(kind, detail)]


# ---------------------------------------------------------------------------------------
# Whip pans, speed ramps and a horizontal split, on frames built here (64 x 114, 30 fps).

FPS = 30.0
H, W = 114, 64


def _canvas(seed: int, color: tuple[int, int, int]) -> np.ndarray:
    """A periodic blob texture twice the frame's size around ``color``, float32 RGB."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.standard_normal((2 * H, 2 * W)))
    fy, fx = np.fft.fftfreq(2 * H)[:, None], np.fft.rfftfreq(2 * W)[None, :]
    noise = np.fft.irfft2(spectrum * np.exp(-((fy**2 + fx**2) * 2 * np.pi**2 * 1.5**2)))
    noise = np.clip(noise / noise.std() / 2.5, -1, 1)
    return np.clip(np.asarray(color, np.float32) + 45 * noise[..., None], 0, 255).astype(np.float32)


def _view(canvas: np.ndarray, x: float, y: float = 0.0) -> np.ndarray:
    m = np.array([[1, 0, x], [0, 1, y]], np.float64)
    return cv2.warpAffine(
        canvas, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP
    )


def _whip(vertical: bool) -> list[np.ndarray]:
    """1 s of one shot, 6 frames of a very fast pan smeared by motion blur across the cut
    to the next shot, 1 s of that one."""
    a, b = _canvas(1, (200, 80, 60)), _canvas(2, (60, 120, 200))
    kernel = (1, 31) if vertical else (31, 1)

    def fast(c: np.ndarray, k: int) -> np.ndarray:
        return cv2.blur(_view(c, 0 if vertical else 30 * k, 30 * k if vertical else 0), kernel)

    return (
        [_view(a, 0)] * 30
        + [fast(a, k) for k in (1, 2, 3)]
        + [fast(b, k) for k in (1, 2, 3)]
        + [_view(b, 0)] * 30
    )


def _pan(speeds: list[float]) -> list[np.ndarray]:
    c = _canvas(3, (90, 170, 90))
    return [_view(c, x) for x in np.cumsum(speeds)]


def _soft_focus() -> list[np.ndarray]:
    frames = _pan([1.0] * 60)
    return frames[:30] + [cv2.GaussianBlur(f, (0, 0), 6) for f in frames[30:36]] + frames[36:]


def _fade() -> list[np.ndarray]:
    """A fade through black: dims both axes alike, so no whip pan."""
    a, b = _view(_canvas(4, (200, 150, 60)), 0), _view(_canvas(5, (60, 90, 200)), 0)
    middle = [(a if g < 0 else b) * abs(g) for g in np.linspace(-1, 1, 15)]
    return [a] * 30 + middle + [b] * 30


def _split_horizontal() -> list[np.ndarray]:
    """Two pictures, one above the other, each panning its own way, for 2 s."""
    a, b = _canvas(6, (220, 170, 60)), _canvas(7, (60, 90, 200))
    frames = []
    for k in range(60):
        top, bottom = _view(a, 2.0 * k), _view(b, -2.0 * k)
        frames.append(np.concatenate([top[: H // 2], bottom[H // 2 :]]))
    return frames


def _checkerboard() -> list[np.ndarray]:
    """A panning checkerboard: many straight seams, none of them a split."""
    ys, xs = np.mgrid[0 : 2 * H, 0 : 2 * W]
    board = np.where((((ys // 8) + (xs // 8)) % 2 == 0)[..., None], 200.0, 110.0)
    board = np.repeat(board, 3, axis=2).astype(np.float32)
    return [_view(board, 1.0 * k) for k in range(60)]


SYNTHETIC = [
    # (case, frames, expected (kind, start_s, end_s, detail prefix) or None for no event)
    ("whip_horizontal", _whip(False), ("whip_pan", 1.0, 1.2, "horizontal")),
    ("whip_vertical", _whip(True), ("whip_pan", 1.0, 1.2, "vertical")),
    ("ramp_up", _pan([0.5] * 45 + [3.0] * 45), ("speed_ramp", 1.5, 1.5, "speeds up")),
    ("ramp_down", _pan([3.0] * 45 + [0.5] * 45), ("speed_ramp", 1.5, 1.5, "slows down")),
    ("split_horizontal", _split_horizontal(), ("split_screen", 0.0, 2.0, "horizontal seam")),
    ("steady_pan", _pan([2.0] * 90), None),
    ("checkerboard", _checkerboard(), None),
    ("soft_focus", _soft_focus(), None),
    ("fade", _fade(), None),
]


@pytest.mark.parametrize(("case", "frames", "want"), SYNTHETIC, ids=[c[0] for c in SYNTHETIC])
def test_built_frames(case, frames, want):
    rng = np.random.default_rng(7)
    stack = np.stack(frames)
    # Sensor noise, so that no stretch is a freeze.
    stack = np.clip(np.rint(stack + rng.normal(0, 2.0, stack.shape)), 0, 255).astype(np.uint8)
    n = len(stack)
    clip = Clip(
        meta=ClipMeta(duration_s=n / FPS, fps=FPS, width=W, height=H),
        frames=stack,
        timestamps_s=np.arange(n) / FPS,
        frame_indices=np.arange(n),
    )
    found = [e for e in VisualEffects().analyze(_with_cuts(clip)).effects if e.kind in EVENT_KINDS]
    if want is None:
        assert found == [], found
        return
    kind, start, end, detail = want
    assert len(found) == 1, found
    (e,) = found
    assert e.kind == kind and e.detail.startswith(detail), e
    # A speed ramp is an instant: its span must hold it; a whip pan spans its frames.
    assert e.start_s <= end + 0.1 and e.end_s >= start - 0.1, e
    assert abs(e.start_s - start) <= TOLERANCE_S and abs(e.end_s - end) <= TOLERANCE_S, e


def test_needs_cut_analysis(rendered):
    _, clip = rendered["effects"]
    with pytest.raises(NotApplicable, match="cut_analysis"):
        VisualEffects().analyze(dataclasses.replace(clip, upstream={}))
