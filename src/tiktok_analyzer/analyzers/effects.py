"""Visual effects: edits and looks laid over the footage, each with its time span.

From cut_analysis (which already told them apart from cuts) it takes the transitions
(fade, dissolve, wipe), the flashes and the punch-in zooms. On every frame at a small size
it finds itself:

* freeze: a run of consecutive frames that are identical (live footage, even static,
  always changes a little: sensor noise survives the encoder);
* split screen: a straight seam at the same place in every frame for a while, the only
  such line in the frame (a checkerboard has many), with different pictures either side;
* whip pan: a few frames whose gradients collapse along one axis while the other axis
  keeps much more of its detail (motion blur from a very fast pan), unlike a fade or a
  soft focus, which dim or blur both alike;
* speed ramp: within a shot, the camera's motion speeding up or slowing down several
  fold from one stretch to the next;
* grading: a shot with a strong colour cast (the mean colour far from neutral), very high
  saturation, or none at all (black and white).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tiktok_analyzer.analyzers._frames import continuity, frame_rate, gray_frames
from tiktok_analyzer.analyzers.base import Analyzer, Clip, FrameSpec, NotApplicable
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.effects import (  # noqa: F401 - re-exported
    Effect,
    EffectKind,
    VisualEffectsResult,
)

__all__ = ["Effect", "EffectKind", "VisualEffects"]


class VisualEffects(Analyzer):
    name = "visual_effects"
    # The same frame set as cut_analysis: freezes and whip pans are a matter of single
    # frames, and the orchestrator resizes each size once.
    frames = FrameSpec(short_side=64, every_frame=True)
    # 0.51 s a clip on the H100 host (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances = 2
    depends_on = ("cut_analysis",)

    @dataclass
    class Params:
        # Freeze: frames differing by at most this mean absolute level (0..255), this long;
        # two such runs a few frames apart join if their pictures differ by at most
        # freeze_bridge_diff.
        freeze_max_diff: float = 0.008
        freeze_min_s: float = 0.3
        freeze_bridge_diff: float = 2.0
        # Split screen: the share of its length along which the seam is sharp, its colour
        # step over the frame's median line, the strongest other line relative to it, the
        # colour difference between the sides, and how long it holds.
        split_min_share: float = 0.8
        split_min_ratio: float = 4.0
        split_max_other: float = 0.5
        split_min_contrast: float = 20.0
        split_min_s: float = 0.5
        # Whip pan: the gradient along the motion falls below this share of the shot's
        # usual, and below whip_balance times the other axis's share of its usual, which
        # keeps at least whip_keep; lasting at most whip_max_s.
        whip_collapse: float = 0.4
        whip_balance: float = 0.65
        whip_keep: float = 0.25
        whip_max_s: float = 0.6
        # Speed ramp: mean camera speed changes this many fold within a shot, both
        # stretches at least ramp_min_s long and moving at least ramp_min_speed
        # (frame short sides per second).
        ramp_ratio: float = 2.5
        ramp_min_s: float = 0.5
        ramp_min_speed: float = 0.05
        # Grading: cast chroma (CIELAB a*b* of the mean colour), mean saturation (0..1)
        # above which a shot is oversaturated, and below which it is black and white.
        cast_min_chroma: float = 20.0
        saturated_above: float = 0.6
        monochrome_below: float = 0.06

    Result = VisualEffectsResult

    def analyze(self, clip: Clip) -> Result:
        cuts = clip.upstream_result(CutAnalysisResult)
        if cuts is None:
            raise NotApplicable("needs cut_analysis: its cuts, flashes and shots")
        frames, ts = clip.frames, clip.timestamps_s
        assert frames is not None and ts is not None
        if len(frames) < 3:
            raise NotApplicable("visual effects need at least 3 frames")
        fps = frame_rate(ts, clip.meta.fps)
        shots = [(s.start_s, s.end_s) for s in cuts.shots]

        gray = gray_frames(frames)
        effects = (
            _from_cut_analysis(cuts, shots)
            + self._freezes(frames, ts, fps)
            + self._split_screens(frames, ts, fps, shots)
            + self._whip_pans(gray, ts, fps)
            + self._speed_ramps(gray, ts, fps, shots)
            + self._grading(frames, ts, shots)
        )
        effects.sort(key=lambda e: (e.start_s, e.kind))
        counts: dict[str, int] = {}
        for e in effects:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        return self.Result(effects=effects, counts=counts)

    def _freezes(self, frames: np.ndarray, ts: np.ndarray, fps: float) -> list[Effect]:
        p = self.params
        diff = np.empty(len(frames) - 1, dtype=np.float32)
        for t in range(1, len(frames)):
            diff[t - 1] = cv2.absdiff(frames[t], frames[t - 1]).mean()
        still = diff <= p.freeze_max_diff
        # Bridge short interruptions of a still picture that leave it as it was: a flash
        # over it, or the encoder refreshing it at a keyframe (a level or two, once). Only
        # runs long enough to be a still in their own right are bridged: an encoder that
        # flattens a faintly noisy static shot leaves short still runs in a rhythm.
        long_enough = max(2, round(p.freeze_min_s * fps / 2))
        runs = [r for r in _runs(still) if r[1] - r[0] + 1 >= long_enough]
        for i, (_, b) in enumerate(runs):
            for a, _ in runs[i + 1 :]:
                if a - b - 1 > 4:
                    break
                if cv2.absdiff(frames[b + 1], frames[a]).mean() <= p.freeze_bridge_diff:
                    still[b + 1 : a] = True
                    break
        out = []
        for a, b in _runs(still):
            # Steps a..b (from frame t to t + 1) are still: frames a..b + 1 show one picture.
            if (b - a + 2) / fps >= p.freeze_min_s:
                level = _still_mean(diff[a : b + 1], p.freeze_max_diff)
                out.append(
                    Effect(
                        start_s=_r(ts[a]),
                        end_s=_r(ts[b + 1] + 1.0 / fps),
                        kind="freeze",
                        confidence=round(1.0 - level / (2 * p.freeze_max_diff), 3),
                    )
                )
        return out

    def _split_screens(
        self, frames: np.ndarray, ts: np.ndarray, fps: float, shots: list[tuple[float, float]]
    ) -> list[Effect]:
        p = self.params
        # A split screen holds for a good while: ten looks a second are plenty, and the
        # run's ends are then snapped to the shot boundaries they fall next to.
        every = max(1, round(fps / 10))
        sub, sub_ts = frames[::every], ts[::every]
        found: list[tuple[str, int] | None] = [None] * len(sub)
        for axis, name in ((2, "vertical"), (1, "horizontal")):
            strength, share, contrast = _seam_profiles(sub, axis)
            n_lines = strength.shape[1]
            lo, hi = round(0.15 * n_lines), round(0.85 * n_lines)
            for t in range(len(sub)):
                x = lo + int(strength[t, lo:hi].argmax())
                others = np.concatenate([strength[t, : max(x - 2, 0)], strength[t, x + 3 :]])
                if (
                    share[t, x] >= p.split_min_share
                    and contrast[t, x] >= p.split_min_contrast
                    and strength[t, x] >= p.split_min_ratio * float(np.median(strength[t]))
                    and (len(others) == 0 or others.max() <= p.split_max_other * strength[t, x])
                    and found[t] is None
                ):
                    found[t] = (name, x)
        bounds = np.array(sorted({b for shot in shots for b in shot}))
        out = []
        for a, b, (name, pos) in _steady_runs(found, tolerance=2, max_gap=1):
            start, end = float(sub_ts[a]), float(sub_ts[b]) + every / fps
            if end - start < p.split_min_s:
                continue
            start, end = _snap(start, bounds, every / fps), _snap(end, bounds, every / fps)
            size = frames.shape[_axis_of(name)]
            out.append(
                Effect(
                    start_s=_r(start),
                    end_s=_r(end),
                    kind="split_screen",
                    confidence=round(min(1.0, (end - start) / (2 * p.split_min_s)), 3),
                    detail=f"{name} seam at {(pos + 1) / size:.2f}",
                )
            )
        return out

    def _whip_pans(self, gray: np.ndarray, ts: np.ndarray, fps: float) -> list[Effect]:
        p = self.params
        gx = np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))
        gy = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2))
        half = max(3, round(fps))
        base_x, base_y = _rolling_median(gx, half), _rolling_median(gy, half)
        rel_x, rel_y = gx / np.maximum(base_x, 1e-3), gy / np.maximum(base_y, 1e-3)
        # Blur along x also softens y a little (it averages rows' neighbours together),
        # so the test is the axes' balance, not an intact cross axis; a flash or a fade
        # dims both alike, and nothing is left of the cross axis in a white frame.
        horiz = (
            (rel_x < p.whip_collapse) & (rel_x < p.whip_balance * rel_y) & (rel_y >= p.whip_keep)
        )
        vert = (rel_y < p.whip_collapse) & (rel_y < p.whip_balance * rel_x) & (rel_x >= p.whip_keep)
        out = []
        for mask, direction, lost, base in (
            (horiz, "horizontal", gx, base_x),
            (vert, "vertical", gy, base_y),
        ):
            for a, b in _runs(mask):
                length = b - a + 1
                if length < 2 or length / fps > p.whip_max_s:
                    continue
                drop = 1.0 - float(lost[a : b + 1].mean() / max(base[a : b + 1].mean(), 1e-6))
                out.append(
                    Effect(
                        start_s=_r(ts[a]),
                        end_s=_r(ts[b] + 1.0 / fps),
                        kind="whip_pan",
                        confidence=round(float(np.clip(drop, 0.0, 1.0)), 3),
                        detail=direction,
                    )
                )
        return out

    def _speed_ramps(
        self, gray: np.ndarray, ts: np.ndarray, fps: float, shots: list[tuple[float, float]]
    ) -> list[Effect]:
        p = self.params
        corr, shift = continuity(gray)
        # Speed in frame short sides per second; steps that are no clean translation (a
        # cut, a flash) are not camera motion and are left out.
        speed = np.hypot(shift[:, 0], shift[:, 1]) * fps / min(gray.shape[1:])
        steady = corr >= 0.5
        min_len = max(2, round(p.ramp_min_s * fps))
        out = []
        for start, end in shots:
            idx = np.flatnonzero((ts > start + 0.1) & (ts < end - 0.1) & steady)
            if len(idx) < 2 * min_len:
                continue
            v = _median_filter(speed[idx], 5)
            csum = np.concatenate([[0.0], np.cumsum(v)])
            best: tuple[float, int] | None = None
            for k in range(min_len, len(v) - min_len + 1):
                before, after = csum[k] / k, (csum[-1] - csum[k]) / (len(v) - k)
                if min(before, after) < p.ramp_min_speed:
                    continue
                ratio = max(before, after) / min(before, after)
                if ratio >= p.ramp_ratio and (best is None or ratio > best[0]):
                    best = (ratio, k)
            if best is None:
                continue
            ratio, k = best
            # The ramp itself: the few frames around the split between the two speeds.
            t0, t1 = ts[idx[max(k - 2, 0)]], ts[idx[min(k + 1, len(idx) - 1)]]
            faster = "speeds up" if v[k:].mean() > v[:k].mean() else "slows down"
            out.append(
                Effect(
                    start_s=_r(t0),
                    end_s=_r(t1),
                    kind="speed_ramp",
                    confidence=round(min(1.0, math.log(ratio) / math.log(p.ramp_ratio**2)), 3),
                    detail=f"{faster} {ratio:.1f}x",
                )
            )
        return out

    def _grading(
        self, frames: np.ndarray, ts: np.ndarray, shots: list[tuple[float, float]]
    ) -> list[Effect]:
        p = self.params
        out = []
        for start, end in shots:
            idx = np.flatnonzero((ts >= start) & (ts < end))[::5]
            if len(idx) == 0:
                continue
            pick = frames[idx]
            n, h, w, _ = pick.shape
            lab = cv2.cvtColor(pick.reshape(n * h, w, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3)
            hsv = cv2.cvtColor(pick.reshape(n * h, w, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3)
            lum = lab[:, 0].astype(np.float32)
            lit = lum > 25  # near-black pixels carry no colour worth judging
            if lit.mean() < 0.1:
                continue
            a = float(lab[lit, 1].mean()) - 128.0
            b = float(lab[lit, 2].mean()) - 128.0
            chroma = math.hypot(a, b)
            sat = float(hsv[lit, 1].mean()) / 255.0
            looks: list[tuple[str, float, str | None]] = []
            if sat < p.monochrome_below:
                looks.append(("monochrome", 1.0 - sat / p.monochrome_below, None))
            else:
                if chroma >= p.cast_min_chroma:
                    looks.append(
                        ("color_cast", min(1.0, chroma / (2 * p.cast_min_chroma)), _cast_name(a, b))
                    )
                if sat >= p.saturated_above:
                    looks.append(
                        (
                            "high_saturation",
                            min(1.0, (sat - p.saturated_above) / (1 - p.saturated_above) + 0.5),
                            None,
                        )
                    )
            for kind, conf, detail in looks:
                out.append(
                    Effect(
                        start_s=_r(start),
                        end_s=_r(end),
                        kind=kind,
                        confidence=round(conf, 3),
                        detail=detail,
                    )
                )
        return out


def _from_cut_analysis(cuts: CutAnalysisResult, shots: list[tuple[float, float]]) -> list[Effect]:
    """Transitions, flashes and punch-ins that cut_analysis separated from plain cuts."""
    out = [
        Effect(start_s=c.start_s, end_s=c.end_s, kind=c.kind, confidence=c.confidence)
        for c in cuts.cuts
        if c.kind != "hard"
    ]
    out += [
        Effect(start_s=f.time_s, end_s=f.end_s, kind="flash", confidence=1.0) for f in cuts.flashes
    ]
    for z in cuts.punch_ins:
        t = z.time_s
        # The zoom holds until the shot ends (or the next punch changes it).
        end = next((b for a, b in shots if a <= t < b), t)
        later = [o.time_s for o in cuts.punch_ins if o.time_s > t]
        if later:
            end = min(end, later[0])
        out.append(
            Effect(
                start_s=t,
                end_s=end,
                kind="punch_in" if z.scale > 1 else "punch_out",
                confidence=z.confidence,
                detail=f"scale {z.scale:.2f}",
            )
        )
    return out


def _axis_of(seam: str) -> int:
    """The frame-stack axis a seam runs across: a vertical seam splits the columns."""
    return 2 if seam == "vertical" else 1


def _seam_profiles(frames: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each line across ``axis`` (2: columns, 1: rows), from the colour step between its
    two neighbours: the mean step along the line, the share of the line where the step
    is at least half that mean (a seam is sharp all along, an object's edge is not), and
    the colour difference of the strips either side. Shapes (N, lines), line k being the
    one between k and k + 2."""
    along = 1 if axis == 2 else 2
    # Every other pixel along the line is enough to judge it.
    f = (frames[:, ::2] if axis == 2 else frames[:, :, ::2]).astype(np.int16)
    n_lines = f.shape[axis]
    if axis == 2:
        step = np.abs(f[:, :, 2:] - f[:, :, :-2]).sum(axis=3)
    else:
        step = np.abs(f[:, 2:] - f[:, :-2]).sum(axis=3)
    strength = step.mean(axis=along)
    share = (step >= 0.5 * np.expand_dims(strength, along)).mean(axis=along)
    # Mean colour of a strip a tenth of the frame wide on each side of each line.
    means = f.mean(axis=along)  # (N, lines, 3)
    width = max(2, n_lines // 10)
    csum = np.concatenate([np.zeros_like(means[:, :1]), np.cumsum(means, axis=1)], axis=1)
    mid = np.arange(1, n_lines - 1)
    left_lo = np.clip(mid - width, 0, None)
    right_hi = np.clip(mid + 1 + width, None, n_lines)
    left = (csum[:, mid] - csum[:, left_lo]) / (mid - left_lo)[None, :, None]
    right = (csum[:, right_hi] - csum[:, mid + 1]) / (right_hi - mid - 1)[None, :, None]
    contrast = np.abs(left - right).sum(axis=2)
    return strength, share, contrast


def _snap(t: float, bounds: np.ndarray, within: float) -> float:
    """``t`` moved to the nearest shot boundary if one is within ``within`` seconds."""
    if len(bounds):
        k = int(np.argmin(np.abs(bounds - t)))
        if abs(bounds[k] - t) <= within:
            return float(bounds[k])
    return t


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def _steady_runs(
    found: list[tuple[str, int] | None], tolerance: int, max_gap: int
) -> list[tuple[int, int, tuple[str, int]]]:
    """Runs of frames with the same (kind, position +- tolerance), bridging gaps of up to
    max_gap frames (a flash over a split screen hides its seam for a moment)."""
    runs: list[tuple[int, int, tuple[str, int]]] = []
    for t, item in enumerate(found):
        if item is None:
            continue
        if runs:
            a, b, (kind, pos) = runs[-1]
            if kind == item[0] and abs(pos - item[1]) <= tolerance and t - b <= max_gap + 1:
                runs[-1] = (a, t, (kind, pos))
                continue
        runs.append((t, t, item))
    return runs


def _rolling_median(x: np.ndarray, half: int) -> np.ndarray:
    pad = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1), axis=1)


def _median_filter(x: np.ndarray, size: int) -> np.ndarray:
    return _rolling_median(x, size // 2) if len(x) > size else x


def _cast_name(a: float, b: float) -> str:
    """Name the hue of a CIELAB (a*, b*) direction (OpenCV's 8-bit Lab: red lies near 35
    degrees, yellow 95, green 145, teal 195, blue 290, purple 320, pink 355)."""
    angle = math.degrees(math.atan2(b, a)) % 360
    for limit, name in (
        (20, "magenta"),
        (75, "warm"),
        (110, "yellow"),
        (165, "green"),
        (240, "cyan"),
        (305, "blue"),
        (330, "purple"),
    ):
        if angle < limit:
            return name
    return "magenta"


def _still_mean(diff: np.ndarray, limit: float) -> float:
    """Mean step of the still steps in a freeze (bridged flashes left out)."""
    still = diff[diff <= limit]
    return float(still.mean()) if len(still) else 0.0


def _r(x: float) -> float:
    return round(float(x), 4)
