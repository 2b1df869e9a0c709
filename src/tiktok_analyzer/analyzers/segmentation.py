"""Background segmentation: what the picture's area is made of (ADE20K's 150 classes), how
much of it is people, and whether the background is a chroma-key green screen.

Per clip:

1. SegFormer (``SegformerForSemanticSegmentation``, ADE20K's 150 classes) labels every
   pixel of frames sampled at 1 fps. Frames are resized to ``input_size`` square, as the
   model's own image processor does (SegFormer was fine-tuned on 512x512 crops); shares of
   area are unchanged by that stretch. Frames of all clips handed over together run in
   batches of ``batch_size``. The label map (a quarter of the input's size) gives each
   class's share of each frame.
2. Shares per scene (scene_segmentation's time ranges; the whole clip when they are
   missing) and over the clip (every sampled frame weighs the same: they are evenly spaced
   in time). ``foreground_share`` is the ``person`` class's share.
3. Green screen, measured on the pixels themselves so that it holds whatever the weights:
   in the non-person area (the segmentation's ``person`` pixels are the subject in front
   of the screen), ``green_cover`` is the share that is chroma-key green (a soft
   membership: hue between ``green_hue_min_deg`` and ``green_hue_max_deg``, saturated,
   not dark) and ``green_flatness`` says the green is flat, as a lit screen is, rather than
   textured like foliage or grass (the local standard deviation of brightness over the
   green, in windows ~5 % of the frame's short side, between ``flat_std_full`` (flat: 1)
   and ``flat_std_zero`` (textured: 0)). A frame's likelihood is their product; a scene's
   is its frames' mean; the clip's is its highest scene's (a clip uses a green screen when
   any scene does), and ``green_screen_share`` the share of frames at or above 0.5.

Weights (``weights_manifest/background_segmentation.toml``), two tiers picked by the
``model`` parameter; the report names the one that ran (its ``model.name``):

* ``segformer``, the default: NVIDIA's SegFormer-B2 fine-tuned on ADE20K at 512x512 (27.5 M
  parameters, ADE20K val mIoU 45.6; B0 has 3.8 M and 37.4): at one frame a second a 60 s
  clip is 60 frames, a fraction of a second for B2 on a GPU, and the person/background
  boundary it draws is the point of this analyzer. Its labels come from its own
  ``config.json``. Synthetic models are the same class from a ``SegformerConfig`` with
  random values, labelled with ultralytics' ADE20K class list
  (``ultralytics/cfg/datasets/ade20k.yaml``, read from the installed package).
* ``selfie``, the offline tier, bundled in the mediapipe wheel: MediaPipe's selfie
  segmentation draws the person mask (``selfie_threshold``), so ``foreground_share`` and the
  green screen's person cut-out come from it; the ADE20K class shares need SegFormer and
  are reported unavailable (``classes_unavailable`` says how to get them). The selfie model
  marks any salient foreground as a person, so a frame counts a person only where MediaPipe
  Pose (BlazePose, bundled too) finds one; elsewhere its mask is ignored. Measured on real
  pictures (selfie mask share at 0.5, mean mask confidence inside it; pose found or not):

  ================================  =====  ====  ====
  picture (package)                 share  conf  pose
  ================================  =====  ====  ====
  astronaut (skimage)               0.545  0.99  yes
  camera, the cameraman (skimage)   0.327  0.96  yes
  messi5.jpg (opencv-doc)           0.217  0.90  yes
  basketball1.png (opencv-doc)      0.232  0.97  yes
  basketball2.png (opencv-doc)      0.265  0.95  yes
  coffee (skimage)                  0.233  0.87  no
  chelsea, a cat (skimage)          0.912  0.96  no
  apple.jpg (opencv-doc)            0.608  0.99  no
  home.jpg (opencv-doc)             0.468  0.99  no
  chicky_512.png (opencv-doc)       0.771  0.99  no
  box_in_scene.png (opencv-doc)     0.515  0.98  no
  ================================  =====  ====  ====

  and no pose on 20 more person-free pictures of both packages (rocket, logo, retina,
  fruits, baboon, butterfly, orange, squirrel, graf1, ...; masks of 0 to 0.64). No mask
  statistic separates the two groups; the pose detector did, on all 31.

``auto`` (the default) takes SegFormer where its weights are present (or in a synthetic
mode), else the selfie tier.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, check_frames, seeded
from tiktok_analyzer.analyzers.base import Clip, FrameSpec
from tiktok_analyzer.analyzers.results.segmentation import (  # noqa: F401 - re-exported
    BackgroundSegmentationResult,
    ClassShare,
    SceneBackground,
)

__all__ = [
    "MODELS",
    "BackgroundSegmentation",
    "PersonMask",
    "ClassShare",
    "SceneBackground",
    "ade20k_names",
    "chroma_key_green",
    "green_screen_measure",
    "local_std",
]

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_MIN_SIDE_PX = 32
#: A frame at or above this green-screen likelihood counts towards green_screen_share.
_GREEN_FRAME = 0.5

#: The ``model`` parameter's names -> manifest models, in the order ``auto`` prefers them.
MODELS = {"segformer": "segformer-b2-ade-512", "selfie": "mediapipe-selfie-segmentation"}


@dataclass
class PersonMask:
    """One frame through the selfie tier: the selfie mask at the threshold (frame size),
    and whether the pose detector found a person (the mask counts only then)."""

    mask: np.ndarray
    person: bool


def ade20k_names(source: str = "ultralytics:cfg/datasets/ade20k.yaml") -> tuple[str, ...]:
    """ADE20K's 150 class names in the benchmark's order from ``package:path/in/package``
    (ultralytics ships the list), read without importing the package."""
    import yaml

    package, _, rel = source.partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed (it ships the ADE20K labels)", name=package)
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    names = yaml.safe_load(path.read_text(encoding="utf-8"))["names"]
    return tuple(str(names[i]) for i in range(len(names)))


# ---------------------------------------------------------------------------------------
# Green screen


def _ramp(x: np.ndarray, zero: float, full: float) -> np.ndarray:
    """0 at ``zero``, 1 at ``full``, linear between (either direction)."""
    if full == zero:
        return (x >= full).astype(np.float32)
    return np.clip((x - zero) / (full - zero), 0.0, 1.0).astype(np.float32)


def chroma_key_green(
    rgb: np.ndarray,
    hue_min_deg: float = 90.0,
    hue_max_deg: float = 160.0,
    hue_soft_deg: float = 15.0,
    sat_zero: float = 0.35,
    sat_full: float = 0.55,
    val_zero: float = 0.15,
    val_full: float = 0.30,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a uint8 RGB image, how much it looks chroma-key green (0..1), and its
    HSV value (brightness, 0..1). Green is hue within [min, max] degrees (fading to 0 over
    ``hue_soft_deg`` outside), saturation ramping from ``sat_zero`` to ``sat_full``, value
    from ``val_zero`` to ``val_full``. Chroma-key green (0, 177, 64) sits at hue 142, S 1."""
    hsv = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    outside = np.maximum(hue_min_deg - h, h - hue_max_deg)
    hue = np.clip(1.0 - outside / max(hue_soft_deg, 1e-6), 0.0, 1.0)
    member = hue * _ramp(s, sat_zero, sat_full) * _ramp(v, val_zero, val_full)
    return member.astype(np.float32), v


