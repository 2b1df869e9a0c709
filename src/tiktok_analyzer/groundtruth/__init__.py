"""Synthetic clips with known content (cuts, colours, camera motion, quality, beats) for
testing the analyzers; see :mod:`.clips`."""

from tiktok_analyzer.groundtruth.clips import (
    CATALOG,
    DEFAULT_SPEED,
    MOTIONS,
    AudioSpec,
    ClipSpec,
    Flash,
    Overlay,
    Photo,
    Shot,
    SoundEvent,
    iter_frames,
    load_frames,
    render,
    render_audio,
    render_sound,
    scale_spec,
    truth,
)
from tiktok_analyzer.groundtruth.speech import SPEECH_TEXTS, SpeechSpec

__all__ = [
    "CATALOG",
    "SPEECH_TEXTS",
    "SpeechSpec",
    "DEFAULT_SPEED",
    "MOTIONS",
    "AudioSpec",
    "ClipSpec",
    "Flash",
    "Overlay",
    "Photo",
    "Shot",
    "SoundEvent",
    "iter_frames",
    "load_frames",
    "render",
    "render_audio",
    "render_sound",
    "scale_spec",
    "truth",
]
