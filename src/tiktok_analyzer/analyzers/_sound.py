"""The sound DSP that audio_analysis, audio_environment and sound_effects share.

All of it works on 16 kHz mono float32 (:data:`base.AUDIO_RATE`) in 10 ms frames
(:data:`HOP` samples), the grid the three analyzers' frame classifiers and event finders
use. Each analyzer keeps its own decisions (what music, speech or an event is); what lives
here is measurement: levels, spectral flatness, envelope modulation, onset envelopes and the
beat tracker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import librosa
import numpy as np

from tiktok_analyzer.analyzers.base import AUDIO_RATE, Clip
from tiktok_analyzer.analyzers.results.audio import DBFS_FLOOR

__all__ = [
    "DBFS_FLOOR",
    "FPS",
    "HOP",
    "NFFT",
    "dbfs",
    "dsp_params",
    "spectral_flatness",
    "modulation_depth",
    "mono_samples",
    "onset_envelope",
    "pulse_clarity",
    "track_pulse",
    "warm_up_sound",
]

HOP = 160  # 10 ms at 16 kHz
NFFT = 512
FPS = AUDIO_RATE / HOP
#: One Kaldi frame (25 ms): less sound than this has no spectrum at all.
MIN_SAMPLES = 400


def mono_samples(clip: Clip) -> np.ndarray:
    """The clip's audio as contiguous float32 samples; ValueError (a failed clip) when it is
    shorter than :data:`MIN_SAMPLES` or holds NaN or infinite samples."""
    y = np.ascontiguousarray(clip.audio, dtype=np.float32).reshape(-1)
    if len(y) < MIN_SAMPLES:
        raise ValueError(
            f"audio too short: {len(y)} samples, needs at least {MIN_SAMPLES} "
            f"({MIN_SAMPLES / AUDIO_RATE * 1000:.0f} ms)"
        )
    if not np.isfinite(y).all():
        raise ValueError("audio holds NaN or infinite samples")
    return y


def dsp_params(cls: type, params: Any) -> Any:
    """The DSP dataclass ``cls`` filled from an analyzer's Params: the analyzer exposes the
    DSP's thresholds under the same names, the rest keep the DSP's defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dataclasses.asdict(params).items() if k in names})


def warm_up_sound() -> np.ndarray:
    """3 s of a beat over a tone with a click: enough to run every path of the DSP."""
    t = np.arange(3 * AUDIO_RATE) / AUDIO_RATE
    y = 0.05 * np.sin(2 * np.pi * 220 * t) + 0.4 * np.sin(2 * np.pi * 60 * t) * (t % 0.5 < 0.08)
    y[round(1.25 * AUDIO_RATE) : round(1.26 * AUDIO_RATE)] += 0.9
    return y.astype(np.float32)


def dbfs(mean_square: float) -> float:
    # +3 dB: a full-scale sine's mean square is 1/2 (dBFS as the RMS of a sine is read).
    if mean_square <= 0:
        return DBFS_FLOOR
    return float(max(10.0 * np.log10(mean_square) + 3.0103, DBFS_FLOOR))


def spectral_flatness(spectrum: np.ndarray) -> float:
    """Wiener entropy of a power spectrum: 1 for white noise, near 0 for a few lines."""
    s = np.maximum(spectrum, 1e-20)
    return float(np.exp(np.mean(np.log(s))) / np.mean(s))


def modulation_depth(envelope: np.ndarray, fps: float, lo_hz: float, hi_hz: float) -> float:
    """Standard deviation of the envelope's lo..hi Hz band relative to its mean (0: steady)."""
    mean = envelope.mean()
    if mean <= 0:
        return 0.0
    x = (envelope - mean) / mean
    spectrum = np.fft.rfft(x * np.hanning(len(x)))
    freqs = np.fft.rfftfreq(len(x), 1.0 / fps)
    spectrum[(freqs < lo_hz) | (freqs > hi_hz)] = 0.0
    # The Hann taper takes the band's energy down by mean(w^2) = 3/8; put it back.
    return float(np.fft.irfft(spectrum, len(x)).std() / np.sqrt(3.0 / 8.0))


def onset_envelope(mel: np.ndarray) -> np.ndarray:
    """Spectral flux of the mel power (dB, floored 60 dB under the peak), one per frame."""
    return librosa.onset.onset_strength(
        S=librosa.power_to_db(mel, ref=np.max, top_db=60.0), sr=AUDIO_RATE, hop_length=HOP
    )


def track_pulse(env: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Tempo (BPM), beat frames (10 ms frames) and pulse clarity of an onset envelope;
    (0.0, no beats, 0.0) when there are too few onsets to track. The tracker runs on the
    envelope pooled to 20 ms frames: its tempogram costs seconds per minute of sound at
    10 ms, and a pulse needs no finer grid (beats come back within a frame pair)."""
    none = (0.0, np.zeros(0, np.int64), 0.0)
    if len(env) < round(2 * FPS) or env.max() <= 0:
        return none
    onsets = librosa.onset.onset_detect(
        onset_envelope=env, sr=AUDIO_RATE, hop_length=HOP, normalize=False, delta=1.0
    )
    if len(onsets) < 4:
        return none
    pooled = env[: len(env) // 2 * 2].reshape(-1, 2).max(axis=1)
    tempo, beats = librosa.beat.beat_track(
        onset_envelope=pooled, sr=AUDIO_RATE, hop_length=2 * HOP, trim=False
    )
    tempo = float(np.atleast_1d(tempo)[0])
    if tempo <= 0 or len(beats) < 2:
        return none
    # Back to 10 ms frames: the stronger frame of each pair.
    beats = np.asarray(beats, np.int64) * 2
    beats += (env[np.minimum(beats + 1, len(env) - 1)] > env[beats]).astype(np.int64)
    return tempo, beats, pulse_clarity(env, 60.0 / tempo * FPS)


def pulse_clarity(env: np.ndarray, period: float) -> float:
    """Normalised autocorrelation of the onset envelope at the beat period (best of the lags
    a frame either side of it): ~1 for a steady beat, near 0 for onsets that do not repeat."""
    x = env - env.mean()
    energy = float(np.dot(x, x))
    lag = int(round(period))
    if energy <= 0 or lag + 1 >= len(x):
        return 0.0
    return max(float(np.dot(x[:-k], x[k:])) / energy for k in range(max(1, lag - 1), lag + 2))
