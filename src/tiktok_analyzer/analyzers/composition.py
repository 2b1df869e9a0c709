"""Composition: shot type per shot, subject placement against the rule of thirds, and the
clip's scene and style, from CLIP ViT-L/14 zero-shot prompts plus a classical saliency map.

Per sampled frame:

* shot type, scene and style: CLIP image embedding against the text embeddings of a
  committed vocabulary (:data:`SHOT_TYPES`, :data:`SCENES`, :data:`STYLES`; several prompts
  per label, averaged), softmax within each vocabulary;
* subject: a frequency-tuned saliency map (Achanta et al., CVPR 2009: each pixel's CIELAB
  distance from the frame's mean colour) on a small copy of the frame; the subject is the
  connected region at least ``subject_threshold`` of the peak holding the most saliency,
  placed at its saliency-weighted centroid. A
  frame where nothing stands ``min_saliency`` Delta-E from the mean has no subject. This
  part does not depend on the weights: without CLIP's weights the analyzer answers
  ``partial``, the subject, placement and thirds per shot and over the clip measured, the
  shot types, labels and dominant shot type null (``Result.made_by_model``).

Per shot (cut_analysis ``shots`` when present, else scene_segmentation ``scenes``, else the
whole clip): the shot type with the highest mean probability over the shot's frames (the
frame nearest its middle for a shot shorter than the sampling step), and the subject's
median position and mean ``thirds_score``. ``thirds_score`` is 1 on a thirds intersection
and falls linearly to 0 at the distance from an intersection to the frame's centre
(sqrt(2)/6 of the frame, coordinates normalised to 0..1 per axis): a centred subject
scores 0, as does one pushed into a corner.

Known limits: the saliency subject is the region whose colour differs most from the frame's
mean: a subject dressed like its background is missed and a bright prop can win over a
face; a frame full of colour (no clear subject) still gets one, with a low ``strength``.
Shot type, scene and style are zero-shot CLIP guesses over a fixed vocabulary, checked here
for form only (no real weights offline): their accuracy on real footage is not measured.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._clip import (
    FITS,
    ClipZeroShot,
    Vocabulary,
    clip_duration,
    validate_frames,
)
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared
from tiktok_analyzer.analyzers.base import (
    Clip,
    FrameSpec,
)
from tiktok_analyzer.analyzers.results.composition import (  # noqa: F401 - re-exported
    CompositionAnalysisResult,
    CompositionLabel,
    CompositionSubject,
    Placement,
    ShotComposition,
    ShotTypeName,
)

__all__ = [
    "SCENES",
    "SHOT_TYPES",
    "STYLES",
    "CompositionAnalysis",
    "CompositionSubject",
    "find_subject",
    "placement_of",
    "saliency_map",
    "thirds_distance",
    "thirds_score",
]

log = logging.getLogger(__name__)

SHOT_TYPES = Vocabulary.of(
    [
        (
            "close_up",
            [
                "a close-up photo of a person's face.",
                "an extreme close-up shot.",
                "a close-up shot of an object filling the frame.",
                "a macro photo of a small detail.",
            ],
        ),
        (
            "medium",
            [
                "a medium shot of a person from the waist up.",
                "a photo of a person's head and shoulders and upper body.",
                "a medium shot of two people talking.",
                "a selfie video of a person talking to the camera.",
            ],
        ),
        (
            "wide",
            [
                "a wide shot of a whole scene.",
                "a full-body shot of a person standing far from the camera.",
                "a wide-angle photo of a landscape.",
                "a long shot of a street with people in the distance.",
            ],
        ),
    ]
)

_SCENE_NAMES = (
    "kitchen",
    "bedroom",
    "bathroom",
    "living room",
    "office",
    "classroom",
    "gym",
    "restaurant",
    "cafe",
    "bar or nightclub",
    "shop",
    "supermarket",
    "photo studio",
    "concert stage",
    "car interior",
    "city street",
    "city skyline",
    "park",
    "forest",
    "mountains",
    "beach",
    "swimming pool",
    "desert",
    "snowy landscape",
    "sports field",
    "stadium",
    "garden",
    "farm",
    "airport",
    "train or subway",
)
SCENES = Vocabulary.templated(
    _SCENE_NAMES, ("a photo of a {}.", "a video frame filmed in a {}.", "a picture of the {}.")
)

STYLES = Vocabulary.of(
    [
        ("selfie", ["a selfie video filmed with a phone's front camera.", "a selfie."]),
        ("talking head", ["a person talking to the camera.", "a talking-head video."]),
        ("tutorial", ["a how-to tutorial video.", "hands demonstrating how to do something."]),
        ("product showcase", ["a product being shown to the camera.", "a product advertisement."]),
        ("unboxing", ["an unboxing video.", "hands opening a package."]),
        ("dance", ["a person dancing.", "a dance video."]),
        ("cooking", ["a cooking video.", "food being prepared in a kitchen."]),
        ("fitness", ["a workout video.", "a person exercising."]),
        ("makeup", ["a makeup tutorial.", "a person applying makeup."]),
        ("gameplay", ["a video game screenshot.", "a screen recording of a game."]),
        ("screen recording", ["a screenshot of a phone screen.", "a screen recording of an app."]),
        ("animation", ["a cartoon.", "an animated video.", "a 3D render."]),
        ("text slide", ["a slide with large text on a plain background.", "a text graphic."]),
        ("meme", ["a meme with caption text.", "a funny meme."]),
        ("cinematic", ["a cinematic film still.", "a movie scene with dramatic lighting."]),
        ("black and white", ["a black and white photo.", "a monochrome video."]),
        ("vintage", ["a vintage film photo.", "a retro video with film grain."]),
        ("low light", ["a dark photo taken at night.", "an underexposed low-light video."]),
        ("aerial", ["an aerial drone shot.", "a bird's-eye view from above."]),
        ("green screen", ["a person in front of a green screen.", "a green screen effect."]),
        ("split screen", ["a split-screen video.", "two videos side by side."]),
        ("pet", ["a video of a pet.", "a cute dog or cat."]),
    ]
)

_VOCABULARIES = {"shot": SHOT_TYPES, "scene": SCENES, "style": STYLES}
_THIRDS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])
#: Distance from a thirds intersection to the centre of the frame (normalised coordinates):
#: the score's zero.
_THIRDS_SPAN = math.hypot(1 / 6, 1 / 6)
# A subject this close to the frame's border (normalised) is at the edge.
_EDGE_MARGIN = 0.15


# ---------------------------------------------------------------------------------------
# Subject and the rule of thirds (weights-independent)


def saliency_map(frame: np.ndarray, size: int = 64, sigma: float = 1.0) -> np.ndarray:
    """Frequency-tuned saliency of a uint8 RGB frame (Achanta et al., CVPR 2009) as a
    ``size`` x ``size`` map: each pixel's CIELAB distance (Delta-E 1976) from the frame's
    mean colour, after a light blur. The frame is squeezed to a square; positions stay
    normalised. Region-based: a whole object that differs from the frame lights up, where
    spectral residual (tried first) lights an object's edges, so a large subject's centre
    drifted to one of its sides."""
    small = cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab = cv2.GaussianBlur(lab, (0, 0), sigma)
    return np.linalg.norm(lab - lab.reshape(-1, 3).mean(0), axis=2)


def find_subject(
    frame: np.ndarray,
    size: int = 64,
    sigma: float = 1.0,
    threshold: float = 0.5,
    min_saliency: float = 15.0,
) -> CompositionSubject | None:
    """The salient subject of a uint8 RGB frame, or None when nothing stands out (no
    pixel at least ``min_saliency`` Delta-E from the mean colour: a flat, noisy or
    featureless frame). The subject is the connected region of pixels at least
    ``threshold`` x the peak that holds the most saliency; its position the region's
    saliency-weighted centroid; its strength the share of the frame's saliency it holds
    minus the share of the frame it covers (a small region holding much: a clear
    subject)."""
    saliency = saliency_map(frame, size, sigma)
    peak = float(saliency.max())
    if not np.isfinite(peak) or peak < min_saliency:
        return None
    mask = (saliency >= threshold * peak).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    # The region holding the most saliency: two separate objects must not average into a
    # subject in the empty space between them.
    masses = np.bincount(labels.ravel(), weights=saliency.ravel(), minlength=n)
    masses[0] = 0.0
    region = labels == int(np.argmax(masses))
    weight = np.where(region, saliency, 0.0)
    mass = float(weight.sum())
    ys, xs = np.mgrid[0:size, 0:size]
    return CompositionSubject(
        x=round(float(((weight * xs).sum() / mass + 0.5) / size), 4),
        y=round(float(((weight * ys).sum() / mass + 0.5) / size), 4),
        strength=round(max(0.0, mass / float(saliency.sum()) - float(region.mean())), 4),
    )


def thirds_distance(x: float, y: float) -> float:
    """Distance from (x, y) (normalised 0..1) to the nearest thirds intersection."""
    return float(np.min(np.hypot(_THIRDS[:, 0] - x, _THIRDS[:, 1] - y)))


def thirds_score(x: float, y: float) -> float:
    """1 on a thirds intersection, 0 at the centre's distance from one or farther."""
    return float(max(0.0, 1.0 - thirds_distance(x, y) / _THIRDS_SPAN))


