"""One IoU and one tracker for every analyzer that follows things across frames: objects
(``object_detection``), faces (``eye_tracking``, ``age_estimation``) and on-screen text
(``text_overlay``).

The tracker knows boxes, times and an affinity; what makes two sightings the same thing
(the same label, the same text, a face that jumped less than its width) is the caller's
:meth:`Tracker.affinity`. Each frame's detections are assigned to the live tracks by the
Hungarian method on that affinity (the best total, so two crossing objects do not swap
because one of them was greedy first); a track not seen for more than ``max_gap_s`` ends,
so something that comes back later is a new track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Box", "Track", "Tracker", "box_iou", "iou_matrix"]

#: A box [x0, y0, x1, y1] (normalised to the frame, or in pixels: the IoU does not care).
Box = tuple[float, float, float, float]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), ``[x0, y0, x1, y1]``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes (0 when neither has an area)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One thing followed over frames: ``items[i]`` is what the caller attached to its
    sighting in frame ``frames[i]`` at ``times[i]`` (a score, landmarks, read text)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[Any] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)

    @property
    def first_s(self) -> float:
        return self.times[0]

    @property
    def last_s(self) -> float:
        return self.times[-1]

    def add(self, frame: int, time_s: float, box: Any, item: Any) -> None:
        self.frames.append(frame)
        self.times.append(float(time_s))
        self.boxes.append(box)
        self.items.append(item)

    def median_box(self) -> Box:
        return tuple(float(v) for v in np.median(np.asarray(self.boxes), axis=0))  # type: ignore[return-value]

    def predict(self, time_s: float) -> np.ndarray:
        """The box expected at ``time_s``: the last box moved on at the velocity between the
        last two sightings (held when there is one sighting), clipped to 0..1."""
        last = np.asarray(self.boxes[-1], np.float64)
        if len(self.boxes) < 2 or self.times[-1] <= self.times[-2]:
            return last
        velocity = (last - np.asarray(self.boxes[-2], np.float64)) / (
            self.times[-1] - self.times[-2]
        )
        return np.clip(last + velocity * (time_s - self.times[-1]), 0.0, 1.0)


class Tracker:
    """Follows detections across frames (fed in time order). Subclasses say which
    detection may continue which track, and how well, in :meth:`affinity`.

    :meth:`update` may mark detections that must not start a track (weak ones, ByteTrack's
    idea): the others are matched first, these then go onto the tracks left over, and are
    dropped (id -1) when they match none.
    """

    #: The first track's id (ids count up from it in order of appearance).
    first_id: ClassVar[int] = 1

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self.tracks: list[Track] = []
        self._live: list[Track] = []

    def affinity(
        self, tracks: Sequence[Track], time_s: float, boxes: Sequence[Any], items: Sequence[Any]
    ) -> np.ndarray:
        """(detections, tracks) scores: > 0 where the detection may continue the track,
        higher for a likelier pair; 0 where it may not."""
        raise NotImplementedError

    def update(
        self,
        frame: int,
        time_s: float,
        boxes: Sequence[Any],
        items: Sequence[Any],
        may_start: Sequence[bool] | None = None,
    ) -> list[int]:
        """Add one frame's detections; returns each one's track id, -1 for a detection that
        may not start a track and matched none (dropped)."""
        # A hair of slack: times are sums of float steps.
        self._live = [t for t in self._live if time_s - t.last_s <= self.max_gap_s + 1e-9]
        n = len(boxes)
        starters = [True] * n if may_start is None else [bool(s) for s in may_start]
        ids = [-1] * n
        free = list(self._live)
        for pool in (
            [i for i in range(n) if starters[i]],
            [i for i in range(n) if not starters[i]],
        ):
            for det, track in self._match(pool, free, time_s, boxes, items):
                track.add(frame, time_s, boxes[det], items[det])
                ids[det] = track.track_id
                free.remove(track)
        for det in range(n):
            if ids[det] < 0 and starters[det]:
                track = Track(self.first_id + len(self.tracks))
                track.add(frame, time_s, boxes[det], items[det])
                self.tracks.append(track)
                self._live.append(track)
                ids[det] = track.track_id
        return ids

    def _match(
        self,
        pool: list[int],
        tracks: list[Track],
        time_s: float,
        boxes: Sequence[Any],
        items: Sequence[Any],
    ) -> list[tuple[int, Track]]:
        if not pool or not tracks:
            return []
        score = np.asarray(
            self.affinity(tracks, time_s, [boxes[i] for i in pool], [items[i] for i in pool]),
            np.float64,
        )
        rows, cols = linear_sum_assignment(-score)
        return [(pool[r], tracks[c]) for r, c in zip(rows, cols, strict=True) if score[r, c] > 0]
