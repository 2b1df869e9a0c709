"""Per-frame picture features shared by the cut, scene and effects analyzers.

They take a whole frame stack (N, H, W, 3) uint8 RGB (or its gray (N, H, W)) at once and
treat it as one tall image wherever OpenCV allows: these analyzers see every frame of a
clip, so per-frame Python work is kept to the calls that cannot be stacked.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

__all__ = [
    "HIST_BINS",
    "aligned_correlation",
    "block_distance",
    "block_means",
    "continuity",
    "frame_rate",
    "gray_frames",
    "hist_distance",
    "hsv_histograms",
    "luma_of_blocks",
    "zoom_match",
]

#: Hue x saturation x value bins of :func:`hsv_histograms`.
HIST_BINS: tuple[int, int, int] = (12, 4, 4)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Saturation or value below this (the lowest of 4 bins) counts as grey.
_GREY_BELOW = 64
_LEVELS = np.arange(256)
# Gray variance (levels squared) below which a frame counts as featureless: only a truly
# uniform picture (padding, a synthetic black), not a flat wall with some noise on it.
_FLAT_ENERGY = 0.01
# Threads for continuity(): past 4 the interpreter lock (numpy on small frames) bounds it.
_CONTINUITY_THREADS = 4
# Per-channel look-up tables from an 8-bit HSV value to its share of the bin code.
# OpenCV's 8-bit hue runs 0..179.
_HUE_CODE = (
    np.minimum(_LEVELS * HIST_BINS[0] // 180, HIST_BINS[0] - 1) * HIST_BINS[1] * HIST_BINS[2]
).astype(np.uint8)
_SAT_CODE = ((_LEVELS * HIST_BINS[1] >> 8) * HIST_BINS[2]).astype(np.uint8)
_VAL_CODE = (_LEVELS * HIST_BINS[2] >> 8).astype(np.uint8)


def hsv_histograms(frames: np.ndarray) -> np.ndarray:
    """Joint HSV histogram of each frame, normalised to sum 1: shape (N, 12*4*4).

    A histogram ignores where colours sit in the frame, so a pan or a shake over the same
    scene barely moves it, while a cut to other content does. Grey and dark pixels
    (saturation or value in the lowest bin) have no meaningful hue (noise alone scatters
    it), so they all share hue bin 0.
    """
    n, h, w, _ = frames.shape
    hb, sb, vb = HIST_BINS
    # One colour conversion and table look-ups over the stacked frames (cv2 sees (N*H, W, 3)
    # as one image): the bin code of each pixel, hue * sb * vb + sat * vb + val, fits a byte.
    hsv = cv2.cvtColor(frames.reshape(n * h, w, 3), cv2.COLOR_RGB2HSV)
    hue, sat, val = cv2.split(hsv)
    hue_q = cv2.LUT(hue, _HUE_CODE)
    _, chroma = cv2.threshold(cv2.min(sat, val), _GREY_BELOW - 1, 255, cv2.THRESH_BINARY)
    code = cv2.add(
        cv2.add(cv2.bitwise_and(hue_q, chroma), cv2.LUT(sat, _SAT_CODE)), cv2.LUT(val, _VAL_CODE)
    )
    code = code.reshape(n, h * w)
    size = hb * sb * vb
    out = np.empty((n, size), dtype=np.float32)
    for i in range(n):
        out[i] = cv2.calcHist([code[i]], [0], None, [size], [0, size]).ravel()
    return out / float(h * w)


def block_means(frames: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean RGB of each cell of a (rows, cols) grid: shape (N, rows, cols, 3), float32.

    Block means are linear in the pixels, so a dissolve's middle frame is the mean of its
    two ends' blocks, and coarse blocks shrug off small motion. (cv2's area resize of the
    stacked frames does the averaging; its output is rounded to whole units, far below
    anything the callers threshold.)
    """
    n, h, w, _ = frames.shape
    rows, cols = grid
    bh, bw = h // rows, w // cols
    if bh == 0 or bw == 0:
        raise ValueError(f"frames of {h}x{w} are too small for a {rows}x{cols} grid")
    # Crop the remainder centred, so the grid covers the middle of the picture.
    y0, x0 = (h - bh * rows) // 2, (w - bw * cols) // 2
    crop = np.ascontiguousarray(frames[:, y0 : y0 + bh * rows, x0 : x0 + bw * cols])
    small = cv2.resize(
        crop.reshape(n * bh * rows, bw * cols, 3), (cols, n * rows), interpolation=cv2.INTER_AREA
    )
    return small.reshape(n, rows, cols, 3).astype(np.float32)


def luma_of_blocks(blocks: np.ndarray) -> np.ndarray:
    """Mean luma (0..255) of each frame from its block means: shape (N,)."""
    return blocks.reshape(len(blocks), -1, 3).mean(axis=1) @ _LUMA


