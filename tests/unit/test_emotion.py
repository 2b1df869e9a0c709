"""speech_emotion on the tiny synthetic Wav2Vec2 (random weights: the labels are noise, the
windows, masks, batching and summaries are not), against espeak-ng speech with a known
speech span, music without speech, and upstream spans."""

from __future__ import annotations

import functools
import tomllib

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable, Partial
from tiktok_analyzer.analyzers.emotion import CIRCUMPLEX, SpeechEmotion, _Plan, windows
from tiktok_analyzer.analyzers.weights import DIR_ENV, MANIFEST_PATH, MODE_ENV
from tiktok_analyzer.groundtruth import CATALOG, load_frames, render

from . import upstream as up
from .speech_clips import audio_only, clip_of

LABELS = ["neu", "hap", "ang", "sad"]
# Silero's edges (32 ms windows, 100 ms padding) against the truth's -40 dB span.
EDGE_S = 0.3


@pytest.fixture(scope="module")
def analyzer():
    mp = pytest.MonkeyPatch()
    mp.setenv(MODE_ENV, "synthetic-tiny")
    try:
        yield SpeechEmotion()
    finally:
        mp.undo()


@functools.cache
def _no_speech_clip(tmp: str) -> Clip:
    # The tempo clip's beat and chord pad, no voice; audio only, decoded as the
    # orchestrator would.
    path = f"{tmp}/tempo_120.m4a"
    info = render(audio_only(CATALOG["tempo_120"]), path)
    _, _, audio = load_frames(path, short_side=0)
    return Clip(meta=ClipMeta(info["duration_s"], 0.0, 0, 0, has_video=False), audio=audio)


def _with(clip: Clip, voiced: list[dict] | None = None, segments: list[dict] | None = None) -> Clip:
    """The clip with a speech_transcription result of these voiced spans (the segments'
    spans when None) and segments."""
    extra = {} if voiced is None else {"voiced": voiced}
    transcript = up.transcript([], segments or [], **extra)
    return Clip(meta=clip.meta, audio=clip.audio, upstream={"speech_transcription": transcript})


def _check_schema(result, analyzer) -> None:
    assert result.labels == LABELS
    for seg in result.segments:
        assert 0.0 <= seg.confidence <= 1.0
        assert sum(seg.scores.values()) == pytest.approx(1.0, abs=2e-3)
        assert list(seg.scores) == LABELS
        assert seg.emotion == max(seg.scores, key=seg.scores.get)
        assert seg.end_s - seg.start_s <= analyzer.params.max_segment_s + 1e-3
        assert -1.0 <= seg.valence <= 1.0 and -1.0 <= seg.arousal <= 1.0
    starts = [s.start_s for s in result.segments]
    assert starts == sorted(starts)
    assert len(result.arc) == len(result.segments)
    for point, seg in zip(result.arc, result.segments, strict=True):
        assert seg.start_s <= point.time_s <= seg.end_s
    if result.segments:
        assert result.dominant in LABELS
        assert sum(result.distribution.values()) == pytest.approx(1.0, abs=2e-3)
        assert result.dominant == max(result.distribution, key=result.distribution.get)
    else:
        assert result.dominant is None and result.distribution == {} and result.arc == []


def test_synthetic_tiny_loads_with_the_real_labels(analyzer):
    assert analyzer.available and analyzer.weights == "synthetic-tiny"
    assert analyzer.labels == LABELS
    assert analyzer.model.config.num_hidden_layers == 2


def test_windows_cover_the_speech_of_the_truth(analyzer):
    clip, info = clip_of("speech_160")
    result = analyzer.analyze(clip)
    _check_schema(result, analyzer)
    assert result.source == "vad"
    truth = info["speech"]
    first, last = result.segments[0].start_s, result.segments[-1].end_s
    assert abs(first - truth["start_s"]) <= EDGE_S, (first, truth["start_s"])
    assert abs(last - truth["end_s"]) <= EDGE_S, (last, truth["end_s"])
    # 10.5 s of speech at 160 wpm: 6 s windows at most, so several; the pauses of
    # espeak-ng's sentences may leave out a little, not more.
    assert len(result.segments) >= 2
    span = truth["end_s"] - truth["start_s"]
    assert 0.85 * span <= result.speech_s <= span + 2 * EDGE_S
    assert result.speech_s == pytest.approx(
        sum(s.end_s - s.start_s for s in result.segments), abs=0.01
    )


def test_music_without_speech_gives_no_segments(analyzer, tmp_path_factory):
    clip = _no_speech_clip(str(tmp_path_factory.mktemp("emotion")))
    result = analyzer.analyze(clip)
    _check_schema(result, analyzer)
    assert result.segments == [] and result.speech_s == 0.0
    assert result.valence is None and result.arousal is None


def test_silence_gives_no_segments(analyzer):
    clip = Clip(meta=ClipMeta(3.0, 0.0, 0, 0), audio=np.zeros(3 * 16_000, np.float32))
    result = analyzer.analyze(clip)
    assert result.segments == [] and result.dominant is None