def placement_of(x: float, y: float, tolerance: float = 0.1) -> Placement:
    """Where the subject sits: on a thirds point, centred, at an edge, or elsewhere."""
    if thirds_distance(x, y) <= tolerance:
        return "thirds"
    if math.hypot(x - 0.5, y - 0.5) <= tolerance:
        return "center"
    if min(x, 1 - x, y, 1 - y) < _EDGE_MARGIN:
        return "edge"
    return "off_center"


# ---------------------------------------------------------------------------------------
# Result


@dataclass
class _Frame:
    probs: dict[str, np.ndarray]
    subject: CompositionSubject | None


class CompositionAnalysis(LearnedAnalyzer):
    """Shot type per shot, subject placement (rule of thirds), scene and style labels."""

    name = "composition_analysis"
    frames = FrameSpec(fps=2.0, short_side=256)
    depends_on = ("scene_segmentation", "cut_analysis")
    model_name = "clip-vit-l-14-openai"

    @dataclass
    class Params:
        # Frames per CLIP forward pass.
        batch_size: int = 16
        # crop: CLIP's centre square (its training preprocessing); pad: the whole frame
        # letterboxed into the square.
        fit: str = "crop"
        # Labels reported per vocabulary (scenes, styles).
        top_k: int = 3
        # Saliency map side (pixels) and its blur (map pixels).
        saliency_size: int = 64
        saliency_sigma: float = 1.0
        # Subject region: saliency at least this share of the peak.
        subject_threshold: float = 0.5
        # Peak saliency (CIELAB Delta-E from the mean colour) below which nothing stands
        # out: no subject (random noise averaged to the map peaks near 12).
        min_saliency: float = 15.0
        # Within this distance (normalised) of a thirds point / the centre: "thirds" /
        # "center" placement.
        placement_tolerance: float = 0.1

    Result = CompositionAnalysisResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {params.fit!r}")
        super().__init__(params, device)

    def load(self, weights: weights_layer.Weights) -> None:
        self.clip = ClipZeroShot(weights, self.device, _VOCABULARIES)

    # --- batch ----------------------------------------------------------------------------

    def prepare(self, clip: Clip) -> Prepared:
        validate_frames(clip, self.name)
        return Prepared(inputs=list(clip.frames))  # type: ignore[arg-type]

    def infer(self, inputs: list[np.ndarray]):
        return self.clip.embed(inputs, self.params.fit, self.params.batch_size)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list) -> Result:
        return self._finish(clip, self.clip.stack(outputs))

    def measure_only(self, clip: Clip) -> Result:
        """No CLIP: the saliency subject and the thirds, per shot and over the clip."""
        validate_frames(clip, self.name)
        return self._finish(clip, None)

    # --- one clip -------------------------------------------------------------------------

    def _finish(self, clip: Clip, emb) -> Result:
        """The result from the frames and their CLIP embeddings (None without the model:
        no shot types, no labels)."""
        p = self.params
        probs = (
            {name: self.clip.probabilities(emb, name) for name in _VOCABULARIES}
            if emb is not None
            else {}
        )
        frames = [
            _Frame(
                {name: probs[name][j] for name in probs},
                find_subject(
                    frame,
                    p.saliency_size,
                    p.saliency_sigma,
                    p.subject_threshold,
                    p.min_saliency,
                ),
            )
            for j, frame in enumerate(clip.frames)
        ]
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        duration = clip_duration(clip, times)
        spans, source = shot_spans(clip.upstream, duration)
        shots = [self._shot(a, b, frames, times) for a, b in spans]

        with_subject = [f.subject for f in frames if f.subject is not None]
        subject = _median_subject(with_subject)
        labels: list[CompositionLabel] | None = [] if probs else None
        for kind in ("scene", "style") if probs else ():
            mean = np.mean([f.probs[kind] for f in frames], axis=0)
            order = np.argsort(-mean)[: max(0, p.top_k)]
            vocab = _VOCABULARIES[kind]
            labels += [  # type: ignore[operator]
                CompositionLabel(label=vocab.labels[k], score=round(float(mean[k]), 4), kind=kind)
                for k in order
            ]
        time_by_type: dict[str, float] = {}
        for shot in (s for s in shots if s.type is not None):
            time_by_type[shot.type] = time_by_type.get(shot.type, 0.0) + shot.end_s - shot.start_s
        return self.Result(
            shot_types=shots,
            labels=labels,
            thirds_score=(
                round(float(np.mean([thirds_score(s.x, s.y) for s in with_subject])), 4)
                if with_subject
                else None
            ),
            placement=(
                placement_of(subject.x, subject.y, p.placement_tolerance) if subject else None
            ),
            subject=subject,
            shot_source=source,
            dominant_shot_type=(
                max(time_by_type, key=time_by_type.get) if time_by_type else None  # type: ignore[arg-type]
            ),
            frames_analyzed=len(frames),
        )

    def _shot(
        self, start: float, end: float, frames: list[_Frame], times: np.ndarray
    ) -> ShotComposition:
        inside = np.flatnonzero((times >= start) & (times < end))
        if len(inside) == 0:
            # A shot shorter than the sampling step: the frame nearest its middle.
            inside = np.array([int(np.argmin(np.abs(times - (start + end) / 2)))])
        chosen = [frames[j] for j in inside]
        kind = confidence = scores = None
        if chosen[0].probs:  # the model's view; none without it
            mean = np.mean([f.probs["shot"] for f in chosen], axis=0)
            best = int(np.argmax(mean))
            kind, confidence = SHOT_TYPES.labels[best], round(float(mean[best]), 4)
            scores = {k: round(float(v), 4) for k, v in zip(SHOT_TYPES.labels, mean, strict=True)}
        subjects = [f.subject for f in chosen if f.subject is not None]
        subject = _median_subject(subjects)
        return ShotComposition(
            start_s=round(start, 3),
            end_s=round(end, 3),
            type=kind,  # type: ignore[arg-type]
            confidence=confidence,
            scores=scores,
            frames=len(chosen),
            subject=subject,
            thirds_score=(
                round(float(np.mean([thirds_score(s.x, s.y) for s in subjects])), 4)
                if subjects
                else None
            ),
            placement=(
                placement_of(subject.x, subject.y, self.params.placement_tolerance)
                if subject
                else None
            ),
        )


