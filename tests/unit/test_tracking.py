"""The one IoU and the one tracker (_tracking.py) that objects, faces and on-screen text
share: identities kept through crossings and short disappearances, a long gap starting a
new track, detections that may not start one."""

from __future__ import annotations

import numpy as np
import pytest

from tiktok_analyzer.analyzers._tracking import Track, Tracker, box_iou, iou_matrix


class PlainIou(Tracker):
    """IoU with each track's predicted box, at least 0.2: the tracker alone."""

    def affinity(self, tracks, time_s, boxes, items) -> np.ndarray:
        iou = iou_matrix(np.array(boxes), np.stack([t.predict(time_s) for t in tracks]))
        return np.where(iou >= 0.2, iou, 0.0)


def box(cx: float, cy: float, half: float = 0.08) -> tuple[float, float, float, float]:
    return (cx - half, cy - half, cx + half, cy + half)


def scenario(name: str, n: int = 10) -> list[list[tuple[str, tuple]]]:
    """Per sample (0.5 s apart): (truth identity, box) of each thing in view."""
    frames = []
    for k in range(n):
        t = k / (n - 1)
        if name == "crossing":
            # Two walk past each other, their boxes overlapping mid-way.
            row = [("a", box(0.1 + 0.8 * t, 0.5)), ("b", box(0.9 - 0.8 * t, 0.52))]
        elif name == "hidden":
            # Hidden for two samples (1 s, under max_gap_s): the same track when back.
            row = [("a", box(0.3 + 0.02 * k, 0.4))] if k not in (4, 5) else []
        elif name == "fast":
            # 0.09 of the frame per sample with a box 0.16 wide: the prediction keeps it.
            row = [("a", box(0.1 + 0.8 * t, 0.3))]
        else:  # "appears"
            row = [("a", box(0.2, 0.2))] + ([("b", box(0.7, 0.7))] if k >= 5 else [])
        frames.append(row)
    return frames


@pytest.mark.parametrize("name", ["crossing", "hidden", "fast", "appears"])
def test_identities_are_kept(name):
    tracker = PlainIou(max_gap_s=1.5)
    seen: dict[str, set[int]] = {}
    for k, row in enumerate(scenario(name)):
        ids = tracker.update(k, k * 0.5, [b for _, b in row], [who for who, _ in row])
        for (who, _), tid in zip(row, ids, strict=True):
            seen.setdefault(who, set()).add(tid)
    # Each truth identity is one track, and no two identities share one.
    assert all(len(v) == 1 for v in seen.values()), seen
    assert len({next(iter(v)) for v in seen.values()}) == len(seen)
    assert len(tracker.tracks) == len(seen)
    for track in tracker.tracks:
        assert len(set(track.items)) == 1  # the items stay with their own track


def test_a_long_gap_starts_a_new_track():
    tracker = PlainIou(max_gap_s=1.0)
    (first,) = tracker.update(0, 0.0, [box(0.5, 0.5)], [None])
    tracker.update(1, 0.5, [box(0.5, 0.5)], [None])
    (later,) = tracker.update(2, 2.5, [box(0.5, 0.5)], [None])  # gone 2 s
    assert first != later and len(tracker.tracks) == 2
    assert [t.frames for t in tracker.tracks] == [[0, 1], [2]]


def test_detections_that_may_not_start_extend_tracks_or_are_dropped():
    tracker = PlainIou(max_gap_s=1.5)
    assert tracker.update(0, 0.0, [box(0.3, 0.3)], ["a"]) == [1]
    ids = tracker.update(1, 0.5, [box(0.31, 0.3), box(0.8, 0.8)], ["a", "b"], [False, False])
    assert ids == [1, -1]
    assert len(tracker.tracks) == 1 and tracker.tracks[0].frames == [0, 1]


def test_crossing_is_solved_as_a_whole_not_greedily():
    # Track 1 (last at x 0.40) and track 2 (x 0.50); two detections at x 0.47 and 0.56.
    # Greedy would give 0.47 to track 2 (the best single IoU) and leave track 1 nothing;
    # the assignment keeps both (0.47 -> 1, 0.56 -> 2).
    tracker = PlainIou(max_gap_s=1.0)
    tracker.update(0, 0.0, [box(0.40, 0.5, 0.1), box(0.50, 0.5, 0.1)], [1, 2])
    ids = tracker.update(1, 0.0, [box(0.47, 0.5, 0.1), box(0.56, 0.5, 0.1)], [1, 2])
    assert ids == [1, 2]


def test_first_id_and_prediction():
    class FromZero(PlainIou):
        first_id = 0

    tracker = FromZero(max_gap_s=1.0)
    assert tracker.update(0, 0.0, [box(0.2, 0.5)], [None]) == [0]
    track: Track = tracker.tracks[0]
    track.add(1, 1.0, box(0.3, 0.5), None)
    # constant velocity 0.1 / s, clipped to the frame
    np.testing.assert_allclose(track.predict(2.0), box(0.4, 0.5), atol=1e-9)
    np.testing.assert_allclose(track.predict(100.0)[[0, 2]], [1.0, 1.0])
    assert track.median_box() == pytest.approx(box(0.25, 0.5))


def test_iou():
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])
    b = np.array([[0, 0, 1, 1], [0.5, 0.5, 1, 1], [2, 2, 3, 3]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 0.25, 0.0], [0.25, 0.0, 0.0]], atol=1e-9)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    for i in range(2):
        for j in range(3):
            assert box_iou(a[i], b[j]) == pytest.approx(iou_matrix(a, b)[i, j])
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
