"""object_detection: the tracker on synthetic boxes with known identities, the YOLO
post-processing on a head output with known boxes, the analyzer's clip -> objects flow on
generated frames with known moving objects (a stand-in detector that finds them), the tiny
synthetic YOLOv8 under garbage, and the restricted loading of Ultralytics checkpoints."""

from __future__ import annotations

import dataclasses
import io
import pickle
from datetime import datetime

import numpy as np
import pytest
import torch

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.objects import (
    MODELS,
    Detections,
    ObjectDetection,
    ObjectTracker,
    build_detection_model,
    coco_names,
    darknet_names,
    letterbox,
    letterbox_shape,
    load_checkpoint_state,
    nms,
    postprocess,
    still_sources,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV, Weights, load_manifest

ENTRY = load_manifest()["object_detection/yolov8s"]
TINY = ENTRY.synthetic["tiny"]


# ---------------------------------------------------------------------------------------
# Tracker


def box(cx: float, cy: float, w: float = 0.15, h: float = 0.2) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def dets(rows: list[tuple[list[float], float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections(
        np.array([r[0] for r in rows], np.float32),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows], np.int64),
    )


def scenario(name: str) -> list[list[tuple[str, list[float], float, int]]]:
    """Frames at 2 fps of (truth identity, box, score, class): each case names who is who."""
    frames: list[list[tuple[str, list[float], float, int]]] = []
    for k in range(10):
        t = k / 9
        row = []
        if name == "crossing":
            # Two people walk past each other, same label, boxes overlapping mid-way.
            row += [("a", box(0.1 + 0.8 * t, 0.5), 0.9, 0), ("b", box(0.9 - 0.8 * t, 0.52), 0.8, 0)]
        elif name == "fast":
            # Moves 0.09 of the frame per sample with a box 0.15 wide: consecutive boxes
            # overlap by IoU ~0.25 only; the prediction keeps it.
            row += [("a", box(0.1 + 0.8 * t, 0.3), 0.7, 2)]
        elif name == "occluded":
            # Hidden for two samples (1 s < max_gap_s): the same track when it is back.
            if k not in (4, 5):
                row += [("a", box(0.3 + 0.02 * k, 0.4), 0.9, 0)]
        elif name == "labels":
            # A cup on a table and a bottle in the same place: two tracks.
            row += [("cup", box(0.5, 0.5), 0.9, 41), ("bottle", box(0.51, 0.5), 0.85, 39)]
        elif name == "appears":
            row += [("a", box(0.2, 0.2), 0.9, 0)]
            if k >= 5:
                row += [("b", box(0.7, 0.7), 0.9, 56)]
        frames.append(row)
    return frames


@pytest.mark.parametrize("name", ["crossing", "fast", "occluded", "labels", "appears"])
def test_tracker_keeps_identities(name):
    tracker = ObjectTracker(iou_threshold=0.2, track_confidence=0.25, max_gap_s=1.5)
    seen: dict[str, set[int]] = {}
    for k, row in enumerate(scenario(name)):
        ids = tracker.add_frame(k, k * 0.5, dets([(b, s, c) for _, b, s, c in row]))
        for (who, *_), tid in zip(row, ids, strict=True):
            seen.setdefault(who, set()).add(tid)
    # Each truth identity is one track, and no two identities share one.
    assert all(len(v) == 1 for v in seen.values()), seen
    assert len({next(iter(v)) for v in seen.values()}) == len(seen)
    assert len(tracker.tracks) == len(seen)


def test_tracker_ends_a_track_after_a_long_gap():
    tracker = ObjectTracker(iou_threshold=0.2, track_confidence=0.25, max_gap_s=1.0)
    first = tracker.add_frame(0, 0.0, dets([(box(0.5, 0.5), 0.9, 0)]))
    tracker.add_frame(1, 0.5, dets([(box(0.5, 0.5), 0.9, 0)]))
    # Gone 2 s, back at the same place: a new object as far as the tracker can tell.
    later = tracker.add_frame(2, 2.5, dets([(box(0.5, 0.5), 0.9, 0)]))
    assert first != later and len(tracker.tracks) == 2


def test_weak_detections_extend_tracks_but_start_none():
    tracker = ObjectTracker(iou_threshold=0.2, track_confidence=0.5, max_gap_s=1.5)
    assert tracker.add_frame(0, 0.0, dets([(box(0.3, 0.3), 0.9, 0)])) == [1]
    # The same object seen weakly continues its track; a weak stranger is dropped.
    ids = tracker.add_frame(1, 0.5, dets([(box(0.31, 0.3), 0.3, 0), (box(0.8, 0.8), 0.3, 0)]))
    assert ids == [1, -1]
    assert len(tracker.tracks) == 1 and tracker.tracks[0].frames == [0, 1]


def test_letterbox_keeps_the_aspect_and_pads_to_the_stride():
    assert letterbox_shape(640, 360, 640)[:2] == (640, 384)  # 9:16 at its native size
    assert letterbox_shape(1280, 720, 640)[:2] == (640, 384)
    assert letterbox_shape(3840, 2160, 640)[:2] == (640, 384)
    assert letterbox_shape(360, 640, 640)[:2] == (384, 640)
    img, r, px, py = letterbox(np.zeros((1280, 720, 3), np.uint8), 640)
    assert img.shape == (640, 384, 3) and r == 0.5 and (px, py) == (12.0, 0.0)
    assert (img[:, :12] == 114).all() and (img[:, 12:372] == 0).all()


def head_output(boxes_px: list[list[float]], classes: list[int], scores: list[float], n=100):
    """A YOLOv8 head output (1, 84, n): centre/size boxes in input pixels, class scores."""
    pred = torch.zeros(1, 84, n)
    pred[0, :4] = torch.tensor([10.0, 10.0, 4.0, 4.0])[:, None]
    for a, (b, c, s) in enumerate(zip(boxes_px, classes, scores, strict=True)):
        x0, y0, x1, y1 = b
        pred[0, :4, a] = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
        pred[0, 4 + c, a] = s
    return pred


def test_postprocess_maps_boxes_back_to_the_frame_and_suppresses_duplicates():
    # A 1280x720 frame letterboxed to 640x384: scale 0.5, 12 px of padding left and right.
    geometry = [(0.5, 12.0, 0.0, 1280, 720)]
    pred = head_output(
        [[112, 100, 212, 300], [114, 102, 212, 298], [300, 400, 372, 600], [0, 0, 30, 30]],
        [0, 0, 41, 2],
        [0.9, 0.8, 0.6, 0.05],
    )
    (found,) = postprocess(pred, geometry, min_confidence=0.1, nms_iou=0.5, max_detections=50)
    # The duplicate person is suppressed, the faint car is below the floor.
    assert found.classes.tolist() == [0, 41]
    np.testing.assert_allclose(found.scores, [0.9, 0.6], atol=1e-6)
    np.testing.assert_allclose(
        found.boxes[0], [200 / 720, 200 / 1280, 400 / 720, 600 / 1280], atol=1e-5
    )
    np.testing.assert_allclose(found.boxes[1], [576 / 720, 800 / 1280, 1.0, 1200 / 1280], atol=1e-5)


def test_postprocess_caps_the_detections_of_a_frame():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 300, (100, 2))
    boxes = [[x, y, x + 20, y + 20] for x, y in corners]
    pred = head_output(boxes, list(rng.integers(0, 80, 100)), [0.5] * 100)
    (found,) = postprocess(pred, [(1.0, 0.0, 0.0, 384, 640)], 0.1, 0.5, max_detections=7)
    assert len(found) == 7


# ---------------------------------------------------------------------------------------
# The analyzer


def tiny_analyzer(monkeypatch, **params) -> ObjectDetection:
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    analyzer = ObjectDetection(ObjectDetection.Params(**params))
    assert analyzer.weights == "synthetic-tiny", analyzer._unavailable
    return analyzer


def moving_squares(n: int = 12, fps: float = 2.0) -> tuple[Clip, dict]:
    """A 360x640 clip at 2 fps on a textured background: a red square crossing left to
    right the whole time, a blue one sitting still from 2.0 s to 4.0 s."""
    rng = np.random.default_rng(1)
    base = rng.integers(90, 140, (640, 360, 3)).astype(np.uint8)
    frames = np.repeat(base[None], n, 0)
    times = np.arange(n) / fps
    for k, t in enumerate(times):
        x = round(20 + 25 * k)
        frames[k, 100:160, x : x + 60] = (230, 20, 20)
        if 2.0 <= t <= 4.0:
            frames[k, 400:480, 200:280] = (20, 20, 230)
    truth = {
        "red": {"first_s": 0.0, "last_s": times[-1], "frames": n, "box_y": (100, 160)},
        "blue": {"first_s": 2.0, "last_s": 4.0, "frames": 5, "box": (200, 400, 280, 480)},
    }
    return Clip(meta=ClipMeta(n / fps, fps, 360, 640), frames=frames, timestamps_s=times), truth


def colour_detector(frames):
    """Stands in for YOLO: finds the saturated red ('person', 0) and blue ('cup', 41)
    squares and returns them as detections."""
    out = []
    for frame in frames:
        rows = []
        h, w = frame.shape[:2]
        for channel, cls in ((0, 0), (2, 41)):
            mask = (frame[..., channel] > 200) & (frame.max(-1) - frame.min(-1) > 150)
            ys, xs = np.nonzero(mask)
            if len(xs):
                b = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
                rows.append((b, 0.9, cls))
        out.append(dets(rows))
    return out


def test_objects_follow_the_truth(monkeypatch):
    analyzer = tiny_analyzer(monkeypatch)
    monkeypatch.setattr(analyzer, "_detect", colour_detector)
    clip, truth = moving_squares()
    result = analyzer.analyze(clip)
    assert [(o.label, o.track_id) for o in result.objects] == [("person", 1), ("cup", 2)]
    red, blue = result.objects
    n = len(clip.frames)
    assert (red.first_s, red.last_s) == (truth["red"]["first_s"], truth["red"]["last_s"])
    assert (blue.first_s, blue.last_s) == (truth["blue"]["first_s"], truth["blue"]["last_s"])
    assert red.screen_share == 1.0
    assert blue.screen_share == pytest.approx(truth["blue"]["frames"] / n, abs=1e-4)
    assert blue.area_share == pytest.approx(80 * 80 / (360 * 640), abs=1e-3)
    # Sampled boxes: at most 8, in time order, where the square was.
    assert len(red.boxes) == 8 and len(blue.boxes) == 5
    times = [b.time_s for b in red.boxes]
    assert times == sorted(times) and times[0] == 0.0 and times[-1] == truth["red"]["last_s"]
    for b in blue.boxes:
        np.testing.assert_allclose(b.bbox, [200 / 360, 400 / 640, 280 / 360, 480 / 640], atol=1e-3)
    for b in red.boxes:
        assert b.bbox[1] == pytest.approx(100 / 640, abs=1e-3)
        assert b.bbox[3] == pytest.approx(160 / 640, abs=1e-3)
    assert [s.label for s in result.labels] == ["person", "cup"]
    assert result.frames_analyzed == n and result.detections == n + 5


def test_batches_across_clips_keep_each_clip_apart(monkeypatch):
    analyzer = tiny_analyzer(monkeypatch, batch_size=5)
    calls: list[int] = []

    def detector(frames):
        calls.append(len(frames))
        return colour_detector(frames)

    monkeypatch.setattr(analyzer, "_detect", detector)
    clip, _ = moving_squares()
    landscape = Clip(
        meta=clip.meta,
        frames=np.ascontiguousarray(clip.frames[:4].transpose(0, 2, 1, 3)),
        timestamps_s=clip.timestamps_s[:4],
    )
    bad = Clip(
        meta=clip.meta, frames=np.zeros((3, 16, 16, 3), np.uint8), timestamps_s=np.arange(3.0)
    )
    empty = Clip(
        meta=clip.meta, frames=np.zeros((0, 64, 64, 3), np.uint8), timestamps_s=np.zeros(0)
    )
    out = analyzer.analyze_batch([clip, bad, landscape, empty, clip])
    assert isinstance(out[1], ValueError) and "too small" in str(out[1])
    assert isinstance(out[3], NotApplicable)
    assert out[0].model_dump() == out[4].model_dump()
    assert [o.label for o in out[2].objects] == ["person"]
    # 24 portrait frames in batches of 5, the 4 landscape ones apart (another input shape).
    assert sorted(calls) == [4, 4, 5, 5, 5, 5]


def test_tiny_synthetic_yolo_runs_and_its_garbage_stays_bounded(monkeypatch):
    # A small input (long side 320) keeps it quick; the caps are what is under test.
    analyzer = tiny_analyzer(
        monkeypatch, imgsz=320, max_detections_per_frame=20, max_objects=15, max_boxes_per_track=3
    )
    assert analyzer.model_name == "yolov8s"
    clip, _ = moving_squares(16)
    frames, stamps = clip.frames, clip.timestamps_s
    result = analyzer.analyze(clip)
    ObjectDetection.Result.model_validate(result.model_dump())
    # Random weights detect garbage in every frame: the caps hold it.
    assert 0 < result.detections <= 20 * len(frames)
    assert 0 < len(result.objects) <= 15
    assert result.objects_dropped >= 0
    names = set(coco_names())
    for o in result.objects:
        assert o.label in names and 1 <= len(o.boxes) <= 3
        assert stamps[0] <= o.first_s <= o.last_s <= stamps[-1]
        assert 0 < o.screen_share <= 1 and 0 <= o.max_confidence <= 1
        for b in o.boxes:
            x0, y0, x1, y1 = b.bbox
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert sorted(o.track_id for o in result.objects) == list(range(1, len(result.objects) + 1))


def test_real_weights_missing_make_it_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv(MODE_ENV, raising=False)
    analyzer = ObjectDetection(ObjectDetection.Params(model="yolov8s"))
    assert analyzer.weights == "none"
    clip, _ = moving_squares(2)
    (out,) = analyzer.analyze_batch([clip])
    assert "weights pull object_detection/yolov8s" in str(out)


def test_auto_takes_yolov8s_when_present_and_the_offline_tier_otherwise(monkeypatch, tmp_path):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")  # YOLOv8s "present" as a synthetic model
    assert weights.first_usable("object_detection", MODELS.values()) == "yolov8s"
    monkeypatch.setenv(MODE_ENV, "real")
    offline = load_manifest()["object_detection/yolov3-tiny"]
    expected = "yolov3-tiny" if weights.usable(offline) else "yolov8s"
    assert weights.first_usable("object_detection", MODELS.values()) == expected
    # yolov3-tiny has real weights only: in a synthetic mode it says so, never random values
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    analyzer = ObjectDetection(ObjectDetection.Params(model="yolov3-tiny"))
    assert analyzer.weights == "none" and "real weights only" in analyzer._unavailable


def test_a_wrong_model_name_is_refused():
    with pytest.raises(ValueError, match="model must be auto or one of yolov8s, yolov3-tiny"):
        ObjectDetection(ObjectDetection.Params(model="yolov5"))


def test_darknet_names_are_yolov8s_coco_names(tmp_path):
    darknet = (
        ["person", "bicycle", "car", "motorbike", "aeroplane"]
        + ["x"] * 51
        + ["chair", "sofa", "pottedplant", "bed", "diningtable", "toilet", "tvmonitor"]
    )
    (tmp_path / "coco.names").write_text("\n".join(darknet) + "\n")
    names = darknet_names(tmp_path / "coco.names")
    coco = coco_names()
    for i in (0, 3, 4, 57, 58, 60, 62):
        assert names[i] == coco[i]


def test_nms_is_class_wise_and_keeps_the_best():
    boxes = np.array([box(0.5, 0.5), box(0.51, 0.5), box(0.5, 0.5), box(0.2, 0.2)], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.5], np.float32)
    classes = np.array([0, 0, 32, 0])
    # 1 beats 0 (same class, IoU ~0.9); 2 is another class; 3 overlaps nothing.
    assert nms(boxes, scores, classes, 0.45).tolist() == [1, 2, 3]


