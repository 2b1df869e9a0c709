"""audio_analysis against generated ground truth (tempo, beats, silences, music share, via
AAC and the test decoder) and against signals built here (loudness calibration, gating,
speech-like sound, noise, digital silence)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.signal

from tiktok_analyzer.analyzers.audio import AudioAnalysis, k_weighting_sos
from tiktok_analyzer.analyzers.base import AUDIO_RATE, Clip, ClipMeta, NotApplicable
from tiktok_analyzer.groundtruth import (
    CATALOG,
    AudioSpec,
    ClipSpec,
    load_frames,
    render,
    scale_spec,
    truth,
)

SR = AUDIO_RATE


def _audio_only(spec: ClipSpec) -> ClipSpec:
    """The catalog clip's sound without its picture: the audio depends only on the audio
    spec, the duration and the seed, and an .m4a renders in a fraction of the time."""
    return dataclasses.replace(spec, shots=[], flashes=[], duration_s=truth(spec)["duration_s"])


# name -> (spec, container). "silences" goes through a real (small) MP4 with a picture, to
# cover the muxed path; the others are audio-only.
GROUND_TRUTH: dict[str, tuple[ClipSpec, str]] = {
    "tempo_90": (_audio_only(CATALOG["tempo_90"]), "m4a"),
    "tempo_120": (_audio_only(CATALOG["tempo_120"]), "m4a"),
    "tempo_150": (_audio_only(CATALOG["tempo_150"]), "m4a"),
    "silences": (scale_spec(CATALOG["silences"], 90, 160), "mp4"),
    "audio_only": (CATALOG["audio_only"], "m4a"),
    "beat_only_120": (
        ClipSpec(
            shots=[],
            audio=AudioSpec(tempo_bpm=120.0, tone=False, first_beat_s=0.3),
            duration_s=6.0,
            seed=31,
        ),
        "m4a",
    ),
}
BEAT_AND_TONE = ["tempo_90", "tempo_120", "tempo_150", "silences", "audio_only"]


@pytest.fixture(scope="module")
def analyzer() -> AudioAnalysis:
    return AudioAnalysis()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[np.ndarray, dict]]:
    """Each ground-truth clip rendered once: its decoded 16 kHz audio and its truth."""
    root: Path = tmp_path_factory.mktemp("audio_gt")
    out = {}
    for name, (spec, ext) in GROUND_TRUTH.items():
        info = render(spec, root / f"{name}.{ext}")
        _, _, audio = load_frames(root / f"{name}.{ext}", short_side=16)
        out[name] = (audio, info)
    return out


def _run(analyzer: AudioAnalysis, audio: np.ndarray) -> Any:
    y = np.asarray(audio, dtype=np.float32)
    return analyzer.analyze(Clip(meta=ClipMeta(len(y) / SR, 0.0, 0, 0), audio=y))


def _matched(a: list[float], b: list[float], tol: float) -> float:
    """Share of the times in ``a`` with a time of ``b`` within ``tol``."""
    if not a:
        return 1.0
    if not b:
        return 0.0
    bb = np.asarray(b)
    return float(np.mean([np.min(np.abs(bb - t)) <= tol for t in a]))


# ---------------------------------------------------------------------------------------
# Against generated ground truth


@pytest.mark.parametrize(
    "name", ["tempo_90", "tempo_120", "tempo_150", "silences", "audio_only", "beat_only_120"]
)
def test_tempo_and_beats(analyzer, rendered, name):
    audio, info = rendered[name]
    r = _run(analyzer, audio)
    assert r.tempo_bpm == pytest.approx(info["tempo_bpm"], rel=0.02)
    # Recall: the truth beats that have a reported beat within 50 ms; precision the other
    # way round (truth has no beats inside silences, and neither should the report).
    assert _matched(info["beats_s"], r.beats_s, 0.05) >= 0.9
    assert _matched(r.beats_s, info["beats_s"], 0.05) >= 0.9
    # Beats sit on the attacks, not a frame or two late (measured 4-6 ms median).
    reported = np.asarray(r.beats_s)
    errors = [np.min(np.abs(reported - t)) for t in info["beats_s"]]
    assert np.median(errors) <= 0.02
    assert r.pulse_clarity >= 0.5


@pytest.mark.parametrize("name", ["silences", "audio_only", "tempo_120", "beat_only_120"])
def test_silences(analyzer, rendered, name):
    audio, info = rendered[name]
    r = _run(analyzer, audio)
    found = [(s.start_s, s.end_s) for s in r.silences]
    assert len(found) == len(info["silences"])
    for truth_silence in info["silences"]:
        start, end = truth_silence["start_s"], truth_silence["end_s"]
        assert any(abs(s - start) <= 0.1 and abs(e - end) <= 0.1 for s, e in found), (
            f"no silence near {start}-{end}: {found}"
        )


@pytest.mark.parametrize("name", BEAT_AND_TONE)
def test_beat_and_tone_is_music(analyzer, rendered, name):
    audio, info = rendered[name]
    r = _run(analyzer, audio)
    sounding = 1.0 - sum(s["end_s"] - s["start_s"] for s in info["silences"]) / info["duration_s"]
    assert r.music_share > r.speech_share
    assert r.music_share >= 0.95 * sounding
    assert r.speech_share <= 0.05


def test_onset_density_counts_the_kicks(analyzer, rendered):
    audio, info = rendered["tempo_120"]
    r = _run(analyzer, audio)
    assert r.onset_density == pytest.approx(len(info["beats_s"]) / info["duration_s"], rel=0.1)


# ---------------------------------------------------------------------------------------
# Speech-like sound, noise, silence


def _speech_like(duration_s: float, seed: int, syllables_per_s: float = 4.0) -> np.ndarray:
    """Syllables: a 2.5-7 kHz noise burst (consonant) then a voiced vowel (harmonics of a
    100-220 Hz pitch gliding by up to +-25 %, shaped by two random formants), at about
    ``syllables_per_s``, with an occasional pause between phrases. Not speech, but it has
    the cues the classifier claims to read: syllabic modulation of harmonic energy and
    voiced/unvoiced alternation."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(duration_s * SR))
    b, a = scipy.signal.butter(2, [2500, 7000], btype="band", fs=SR)
    mean_len = 1.0 / syllables_per_s
    t0 = 0.1
    while t0 < duration_s - 0.3:
        if rng.random() < 0.12:
            t0 += rng.uniform(0.2, 0.5)
            continue
        c_len = rng.uniform(0.12, 0.32) * mean_len
        n, i = int(c_len * SR), int(t0 * SR)
        y[i : i + n] += 0.15 * scipy.signal.lfilter(b, a, rng.standard_normal(n)) * np.hanning(n)
        v_len = rng.uniform(0.48, 0.88) * mean_len
        n, i = int(v_len * SR), i + n
        tt = np.arange(n) / SR
        f0 = rng.uniform(100, 220) * (1 + rng.uniform(-0.25, 0.25) * tt / v_len)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2300)
        vowel = np.zeros(n)
        for h in range(1, 30):
            fh = f0 * h
            weight = np.exp(-(((fh - f1) / 150) ** 2)) + 0.5 * np.exp(-(((fh - f2) / 200) ** 2))
            vowel += (weight + 0.02) * np.sin(h * phase)
        vowel *= np.hanning(n) / (np.abs(vowel).max() + 1e-9)
        m = min(n, len(y) - i)
        y[i : i + m] += 0.3 * vowel[:m]
        t0 += c_len + v_len + rng.uniform(0.0, 0.32) * mean_len
    return y.astype(np.float32)


