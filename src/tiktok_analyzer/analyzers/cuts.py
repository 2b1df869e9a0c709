"""Cut analysis: where the picture changes shot, and how (hard cut, fade, dissolve, wipe).

It reads every decoded frame at a small size and builds per frame: a joint HSV histogram
(blind to where colours sit, so motion barely moves it), a coarse grid of block-mean
colours (linear in the pixels, so a dissolve is a straight line between its two ends),
the mean luma (a fade through black is a valley) and the correlation with the frame
before once aligned by phase correlation (near 1 under any camera motion, near 0 across
a cut even between two shots of the same colours). Then:

* hard cut: one frame step whose histogram change stands far above the steps around it
  (an adaptive threshold over a rolling window, after PySceneDetect's AdaptiveDetector),
  or whose aligned correlation collapses where it is otherwise steady; either way the
  step must carry most of the block-mean change nearby (a dissolve between flat colours
  also jumps the histogram once, but its block means drift over many frames);
* flash: a bright jump that comes back, within a few frames, to what was there before it
  is a flash of light, not a cut; punch-in: a jump to the frame before scaled up about
  its centre is a zoom within the shot, but only when every part of the new frame is that
  part of the old one enlarged (a cut to a tighter framing of another shot matches a
  scale-up as a whole by chance, never cell by cell). Both are reported apart
  (visual_effects uses them);
* fade: a short luma valley near black between two lit stretches, at its darkest frame;
* dissolve: a frame whose block means sit halfway on the straight line between the
  frames a few steps before and after it, every cell equally far along, while the
  histogram changes too (a pan over a smooth gradient is linear in block means but keeps
  its histogram);
* wipe: over a few frames the grid's cells switch from the old shot to the new one at
  times that sweep across the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tiktok_analyzer.analyzers._frames import (
    aligned_correlation,
    block_distance,
    block_means,
    continuity,
    frame_rate,
    gray_frames,
    hist_distance,
    hsv_histograms,
    luma_of_blocks,
    zoom_match,
)
from tiktok_analyzer.analyzers.base import Analyzer, Clip, FrameSpec, NotApplicable
from tiktok_analyzer.analyzers.results.cuts import (  # noqa: F401 - re-exported
    Cut,
    CutAnalysisResult,
    CutKind,
    Flash,
    PunchIn,
    ShotSpan,
)

__all__ = ["Cut", "CutAnalysis", "Flash", "PunchIn", "ShotSpan"]


@dataclass(frozen=True)
class _Event:
    index: int  # position in the frame stack
    kind: CutKind
    score: float
    start: int  # first and last frame the transition touches (hard: index-1, index)
    end: int


class CutAnalysis(Analyzer):
    name = "cut_analysis"
    frames = FrameSpec(short_side=64, every_frame=True)
    # 0.43 s a clip on the H100 host, and every clip's later stages wait for it
    # (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances = 2

    @dataclass
    class Params:
        # Hard cut: the histogram step must exceed the rolling median of steps by this much
        # (total-variation distance, 0..1) and by this ratio.
        hard_threshold: float = 0.25
        adaptive_ratio: float = 3.0
        window_s: float = 0.5
        # A burst at least flash_min_rise (mean luma) brighter than the frames either side,
        # which show the same picture, lasting at most flash_max_s, is a flash.
        flash_max_s: float = 0.3
        flash_min_rise: float = 25.0
        # Fade: the valley's darkest mean luma (0..255) and how much brighter both sides get.
        fade_dark_luma: float = 24.0
        fade_rise_luma: float = 30.0
        fade_max_s: float = 1.5
        # Dissolve: the block-mean change (0..1) explained by a straight blend, and the
        # histogram change between the two ends.
        dissolve_min_change: float = 0.035
        dissolve_min_hist: float = 0.25
        dissolve_linearity: float = 0.6
        dissolve_max_s: float = 2.0
        # No single frame step may carry more than this share of a dissolve's change.
        dissolve_max_step: float = 0.35
        # Layout jump (a cut between shots of the same colours): the aligned correlation
        # with the frame before falls to at most this, and this far below its rolling median.
        layout_max_corr: float = 0.5
        layout_min_drop: float = 0.5
        # Punch-in: the frame matches the one before scaled by up to this, at least this well
        # (aligned correlation), and the histogram moves at most this much.
        punch_max_scale: float = 2.0
        punch_min_corr: float = 0.6
        punch_max_hist: float = 0.5
        # ... and each cell of a 3x3 grid over the frame matches its scaled-up counterpart at
        # least this well: a real punch-in repeats the whole picture, every part of it.
        punch_min_cell_corr: float = 0.8
        # Wipe: the cells' switch times spread over at least this many frames (10th to 90th
        # percentile) within wipe_max_s, and a plane over their positions explains this
        # share of their variance.
        wipe_min_frames: float = 3.0
        wipe_max_s: float = 1.2
        wipe_min_fit: float = 0.8
        # Cuts closer than this are one transition.
        min_gap_s: float = 0.1

    Result = CutAnalysisResult

    def analyze(self, clip: Clip) -> Result:
        frames, ts, idx = clip.frames, clip.timestamps_s, clip.frame_indices
        assert frames is not None and ts is not None and idx is not None
        if len(frames) < 3:
            raise NotApplicable("cut analysis needs at least 3 frames")
        p = self.params
        fps = frame_rate(ts, clip.meta.fps)

        feats = _Features.of(frames)
        hard = self._hard_candidates(feats, fps)
        hard, flashes = self._split_flashes(feats, hard, fps)
        hard, punches = self._split_punch_ins(feats, hard)
        feats = feats.without(flashes)
        fades = self._fades(feats, fps)
        dissolves = self._dissolves(feats, fps, fades)
        wipes = self._wipes(feats, fps)
        events = _merge(hard, fades, dissolves, wipes, max(1, round(p.min_gap_s * fps)))

        duration = max(float(clip.meta.duration_s), float(ts[-1]) + 1.0 / fps)
        cuts = [
            Cut(
                time_s=round(float(ts[e.index]), 4),
                frame=int(idx[e.index]),
                kind=e.kind,
                confidence=round(e.score, 3),
                start_s=round(float(ts[e.index if e.kind == "hard" else e.start]), 4),
                end_s=round(float(ts[e.index if e.kind == "hard" else e.end]), 4),
            )
            for e in events
        ]
        bounds = [0.0] + [c.time_s for c in cuts] + [duration]
        shots = [ShotSpan(start_s=a, end_s=b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        lengths = np.array([s.end_s - s.start_s for s in shots])
        return self.Result(
            cuts=cuts,
            shots=shots,
            cuts_per_minute=round(len(cuts) / duration * 60.0, 3),
            mean_shot_s=round(float(lengths.mean()), 4),
            median_shot_s=round(float(np.median(lengths)), 4),
            min_shot_s=round(float(lengths.min()), 4),
            max_shot_s=round(float(lengths.max()), 4),
            shot_count=len(shots),
            flashes=[
                Flash(
                    time_s=round(float(ts[a]), 4),
                    frame=int(idx[a]),
                    frames=b - a,
                    end_s=round(float(ts[min(b, len(ts) - 1)]), 4),
                )
                for a, b in flashes
            ],
            punch_ins=[
                PunchIn(
                    time_s=round(float(ts[t]), 4),
                    frame=int(idx[t]),
                    scale=round(scale, 2),
                    confidence=round(float(np.clip(r, 0.0, 1.0)), 3),
                )
                for t, scale, r in punches
            ],
        )

    def _hard_candidates(self, f: _Features, fps: float) -> list[_Event]:
        """Single-frame jumps: in colour (the histogram step far above the rolling median of
        steps, and carrying the nearby block-mean change) or in layout (phase correlation
        collapsing where it is otherwise steady: two shots of the same colours)."""
        p = self.params
        step, corr = f.step_hist, f.corr
        half = max(2, round(p.window_s * fps))
        base = _rolling_median_excluding(step, half, exclude=1)
        corr_base = _rolling_median_excluding(corr, half, exclude=1)
        n = len(step)
        colour = (step - base >= p.hard_threshold) & (step >= p.adaptive_ratio * base)
        layout = (corr <= p.layout_max_corr) & (corr_base - corr >= p.layout_min_drop)
        out: list[_Event] = []
        for t in np.flatnonzero(colour | layout):
            if t < 1:
                continue
            # A dissolve crosses a histogram bin edge in one step (flat colours), and its
            # middle can defeat the alignment of one pair of frames (two shots moving
            # apart); its block means, though, drift over many frames. A cut moves them
            # at once.
            a, b = max(t - 3, 0), min(t + 2, n - 1)
            span = float(block_distance(f.blocks[a], f.blocks[b]))
            if span > 0.02 and f.step_block[t] < 0.5 * span:
                continue
            if colour[t]:
                if step[t] < step[t - 1 : t + 2].max():
                    continue
                excess = (step[t] - base[t]) / p.hard_threshold
            else:
                if corr[t] > corr[t - 1 : t + 2].min() or colour[t - 1 : t + 2].any():
                    continue
                if _layout_holds(f.gray, t, p.layout_max_corr):
                    continue
                excess = (corr_base[t] - corr[t]) / p.layout_min_drop
            out.append(_Event(int(t), "hard", _confidence(excess), int(t) - 1, int(t)))
        return out

    def _split_punch_ins(
        self, f: _Features, cands: list[_Event]
    ) -> tuple[list[_Event], list[tuple[int, float, float]]]:
        """Drop jumps where the new frame is the old one scaled about its centre: a punch-in
        (or punch-out) zoom within the shot, not a cut. Returns (index, scale, correlation)."""
        p = self.params
        scales = np.arange(1.1, p.punch_max_scale + 1e-6, 0.1)
        kept: list[_Event] = []
        punches: list[tuple[int, float, float]] = []
        for c in cands:
            t = c.index
            # A zoom keeps the shot's colours; a cut to other colours is a cut whatever
            # its layout (flat pictures match any scale by chance).
            if f.step_hist[t] > p.punch_max_hist:
                kept.append(c)
                continue
            grow, r_in = zoom_match(f.gray[t - 1], f.gray[t], scales)
            shrink, r_out = zoom_match(f.gray[t], f.gray[t - 1], scales)
            scale, r = (grow, r_in) if r_in >= r_out else (1.0 / shrink, r_out)
            if (
                scale != 1.0
                and r >= max(p.punch_min_corr, f.corr[t] + 0.3)
                and _cells_match_scaled(f.gray[t - 1], f.gray[t], scale) >= p.punch_min_cell_corr
            ):
                punches.append((t, scale, r))
            else:
                kept.append(c)
        return kept, punches

    def _split_flashes(
        self, f: _Features, cands: list[_Event], fps: float
    ) -> tuple[list[_Event], list[tuple[int, int]]]:
        """Drop jumps into or out of a brief bright burst that leaves the picture as it
        was: a flash, not a cut. Returns the rest and each flash's (first, end) frames.

        A jump is tried as the flash's start and as its end: the two steps of a one-frame
        flash are equally big, and only one of them survives as a candidate."""
        reach = max(2, round(self.params.flash_max_s * fps))
        n = len(f.step_hist)
        flashes: list[tuple[int, int]] = []
        for c in cands:
            t = c.index
            if any(a <= t <= b for a, b in flashes):
                continue
            starts = [(t, u) for u in range(t + 1, min(t + reach, n - 1) + 1)]
            ends = [(s, t) for s in range(t - 1, max(t - reach, 1) - 1, -1)]
            for a, b in starts + ends:
                if self._is_flash(f, a, b, f.step_hist[t], f.step_block[t]):
                    flashes.append((a, b))
                    break
        kept = [c for c in cands if not any(a <= c.index <= b for a, b in flashes)]
        return kept, flashes

    def _is_flash(self, f: _Features, a: int, b: int, jump_hist: float, jump_block: float) -> bool:
        """Whether frames a..b-1 are a burst of light over the picture: brighter than the
        frames either side, which show (nearly) the same picture, far closer to each other
        than the jump was. (A dip to black and back is no flash: a fast fade.)"""
        bright = float(f.luma[a:b].mean())
        rise = self.params.flash_min_rise
        if bright < f.luma[a - 1] + rise or bright < f.luma[b] + rise:
            return False
        back_h = float(hist_distance(f.hist[a - 1], f.hist[b]))
        back_b = float(block_distance(f.blocks[a - 1], f.blocks[b]))
        return back_h < 0.4 * jump_hist and back_b < 0.4 * max(jump_block, 0.02)

    def _fades(self, f: _Features, fps: float) -> list[_Event]:
        """Short luma valleys near black between two lit stretches."""
        p = self.params
        luma = f.luma
        n = len(luma)
        reach = max(2, round(p.fade_max_s * fps / 2))
        dark = luma <= p.fade_dark_luma
        out: list[_Event] = []
        t = 0
        while t < n:
            if not dark[t]:
                t += 1
                continue
            run_end = t
            while run_end + 1 < n and dark[run_end + 1]:
                run_end += 1
            a, b = t, run_end
            t = run_end + 1
            if b - a + 1 > reach * 2:
                continue  # a black shot, not a fade's dip
            floor = float(luma[a : b + 1].min())
            left = luma[max(a - reach, 0) : a]
            right = luma[b + 1 : b + 1 + reach]
            if len(left) == 0 or len(right) == 0:
                continue  # fading in from or out to black at the clip's ends is no cut
            lit_left, lit_right = float(left.max()), float(right.max())
            if min(lit_left, lit_right) - floor < p.fade_rise_luma:
                continue
            # Transition extent: where the luma leaves and regains most of its lit level.
            start = a - 1
            while (
                start > max(a - reach, 0)
                and luma[start - 1] > luma[start]
                and luma[start] < 0.9 * lit_left
            ):
                start -= 1
            end = b + 1
            while (
                end < min(b + reach, n - 1)
                and luma[end + 1] > luma[end]
                and luma[end] < 0.9 * lit_right
            ):
                end += 1
            depth = (min(lit_left, lit_right) - floor) / p.fade_rise_luma
            # The darkest frame; for a held black, the middle of the frames at the floor.
            bottom = a + np.flatnonzero(luma[a : b + 1] <= floor + 2.0)
            centre = int(bottom[len(bottom) // 2])
            out.append(_Event(centre, "fade", _confidence(depth), start, end))
        return out

    def _dissolves(self, f: _Features, fps: float, fades: list[_Event]) -> list[_Event]:
        """Frames halfway on a straight blend between the frames around them.

        For a linear dissolve of length L centred at c, the score at half-width w,
        g_w(t) = |B - A| - 2 |M - (A + B) / 2| with A, M, B the frames at t - w, t, t + w,
        is the whole change at t = c for every w >= L / 2 and falls off linearly away
        from c; its maximum over all widths therefore peaks at the centre.
        """
        p = self.params
        n = len(f.luma)
        # Dense half-widths (about 20 % apart) up to dissolve_max_s / 2: some width must
        # reach just past the transition's ends without reaching into a neighbouring shot.
        top = max(2, round(p.dissolve_max_s * fps / 2))
        widths = sorted({max(1, round(x)) for x in np.geomspace(1, top, 16)})
        widths = [w for w in widths if 2 * w < n]
        # A blend's ends must be shots, not somewhere along a fade next door.
        in_fade = np.zeros(n, dtype=bool)
        for e in fades:
            in_fade[e.start : e.end + 1] = True
        scores = np.zeros((len(widths), n), dtype=np.float32)
        for k, w in enumerate(widths):
            a, m, b = f.blocks[: n - 2 * w], f.blocks[w : n - w], f.blocks[2 * w :]
            total = block_distance(a, b)
            g = total - 2.0 * block_distance(m, 0.5 * (a + b))
            hist_change = hist_distance(f.hist[: n - 2 * w], f.hist[2 * w :])
            # A blend out of or into black is half of a fade (or a fade-in at the start).
            ends_lit = np.minimum(f.luma[: n - 2 * w], f.luma[2 * w :]) > 2 * p.fade_dark_luma
            # A hard cut amid motion can sit near a blend by chance; a dissolve spreads its
            # change over many steps instead of one.
            biggest_step = sliding_window_view(f.step_block[1:], 2 * w).max(axis=1)
            ok = (
                (total >= p.dissolve_min_change)
                & (g >= p.dissolve_linearity * total)
                & (hist_change >= p.dissolve_min_hist)
                & ends_lit
                & (biggest_step <= p.dissolve_max_step * total)
                & ~in_fade[: n - 2 * w]
                & ~in_fade[2 * w :]
            )
            scores[k, w : n - w] = np.where(ok, g, 0.0)
        best = scores.max(axis=0) if widths else np.zeros(n, dtype=np.float32)
        out: list[_Event] = []
        for t in np.flatnonzero(best > 0):
            # The narrowest width that already sees (nearly) the whole change: the
            # neighbourhood the centre must top, and the ends the blend runs between.
            w = widths[int(np.argmax(scores[:, t] >= 0.9 * best[t]))]
            lo, hi = max(t - w, 0), min(t + w, n - 1)
            if best[t] < best[lo : hi + 1].max() or not _blends_evenly(f.blocks, t, w):
                continue
            start, end = _blend_span(f.blocks, t, w)
            out.append(
                _Event(int(t), "dissolve", _confidence(best[t] / p.dissolve_min_change), start, end)
            )
        return out

    def _wipes(self, f: _Features, fps: float) -> list[_Event]:
        """Changes whose grid cells switch from the old picture to the new one at times
        that sweep across the frame (a hard cut or a dissolve switches them all at once)."""
        p = self.params
        n = len(f.luma)
        w = max(2, round(p.wipe_max_s * fps / 2))
        if 2 * w >= n:
            return []
        total = block_distance(f.blocks[: n - 2 * w], f.blocks[2 * w :])
        hist_change = hist_distance(f.hist[: n - 2 * w], f.hist[2 * w :])
        change = np.zeros(n, dtype=np.float32)
        change[w : n - w] = np.where(
            (total >= p.dissolve_min_change) & (hist_change >= p.dissolve_min_hist), total, 0.0
        )
        rows, cols = f.blocks.shape[1:3]
        ys, xs = np.mgrid[0:rows, 0:cols]
        out: list[_Event] = []
        for t in np.flatnonzero(change > 0):
            if change[t] < change[t - w : t + w + 1].max():
                continue
            a, b = f.blocks[t - w], f.blocks[t + w]
            d = b - a
            moved = np.abs(d).mean(axis=-1) >= 255 * p.dissolve_min_change
            if moved.sum() < max(4, rows * cols // 2):
                continue
            # Each cell's progress from the old picture (0) to the new (1), and the first
            # frame it is past half way.
            seg = f.blocks[t - w : t + w + 1]
            alpha = ((seg - a) * d).sum(axis=-1) / np.maximum((d**2).sum(axis=-1), 1e-6)
            tau = np.argmax(alpha >= 0.5, axis=0)[moved].astype(np.float64)
            spread = np.percentile(tau, 90) - np.percentile(tau, 10)
            if spread < p.wipe_min_frames:
                continue
            # The switch times must sweep: a plane over the cells' positions explains them.
            design = np.column_stack([np.ones(len(tau)), xs[moved], ys[moved]])
            coef = np.linalg.lstsq(design, tau, rcond=None)[0]
            fit = 1.0 - ((tau - design @ coef) ** 2).sum() / max(
                ((tau - tau.mean()) ** 2).sum(), 1e-9
            )
            if fit < p.wipe_min_fit:
                continue
            base = t - w
            centre = base + int(round(float(np.median(tau))))
            out.append(
                _Event(
                    centre,
                    "wipe",
                    _confidence(fit * change[t] / p.dissolve_min_change),
                    base + int(tau.min()) - 1,
                    base + int(tau.max()),
                )
            )
        return out


@dataclass(frozen=True)
class _Features:
    hist: np.ndarray  # (N, bins)
    blocks: np.ndarray  # (N, rows, cols, 3)
    gray: np.ndarray  # (N, H, W)
    corr: np.ndarray  # (N,) aligned correlation with the frame before; 1 for the first
    luma: np.ndarray  # (N,)
    step_hist: np.ndarray  # (N,) change from the frame before; 0 for the first
    step_block: np.ndarray  # (N,)

    @classmethod
    def of(cls, frames: np.ndarray) -> _Features:
        h, w = frames.shape[1:3]
        # About four cells across the short side: coarse enough to ignore motion of a
        # few pixels, fine enough to follow a colour change across the frame.
        short = 4
        grid = (
            (short, max(1, round(short * w / h)))
            if h <= w
            else (max(1, round(short * h / w)), short)
        )
        gray = gray_frames(frames)
        corr, _ = continuity(gray)
        return cls._build(hsv_histograms(frames), block_means(frames, grid), gray, corr)

    @classmethod
    def _build(
        cls, hist: np.ndarray, blocks: np.ndarray, gray: np.ndarray, corr: np.ndarray
    ) -> _Features:
        step_hist = np.zeros(len(hist), dtype=np.float32)
        step_block = np.zeros(len(hist), dtype=np.float32)
        step_hist[1:] = hist_distance(hist[1:], hist[:-1])
        step_block[1:] = block_distance(blocks[1:], blocks[:-1])
        return cls(hist, blocks, gray, corr, luma_of_blocks(blocks), step_hist, step_block)

    def without(self, flashes: list[tuple[int, int]]) -> _Features:
        """These features with each flash's frames replaced by the frame before it, so the
        gradual-transition detectors never take a flash for an end of a blend or a fade."""
        if not flashes:
            return self
        hist, blocks = self.hist.copy(), self.blocks.copy()
        for a, b in flashes:
            hist[a:b] = hist[a - 1]
            blocks[a:b] = blocks[a - 1]
        return self._build(hist, blocks, self.gray, self.corr)


def _rolling_median_excluding(x: np.ndarray, half: int, exclude: int) -> np.ndarray:
    """Median of x over [t-half, t+half] leaving out [t-exclude, t+exclude], for each t."""
    n = len(x)
    pad = np.pad(x, half, mode="reflect" if n > half else "edge")
    win = sliding_window_view(pad, 2 * half + 1)
    keep = np.ones(2 * half + 1, dtype=bool)
    keep[half - exclude : half + exclude + 1] = False
    return np.median(win[:, keep], axis=1)


def _layout_holds(gray: np.ndarray, t: int, limit: float) -> bool:
    """Whether the picture carries on across the step into frame t after all, seen from
    the frames two apart: a cut parts every frame before it from every frame after, but
    a periodic pattern under noise can fool the alignment of one pair of frames. Both
    pairs must agree: two real shots of similar layout (a street, then a pavement) can
    line up by chance across one of them."""
    window = cv2.createHanningWindow(gray.shape[:0:-1], cv2.CV_32F)
    pairs = [(a, b) for a, b in ((t - 2, t), (t - 1, t + 1)) if a >= 0 and b < len(gray)]
    return bool(pairs) and all(
        aligned_correlation(gray[a], gray[b], window)[0] > limit for a, b in pairs
    )


def _cells_match_scaled(before: np.ndarray, after: np.ndarray, scale: float) -> float:
    """The worst correlation, over a 3x3 grid of cells, between ``after`` and ``before``
    scaled by ``scale`` about its centre (below 1: ``after`` is the larger), once aligned
    by phase correlation. Smooth pictures of two different shots correlate as a whole
    (a face centred in both, a dark surround); a punch-in repeats every cell."""
    small, large = (before, after) if scale >= 1.0 else (after, before)
    s = max(scale, 1.0 / scale)
    h, w = small.shape
    x0, y0 = (w - w / s) / 2, (h - h / s) / 2
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    grown = cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(grown, large, window)
    ix, iy = int(round(dx)), int(round(dy))
    if abs(ix) >= w // 4 or abs(iy) >= h // 4:
        return 0.0
    a = grown[max(0, -iy) : h - max(0, iy), max(0, -ix) : w - max(0, ix)]
    b = large[max(0, iy) : h - max(0, -iy), max(0, ix) : w - max(0, -ix)]
    ch, cw = a.shape[0] // 3, a.shape[1] // 3
    worst = 1.0
    for i in range(3):
        for j in range(3):
            ca = a[i * ch : (i + 1) * ch, j * cw : (j + 1) * cw]
            cb = b[i * ch : (i + 1) * ch, j * cw : (j + 1) * cw]
            ca, cb = ca - ca.mean(), cb - cb.mean()
            denom = float(np.sqrt((ca * ca).sum() * (cb * cb).sum()))
            # A flat cell (sky, a dark surround) holds no evidence either way.
            if denom > 4.0 * ca.size:
                worst = min(worst, float((ca * cb).sum()) / denom)
    return worst


def _blends_evenly(blocks: np.ndarray, t: int, w: int) -> bool:
    """Whether every cell that changes is about as far along at frame t, between frames
    t - w and t + w: a dissolve mixes the whole picture at once, while a wipe (and a
    cut seen over a wide enough window) has some cells done and others untouched."""
    a, b = blocks[t - w], blocks[t + w]
    d = b - a
    moved = np.abs(d).mean(axis=-1) >= 8.0
    if not moved.any():
        return False
    alpha = ((blocks[t] - a) * d).sum(axis=-1) / np.maximum((d**2).sum(axis=-1), 1e-6)
    return float(np.std(alpha[moved])) <= 0.2


def _blend_span(blocks: np.ndarray, t: int, w: int) -> tuple[int, int]:
    """The frames a blend centred at t spans, seen between frames t - w and t + w: from
    the last frame still (nearly) all old picture to the first (nearly) all new one, by
    how far each has gone from the one to the other (its block means projected on the
    line between them)."""
    a, b = blocks[t - w], blocks[t + w]
    d = b - a
    seg = blocks[t - w : t + w + 1]
    alpha = ((seg - a) * d).sum(axis=(-3, -2, -1)) / max(float((d**2).sum()), 1e-6)
    before = np.flatnonzero(alpha[: w + 1] <= 0.1)
    after = np.flatnonzero(alpha[w:] >= 0.9)
    start = t - w + int(before[-1]) if len(before) else t - w
    end = t + int(after[0]) if len(after) else t + w
    return start, end


def _confidence(excess: float) -> float:
    """Map how far a score clears its threshold (1 = just at it) to 0..1."""
    return float(np.clip(1.0 - np.exp(-max(excess, 0.0)), 0.0, 1.0))


def _apart(e: _Event, c: _Event, gap: int) -> bool:
    """Whether two events are separate transitions. Centres must be more than ``gap``
    frames apart. Two gradual transitions must each have its centre outside the other's
    span (their estimated spans may touch when a short shot sits between them). A hard
    cut must keep ``gap`` frames off a gradual transition's span: the last steps of a
    blend between patterns can jump the histogram just past where its block means settle."""
    if abs(e.index - c.index) <= gap:
        return False
    hard_e, hard_c = e.kind == "hard", c.kind == "hard"
    if hard_e and hard_c:
        return True
    if not hard_e and not hard_c:
        return not (c.start <= e.index <= c.end or e.start <= c.index <= e.end)
    return e.end + gap < c.start or e.start - gap > c.end


def _merge(
    hard: list[_Event],
    fades: list[_Event],
    dissolves: list[_Event],
    wipes: list[_Event],
    gap: int,
) -> list[_Event]:
    """One event per transition. A fade's luma valley is the surest sign, then a wipe's
    sweep (seen over a short stretch, a wipe across few grid cells can pass for a blend),
    then a dissolve's blend (which no big single step can sit inside: the detector makes
    sure, while the last steps of a blend between patterns can jump the histogram); a hard
    cut is taken where none of those overlaps it."""
    chosen: list[_Event] = []
    for group in (fades, wipes, dissolves, hard):
        for e in sorted(group, key=lambda e: -e.score):
            if all(_apart(e, c, gap) for c in chosen):
                chosen.append(e)
    return sorted(chosen, key=lambda e: e.index)
