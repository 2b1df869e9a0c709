"""Analyzer logic, free of Triton: importable and testable without a server.

``REGISTRY`` maps each analyzer's API name to ``"module:Class"``; classes are imported on
demand so one analyzer's heavy dependencies never load in another's process.
"""

from __future__ import annotations

import importlib

from tiktok_analyzer.analyzers.base import Analyzer

__all__ = ["ANALYZER_NAMES", "REGISTRY", "load_class"]

REGISTRY: dict[str, str] = {
    # picture, classical
    "cut_analysis": "cuts:CutAnalysis",
    "scene_segmentation": "scenes:SceneSegmentation",
    "color_analysis": "color:ColorAnalysis",
    "content_quality": "quality:ContentQuality",
    "camera_analysis": "camera:CameraAnalysis",
    "visual_effects": "effects:VisualEffects",
    # picture, learned (weights: weights_manifest/)
    "video_llava": "llava:VideoLlava",
    "object_detection": "objects:ObjectDetection",
    "background_segmentation": "segmentation:BackgroundSegmentation",
    "product_detection": "products:ProductDetection",
    "text_overlay": "ocr:TextOverlay",
    "composition_analysis": "composition:CompositionAnalysis",
    "eye_tracking": "eyes:EyeTracking",
    "age_estimation": "age:AgeEstimation",
    # sound
    "audio_analysis": "audio:AudioAnalysis",
    "audio_environment": "environment:AudioEnvironment",
    "sound_effects": "sfx:SoundEffects",
    # speech
    "speech_transcription": "speech:SpeechTranscription",
    "speech_emotion": "emotion:SpeechEmotion",
    "speech_rate": "speech_rate:SpeechRate",
    # narrative structure, from all the others
    "temporal_flow": "flow:TemporalFlow",
}

ANALYZER_NAMES: tuple[str, ...] = tuple(REGISTRY)


def load_class(name: str) -> type[Analyzer]:
    """Import and return the analyzer class registered under ``name``."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown analyzer {name!r}; known: {', '.join(ANALYZER_NAMES)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
