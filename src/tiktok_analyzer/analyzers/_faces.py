"""What the two face analyzers (``eye_tracking``, ``age_estimation``) share: mediapipe's
bundled graphs, normalised boxes (:data:`._tracking.Box`), and the face tracker that turns
per-frame faces into tracks.

mediapipe 0.10.x carries its face models inside the wheel (``mediapipe/modules/...``), so
the face finding always runs on real weights, offline; the weights manifest lists those
files as ``bundled`` with their SHA-256 (``weights_manifest/eye_tracking.toml``,
``age_estimation.toml``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from tiktok_analyzer.analyzers._tracking import Box, Tracker, box_iou

__all__ = ["Box", "FaceTracker", "clip_box", "rgb_frame"]

# mediapipe logs through absl/glog to stderr at start; keep Triton's log readable.
os.environ.setdefault("GLOG_minloglevel", "2")


def clip_box(box: Sequence[float]) -> Box:
    x0, y0, x1, y1 = (float(min(1.0, max(0.0, v))) for v in box)
    return (x0, y0, max(x0, x1), max(y0, y1))


def rgb_frame(frame: np.ndarray) -> np.ndarray:
    """mediapipe's graphs take a C-contiguous uint8 RGB image."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {list(frame.shape)}")
    return np.ascontiguousarray(frame, dtype=np.uint8)


class FaceTracker(Tracker):
    """Faces, frame after frame (they move little between samples at a few frames per
    second): a face continues the track it overlaps most, at least ``min_iou``, or whose
    box centre lies within one box width of its own (a fast move, or a low sample rate).
    Track ids count from 0."""

    first_id = 0

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        super().__init__(max_gap_s)
        self.min_iou = min_iou

    def affinity(self, tracks, time_s, boxes, items) -> np.ndarray:
        return np.array([[self._pair(t.boxes[-1], box) for t in tracks] for box in boxes])

    def _pair(self, a: Box, b: Box) -> float:
        iou = box_iou(a, b)
        if iou >= self.min_iou:
            return 1.0 + iou
        # No overlap to speak of: accept a jump of up to one face width (ranked below
        # every real overlap).
        ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
        cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        width = max(a[2] - a[0], b[2] - b[0], 1e-6)
        dist = float(np.hypot(ca[0] - cb[0], ca[1] - cb[1]))
        return max(0.0, 1.0 - dist / width) if dist < width else 0.0
