"""What the two face analyzers (``eye_tracking``, ``age_estimation``) share: mediapipe's
bundled graphs, normalised boxes, and an IoU tracker that turns per-frame faces into tracks.

mediapipe 0.10.x carries its face models inside the wheel (``mediapipe/modules/...``), so
the face finding always runs on real weights, offline; the weights manifest lists those
files as ``bundled`` with their SHA-256 (``weights_manifest/eye_tracking.toml``,
``age_estimation.toml``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Box", "FaceTrack", "IouTracker", "box_iou", "clip_box", "rgb_frame"]

# mediapipe logs through absl/glog to stderr at start; keep Triton's log readable.
os.environ.setdefault("GLOG_minloglevel", "2")

#: A box [x0, y0, x1, y1], normalised to the frame (0..1).
Box = tuple[float, float, float, float]


def clip_box(box: Sequence[float]) -> Box:
    x0, y0, x1, y1 = (float(min(1.0, max(0.0, v))) for v in box)
    return (x0, y0, max(x0, x1), max(y0, y1))


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def rgb_frame(frame: np.ndarray) -> np.ndarray:
    """mediapipe's graphs take a C-contiguous uint8 RGB image."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {list(frame.shape)}")
    return np.ascontiguousarray(frame, dtype=np.uint8)


@dataclass
class FaceTrack:
    """One face followed over frames: ``items[i]`` is what the caller attached to the
    detection in frame ``frames[i]`` (landmarks, a score)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    items: list[object] = field(default_factory=list)

    @property
    def first_s(self) -> float:
        return self.times[0]

    @property
    def last_s(self) -> float:
        return self.times[-1]

    def median_box(self) -> Box:
        return tuple(float(v) for v in np.median(np.asarray(self.boxes), axis=0))  # type: ignore[return-value]


class IouTracker:
    """Greedy IoU tracking, frame after frame (faces move little between samples at a few
    frames per second). A detection joins the live track it overlaps most, at least
    ``min_iou``, or its box centre lies within one box width of (a fast move, or a low
    sample rate); a track not seen for more than ``max_gap_s`` ends, so a face that comes
    back later is a new track."""

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_gap_s = max_gap_s
        self.tracks: list[FaceTrack] = []
        self._live: list[FaceTrack] = []

    def update(
        self, frame: int, time_s: float, boxes: Sequence[Box], items: Sequence[object]
    ) -> list[int]:
        """Add one frame's detections; returns each detection's track id, in order."""
        self._live = [t for t in self._live if time_s - t.last_s <= self.max_gap_s]
        pairs = []
        for ti, track in enumerate(self._live):
            for di, box in enumerate(boxes):
                score = self._affinity(track.boxes[-1], box)
                if score > 0:
                    pairs.append((score, ti, di))
        pairs.sort(reverse=True)
        owner: dict[int, FaceTrack] = {}
        used: set[int] = set()
        for _, ti, di in pairs:
            if ti in used or di in owner:
                continue
            used.add(ti)
            owner[di] = self._live[ti]
        ids = []
        for di, (box, item) in enumerate(zip(boxes, items, strict=True)):
            track = owner.get(di)
            if track is None:
                track = FaceTrack(track_id=len(self.tracks))
                self.tracks.append(track)
                self._live.append(track)
            track.frames.append(frame)
            track.times.append(float(time_s))
            track.boxes.append(box)
            track.items.append(item)
            ids.append(track.track_id)
        return ids

    def _affinity(self, a: Box, b: Box) -> float:
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