def _pad(duration_s: float, gain: float) -> np.ndarray:
    """A held A-major chord, like the generator's tone."""
    t = np.arange(int(duration_s * SR)) / SR
    return (gain * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3).astype(
        np.float32
    )


SPEECH_CASES = {
    "seed0_4hz": _speech_like(8.0, 0),
    "seed1_4hz": _speech_like(8.0, 1),
    "seed2_3hz": _speech_like(8.0, 2, syllables_per_s=3.0),
    "seed3_5hz": _speech_like(8.0, 3, syllables_per_s=5.0),
    "over_pad_-15dB": _speech_like(8.0, 4) + _pad(8.0, 0.03),
}


@pytest.mark.parametrize("name", list(SPEECH_CASES))
def test_speech_like_is_speech(analyzer, name):
    r = _run(analyzer, SPEECH_CASES[name])
    assert r.speech_share > r.music_share
    assert r.speech_share >= 0.6
    # Syllables are not a beat.
    assert r.tempo_bpm == 0.0
    assert r.beats_s == []


def test_white_noise_is_neither(analyzer):
    noise = np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32) * 0.1
    r = _run(analyzer, noise)
    assert r.other_share >= 0.9
    assert r.tempo_bpm == 0.0


def test_steady_tone_has_no_beat_and_is_music(analyzer):
    r = _run(analyzer, _pad(5.0, 0.2))
    assert r.tempo_bpm == 0.0
    assert r.beats_s == []
    assert r.onset_density <= 0.5
    assert r.music_share >= 0.95


