"""Camera motion: static, pans, tilts, zooms and shake, as time segments.

Between consecutive sampled frames, corners are tracked with pyramidal Lucas-Kanade and a
similarity transform (scale, rotation, translation) is fitted to them with RANSAC: the
global-motion model follows the camera and ignores a subject walking through the picture,
which a mean of the optical flow would not. The per-pair motions are then summarised over
short windows inside each shot (never across a cut) and labelled.

Corners that stand still decide between the camera and what moves in front of it. Packed
into a small part of the frame while the fit says static, they are an overlay (a caption
box, a logo, a border), whose hard edges outshine a faint picture's corners: they are
masked out and the fit runs again on the rest. Spread over the picture, or beside a moving
consensus that covers only part of it, they are the world and the camera stands still: a
car, a walker or a talking head in front of a locked-off camera is no pan or zoom.

Conventions (the same as the ground-truth generator): the camera panning left moves the
picture's content right; tilting up moves it down; zooming in makes it grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from tiktok_analyzer.analyzers.base import Analyzer, AnalyzerResult, Clip, FrameSpec, NotApplicable
from tiktok_analyzer.analyzers.results.camera import (  # noqa: F401 - re-exported
    CameraResult,
    Motion,
    MotionSegment,
)
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult

__all__ = ["MOTIONS", "CameraAnalysis", "CameraResult", "MotionSegment"]

MOTIONS: tuple[str, ...] = Motion.__args__


@dataclass(frozen=True)
class _PairMotion:
    """Global motion from frame i to frame i+1, or invalid where it could not be measured."""

    valid: np.ndarray  # (P,) bool
    displacement: np.ndarray  # (P, 2) picture-content shift (x, y), short sides
    velocity: np.ndarray  # (P, 2) the same per second
    zoom: np.ndarray  # (P,) ln(scale) per second
    cut_like: np.ndarray  # (P,) bool: tracking failed and the picture changed wholesale


class CameraAnalysis(Analyzer):
    """Camera motion segments from a global similarity model between sampled frames."""

    name: ClassVar[str] = "camera_analysis"
    # 10 frames a second keeps a fast pan within the LK pyramid's reach; 144 px gives
    # enough corners for a stable fit at ~1 ms a frame pair.
    frames: ClassVar[FrameSpec] = FrameSpec(fps=10.0, short_side=144)
    # 0.93 s a clip on the H100 host (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances = 2
    depends_on: ClassVar[tuple[str, ...]] = ("cut_analysis",)
    Result: ClassVar[type[AnalyzerResult]] = CameraResult

    @dataclass
    class Params:
        window_s: float = 1.0  # labels are decided per window of about this length
        pan_threshold: float = 0.03  # short sides per second
        # |ln scale| per second. A zoom moves points in proportion to their distance from
        # the centre, on average about 0.55 short sides away in a 16:9 frame: at this rate
        # the picture moves on average as much as at the pan threshold.
        zoom_threshold: float = 0.05
        shake_threshold: float = 0.004  # RMS jitter, short sides per frame step
        shake_ratio: float = 1.5  # jitter must exceed the net speed this many times
        max_corners: int = 100  # a similarity has 4 unknowns: 100 corners fit it well
        lk_window: int = 11  # px at the finest pyramid level; 3 levels reach ~40 px shifts
        min_tracked: int = 12  # fewer tracked corners: motion unknown
        min_inlier_ratio: float = 0.5
        ransac_px: float = 1.0
        cut_guard_s: float = 0.05  # pairs this close to a reported cut are not measured
        cut_change: float = 0.08  # own cut check: mean block change (0..1) of a cut
        # Still corners: moved at most overlay_still_px (at the analysis size) between two
        # frames. Packed within overlay_max_share of the frame under a static fit, they are
        # an overlay, masked out for a second fit that is taken when its inliers cover
        # overlay_min_rest of the frame; a moving fit must cover as much beside them.
        overlay_still_px: float = 0.25
        overlay_max_share: float = 0.3
        overlay_min_rest: float = 0.5

    def analyze(self, clip: Clip) -> CameraResult:
        p = self.params
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        if len(times) < 2:
            raise NotApplicable("camera motion needs at least two frames")
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip.frames])
        pairs = self._pair_motion(gray, times)

        cuts = clip.upstream_result(CutAnalysisResult)
        if cuts is not None:
            cut_times = np.array([c.time_s for c in cuts.cuts], dtype=np.float64)
            source = "cut_analysis"
        else:
            mid = (times[:-1] + times[1:]) / 2
            cut_times = mid[pairs.cut_like]
            source = "own"
        # Never measure flow across a cut: the "motion" between two shots is meaningless.
        straddle = np.zeros(len(times) - 1, dtype=bool)
        for t in cut_times:
            straddle |= (times[:-1] < t + p.cut_guard_s) & (times[1:] > t - p.cut_guard_s)
        valid = pairs.valid & ~straddle

        end = max(float(clip.meta.duration_s), float(times[-1]))
        edges = np.unique(
            np.concatenate([[0.0], cut_times[(cut_times > 0) & (cut_times < end)], [end]])
        )
        segments: list[MotionSegment] = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            segments.extend(self._label_shot(a, b, times, pairs, valid))

        total = sum(s.end_s - s.start_s for s in segments)
        shares = {m: 0.0 for m in MOTIONS}
        for s in segments:
            shares[s.motion] += (s.end_s - s.start_s) / total if total > 0 else 0.0
        return CameraResult(
            segments=segments,
            shares={m: round(v, 4) for m, v in shares.items()},
            dominant=max(MOTIONS, key=lambda m: shares[m]),
            shots_source=source,
        )

    def _pair_motion(self, gray: np.ndarray, times: np.ndarray) -> _PairMotion:
        p = self.params
        n, h, w = gray.shape
        short = float(min(h, w))
        centre = np.array([w / 2.0, h / 2.0])
        n_pairs = n - 1
        valid = np.zeros(n_pairs, dtype=bool)
        displacement = np.zeros((n_pairs, 2))
        zoom = np.zeros(n_pairs)
        cut_like = np.zeros(n_pairs, dtype=bool)
        # Coarse block means (8x8 grid) for the own cut check.
        bh, bw = h // 8, w // 8
        blocks = gray[:, : bh * 8, : bw * 8].reshape(n, 8, bh, 8, bw).mean(axis=(2, 4)) / 255.0
        change = np.abs(np.diff(blocks, axis=0)).mean(axis=(1, 2))

        for i in range(n_pairs):
            dt = times[i + 1] - times[i]
            if dt <= 0:
                continue
            model = self._fit_pair(gray[i], gray[i + 1])
            if isinstance(model, str):
                # A picture without corners (flat colour) shows no motion a viewer could see.
                valid[i] = True
                cut_like[i] = change[i] > p.cut_change
                continue
            if model is None:
                cut_like[i] = change[i] > p.cut_change
                continue
            scale = float(np.hypot(model[0, 0], model[1, 0]))
            # Translation of the picture centre, so a zoom about the centre reads as no pan.
            shift = model[:, :2] @ centre + model[:, 2] - centre
            valid[i] = True
            displacement[i] = shift / short
            zoom[i] = np.log(scale) / dt
        dt = np.maximum(np.diff(times), 1e-6)
        return _PairMotion(
            valid=valid,
            displacement=displacement,
            velocity=displacement / dt[:, None],
            zoom=zoom,
            cut_like=cut_like,
        )

    def _fit_pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | str | None:
        """The camera's similarity (2x3) from frame ``a`` to ``b``; "flat" when ``a`` has
        too few corners to measure; None when tracking failed (a cut, or too much change).
        Still corners decide between an overlay, a subject and the camera (module doc)."""
        p = self.params
        track = self._track(a, b, None)
        if isinstance(track, str):
            return track if track == "flat" else None
        src, dst, model, inliers = track
        if model is None:
            return None
        still = np.hypot(*(dst - src).T) <= p.overlay_still_px
        if still.sum() < 3:
            return model
        overlay = _near(src[still], a.shape)
        moving = not _is_still(model, a.shape, p.overlay_still_px)
        # What the camera does when the still corners are the world, not an overlay.
        at_rest = _still_fit(src[still], dst[still]) if moving else model
        if overlay.mean() > p.overlay_max_share:
            return at_rest  # still corners all over the picture: a subject moves, if anything
        # Packed still corners: an overlay, or a patch of still background beside a subject.
        # Masked out, the rest of the picture (now with its own corners, no longer outshone,
        # and no overlay corner pulling the fit) moves as one across most of the frame only
        # under a camera move.
        retry = self._track(a, b, np.where(overlay, 0, 255).astype(np.uint8))
        if not isinstance(retry, str) and retry[2] is not None:
            src2, _, model2, inliers2 = retry
            if _near(src2[inliers2], a.shape).mean() >= p.overlay_min_rest:
                return model2
        if moving and _near(src[inliers & ~still], a.shape).mean() >= p.overlay_min_rest:
            return model
        return at_rest

    def _track(
        self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray] | str:
        """Corners of ``a`` (outside ``mask``'s zeros) tracked into ``b`` and the RANSAC
        similarity over them: (src, dst, model or None, inlier flags); "flat" with too few
        corners, "lost" with too few tracked."""
        p = self.params
        corners = cv2.goodFeaturesToTrack(
            a, maxCorners=p.max_corners, qualityLevel=0.01, minDistance=5, blockSize=5, mask=mask
        )
        if corners is None or len(corners) < p.min_tracked:
            return "flat"
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            a, b, corners, None, winSize=(p.lk_window, p.lk_window), maxLevel=3
        )
        ok = status.ravel() == 1
        if ok.sum() < p.min_tracked:
            return "lost"
        src, dst = corners[ok].reshape(-1, 2), moved[ok].reshape(-1, 2)
        model, inliers = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=p.ransac_px
        )
        if model is None or inliers.sum() < max(p.min_tracked, p.min_inlier_ratio * len(src)):
            return src, dst, None, np.zeros(len(src), dtype=bool)
        return src, dst, model, inliers.ravel().astype(bool)

    def _label_shot(
        self, start: float, end: float, times: np.ndarray, pairs: _PairMotion, valid: np.ndarray
    ) -> list[MotionSegment]:
        p = self.params
        mid = (times[:-1] + times[1:]) / 2
        in_shot = valid & (times[:-1] >= start) & (times[1:] <= end)
        if not in_shot.any():
            return []
        n_win = max(1, round((end - start) / p.window_s))
        bounds = np.linspace(start, end, n_win + 1)
        labels: list[tuple[str, float] | None] = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            sel = in_shot & (mid >= a) & (mid < b)
            labels.append(
                self._classify(pairs.displacement[sel], pairs.velocity[sel], pairs.zoom[sel])
                if sel.any()
                else None
            )
        # A window without a measurable pair takes its neighbour's label.
        for i in range(len(labels)):
            if labels[i] is None:
                labels[i] = next(
                    (
                        labels[j]
                        for j in (*range(i - 1, -1, -1), *range(i + 1, len(labels)))
                        if labels[j]
                    ),
                    None,
                )
        segments: list[MotionSegment] = []
        for (a, b), (motion, magnitude) in zip(
            zip(bounds[:-1], bounds[1:], strict=True), labels, strict=True
        ):
            if segments and segments[-1].motion == motion:
                last = segments[-1]
                span_old = last.end_s - last.start_s
                last.magnitude = round(
                    (last.magnitude * span_old + magnitude * (b - a)) / (span_old + b - a), 4
                )
                last.end_s = round(float(b), 3)
            else:
                segments.append(
                    MotionSegment(
                        start_s=round(float(a), 3),
                        end_s=round(float(b), 3),
                        motion=motion,
                        magnitude=round(magnitude, 4),
                    )
                )
        return segments

    def _classify(
        self, displacement: np.ndarray, velocity: np.ndarray, zoom: np.ndarray
    ) -> tuple[str, float]:
        """Label one window from its pairs' shifts and velocities (P, 2) and zoom rates (P,)."""
        p = self.params
        # Medians resist the odd mistracked pair; shake is judged on the spread around them.
        # Shake jumps the view by a random offset every frame, so its displacement per step
        # does not shrink with the step while a steady pan's does: jitter is measured per step.
        net = np.median(velocity, axis=0)
        z = float(np.median(zoom))
        step = displacement - displacement.mean(axis=0)
        jitter = float(np.sqrt(np.mean(np.sum(step**2, axis=1))))
        speed = float(np.hypot(*net))
        net_step = float(np.hypot(*np.median(displacement, axis=0)))
        if jitter > p.shake_threshold and jitter > p.shake_ratio * net_step:
            return "shake", jitter
        scores = {
            "pan": abs(net[0]) / p.pan_threshold,
            "tilt": abs(net[1]) / p.pan_threshold,
            "zoom": abs(z) / p.zoom_threshold,
        }
        kind = max(scores, key=scores.__getitem__)
        if scores[kind] < 1.0:
            return "static", speed
        if kind == "pan":
            return ("pan_left" if net[0] > 0 else "pan_right"), abs(float(net[0]))
        if kind == "tilt":
            return ("tilt_up" if net[1] > 0 else "tilt_down"), abs(float(net[1]))
        return ("zoom_in" if z > 0 else "zoom_out"), abs(z)


def _near(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where a frame of ``shape`` (h, w) lies within a tenth of the short side of any of
    ``points`` (x, y): the part of the picture a set of corners speaks for (and, around
    an overlay's corners, all of its box)."""
    h, w = shape
    r = max(1, round(min(h, w) / 10))
    grid = np.zeros((h, w), np.uint8)
    for x, y in points:
        cv2.rectangle(grid, (int(x) - r, int(y) - r), (int(x) + r, int(y) + r), 1, -1)
    return grid.astype(bool)


def _is_still(model: np.ndarray, shape: tuple[int, int], px: float) -> bool:
    """Whether a similarity moves no point of a frame of ``shape`` by more than about ``px``."""
    h, w = shape
    centre = np.array([w / 2.0, h / 2.0])
    shift = model[:, :2] @ centre + model[:, 2] - centre
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    return float(np.hypot(*shift)) <= px and abs(scale - 1.0) * max(h, w) / 2 <= px


def _still_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity over the corners that stood still (each moved at most a fraction of
    a pixel): the camera at rest, with whatever jitter those corners show."""
    model, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    return model if model is not None else np.eye(2, 3)