def hist_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Total-variation distance of normalised histograms along the last axis, in 0..1."""
    return 0.5 * np.abs(a - b).sum(axis=-1)


def block_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of block means over the (rows, cols, 3) axes, in 0..1."""
    return np.abs(a - b).mean(axis=(-3, -2, -1)) / 255.0


def frame_rate(timestamps_s: np.ndarray, fallback: float) -> float:
    """The clip's frame rate from its timestamps (median spacing, robust to one odd gap)."""
    if len(timestamps_s) >= 2:
        step = float(np.median(np.diff(timestamps_s)))
        if step > 0:
            return 1.0 / step
    return fallback


def gray_frames(frames: np.ndarray) -> np.ndarray:
    """Luma of each frame as float32 (N, H, W), 0..255."""
    n, h, w, _ = frames.shape
    gray = cv2.cvtColor(frames.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY)
    return gray.reshape(n, h, w).astype(np.float32)


def aligned_correlation(
    before: np.ndarray, after: np.ndarray, window: np.ndarray
) -> tuple[float, float, float]:
    """How well ``after`` (gray, H x W) is ``before`` moved: returns (correlation, dx, dy),
    the shift (pixels) found by phase correlation and the normalised cross-correlation
    (-1..1) of the two frames' overlap once aligned by it (rounded to whole pixels).

    The correlation is near 1 when a frame is its predecessor moved (a pan, a shake, a
    slow zoom or noise barely lower it) and near 0 when the picture's layout changed: it
    sees a cut between two shots of the same colours, which a histogram cannot. (Phase
    correlation's own peak height is a poor judge of that on smooth pictures.)
    """
    return _aligned(before, after, window, before.var() < _FLAT_ENERGY, after.var() < _FLAT_ENERGY)


def _aligned(
    before: np.ndarray, after: np.ndarray, window: np.ndarray, flat_before: bool, flat_after: bool
) -> tuple[float, float, float]:
    """:func:`aligned_correlation` with each frame's flatness already known."""
    # A featureless frame (black, white, one flat colour) has no layout to compare, nor a
    # shift to find: featureless twice is continuity, featureless once is a change.
    if flat_before or flat_after:
        return (1.0 if flat_before and flat_after else 0.0), 0.0, 0.0
    h, w = before.shape
    (dx, dy), _ = cv2.phaseCorrelate(before, after, window)
    ix, iy = int(round(dx)), int(round(dy))
    if abs(ix) >= w // 2 or abs(iy) >= h // 2:
        return 0.0, dx, dy
    a = before[max(0, -iy) : h - max(0, iy), max(0, -ix) : w - max(0, ix)]
    b = after[max(0, iy) : h - max(0, -iy), max(0, ix) : w - max(0, -ix)]
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return (float((a * b).sum()) / denom if denom > 1e-6 else 0.0), dx, dy


def continuity(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`aligned_correlation` of each frame with the one before: correlations (N,)
    and shifts (N, 2) as (dx, dy); the first frame gets 1 and no shift."""
    n, h, w = gray.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    corr = np.ones(n, dtype=np.float32)
    shift = np.zeros((n, 2), dtype=np.float32)
    flat = [bool(v < _FLAT_ENERGY) for v in gray.reshape(n, -1).var(axis=1)]

    def pairs(lo: int, hi: int) -> None:
        for t in range(lo, hi):
            c, dx, dy = _aligned(gray[t - 1], gray[t], window, flat[t - 1], flat[t])
            corr[t], shift[t] = c, (dx, dy)

    # phaseCorrelate lets go of the interpreter lock: a few threads over runs of pairs
    # (each writes its own slots). 900 frames of 64 x 114 on 2 cores: 0.13 s -> 0.07 s.
    workers = max(1, min(_CONTINUITY_THREADS, (os.cpu_count() or 1), (n - 1) // 64))
    if workers == 1:
        pairs(1, n)
    else:
        bounds = np.linspace(1, n, workers + 1).astype(int)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(pairs, bounds[:-1], bounds[1:]))
    return corr, shift


def zoom_match(before: np.ndarray, after: np.ndarray, scales: np.ndarray) -> tuple[float, float]:
    """Which centred scale-up of ``before`` (gray, H x W) best explains ``after``: returns
    (scale, aligned correlation); scale 1.0 when no scale-up beats the frame as it is.
    A punch-in shows the same picture larger from one frame to the next; a cut matches no
    scale."""
    h, w = before.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    best = (1.0, aligned_correlation(before, after, window)[0])
    for s in scales:
        x0, y0 = (w - w / s) / 2, (h - h / s) / 2
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
        grown = cv2.warpAffine(
            before, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        c = aligned_correlation(grown, after, window)[0]
        if c > best[1]:
            best = (float(s), c)
    return best
