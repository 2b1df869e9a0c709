"""Analyzers whose models are not built yet.

Each is a real Triton model that loads and answers, with status ``unavailable`` and the work
that brings it, so the report always holds all 21 names and callers can plan for them.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Analyzer, AnalyzerResult, Clip, FrameSpec, Unavailable

_PICTURE = "the learned picture analyzers (issue 3)"
_SOUND = "the speech and sound analyzers (issue 4)"


class _Pending(Analyzer):
    brought_by: ClassVar[str]

    def check(self, clip: Clip) -> None:
        # Not built: say so whatever the clip holds.
        return None

    def analyze(self, clip: Clip) -> AnalyzerResult:
        raise Unavailable(f"{self.name} is not built yet; it comes with {self.brought_by}")


def _pending(
    name: str,
    brought_by: str,
    frames: FrameSpec | None,
    audio: bool,
    depends_on: tuple[str, ...] = (),
) -> type[_Pending]:
    return type(
        "".join(p.title() for p in name.split("_")),
        (_Pending,),
        {
            "name": name,
            "brought_by": brought_by,
            "frames": frames,
            "audio": audio,
            "depends_on": depends_on,
            "__module__": __name__,
        },
    )


# They declare no frames or audio yet, so the orchestrator ships them nothing.
VideoLlava = _pending("video_llava", _PICTURE, None, False)
ObjectDetection = _pending("object_detection", _PICTURE, None, False)
BackgroundSegmentation = _pending("background_segmentation", _PICTURE, None, False)
ProductDetection = _pending(
    "product_detection", _PICTURE, None, False, ("object_detection", "text_overlay")
)
TextOverlay = _pending("text_overlay", _PICTURE, None, False)
CompositionAnalysis = _pending("composition_analysis", _PICTURE, None, False)
EyeTracking = _pending("eye_tracking", _PICTURE, None, False)
AgeEstimation = _pending("age_estimation", _PICTURE, None, False)
AudioEnvironment = _pending("audio_environment", _SOUND, None, False)
SpeechEmotion = _pending("speech_emotion", _SOUND, None, False)
SoundEffects = _pending("sound_effects", _SOUND, None, False)