def test_upstream_voiced_spans_are_honoured(analyzer):
    clip, _ = clip_of("speech_160")
    voiced = [{"start_s": 1.0, "end_s": 3.0}, {"start_s": 4.0, "end_s": 11.5}]
    result = analyzer.analyze(_with(clip, voiced=voiced, segments=[]))
    _check_schema(result, analyzer)
    assert result.source == "speech_transcription"
    got = [(s.start_s, s.end_s) for s in result.segments]
    # 7.5 s is cut into two equal windows, not 6 + 1.5
    assert got == [(1.0, 3.0), (4.0, 7.75), (7.75, 11.5)]
    assert result.speech_s == pytest.approx(9.5)


def test_upstream_without_voice_means_no_speech(analyzer):
    # The transcriber heard no voice: no windows here either, even on speech.
    clip, _ = clip_of("speech_160")
    result = analyzer.analyze(_with(clip, voiced=[], segments=[]))
    assert result.segments == [] and result.source == "speech_transcription"


def test_upstream_voiced_spans_of_a_transcripts_segments(analyzer):
    clip, _ = clip_of("speech_160")
    segments = [{"start_s": 0.5, "end_s": 5.0, "text": "every morning"}]
    result = analyzer.analyze(_with(clip, segments=segments))
    assert [(s.start_s, s.end_s) for s in result.segments] == [(0.5, 5.0)]


def test_upstream_spans_past_the_audio_are_clipped(analyzer):
    clip, _ = clip_of("speech_160")
    end = len(clip.audio) / 16_000
    result = analyzer.analyze(
        _with(clip, voiced=[{"start_s": -1.0, "end_s": 2.0}, {"start_s": end - 1, "end_s": 99}])
    )
    spans = [(s.start_s, s.end_s) for s in result.segments]
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(end, abs=1e-3)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], []),
        ([(0.0, 0.2)], []),  # shorter than min_s
        ([(0.0, 6.0)], [(0.0, 6.0)]),
        ([(0.0, 6.3)], [(0.0, 3.15), (3.15, 6.3)]),
        ([(0.5, 13.5)], [(0.5, 0.5 + 13 / 3), (0.5 + 13 / 3, 0.5 + 26 / 3), (0.5 + 26 / 3, 13.5)]),
        ([(2.0, 4.0), (1.0, 3.0)], [(1.0, 4.0)]),  # overlapping spans merge
        ([(19.0, 22.0)], [(19.0, 20.0)]),  # clipped to the audio
        ([(21.0, 22.0)], []),
    ],
)
def test_windows(spans, expected):
    got = windows(spans, max_s=6.0, min_s=0.25, duration_s=20.0)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a == pytest.approx(b)


def test_dominant_is_weighted_by_duration(analyzer):
    # One short happy window, one long window leaning neutral: neutral has more mass.
    plan = _Plan(np.zeros(16_000 * 6, np.float32), [(0.0, 1.0), (1.0, 6.0)], "vad")
    probs = [np.array([0.05, 0.9, 0.03, 0.02]), np.array([0.5, 0.3, 0.1, 0.1])]
    result = analyzer._result(plan, probs)
    assert [s.emotion for s in result.segments] == ["hap", "neu"]
    assert result.dominant == "neu"
    assert result.distribution["hap"] == pytest.approx((0.9 * 1 + 0.3 * 5) / 6, abs=1e-4)
    hap_v, hap_a = CIRCUMPLEX["hap"]
    assert result.segments[0].valence == pytest.approx(
        0.9 * hap_v - 0.03 * 0.6 - 0.02 * 0.7, abs=1e-4
    )
    assert result.arc[0].time_s == 0.5 and result.arc[1].time_s == 3.5
    assert result.valence == pytest.approx(
        (result.segments[0].valence * 1 + result.segments[1].valence * 5) / 6, abs=1e-3
    )


def test_each_window_is_normalised_alone_and_masked(analyzer, monkeypatch):
    """What the model receives in a batch of unequal windows: each window at zero mean and
    unit variance over its own samples, zeros after it, and a mask of its length."""
    seen = {}
    real = analyzer.model

    def spy(values, attention_mask):
        seen["values"], seen["mask"] = values.float().numpy(), attention_mask.numpy()
        return real(values, attention_mask=attention_mask)

    monkeypatch.setattr(analyzer, "model", spy)
    rng = np.random.default_rng(0)
    pieces = [3.0 + 0.5 * rng.standard_normal(8_000), 0.1 * rng.standard_normal(20_000)]
    probs = analyzer._classify([p.astype(np.float32) for p in pieces])
    assert probs.shape == (2, 4) and np.allclose(probs.sum(axis=1), 1.0)
    values, mask = seen["values"], seen["mask"]
    assert values.shape == (2, 20_000)
    assert mask[0].sum() == 8_000 and mask[1].sum() == 20_000
    assert np.all(values[0, 8_000:] == 0.0)
    for row, n in ((0, 8_000), (1, 20_000)):
        assert abs(values[row, :n].mean()) < 1e-3
        assert values[row, :n].std() == pytest.approx(1.0, abs=1e-2)


