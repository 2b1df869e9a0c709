"""Technical picture quality: sharpness, noise, exposure, contrast and compression blocking,
per frame, per second and for the clip, each as a 0..100 score (noise also as a sigma).

Everything is measured on the luma of frames with a 360 px short side, roughly what a phone
screen shows of a vertical clip, so the scores describe what a viewer sees rather than the
file's native resolution. Sharpness and noise are separated explicitly: noise raises every
high-pass energy, so the noise's known contribution is subtracted from the sharpness energy
instead of letting a noisy clip pass as a sharp one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from tiktok_analyzer.analyzers.base import Analyzer, AnalyzerResult, Clip, FrameSpec
from tiktok_analyzer.analyzers.results.quality import (  # noqa: F401 - re-exported
    QualityResult,
    SecondQuality,
)

__all__ = ["ContentQuality", "QualityResult", "SecondQuality", "frame_quality"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Immerkaer (1996): this kernel cancels planes and linear ramps, so on smooth content its
# response is mostly noise; for white noise of sigma s, E|response| = 6 s sqrt(2 / pi).
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_IMMERKAER_MEAN_ABS = 6.0 * np.sqrt(2.0 / np.pi)
# Sharpness is the energy of a Laplacian of Gaussian (sigma 1 px): fine enough to see a
# 1 px blur, coarse enough that noise leaks through weakly. White noise of sigma s adds
# s^2 times the filter's sum of squared taps to its variance (computed once below).
_SHARP_SIGMA = 1.0


def _log_filter(gray: np.ndarray) -> np.ndarray:
    return cv2.Laplacian(cv2.GaussianBlur(gray, (0, 0), _SHARP_SIGMA), cv2.CV_32F, ksize=1)


def _noise_gain() -> float:
    impulse = np.zeros((31, 31), np.float32)
    impulse[15, 15] = 1.0
    return float((_log_filter(impulse) ** 2).sum())


_LOG_NOISE_GAIN = _noise_gain()


@dataclass(frozen=True)
class FrameQuality:
    """Raw measurements of one frame (grey levels 0..255)."""

    detail_rms: float  # RMS Laplacian-of-Gaussian response, noise removed
    noise_sigma: float
    mean: float  # 0..1
    clipped: float  # share of pixels crushed to black or blown to white
    rms_contrast: float  # 0..1
    block_excess: float  # mean step at coding-block edges over the steps beside them, minus 1


def frame_quality(gray: np.ndarray, block_period: float) -> FrameQuality:
    """Measure one float32 luma frame; ``block_period`` is the coding-block size in this
    frame's pixels (8 source pixels after resizing)."""
    # Noise: the Immerkaer response over the flatter half of the picture (by gradient of a
    # smoothed copy), where texture and edges do not leak into it.
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5)
    grad = np.abs(cv2.Sobel(smooth, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    response = np.abs(cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER))[1:-1, 1:-1]
    grad = grad[1:-1, 1:-1]
    flat = grad <= np.median(grad)
    noise_sigma = float(response[flat].mean() / _IMMERKAER_MEAN_ABS)

    detail_var = float(_log_filter(gray).var()) - _LOG_NOISE_GAIN * noise_sigma**2
    mean = float(gray.mean()) / 255.0
    clipped = float(np.count_nonzero((gray <= 4) | (gray >= 251))) / gray.size
    return FrameQuality(
        detail_rms=float(np.sqrt(max(detail_var, 0.0))),
        noise_sigma=noise_sigma,
        mean=mean,
        clipped=clipped,
        rms_contrast=float(gray.std()) / 255.0,
        block_excess=_block_excess(gray, block_period),
    )


def _block_excess(gray: np.ndarray, period: float) -> float:
    """How much larger the luma step is across coding-block edges than a little inside the
    blocks (0 = none), in both directions. Block-based codecs quantise each block on its
    own, so under heavy compression the blocks' edges show as a grid."""
    if period < 2.0:
        return 0.0  # the grid is finer than the pixels: blocking is invisible here
    # Compare each edge with the steps two pixels to either side, not with all other steps:
    # 4:2:0 chroma, upsampled by the decoder, makes every other step larger at full size,
    # and block edges all fall on the same parity. Where blocks are under 4 px (a 3x
    # downscale) that pattern is averaged away and the next steps are inside the block.
    offset = 2 if period >= 4.0 else 1
    out = []
    for axis in (0, 1):
        step = np.abs(np.diff(gray, axis=axis)).mean(axis=1 - axis)  # step[i]: i -> i+1
        edges = np.round(np.arange(period, len(step), period)).astype(int) - 1
        edges = edges[(edges >= offset) & (edges < len(step) - offset)]
        if edges.size == 0:
            continue
        base = (step[edges - offset].mean() + step[edges + offset].mean()) / 2
        out.append(step[edges].mean() / base - 1.0 if base > 1e-3 else 0.0)
    return max(0.0, float(np.mean(out))) if out else 0.0


class ContentQuality(Analyzer):
    """Sharpness, noise, exposure, contrast, blocking and an overall score."""

    name: ClassVar[str] = "content_quality"
    # Quality varies slowly; 2 frames a second is enough, but detail and noise need
    # resolution: at 360 px a 1 px source blur still changes the sharpness energy by ~10 %.
    frames: ClassVar[FrameSpec] = FrameSpec(fps=2.0, short_side=360)
    # 0.92 s a clip on the H100 host (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances = 2
    Result: ClassVar[type[AnalyzerResult]] = QualityResult

    @dataclass
    class Params:
        sharp_ref: float = 5.0  # detail RMS (grey levels) that scores 63 (1 - 1/e)
        noise_ref: float = 10.0  # noise sigma that scores 37 (1/e)
        contrast_full: float = 0.2  # RMS contrast that scores 100
        # Block-edge excess that scores 63 (1 - 1/e). Halving the picture averages each block
        # edge with its neighbours: at 360 px a 720 px JPEG of quality 10 reads ~0.5, while
        # x264 at CRF 18 on smooth content reads ~0.1.
        block_ref: float = 0.4
        w_sharpness: float = 0.35
        w_noise: float = 0.30
        w_exposure: float = 0.15
        w_contrast: float = 0.10
        w_blockiness: float = 0.10

    def analyze(self, clip: Clip) -> QualityResult:
        frames = clip.frames
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        src_short = min(clip.meta.width, clip.meta.height) or min(frames.shape[1:3])
        period = 8.0 * min(frames.shape[1:3]) / src_short
        # Frame by frame: a float copy of the whole stack would take ~3 MB a frame.
        table = np.array(
            [self._scores(frame_quality(f.astype(np.float32) @ _LUMA, period)) for f in frames]
        )
        seconds = np.floor(times).astype(int)
        per_second = [
            SecondQuality(time_s=float(sec), **_named(table[seconds == sec].mean(axis=0)))
            for sec in np.unique(seconds)
        ]
        return QualityResult(**_named(table.mean(axis=0)), per_second=per_second)

    def _scores(self, q: FrameQuality) -> list[float]:
        """One frame's row of the table, in the order of :data:`_COLUMNS`."""
        p = self.params
        sharpness = 100.0 * (1.0 - np.exp(-q.detail_rms / p.sharp_ref))
        noise_score = 100.0 * np.exp(-q.noise_sigma / p.noise_ref)
        # Clipping loses detail for good; a mean far from mid-grey is merely unbalanced.
        balance = 1.0 - 0.75 * (2.0 * (q.mean - 0.5)) ** 2
        exposure = 100.0 * max(0.0, 1.0 - 2.0 * q.clipped) * balance
        contrast = 100.0 * min(1.0, q.rms_contrast / p.contrast_full)
        # Saturating: once blocks are plainly visible, more of the same adds little.
        blockiness = 100.0 * (1.0 - np.exp(-q.block_excess / p.block_ref))
        overall = (
            p.w_sharpness * sharpness
            + p.w_noise * noise_score
            + p.w_exposure * exposure
            + p.w_contrast * contrast
            + p.w_blockiness * (100.0 - blockiness)
        ) / (p.w_sharpness + p.w_noise + p.w_exposure + p.w_contrast + p.w_blockiness)
        return [sharpness, q.noise_sigma, noise_score, exposure, contrast, blockiness, overall]


_COLUMNS = ("sharpness", "noise", "noise_score", "exposure", "contrast", "blockiness", "overall")


def _named(row: np.ndarray) -> dict[str, float]:
    return {
        k: round(float(v), 3 if k == "noise" else 2) for k, v in zip(_COLUMNS, row, strict=True)
    }