# ---------------------------------------------------------------------------------------
# Helpers


def _spans_of(items: Any) -> list[tuple[float, float]]:
    """Valid, ordered [start_s, end_s) spans of an upstream list; [] when unusable."""
    if not isinstance(items, list):
        return []
    spans = []
    for item in items:
        try:
            a, b = float(item["start_s"]), float(item["end_s"])
        except (KeyError, TypeError, ValueError):
            return []
        if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
            return []
        spans.append((a, b))
    return sorted(spans)


def shot_spans(
    upstream: dict[str, Any], duration: float
) -> tuple[list[tuple[float, float]], Literal["cut_analysis", "scene_segmentation", "whole_clip"]]:
    """The spans to type: cut_analysis shots, else scene_segmentation scenes, else the
    whole clip."""
    shots = _spans_of((upstream.get("cut_analysis") or {}).get("shots"))
    if shots:
        return shots, "cut_analysis"
    scenes = _spans_of((upstream.get("scene_segmentation") or {}).get("scenes"))
    if scenes:
        return scenes, "scene_segmentation"
    return [(0.0, duration)], "whole_clip"


def _median_subject(subjects: list[CompositionSubject]) -> CompositionSubject | None:
    if not subjects:
        return None
    return CompositionSubject(
        x=round(float(np.median([s.x for s in subjects])), 4),
        y=round(float(np.median([s.y for s in subjects])), 4),
        strength=round(float(np.median([s.strength for s in subjects])), 4),
    )