def test_batch_keeps_bad_clips_to_themselves(analyzer):
    clip, _ = clip_of("speech_160")
    meta = clip.meta
    outcomes = analyzer.analyze_batch(
        [
            Clip(meta=meta, audio=np.zeros(1, np.float32)),
            clip,
            Clip(meta=meta, audio=np.full(16_000, np.nan, np.float32)),
            Clip(meta=meta, audio=None),
            Clip(meta=meta, audio=np.zeros((2, 16_000), np.float32)),
        ]
    )
    assert isinstance(outcomes[0], NotApplicable) and "too short" in str(outcomes[0])
    assert isinstance(outcomes[1], SpeechEmotion.Result) and outcomes[1].segments
    assert isinstance(outcomes[2], ValueError) and "NaN" in str(outcomes[2])
    assert isinstance(outcomes[3], NotApplicable)
    assert isinstance(outcomes[4], ValueError) and "mono" in str(outcomes[4])
    # The good clip's result does not depend on its neighbours.
    alone = analyzer.analyze(clip)
    assert [s.emotion for s in alone.segments] == [s.emotion for s in outcomes[1].segments]
    for a, b in zip(alone.segments, outcomes[1].segments, strict=True):
        assert (a.start_s, a.end_s) == (b.start_s, b.end_s)
        for lab in LABELS:
            assert a.scores[lab] == pytest.approx(b.scores[lab], abs=2e-3)


def test_real_weights_missing_is_partial_with_the_fix(monkeypatch, tmp_path):
    # The windows stand without the model (tests/unit/test_partial.py checks them against
    # the truth); every model-made field carries the fix.
    monkeypatch.setenv(MODE_ENV, "real")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = SpeechEmotion()
    assert not analyzer.available and analyzer.weights == "none"
    clip = Clip(meta=ClipMeta(1.0, 0.0, 0, 0), audio=np.zeros(16_000, np.float32))
    (outcome,) = analyzer.analyze_batch([clip])
    assert isinstance(outcome, Partial)
    assert outcome.result.segments == [] and outcome.result.dominant is None
    assert outcome.unavailable and all(
        "tiktok-analyzer weights pull speech_emotion" in f.fix for f in outcome.unavailable
    )
    # Too short to hold speech stays skipped, model or not.
    (short,) = analyzer.analyze_batch(
        [Clip(meta=ClipMeta(0.01, 0.0, 0, 0), audio=np.zeros(160, np.float32))]
    )
    assert isinstance(short, NotApplicable)


def _manifest_model() -> dict:
    data = tomllib.loads((MANIFEST_PATH / "speech_emotion.toml").read_text())
    (model,) = data["model"]
    return model


def test_full_synthetic_config_is_wav2vec2_base_with_the_er_head():
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = dict(_manifest_model()["synthetic"]["full"])
    config["id2label"] = {int(k): v for k, v in config["id2label"].items()}
    with torch.device("meta"):
        model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**config))
    n = sum(p.numel() for p in model.parameters())
    # pytorch_model.bin of the real model: 378 MB of float32.
    assert n * 4 / 1e6 == pytest.approx(378, rel=0.01)
    assert model.config.id2label == dict(enumerate(LABELS))


def test_every_label_has_a_place_on_the_circumplex():
    model = _manifest_model()
    for size in ("tiny", "full"):
        for label in model["synthetic"][size]["id2label"].values():
            assert label in CIRCUMPLEX
    for v, a in CIRCUMPLEX.values():
        assert -1 <= v <= 1 and -1 <= a <= 1


def test_real_weights_load_from_a_local_folder(analyzer, tmp_path):
    """The real path: a folder laid out as the hub's (config.json, preprocessor_config.json,
    pytorch_model.bin), loaded offline; the labels come from the folder's config."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    from tiktok_analyzer.analyzers import weights as weights_layer

    config = dict(_manifest_model()["synthetic"]["tiny"])
    config["id2label"] = {0: "ang", 1: "neu", 2: "sad", 3: "hap"}
    torch.manual_seed(1)
    model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**config))
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    analyzer.extractor.save_pretrained(tmp_path)
    entry = weights_layer.models_of("speech_emotion")[0]
    assert set(entry.files) == {p.name for p in tmp_path.iterdir()}

    real = SpeechEmotion.__new__(SpeechEmotion)
    real.params, real.device, real._unavailable = SpeechEmotion.Params(), "cpu", None
    real.load(weights_layer.Weights("real", entry, tmp_path))
    assert real.labels == ["ang", "neu", "sad", "hap"]
    clip, _ = clip_of("speech_160")
    result = real.analyze(clip)
    assert result.labels == real.labels and result.dominant in real.labels
    expected = torch.softmax(
        model.eval()(torch.from_numpy(_normalised(clip.audio[16_000:48_000]))[None]).logits, -1
    )
    got = real._classify([clip.audio[16_000:48_000]])
    assert np.allclose(got, expected.detach().numpy(), atol=1e-5)


def _normalised(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)