def local_std(channel: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation of ``channel`` in a ``window`` x ``window`` box around each pixel."""
    k = (window, window)
    mean = cv2.blur(channel, k, borderType=cv2.BORDER_REFLECT)
    sq = cv2.blur(channel * channel, k, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def green_screen_measure(
    rgb: np.ndarray, person: np.ndarray | None, params: BackgroundSegmentation.Params
) -> tuple[float, float]:
    """(green_cover, green_flatness) of one frame: the share of the non-person area that is
    chroma-key green, and how flat that green is (1 flat .. 0 textured). ``person`` is a
    boolean mask of the frame's size, or None for none."""
    p = params
    member, value = chroma_key_green(
        rgb,
        p.green_hue_min_deg,
        p.green_hue_max_deg,
        p.green_hue_soft_deg,
        p.green_sat_zero,
        p.green_sat_full,
        p.green_val_zero,
        p.green_val_full,
    )
    background = np.ones(member.shape, bool) if person is None else ~person
    n = int(background.sum())
    if n == 0:
        return 0.0, 0.0
    weight = member * background
    total = float(weight.sum())
    cover = total / n
    if total < 1e-6:
        return 0.0, 0.0
    window = max(3, round(min(rgb.shape[:2]) * p.flat_window_frac) | 1)
    spread = float((local_std(value, window) * weight).sum() / total)
    flatness = 1.0 - float(_ramp(np.float32(spread), p.flat_std_full, p.flat_std_zero))
    return cover, flatness


# ---------------------------------------------------------------------------------------
# Result


@dataclass
class _FrameStats:
    shares: np.ndarray | None  # (num_labels,); None on the selfie tier
    person: float  # share of the frame that is people
    cover: float
    flatness: float

    @property
    def likelihood(self) -> float:
        return self.cover * self.flatness


class BackgroundSegmentation(LearnedAnalyzer):
    name = "background_segmentation"
    # One frame a second: backgrounds change with shots, not within them; 512 is the
    # resolution SegFormer was fine-tuned at.
    frames = FrameSpec(short_side=512, fps=1.0)
    depends_on = ("scene_segmentation",)

    @dataclass
    class Params:
        # auto: SegFormer where its weights are present, else the selfie tier (bundled in
        # mediapipe); or segformer / selfie. The report names the model that ran.
        model: str = "auto"
        batch_size: int = 8
        # Frames are resized to this square for the model (its fine-tuning crop size).
        input_size: int = 512
        # Classes below this share of the clip (or scene) are left out of the lists.
        min_class_share: float = 0.01
        max_classes: int = 12
        scene_classes: int = 5
        # Colour measures run on frames scaled down to this short side.
        color_short_side: int = 256
        # Chroma-key green (see chroma_key_green).
        green_hue_min_deg: float = 90.0
        green_hue_max_deg: float = 160.0
        green_hue_soft_deg: float = 15.0
        green_sat_zero: float = 0.35
        green_sat_full: float = 0.55
        green_val_zero: float = 0.15
        green_val_full: float = 0.30
        # Flatness: local brightness std (0..1 units) at or below full is flat (1), at or
        # above zero textured (0); the window is this share of the short side.
        flat_std_full: float = 0.015
        flat_std_zero: float = 0.04
        flat_window_frac: float = 0.05
        # The selfie tier: a pixel is a person's at this mask confidence, in a frame where
        # MediaPipe Pose finds a person at least this sure.
        selfie_threshold: float = 0.5
        pose_min_confidence: float = 0.5

    Result = BackgroundSegmentationResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.model != "auto" and params.model not in MODELS:
            raise ValueError(
                f"model must be auto or one of {', '.join(MODELS)}, got {params.model!r}"
            )
        self._selfie = self._pose = None
        super().__init__(params, device)

    def model_choice(self) -> str:
        if self.params.model != "auto":
            return MODELS[self.params.model]
        choice = weights_layer.first_usable(self.name, MODELS.values())
        if choice != MODELS["segformer"]:
            log.warning("background_segmentation: SegFormer weights not here; running %s", choice)
        return choice

    def load(self, weights: weights_layer.Weights) -> None:
        if weights.model.engine == "mediapipe":
            # Bundled: the manifest's files were checked against the installed wheel
            # (weights.resolve assembled them); mediapipe's graphs load the same files.
            import mediapipe as mp

            self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            # Full landmark model (complexity 1): the one the wheel carries; lite and heavy
            # would be downloaded.
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,
                min_detection_confidence=self.params.pose_min_confidence,
            )
            self.labels, self.person = (), -1
            return
        import torch
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        if weights.kind == "real":
            assert weights.path is not None
            model = SegformerForSemanticSegmentation.from_pretrained(
                str(weights.path), local_files_only=True
            )
            processor = weights.path / "preprocessor_config.json"
            if processor.is_file():
                raw = json.loads(processor.read_text(encoding="utf-8"))
                mean = tuple(raw.get("image_mean", mean))
                std = tuple(raw.get("image_std", std))
            id2label = {int(k): v for k, v in model.config.id2label.items()}
            self.labels = tuple(id2label.get(i, str(i)) for i in range(model.config.num_labels))
        else:
            config = dict(weights.config or {})
            self.labels = ade20k_names(config.pop("labels", "ultralytics:cfg/datasets/ade20k.yaml"))
            cfg = SegformerConfig(
                **config,
                num_labels=len(self.labels),
                id2label=dict(enumerate(self.labels)),
                label2id={n: i for i, n in enumerate(self.labels)},
            )
            seeded(0)
            model = SegformerForSemanticSegmentation(cfg)
        self.person = next(
            (i for i, n in enumerate(self.labels) if n.split(";")[0] == "person"), -1
        )
        self.half = self.device.startswith("cuda")
        model = model.to(self.device).eval()
        self.model = model.half() if self.half else model.float()
        dtype = torch.float16 if self.half else torch.float32
        self._mean = torch.tensor(mean, dtype=dtype, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(std, dtype=dtype, device=self.device).view(1, 3, 1, 1) * 255
        self._torch = torch

    # -----------------------------------------------------------------------------------

    def check(self, clip: Clip) -> None:
        super().check(clip)
        check_frames(clip, self.name, _MIN_SIDE_PX, "segment")

    def prepare(self, clip: Clip) -> Prepared:
        # Every frame becomes an input_size square: all frames of all clips batch together.
        return Prepared(inputs=list(clip.frames))  # type: ignore[arg-type]

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray | list[PersonMask]:
        if self._selfie is not None:
            return [self.person_mask(frame) for frame in inputs]
        return self._segment(inputs)

    def person_mask(self, frame: np.ndarray) -> PersonMask:
        """The selfie tier on one RGB frame: the selfie mask, gated by the pose detector."""
        assert self._selfie is not None and self._pose is not None
        image = np.ascontiguousarray(frame)
        found = self._pose.process(image).pose_landmarks is not None
        mask = self._selfie.process(image).segmentation_mask
        return PersonMask(mask >= self.params.selfie_threshold, found)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[np.ndarray]) -> Result:
        return self._result(clip, outputs)

    def _segment(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Label maps (B, input_size / 4, input_size / 4) of class indices."""
        torch, size = self._torch, self.params.input_size
        images = []
        for frame in frames:
            h, w = frame.shape[:2]
            interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
            images.append(
                cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=interp)
            )
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        x = ((x.half() if self.half else x.float()) - self._mean) / self._std
        with torch.inference_mode():
            logits = self.model(pixel_values=x).logits
            small = torch.uint8 if logits.shape[1] <= 256 else torch.int16
            return logits.argmax(1).to(small).cpu().numpy()

    def _frame_stats(self, frame: np.ndarray, output: np.ndarray | PersonMask) -> _FrameStats:
        h, w = frame.shape[:2]
        r = min(1.0, self.params.color_short_side / min(h, w))
        small = frame
        if r < 1.0:
            size = (max(1, round(w * r)), max(1, round(h * r)))
            small = cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA)
        shares = None
        if isinstance(output, PersonMask):
            mask = output.mask.astype(np.uint8) if output.person else None
            person_share = float(output.mask.mean()) if output.person else 0.0
        else:
            n_labels = len(self.labels)
            shares = np.bincount(output.reshape(-1), minlength=n_labels)[:n_labels]
            shares = shares.astype(np.float64) / output.size
            mask = (output == self.person).astype(np.uint8) if self.person >= 0 else None
            person_share = float(shares[self.person]) if self.person >= 0 else 0.0
        person = None
        if mask is not None:
            person = cv2.resize(mask, small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        cover, flatness = green_screen_measure(small, person, self.params)
        return _FrameStats(shares, person_share, cover, flatness)

    def _top(self, shares: np.ndarray, k: int) -> list[ClassShare]:
        order = np.argsort(-shares, kind="stable")[:k]
        return [
            ClassShare(label=self.labels[i], share=round(float(shares[i]), 4))
            for i in order
            if shares[i] >= self.params.min_class_share and shares[i] > 0
        ]

    def _result(self, clip: Clip, maps: Sequence[np.ndarray | PersonMask | None]) -> Result:
        frames, times = clip.frames, np.asarray(clip.timestamps_s, np.float64)
        assert frames is not None
        stats = [self._frame_stats(frames[f], m) for f, m in enumerate(maps) if m is not None]
        if len(stats) != len(frames):
            raise RuntimeError("a frame has no label map")
        spans, source = _scenes(clip, times)
        scenes = []
        for k, (start, end) in enumerate(spans):
            last = k == len(spans) - 1
            # The last scene also holds any frame past its end (rounding at the clip's end).
            inside = [i for i, t in enumerate(times) if start <= t and (t < end or last)]
            count = len(inside)
            if not inside:
                inside = [int(np.argmin(np.abs(times - (start + end) / 2)))]
            classes = []
            if self._selfie is None:
                mean = np.mean([stats[i].shares for i in inside], axis=0)
                classes = self._top(mean, self.params.scene_classes)
            cover = float(np.mean([stats[i].cover for i in inside]))
            flatness = float(np.mean([stats[i].flatness for i in inside]))
            likelihood = float(np.mean([stats[i].likelihood for i in inside]))
            scenes.append(
                SceneBackground(
                    start_s=round(start, 3),
                    end_s=round(end, 3),
                    frames=count,
                    classes=classes,
                    foreground_share=round(float(np.mean([stats[i].person for i in inside])), 4),
                    green_screen_likelihood=round(likelihood, 4),
                    green_cover=round(cover, 4),
                    green_flatness=round(flatness, 4),
                )
            )
        classes, unavailable = [], None
        if self._selfie is None:
            overall = np.mean([s.shares for s in stats], axis=0)
            classes = self._top(overall, self.params.max_classes)
        else:
            unavailable = (
                f"ADE20K class shares need SegFormer; this ran {self.model_name} (person mask "
                f"only): run `tiktok-analyzer weights pull {self.name}/{MODELS['segformer']}`"
            )
        return self.Result(
            classes=classes,
            classes_unavailable=unavailable,
            foreground_share=round(float(np.mean([s.person for s in stats])), 4),
            green_screen_likelihood=max(s.green_screen_likelihood for s in scenes),
            green_screen_share=round(
                float(np.mean([s.likelihood >= _GREEN_FRAME for s in stats])), 4
            ),
            scenes=scenes,
            scenes_from=source,
            frames_analyzed=len(stats),
        )


def _scenes(clip: Clip, times: np.ndarray) -> tuple[list[tuple[float, float]], str]:
    """Scene time ranges from scene_segmentation, or the whole clip without them."""
    raw: Any = (clip.upstream.get("scene_segmentation") or {}).get("scenes") or []
    spans = []
    for scene in raw:
        try:
            start, end = float(scene["start_s"]), float(scene["end_s"])
        except (KeyError, TypeError, ValueError):
            continue
        if end > start:
            spans.append((start, end))
    if spans:
        return sorted(spans), "scene_segmentation"
    end_of_clip = max(float(clip.meta.duration_s or 0.0), float(times.max()) if len(times) else 0.0)
    return [(0.0, end_of_clip)], "whole_clip"