def test_the_tracker_links_a_small_object_that_outruns_its_box():
    """A pedestrian far off: a box 0.02 x 0.06 moving 0.03 a sample never overlaps its last
    box. Without the centre link every sample starts a track; with it, one track."""
    rows = [dets([(box(0.2 + 0.03 * k, 0.4, 0.02, 0.06), 0.8, 0)]) for k in range(8)]
    for shift, expected in ((0.0, 8), (1.0, 1)):
        tracker = ObjectTracker(0.2, 0.25, 1.5, max_shift=shift)
        for k, row in enumerate(rows):
            tracker.add_frame(k, k * 0.5, row)
        assert len(tracker.tracks) == expected
    # Two such pedestrians side by side, walking apart: two tracks, not swapped.
    tracker = ObjectTracker(0.2, 0.25, 1.5, max_shift=1.0)
    for k in range(6):
        a, b = box(0.5 - 0.03 * k, 0.4, 0.02, 0.06), box(0.53 + 0.03 * k, 0.4, 0.02, 0.06)
        assert tracker.add_frame(k, k * 0.5, dets([(a, 0.8, 0), (b, 0.8, 0)])) == [1, 2]


def test_the_full_config_is_yolov8s(monkeypatch):
    # Built on the meta device (no memory, no values); ultralytics' bias prior needs values.
    from ultralytics.nn.modules.head import Detect

    monkeypatch.setattr(Detect, "bias_init", lambda self: None)
    with torch.device("meta"):
        model = build_detection_model(ENTRY.synthetic["full"])
    assert sum(p.numel() for p in model.parameters()) == 11_166_560


