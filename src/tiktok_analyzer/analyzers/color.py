"""Colour: the clip's palette, its brightness, saturation, warmth and colourfulness, per
scene, and how much the colour changes over time.

The palette is clustered in CIELAB, where Euclidean distance roughly follows perceived
difference, so k-means centres are perceptual averages and near-duplicate clusters can be
merged by a Delta-E threshold (CIEDE2000) instead of an arbitrary RGB distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from tiktok_analyzer.analyzers.base import Analyzer, AnalyzerResult, Clip, FrameSpec
from tiktok_analyzer.analyzers.results.color import (  # noqa: F401 - re-exported
    ColorResult,
    ColorVariety,
    PaletteColor,
    ScenePalette,
)
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult

__all__ = ["ColorAnalysis", "ColorResult", "PaletteColor", "ScenePalette", "delta_e_2000"]

# Lab is quantised to this many units before clustering: far below a just-noticeable
# difference (~1-2 Delta-E), and it turns ~10^5 pixels into ~10^3 weighted points.
_LAB_BIN = 2.0


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), broadcasting over the last axis
    of two (..., 3) Lab arrays."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    dh_big = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        np.abs(h1p - h2p) <= 180,
        h_sum / 2,
        np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
    )
    h_mean = np.where(chroma_zero, h_sum, h_mean)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt(
        (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h)
    )


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> CIELAB float32 (..., 3), L in 0..100."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(rgb.shape)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> uint8 sRGB (..., 3)."""
    flat = np.asarray(lab, dtype=np.float32).reshape(-1, 1, 3)
    rgb = cv2.cvtColor(flat, cv2.COLOR_Lab2RGB).reshape(np.shape(lab))
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _weighted_kmeans(
    points: np.ndarray, weights: np.ndarray, k: int, iterations: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on weighted points with k-means++ seeding; returns (centres, cluster weight).

    Own implementation rather than cv2.kmeans: that one takes no weights and seeds from
    OpenCV's global RNG, so results would depend on what else ran in the process."""
    k = min(k, len(points))
    rng = np.random.default_rng(seed)
    prob = weights / weights.sum()
    centres = [points[rng.choice(len(points), p=prob)]]
    dist2 = np.sum((points - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        score = dist2 * weights
        if score.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=score / score.sum())])
        dist2 = np.minimum(dist2, np.sum((points - centres[-1]) ** 2, axis=1))
    c = np.array(centres, dtype=np.float64)
    for _ in range(iterations):
        d = ((points[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        label = d.argmin(axis=1)
        mass = np.bincount(label, weights=weights, minlength=len(c))
        sums = np.stack(
            [
                np.bincount(label, weights=weights * points[:, j], minlength=len(c))
                for j in range(3)
            ],
            axis=1,
        )
        keep = mass > 0
        new = sums[keep] / mass[keep, None]
        if new.shape == c.shape and np.allclose(new, c, atol=0.05):
            c = new
            break
        c = new
    d = ((points[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    mass = np.bincount(d.argmin(axis=1), weights=weights, minlength=len(c))
    return c[mass > 0], mass[mass > 0]


def _merge_close(centres: np.ndarray, mass: np.ndarray, max_delta_e: float):
    """Merge the closest pair of clusters while their CIEDE2000 distance is below the
    threshold: k-means splits one large flat colour into several near-identical centres."""
    centres, mass = list(centres), list(mass)
    while len(centres) > 1:
        c = np.array(centres)
        d = delta_e_2000(c[:, None, :], c[None, :, :])
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] >= max_delta_e:
            break
        w = mass[i] + mass[j]
        centres[i] = (centres[i] * mass[i] + centres[j] * mass[j]) / w
        mass[i] = w
        del centres[j], mass[j]
    return np.array(centres), np.array(mass)


@dataclass(frozen=True)
class _FrameStats:
    mean_lab: np.ndarray  # (N, 3)
    brightness: np.ndarray  # (N,)
    saturation: np.ndarray
    warmth: np.ndarray
    colorfulness: np.ndarray


def _frame_stats(frames: np.ndarray, lab: np.ndarray) -> _FrameStats:
    rgb = frames.astype(np.float32)
    n = len(frames)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # Hasler & Suesstrunk's opponent-colour statistic, per frame.
    rg = (r - g).reshape(n, -1)
    yb = (0.5 * (r + g) - b).reshape(n, -1)
    colorfulness = np.hypot(rg.std(axis=1), yb.std(axis=1)) + 0.3 * np.hypot(
        rg.mean(axis=1), yb.mean(axis=1)
    )
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return _FrameStats(
        mean_lab=lab.reshape(n, -1, 3).mean(axis=1),
        brightness=lab[..., 0].reshape(n, -1).mean(axis=1) / 100.0,
        saturation=sat.reshape(n, -1).mean(axis=1),
        warmth=((r - b) / 255.0).reshape(n, -1).mean(axis=1),
        colorfulness=colorfulness,
    )


class ColorAnalysis(Analyzer):
    """Palette and colour statistics of the clip and of each scene."""

    name: ClassVar[str] = "color_analysis"
    # Colour statistics need few pixels: 2 frames a second at 64 px is ~7,000 pixels a frame.
    frames: ClassVar[FrameSpec] = FrameSpec(fps=2.0, short_side=64)
    depends_on: ClassVar[tuple[str, ...]] = ("scene_segmentation",)
    Result: ClassVar[type[AnalyzerResult]] = ColorResult

    @dataclass
    class Params:
        clusters: int = 8  # k-means k for the whole clip, before merging
        scene_clusters: int = 5
        merge_delta_e: float = 8.0  # clusters closer than this (CIEDE2000) are one colour
        min_share: float = 0.01  # palette entries smaller than this are dropped
        max_colors: int = 8
        scene_max_colors: int = 5
        window_s: float = 5.0  # per_scene windows when scene_segmentation is missing
        iterations: int = 30
        seed: int = 0

    def analyze(self, clip: Clip) -> ColorResult:
        p = self.params
        frames = clip.frames
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        lab = rgb_to_lab(frames)
        stats = _frame_stats(frames, lab)

        upstream = clip.upstream_result(SceneSegmentationResult)
        if upstream is not None and upstream.scenes:
            bounds = [(s.start_s, s.end_s) for s in upstream.scenes]
            source = "scene_segmentation"
        else:
            bounds = self._windows(clip.meta.duration_s or float(times[-1]), p.window_s)
            source = "windows"

        per_scene = []
        for start, end in bounds:
            idx = np.flatnonzero((times >= start) & (times < end))
            if idx.size == 0:
                # A scene shorter than the sampling step: describe it by its nearest frame.
                idx = np.array([int(np.argmin(np.abs(times - (start + end) / 2)))])
            per_scene.append(
                ScenePalette(
                    start_s=round(start, 3),
                    end_s=round(end, 3),
                    palette=self._palette(lab[idx], p.scene_clusters, p.scene_max_colors),
                    brightness=round(float(stats.brightness[idx].mean()), 4),
                    saturation=round(float(stats.saturation[idx].mean()), 4),
                    warmth=round(float(stats.warmth[idx].mean()), 4),
                )
            )

        steps = delta_e_2000(stats.mean_lab[1:], stats.mean_lab[:-1])
        return ColorResult(
            palette=self._palette(lab, p.clusters, p.max_colors),
            brightness=round(float(stats.brightness.mean()), 4),
            saturation=round(float(stats.saturation.mean()), 4),
            warmth=round(float(stats.warmth.mean()), 4),
            colorfulness=round(float(stats.colorfulness.mean()), 2),
            per_scene=per_scene,
            per_scene_source=source,
            variety=ColorVariety(
                mean_delta_e=round(float(steps.mean()), 3) if steps.size else 0.0,
                max_delta_e=round(float(steps.max()), 3) if steps.size else 0.0,
            ),
        )

    @staticmethod
    def _windows(duration_s: float, window_s: float) -> list[tuple[float, float]]:
        n = max(1, round(duration_s / window_s))
        edges = np.linspace(0.0, duration_s, n + 1)
        return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))

    def _palette(self, lab: np.ndarray, k: int, max_colors: int) -> list[PaletteColor]:
        p = self.params
        flat = lab.reshape(-1, 3)
        q = np.rint(flat / _LAB_BIN).astype(np.int64)
        # One integer key per Lab bin (L 0..50, a and b -64..64 after binning) so np.unique
        # runs on a flat array; each bin is represented by its pixels' exact mean, so a flat
        # colour keeps its exact value.
        key = (q[:, 0] * 256 + (q[:, 1] + 128)) * 256 + (q[:, 2] + 128)
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        points = (
            np.stack([np.bincount(inverse, weights=flat[:, j]) for j in range(3)], axis=1)
            / counts[:, None]
        )
        centres, mass = _weighted_kmeans(points, counts.astype(np.float64), k, p.iterations, p.seed)
        centres, mass = _merge_close(centres, mass, p.merge_delta_e)
        share = mass / counts.sum()
        order = np.argsort(-share)
        order = [i for i in order if share[i] >= p.min_share][:max_colors]
        rgb = lab_to_rgb(centres[order])
        return [
            PaletteColor(
                rgb=[int(v) for v in c],
                hex="#{:02x}{:02x}{:02x}".format(*(int(v) for v in c)),
                share=round(float(share[i]), 4),
                lab=[round(float(v), 2) for v in centres[i]],
            )
            for c, i in zip(rgb, order, strict=True)
        ]
