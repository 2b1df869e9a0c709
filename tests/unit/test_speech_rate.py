"""speech_rate from word timestamps (real transcripts of espeak-ng speech at 120, 160 and
200 words per minute) and from the sound alone (the acoustic fallback)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.speech_rate import SpeechRate, count_syllables

from . import upstream as up
from .speech_clips import clip_of, transcript

RATES = ["speech_120", "speech_160", "speech_200", "speech_after_music"]


def _with_upstream(name: str, upstream: dict) -> Clip:
    clip, _ = clip_of(name)
    return dataclasses.replace(clip, upstream=upstream)


def _truth_syllables_per_second(speech: dict) -> float:
    # The truth's syllables: the same spelling rule over the known words (the acoustic
    # count is independent of it).
    return sum(count_syllables(w) for w in speech["words"]) / (speech["end_s"] - speech["start_s"])


@pytest.mark.parametrize(
    ("word", "syllables"),
    [
        ("every", 3),
        ("morning", 2),
        ("walk", 1),
        ("breakfast", 2),
        ("family", 3),
        ("make", 1),
        ("likes", 1),
        ("buses", 2),
        ("walked", 1),
        ("wanted", 2),
        ("potatoes", 3),
        ("little", 2),
        ("tree", 1),
        ("the", 1),
        ("hour,", 1),
        ("Tonight", 2),
        ("8", 1),
        ("2024", 4),
        ("--", 0),
    ],
)
def test_count_syllables(word, syllables):
    assert count_syllables(word) == syllables


@pytest.mark.parametrize("name", RATES)
def test_rate_from_the_transcript_is_within_ten_percent(name):
    result, info = transcript(name)
    speech = info["speech"]
    rate = SpeechRate().analyze(_with_upstream(name, {"speech_transcription": result.model_dump()}))
    assert rate.source == "transcript"
    assert rate.words == len(result.words)
    assert rate.words_per_minute == pytest.approx(speech["wpm"], rel=0.10)
    assert rate.syllables_per_second == pytest.approx(_truth_syllables_per_second(speech), rel=0.10)
    # espeak-ng pauses at the full stop and the comma of the text.
    assert rate.pauses.count >= 1
    assert 0.25 <= rate.pauses.longest_s <= 1.5
    assert rate.articulation_rate_sps > rate.syllables_per_second
    span = speech["end_s"] - speech["start_s"]
    assert rate.speaking_share == pytest.approx(
        (span - rate.pauses.total_s) / info["duration_s"], abs=0.05
    )
    assert rate.segments and all(s.words_per_minute > 0 for s in rate.segments)


@pytest.mark.parametrize("name", RATES)
def test_acoustic_fallback_without_a_transcript(name):
    """Syllable nuclei from the sound alone. Syllables per second come within 15 %; words
    per minute also hang on the text's syllables per word (1.14 here against the 1.3
    assumed), so they are held to 25 %."""
    _, info = clip_of(name)
    speech = info["speech"]
    rate = SpeechRate().analyze(_with_upstream(name, {}))
    assert rate.source == "acoustic"
    assert rate.syllables_per_second == pytest.approx(_truth_syllables_per_second(speech), rel=0.15)
    assert rate.words_per_minute == pytest.approx(speech["wpm"], rel=0.25)
    assert 0.0 < rate.speaking_share <= 1.0


def _word(word: str, start: float, end: float) -> dict:
    return {"word": word, "start_s": start, "end_s": end, "probability": 0.9}


def _transcript(words: list[dict], segments: list[tuple[float, float, bool]]) -> dict:
    return up.transcript(
        [(w["word"], w["start_s"], w["end_s"]) for w in words],
        [{"start_s": a, "end_s": b, "text": "", "sung": s} for a, b, s in segments],
    )


def _clip(upstream: dict, duration: float = 10.0) -> Clip:
    meta = ClipMeta(duration, 0.0, 0, 0, has_video=False)
    return Clip(
        meta=meta,
        audio=np.zeros(round(duration * 16_000), np.float32),
        upstream={"speech_transcription": upstream},
    )


def test_pauses_breaks_and_sung_words_by_hand():
    words = [
        _word("one", 1.0, 1.4),
        _word("two", 1.5, 1.9),  # 0.1 s gap: not a pause
        _word("three", 2.4, 2.8),  # 0.5 s pause
        _word("four", 3.1, 3.5),  # 0.3 s pause
        _word("five", 7.0, 7.4),  # 3.5 s gap: a break between passages
        _word("la", 8.0, 8.5),
        _word("la", 8.5, 9.0),  # sung: left out
    ]
    upstream = _transcript(words, [(1.0, 3.5, False), (7.0, 7.4, False), (8.0, 9.0, True)])
    rate = SpeechRate().analyze(_clip(upstream))
    assert rate.words == 5 and rate.syllables == 5
    assert rate.pauses.count == 2
    assert rate.pauses.longest_s == pytest.approx(0.5)
    assert rate.pauses.mean_s == pytest.approx(0.4)
    span = (3.5 - 1.0) + (7.4 - 7.0)  # the break is not speaking time
    assert rate.words_per_minute == pytest.approx(5 / span * 60, rel=1e-3)
    assert rate.speaking_s == pytest.approx(span - 0.8)
    assert rate.speaking_share == pytest.approx((span - 0.8) / 10.0)
    assert [s.words for s in rate.segments] == [4, 1]
    assert rate.segments[0].words_per_minute == pytest.approx(4 / 2.5 * 60, rel=1e-3)


@pytest.mark.parametrize("upstream", [_transcript([], []), up.transcript([], [], language=None)])
def test_no_words_is_zero_not_a_failure(upstream):
    rate = SpeechRate().analyze(_clip(upstream))
    assert rate.source == "transcript"
    assert (rate.words_per_minute, rate.speaking_share, rate.pauses.count) == (0.0, 0.0, 0)


def test_acoustic_fallback_on_silence_is_zero():
    clip = Clip(meta=ClipMeta(3.0, 0.0, 0, 0, has_video=False), audio=np.zeros(48_000, np.float32))
    rate = SpeechRate().analyze(clip)
    assert rate.source == "acoustic"
    assert rate.words_per_minute == 0.0 and rate.syllables == 0