# ---------------------------------------------------------------------------------------
# Restricted checkpoint loading


def ultralytics_checkpoint(path, model) -> None:
    """Save ``model`` as Ultralytics' trainer and strip_optimizer do: the whole module in
    half precision, its arguments and names attached, beside plain metadata."""
    from ultralytics.utils import IterableSimpleNamespace

    model.args = IterableSimpleNamespace(imgsz=640, task="detect")
    model.names = dict(enumerate(coco_names()))
    model.half()
    torch.save(
        {
            "date": datetime(2024, 1, 1).isoformat(),
            "version": "8.2.0",
            "epoch": -1,
            "best_fitness": None,
            "model": model,
            "ema": None,
            "updates": None,
            "optimizer": None,
            "train_args": {"imgsz": 640, "epochs": 500},
        },
        path,
    )


def test_real_loading_takes_only_the_state_of_an_ultralytics_checkpoint(monkeypatch, tmp_path):
    torch.manual_seed(3)
    source = build_detection_model(TINY)
    expected = {k: v.clone() for k, v in source.state_dict().items()}
    ultralytics_checkpoint(tmp_path / "yolov8s.pt", source)
    state, names = load_checkpoint_state(tmp_path / "yolov8s.pt")
    assert names[0] == "person" and len(names) == 80
    assert state.keys() == expected.keys()
    for k, v in state.items():
        assert v.dtype == torch.float32 or not v.is_floating_point()
        want = expected[k].half().float() if v.is_floating_point() else expected[k]
        torch.testing.assert_close(v, want, rtol=0, atol=0)
    # Through the analyzer's real path: the tiny architecture standing in for YOLOv8s.
    analyzer = tiny_analyzer(monkeypatch)
    entry = dataclasses.replace(ENTRY, synthetic={"full": TINY})
    analyzer.load(Weights("real", entry, tmp_path))
    assert analyzer.names[:3] == ("person", "bicycle", "car")
    # The same numbers as the saved model (its half-precision values, in float32).
    x = torch.rand(1, 3, 64, 64)
    reference = source.float().eval()
    with torch.inference_mode():
        torch.testing.assert_close(analyzer.model(x)[0], reference(x)[0], rtol=1e-3, atol=1e-2)


