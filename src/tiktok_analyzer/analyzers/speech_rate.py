"""Speech rate: words per minute, syllables per second, pauses and the speaking share.

From the transcript (``source: "transcript"``): speech_transcription's word timestamps.
Rates are taken over the speech span (first word's start to last word's end) with its
pauses included, the usual definition of speaking rate; ``articulation_rate_sps`` leaves
the pauses out. A pause is a gap of ``min_pause_s`` or more between words; a gap of
``max_pause_s`` or more is a break between separate passages (music, a cut), counted
neither as a pause nor as speaking time. Syllables are counted from each word's letters
with a simple English heuristic (:func:`count_syllables`). Words of segments flagged
``sung`` are left out: a song is not speech.

Without a transcript (speech_transcription failed, was unavailable or not run) it falls
back to the sound (``source: "acoustic"``): syllable nuclei are peaks of the voice-band
loudness inside the stretches Silero VAD marks voiced, rising ``nucleus_prominence_db``
above the dips around them (after de Jong & Wempe, 2009, Praat script for speech rate);
words are estimated as syllables / ``syllables_per_word``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.signal

from tiktok_analyzer.analyzers.base import AUDIO_RATE, Analyzer, Clip, NotApplicable
from tiktok_analyzer.analyzers.results.speech import SpeechTranscriptionResult
from tiktok_analyzer.analyzers.results.speech_rate import (  # noqa: F401 - re-exported
    Pauses,
    RateSegment,
    SpeechRateResult,
)

__all__ = ["Pauses", "RateSegment", "SpeechRate", "count_syllables"]

_VAD_WINDOW = 512  # Silero's window at 16 kHz


def count_syllables(word: str) -> int:
    """Syllables of an English word from its spelling: vowel groups (y counts as a vowel),
    less a silent final e ("make"), a silent -es ("likes", not "buses") and a silent -ed
    ("walked", not "wanted"). Digits count one syllable each (Whisper writes numbers as
    digits). About 90 % of common words come out right; errors are +-1."""
    w = re.sub(r"[^a-z0-9]", "", word.lower())
    if not w:
        return 0
    if w.isdigit():
        return len(w)
    n = len(re.findall(r"[aeiouy]+", w))
    if n > 1:
        if w.endswith("e") and not w.endswith(("le", "ee", "ye")):
            n -= 1
        elif (
            w.endswith("es")
            and w[-3] not in "aeiouy"
            and not w.endswith(("ses", "xes", "zes", "ches", "shes", "ges", "ces"))
        ):
            n -= 1
        elif w.endswith("ed") and w[-3] not in "aeiouytd":
            n -= 1
    return max(1, n)


@dataclass(frozen=True)
class _Unit:
    """A word (transcript) or a syllable nucleus (acoustic), with its syllables."""

    start: float
    end: float
    syllables: int


class SpeechRate(Analyzer):
    """How fast the speaker talks, and how they pause."""

    name = "speech_rate"
    frames = None
    audio = True
    depends_on = ("speech_transcription",)

    @dataclass
    class Params:
        min_pause_s: float = 0.25
        # Longer gaps separate passages: not pauses, not speaking time.
        max_pause_s: float = 3.0
        # Acoustic fallback: conversational English runs about 1.3 syllables a word
        # (written English ~1.4-1.5; speech favours short words).
        syllables_per_word: float = 1.3
        nucleus_prominence_db: float = 2.0
        # Nuclei quieter than this below the loudest voiced frames are not counted.
        nucleus_floor_db: float = 25.0
        # Two nuclei are at least this far apart (syllables are rarely faster than ~10/s).
        nucleus_min_gap_s: float = 0.1
        vad_threshold: float = 0.5

    Result = SpeechRateResult

    def analyze(self, clip: Clip) -> Result:
        duration = clip.meta.duration_s or (len(clip.audio) / AUDIO_RATE)
        transcript = clip.upstream_result(SpeechTranscriptionResult)
        if transcript is not None:
            units, groups = self._from_transcript(transcript)
            n_words = len(units)
        else:
            if clip.audio is None or clip.audio.size == 0:
                raise NotApplicable("no transcript and no audio")
            units, groups = self._from_audio(np.asarray(clip.audio, np.float32))
            n_words = 0  # estimated below from the syllables
        source: Literal["transcript", "acoustic"] = (
            "transcript" if transcript is not None else "acoustic"
        )
        return self._measure(units, groups, n_words, duration, source)

    # -- transcript ----------------------------------------------------------------------

    def _from_transcript(
        self, transcript: SpeechTranscriptionResult
    ) -> tuple[list[_Unit], list[tuple[float, float]]]:
        sung = [(s.start_s, s.end_s) for s in transcript.segments if s.sung]
        units = []
        for w in transcript.words:
            mid = (w.start_s + w.end_s) / 2
            if any(a <= mid <= b for a, b in sung):
                continue
            syl = count_syllables(w.word)
            if syl:
                units.append(_Unit(w.start_s, w.end_s, syl))
        units.sort(key=lambda u: u.start)
        groups = [(s.start_s, s.end_s) for s in transcript.segments if not s.sung]
        return units, groups

    # -- acoustic fallback ---------------------------------------------------------------

    def _from_audio(self, audio: np.ndarray) -> tuple[list[_Unit], list[tuple[float, float]]]:
        from faster_whisper.vad import get_vad_model

        p = self.params
        padded = np.pad(audio, (0, -len(audio) % _VAD_WINDOW))
        prob = np.asarray(get_vad_model()(padded)).reshape(-1)
        step = _VAD_WINDOW / AUDIO_RATE
        # Voice-band loudness in 10 ms frames (25 ms windows): kicks and bass below
        # 300 Hz and hiss above 3.4 kHz do not make syllables.
        sos = scipy.signal.butter(4, [300, 3400], btype="bandpass", fs=AUDIO_RATE, output="sos")
        band = scipy.signal.sosfiltfilt(sos, audio.astype(np.float64))
        hop, win = AUDIO_RATE // 100, AUDIO_RATE // 40
        n = max(0, (len(band) - win) // hop + 1)
        if n == 0:
            return [], []
        power = np.lib.stride_tricks.sliding_window_view(band**2, win)[::hop][:n].mean(axis=1)
        db = 10 * np.log10(power + 1e-12)
        t = (np.arange(n) * hop + win / 2) / AUDIO_RATE
        voiced = prob[np.minimum((t / step).astype(int), len(prob) - 1)] >= p.vad_threshold
        if not voiced.any():
            return [], []
        floor = np.percentile(db[voiced], 95) - p.nucleus_floor_db
        peaks, _ = scipy.signal.find_peaks(
            db,
            prominence=p.nucleus_prominence_db,
            distance=max(1, round(p.nucleus_min_gap_s * 100)),
        )
        peaks = peaks[voiced[peaks] & (db[peaks] >= floor)]
        # A nucleus stands for its syllable; its extent is the voiced run around it, so
        # gaps between nuclei of one run are not pauses.
        runs = _runs(voiced, t, hop / AUDIO_RATE)
        units = []
        for k in peaks:
            run = next(r for r in runs if r[0] <= t[k] <= r[1])
            units.append(_Unit(run[0], run[1], 1))
        return units, runs

    # -- measures ------------------------------------------------------------------------

    def _measure(
        self,
        units: list[_Unit],
        groups: list[tuple[float, float]],
        n_words: int,
        duration: float,
        source: Literal["transcript", "acoustic"],
    ) -> Result:
        p = self.params
        syllables = sum(u.syllables for u in units)
        if source == "acoustic":
            n_words = round(syllables / p.syllables_per_word)
        empty = Pauses(count=0, mean_s=0.0, longest_s=0.0, total_s=0.0)
        if not units:
            return self.Result(
                source=source,
                words_per_minute=0.0,
                syllables_per_second=0.0,
                articulation_rate_sps=0.0,
                pauses=empty,
                speaking_share=0.0,
                speaking_s=0.0,
                words=n_words,
                syllables=syllables,
                segments=[],
            )
        # Merge overlapping units (acoustic nuclei share their run) into spoken stretches.
        spans: list[list[float]] = []
        for u in units:
            if spans and u.start <= spans[-1][1] + 1e-9:
                spans[-1][1] = max(spans[-1][1], u.end)
            else:
                spans.append([u.start, u.end])
        gaps = [b[0] - a[1] for a, b in zip(spans[:-1], spans[1:], strict=True)]
        pauses = [g for g in gaps if p.min_pause_s <= g < p.max_pause_s]
        breaks = sum(g for g in gaps if g >= p.max_pause_s)
        span = spans[-1][1] - spans[0][0] - breaks
        speaking = span - sum(pauses)
        segments = []
        for a, b in groups:
            inside = [u for u in units if a <= (u.start + u.end) / 2 <= b]
            if not inside:
                continue
            seg_span = max(u.end for u in inside) - min(u.start for u in inside)
            seg_syl = sum(u.syllables for u in inside)
            seg_words = len(inside) if source == "transcript" else seg_syl / p.syllables_per_word
            segments.append(
                RateSegment(
                    start_s=round(a, 3),
                    end_s=round(b, 3),
                    words=round(seg_words),
                    syllables=seg_syl,
                    words_per_minute=round(_rate(seg_words, seg_span) * 60, 2),
                    syllables_per_second=round(_rate(seg_syl, seg_span), 3),
                )
            )
        words_rate = n_words if source == "transcript" else syllables / p.syllables_per_word
        return self.Result(
            source=source,
            words_per_minute=round(_rate(words_rate, span) * 60, 2),
            syllables_per_second=round(_rate(syllables, span), 3),
            articulation_rate_sps=round(_rate(syllables, speaking), 3),
            pauses=Pauses(
                count=len(pauses),
                mean_s=round(float(np.mean(pauses)), 3) if pauses else 0.0,
                longest_s=round(max(pauses), 3) if pauses else 0.0,
                total_s=round(sum(pauses), 3),
            ),
            speaking_share=round(min(1.0, speaking / duration), 4) if duration > 0 else 0.0,
            speaking_s=round(speaking, 3),
            words=n_words,
            syllables=syllables,
            segments=segments,
        )


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _runs(mask: np.ndarray, t: np.ndarray, frame_s: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of True in ``mask`` sampled at times ``t``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [
        (float(t[a] - frame_s / 2), float(t[b] + frame_s / 2))
        for a, b in zip(starts, ends, strict=True)
    ]
