"""Every analyzer's result model, importable without the analyzers' libraries.

The analyzer modules import their Result models from here, and so do the orchestrator's
readers of a report (summary, render) and dependants reading upstream results
(:meth:`~tiktok_analyzer.analyzers.base.Clip.upstream_result`): an orchestrator-only install,
without torch, cv2 or librosa, still reads reports as typed models.
"""

from __future__ import annotations

import importlib
from typing import Any

from tiktok_analyzer.analyzers.base import AnalyzerResult

__all__ = ["RESULTS", "analyzer_of", "report_result", "result_class"]

#: Each analyzer's name -> ``"module:Class"`` of its Result model in this package.
RESULTS: dict[str, str] = {
    "cut_analysis": "cuts:CutAnalysisResult",
    "scene_segmentation": "scenes:SceneSegmentationResult",
    "color_analysis": "color:ColorResult",
    "content_quality": "quality:QualityResult",
    "camera_analysis": "camera:CameraResult",
    "visual_effects": "effects:VisualEffectsResult",
    "video_llava": "llava:VideoLlavaResult",
    "object_detection": "objects:ObjectDetectionResult",
    "background_segmentation": "segmentation:BackgroundSegmentationResult",
    "product_detection": "products:ProductDetectionResult",
    "text_overlay": "ocr:TextOverlayResult",
    "composition_analysis": "composition:CompositionAnalysisResult",
    "eye_tracking": "eyes:EyeTrackingResult",
    "age_estimation": "age:AgeEstimationResult",
    "audio_analysis": "audio:AudioAnalysisResult",
    "audio_environment": "environment:AudioEnvironmentResult",
    "sound_effects": "sfx:SoundEffectsResult",
    "speech_transcription": "speech:SpeechTranscriptionResult",
    "speech_emotion": "emotion:SpeechEmotionResult",
    "speech_rate": "speech_rate:SpeechRateResult",
    "temporal_flow": "flow:FlowResult",
}

_BY_TARGET = {target: name for name, target in RESULTS.items()}


def result_class(name: str) -> type[AnalyzerResult]:
    """The Result model of the analyzer called ``name``."""
    try:
        module, cls = RESULTS[name].split(":")
    except KeyError:
        raise KeyError(f"unknown analyzer {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def analyzer_of(model: type[AnalyzerResult]) -> str:
    """The name of the analyzer whose Result model ``model`` is."""
    module = model.__module__.removeprefix(f"{__name__}.")
    try:
        return _BY_TARGET[f"{module}:{model.__name__}"]
    except KeyError:
        raise TypeError(f"{model.__name__} is no analyzer's Result model") from None


def report_result(report: Any, name: str) -> AnalyzerResult | None:
    """Analyzer ``name``'s result in ``report`` (a Report or its JSON dict) as its Result
    model; None when the analyzer is missing or did not finish ok. A result that does not
    fit its model raises pydantic's ValidationError."""
    analyzers = report.get("analyzers") if isinstance(report, dict) else report.analyzers
    entry = (analyzers or {}).get(name)
    if entry is None:
        return None
    if isinstance(entry, dict):
        status, result = entry.get("status"), entry.get("result")
    else:
        status, result = entry.status, entry.result
    if status != "ok" or result is None:
        return None
    return result_class(name).model_validate(result)
