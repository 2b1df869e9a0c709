"""Spoken words with a known text and rate, for the speech analyzers' ground truth.

The voice is espeak-ng's (formant synthesis: robotic but intelligible, deterministic, and
installed by the setup command). espeak-ng's ``-s`` is only roughly words per minute (its
speech runs about a quarter faster than asked, depending on the words), so
:func:`synthesize` calibrates it: it renders, measures the speech span (first to last
sound above -40 dB of the peak) and adjusts ``-s`` until ``words / span`` is within 1.5 %
of the asked rate. The truth reports the measured rate, not the asked one.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import soundfile as sf

__all__ = ["ESPEAK", "SPEECH_TEXTS", "SpeechSpec", "speech_truth", "synthesize", "words_of"]

ESPEAK = "espeak-ng"

#: Test texts: everyday words that espeak-ng says clearly enough for Whisper base.
SPEECH_TEXTS: dict[str, str] = {
    "morning": (
        "Every morning I walk to the park with my dog. We play in the sun for an hour, "
        "and then we go back home to have some breakfast."
    ),
    "kitchen": (
        "My sister likes to cook dinner for our friends. Tonight she will make soup with "
        "carrots, potatoes and fresh green beans."
    ),
}

# The speech span: sound above this far below the peak, in 10 ms frames.
_SPAN_DB = -40.0
_FRAME_S = 0.01
_RATE_TOLERANCE = 0.015


@dataclass(frozen=True)
class SpeechSpec:
    """``text`` spoken at ``wpm`` words per minute (measured over the speech span), from
    ``start_s`` on, at ``level_dbfs`` RMS over the span. ``music_stops``: the clip's music
    (the AudioSpec's beat and pad) fades out as the speech starts (a clip that opens on
    music); False keeps it playing under the voice, lowered by ``duck_db`` over the speech
    span (ramps of 0.1 s either side, the usual ducking of a music bed under a voice)."""

    text: str
    wpm: float = 160.0
    start_s: float = 0.5
    voice: str = "en-us"
    level_dbfs: float = -20.0
    music_stops: bool = True
    duck_db: float = 0.0

    def __post_init__(self) -> None:
        if not words_of(self.text):
            raise ValueError("speech text has no words")
        if not 60.0 <= self.wpm <= 400.0:
            raise ValueError(f"wpm must be within 60..400, got {self.wpm}")
        if self.start_s < 0:
            raise ValueError("start_s must be >= 0")
        if self.duck_db < 0 or (self.duck_db and self.music_stops):
            raise ValueError("duck_db is a cut in dB (>= 0) of music that keeps playing")

    @property
    def expected_duration_s(self) -> float:
        """How long the speech lasts once calibrated (to within the tolerance)."""
        return len(words_of(self.text)) / self.wpm * 60.0


def words_of(text: str) -> list[str]:
    """The text's words, lower case, punctuation dropped (apostrophes kept)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def _espeak(text: str, rate: int, voice: str) -> tuple[np.ndarray, int]:
    if shutil.which(ESPEAK) is None:
        raise RuntimeError(
            f"{ESPEAK} is not installed (apt-get install espeak-ng; the setup script does it)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(rate), "-w", str(wav), "--", text],
            check=True,
            capture_output=True,
        )
        y, sr = sf.read(wav, dtype="float32", always_2d=False)
    return y, sr


def _span(y: np.ndarray, sr: int) -> tuple[int, int]:
    """First and one-past-last sample of the speech (frames above -40 dB of the peak)."""
    hop = round(_FRAME_S * sr)
    n = len(y) // hop
    rms = np.sqrt(np.mean(y[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(rms / max(rms.max(), 1e-12))
    loud = np.flatnonzero(db > _SPAN_DB)
    if len(loud) == 0:
        raise RuntimeError("espeak-ng produced no sound")
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


@lru_cache(maxsize=32)
def synthesize(spec: SpeechSpec, sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The speech alone, trimmed to its span, at ``sample_rate`` and the spec's level, and
    what was rendered (espeak-ng rate used, measured span and rate)."""
    n_words = len(words_of(spec.text))
    target = n_words / spec.wpm * 60.0
    rate = round(spec.wpm)
    for _ in range(6):
        y, sr = _espeak(spec.text, rate, spec.voice)
        a, b = _span(y, sr)
        span = (b - a) / sr
        if abs(span / target - 1.0) <= _RATE_TOLERANCE:
            break
        # espeak's durations scale about inversely with -s.
        rate = int(np.clip(round(rate * span / target), 80, 450))
    else:
        raise RuntimeError(
            f"espeak-ng could not be calibrated to {spec.wpm} wpm (last span {span:.2f} s, "
            f"wanted {target:.2f} s)"
        )
    y = y[a:b].astype(np.float64)
    g = gcd(sample_rate, sr)
    y = scipy.signal.resample_poly(y, sample_rate // g, sr // g)
    rms = float(np.sqrt(np.mean(y**2)))
    y *= 10 ** (spec.level_dbfs / 20) / max(rms, 1e-12)
    info = {
        "espeak_rate": rate,
        "duration_s": len(y) / sample_rate,
        "wpm": n_words / ((b - a) / sr) * 60.0,
    }
    return y.astype(np.float32), info


def speech_truth(spec: SpeechSpec, sample_rate: int) -> dict[str, Any]:
    """What is said and when: the text, its words, the speech span and the measured rate."""
    _, info = synthesize(spec, sample_rate)
    words = words_of(spec.text)
    return {
        "text": spec.text,
        "words": words,
        "n_words": len(words),
        "start_s": spec.start_s,
        "end_s": spec.start_s + info["duration_s"],
        "wpm": info["wpm"],
        "wpm_asked": spec.wpm,
        "espeak_rate": info["espeak_rate"],
        "voice": spec.voice,
        "music_under_speech": not spec.music_stops,
        "music_duck_db": None if spec.music_stops else spec.duck_db,
    }


def mix_speech(out: np.ndarray, spec: SpeechSpec, sample_rate: int) -> None:
    """Add the speech into ``out`` (float64 samples at ``sample_rate``) in place; the clip
    must be long enough to hold it."""
    y, _ = synthesize(spec, sample_rate)
    start = round(spec.start_s * sample_rate)
    if start + len(y) > len(out):
        need = math.ceil((start + len(y)) / sample_rate * 10) / 10
        raise ValueError(f"the speech needs a clip of at least {need:.1f} s")
    out[start : start + len(y)] += y