class _Payload:
    """Not a model class: a checkpoint that carries one must be refused."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_with_foreign_objects_is_refused(tmp_path, capsys):
    torch.save({"model": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="refused|builtins.print"):
        load_checkpoint_state(tmp_path / "evil.pt")
    torch.save({"model": io.BytesIO(b"x")}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint_state(tmp_path / "other.pt")
    assert "must never run" not in capsys.readouterr().out
    # A plain pickle (not torch's zip format) is no checkpoint either.
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(Exception):  # noqa: B017 - torch's own error for a non-zip file
        load_checkpoint_state(tmp_path / "raw.pt")


def test_nothing_reaches_the_network(monkeypatch):
    """Building the model and analyzing a clip open no connection and resolve no name."""
    import os
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert os.environ.get("YOLO_OFFLINE") == "1"
    analyzer = tiny_analyzer(monkeypatch)
    clip, _ = moving_squares(2)
    assert analyzer.analyze(clip).frames_analyzed == 2


def test_a_still_picture_costs_the_detector_once_and_a_change_does_not_creep_by():
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    noisy = np.clip(still.astype(int) + rng.integers(-3, 4, still.shape), 0, 255).astype(np.uint8)
    moved = np.roll(still, 40, axis=1)
    frames = np.stack([still, noisy, still, moved, moved])
    assert still_sources(frames, 10.0) == [0, 0, 0, 3, 3]
    assert still_sources(frames, -1.0) == [0, 1, 2, 3, 4]
    # 4 levels a frame: each step is within the threshold, the sum is not
    ramp = np.stack([np.full((64, 64, 3), 100 + 4 * i, np.uint8) for i in range(5)])
    assert still_sources(ramp, 10.0) == [0, 0, 0, 3, 3]