@pytest.mark.parametrize("n_samples", [3 * SR, 1000, 1])
def test_digital_silence(analyzer, n_samples):
    r = _run(analyzer, np.zeros(n_samples, np.float32))
    assert r.tempo_bpm == 0.0
    assert r.beats_s == []
    assert r.loudness_lufs == -70.0
    assert r.peak_dbfs == -100.0
    assert r.music_share == r.speech_share == r.other_share == 0.0
    if n_samples / SR >= 0.3:
        assert [(s.start_s, s.end_s) for s in r.silences] == [(0.0, n_samples / SR)]


def test_no_audio_is_not_applicable(analyzer):
    meta = ClipMeta(2.0, 30.0, 64, 64, has_audio=False)
    results = analyzer.analyze_batch([Clip(meta=meta), Clip(meta=meta, audio=np.zeros(0))])
    assert all(isinstance(r, NotApplicable) for r in results)


# ---------------------------------------------------------------------------------------
# Loudness


def test_k_weighting_reproduces_bs1770_at_48k():
    # ITU-R BS.1770-4, tables 1 and 2.
    expected = np.array(
        [
            [
                1.53512485958697,
                -2.69169618940638,
                1.19839281085285,
                1.0,
                -1.69065929318241,
                0.73248077421585,
            ],
            [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
        ]
    )
    np.testing.assert_allclose(k_weighting_sos(48_000), expected, atol=1e-7)


def _sine(amplitude: float, seconds: float, freq: float = 997.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# BS.1770: a full-scale 997 Hz sine in one channel reads -3.01 LKFS. After a 4 s tone, the
# absolute gate drops silence and the relative gate a part 30 dB down, but not the three
# 400 ms blocks that straddle the change (75, 50, 25 % tone): 38.5 tone-blocks in 40.
_STRADDLE_DB = 10 * np.log10(38.5 / 40)
LOUDNESS_CASES = {
    "full_scale": (_sine(1.0, 4.0), -3.01),
    "minus_20_dBFS": (_sine(0.1, 4.0), -23.01),
    "tone_then_silence": (
        np.concatenate([_sine(0.1, 4.0), np.zeros(4 * SR, np.float32)]),
        -23.01 + _STRADDLE_DB,
    ),
    "tone_then_quiet": (
        np.concatenate([_sine(0.1, 4.0), _sine(0.1 * 10 ** (-30 / 20), 4.0)]),
        -23.01 + _STRADDLE_DB,
    ),
}


@pytest.mark.parametrize("name", list(LOUDNESS_CASES))
def test_integrated_loudness(analyzer, name):
    audio, expected = LOUDNESS_CASES[name]
    assert _run(analyzer, audio).loudness_lufs == pytest.approx(expected, abs=0.1)


def test_loudness_curve_range_and_peak(analyzer):
    loud, quiet = _sine(0.5, 6.0), _sine(0.5 / np.sqrt(10.0), 6.0)  # 10 dB apart
    r = _run(analyzer, np.concatenate([loud, quiet]))
    assert r.peak_dbfs == pytest.approx(-6.02, abs=0.05)
    assert len(r.loudness_curve) == 24
    for point in r.loudness_curve:
        expected = -3.01 - 6.02 - (10.0 if point.time_s > 6.0 else 0.0)
        assert point.lufs == pytest.approx(expected, abs=0.15), point
    # Short-term loudness spends a third of the time at each level: the 10th and 95th
    # percentiles land on the two plateaus.
    assert r.dynamic_range_db == pytest.approx(10.0, abs=0.3)
