"""Partial results: audio_environment, sound_effects, composition_analysis, speech_emotion
and product_detection without their model's weights (real mode, an empty weights folder)
still report what they measure, on generated clips of known content, and mark what only
the model makes unavailable with the fix; with weights (synthetic) they report everything,
the measured part unchanged."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    AnalyzerResult,
    Clip,
    ClipMeta,
    Partial,
    UnavailableField,
)
from tiktok_analyzer.analyzers.environment import AudioEnvironment
from tiktok_analyzer.analyzers.results.environment import AudioEnvironmentResult
from tiktok_analyzer.analyzers.results.sfx import SoundEffectsResult
from tiktok_analyzer.analyzers.sfx import SFX_CLASSES, SoundEffects
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV
from tiktok_analyzer.groundtruth import CATALOG, load_frames, render, render_sound, truth

from . import upstream as up

SR = AUDIO_RATE
FIX = "tiktok-analyzer weights pull"


def _build(cls, mode: str, folder: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, mode)
        mp.setenv(DIR_ENV, str(folder))
        return cls()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Each analyzer twice: without weights (real mode, nothing in the folder) and on the
    tiny synthetic ones."""
    empty = tmp_path_factory.mktemp("no_weights")
    tiny = tmp_path_factory.mktemp("tiny")
    return {
        cls: (_build(cls, "real", empty), _build(cls, "synthetic-tiny", tiny))
        for cls in (AudioEnvironment, SoundEffects)
    }


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, tuple[np.ndarray, dict]]:
    root: Path = tmp_path_factory.mktemp("partial_gt")
    out = {}
    for name in ("speech_only", "speech_after_music", "sound_events"):
        out[name] = render_sound(name, root / f"{name}.m4a")
    return out


def _clip(y: np.ndarray, cuts: list[float] | None = None) -> Clip:
    y = np.asarray(y, dtype=np.float32)
    upstream = {} if cuts is None else {"cut_analysis": up.cuts(cuts, len(y) / SR)}
    return Clip(meta=ClipMeta(len(y) / SR, 0.0, 0, 0, has_video=False), audio=y, upstream=upstream)


def _partial(outcome) -> tuple[AnalyzerResult, dict[str, UnavailableField]]:
    assert isinstance(outcome, Partial), outcome
    return outcome.result, {f.field: f for f in outcome.unavailable}


def _with_noise(audio: np.ndarray, info: dict, snr_db: float) -> np.ndarray:
    """White noise ``snr_db`` under the speech's power over its span."""
    a, b = (round(info["speech"][k] * SR) for k in ("start_s", "end_s"))
    speech_ms = float(np.mean(audio[a:b].astype(np.float64) ** 2))
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(len(audio)) * np.sqrt(speech_ms * 10 ** (-snr_db / 10))
    return (audio + noise).astype(np.float32)


# ---------------------------------------------------------------------------------------
# audio_environment


def test_environment_without_weights_measures_and_marks_the_scene(pair, sounds):
    bare, full = pair[AudioEnvironment]
    assert not bare.available and bare.weights == "none"
    audio, info = sounds["speech_only"]
    r, missing = _partial(bare.analyze(_clip(_with_noise(audio, info, 15.0))))
    assert isinstance(r, AudioEnvironmentResult)
    # Measured, against the truth: speech over noise 15 dB under it.
    assert r.snr_db == pytest.approx(15.0, abs=4.0)
    spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
    assert r.speech_share >= 0.5 * spoken and r.music_share <= 0.05
    assert r.reverberation.label in {"dry", "room", "hall", "unknown"}
    assert r.shares_source == "dsp"
    # Model-made: null, each listed with why and the command that fixes it.
    assert r.scene is None and r.audioset_top is None
    assert set(missing) == {"scene", "audioset_top"}
    for f in missing.values():
        assert "real weights of audio_environment" in f.reason
        assert f"{FIX} audio_environment" in f.fix


def test_environment_shares_by_time_without_weights(pair, sounds):
    """Five seconds of beat and pad, then the voice: each share is its stretch."""
    bare, _ = pair[AudioEnvironment]
    audio, info = sounds["speech_after_music"]
    r, _ = _partial(bare.analyze(_clip(audio)))
    music = info["speech"]["start_s"] / info["duration_s"]
    spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
    assert r.music_share == pytest.approx(music, abs=0.1)
    assert r.speech_share == pytest.approx(spoken, abs=0.15)


def test_environment_with_weights_reports_everything_and_the_same_measures(pair, sounds):
    bare, full = pair[AudioEnvironment]
    audio, _ = sounds["speech_after_music"]
    whole = full.analyze(_clip(audio))
    assert isinstance(whole, AudioEnvironmentResult) and full.weights == "synthetic-tiny"
    assert whole.scene and whole.audioset_top
    measured, _ = _partial(bare.analyze(_clip(audio)))
    # Synthetic weights never blend: the DSP's part is the same number for number.
    keep = set(AudioEnvironmentResult.model_fields) - set(AudioEnvironmentResult.made_by_model)
    assert measured.model_dump(include=keep) == whole.model_dump(include=keep)


# ---------------------------------------------------------------------------------------
# sound_effects


def test_effects_without_weights_are_found_placed_and_unlabelled(pair, sounds):
    bare, _ = pair[SoundEffects]
    assert not bare.available and bare.weights == "none"
    audio, info = sounds["sound_events"]
    cuts = [c["time_s"] for c in info["cuts"]]
    r, missing = _partial(bare.analyze(_clip(audio, cuts)))
    assert isinstance(r, SoundEffectsResult)
    expected = info["sound_events"]
    assert len(r.events) == len(expected)
    for e, found in zip(expected, r.events, strict=True):
        assert abs(found.start_s - e["onset_s"]) <= 0.2, (e, found)
        assert found.label is None and found.confidence is None
        assert found.stand_out_db >= 10.0
    # The ding at 3.0 s lands on the clip's cut: placement needs no model.
    assert [e.on_cut for e in r.events] == [False, False, True, False, False]
    assert set(missing) == {"events[].label", "events[].confidence"}
    assert all(f"{FIX} sound_effects" in f.fix for f in missing.values())


def test_effects_with_weights_label_the_same_events(pair, sounds):
    bare, full = pair[SoundEffects]
    audio, info = sounds["sound_events"]
    cuts = [c["time_s"] for c in info["cuts"]]
    whole = full.analyze(_clip(audio, cuts))
    measured, _ = _partial(bare.analyze(_clip(audio, cuts)))
    assert isinstance(whole, SoundEffectsResult)
    assert all(e.label in SFX_CLASSES and 0.0 <= e.confidence <= 1.0 for e in whole.events)
    drop = {"label", "confidence"}
    assert [e.model_dump(exclude=drop) for e in whole.events] == [
        e.model_dump(exclude=drop) for e in measured.events
    ]


# ---------------------------------------------------------------------------------------
# The mechanism


def test_a_listed_field_that_holds_a_value_is_refused():
    field = UnavailableField(field="scene", reason="r", fix="f")

    class R(AnalyzerResult):
        scene: list[str] | None
        events: list[dict]

    Partial(R(scene=None, events=[{"label": None}]), [field])
    with pytest.raises(ValueError, match="scene"):
        Partial(R(scene=["street"], events=[]), [field])
    each = UnavailableField(field="events[].label", reason="r", fix="f")
    with pytest.raises(ValueError, match="events"):
        Partial(R(scene=None, events=[{"label": None}, {"label": "ding"}]), [each])
    with pytest.raises(ValueError, match="at least one"):
        Partial(R(scene=None, events=[]), [])


def _declared(model: type[BaseModel], path: str) -> bool:
    """Whether ``path`` names a field of ``model`` that may be null."""
    head, _, rest = path.partition(".")
    name = head.removesuffix("[]")
    info = model.model_fields.get(name)
    if info is None:
        return False
    if not rest:
        return not info.is_required() or type(None) in getattr(info.annotation, "__args__", ())
    (item,) = [a for a in info.annotation.__args__ if a is not type(None)]
    return _declared(item, rest)


@pytest.mark.parametrize("name", ANALYZER_NAMES)
def test_made_by_model_names_nullable_fields_of_the_result(name):
    """What a partial answer may lack is declared on the Result, fields that may be null,
    and only by an analyzer that can measure the rest without its model."""
    cls = load_class(name)
    fields = cls.Result.made_by_model
    for path in fields:
        assert _declared(cls.Result, path), f"{name}.Result has no nullable {path}"
    if fields:
        assert issubclass(cls, LearnedAnalyzer)
        assert cls.measure_only is not LearnedAnalyzer.measure_only, name


def test_the_cli_summary_tells_partial_apart(capsys):
    """The table's row for a partial answer: the measured headline, then what is missing
    and the fix, under its own status; an unavailable one keeps its error."""
    from tiktok_analyzer.cli import _print_summary
    from tiktok_analyzer.orchestrator.report import Report
    from tiktok_analyzer.orchestrator.summary import summary_rows

    fix = "run `tiktok-analyzer weights pull audio_environment/ast-audioset`"
    missing = [{"field": f, "reason": "real weights missing", "fix": fix} for f in ("scene",)]
    result = {
        "scene": None,
        "audioset_top": None,
        "music_share": 0.25,
        "speech_share": 0.5,
        "noise_share": 0.0,
        "silence_share": 0.25,
        "shares_source": "dsp",
        "snr_db": 31.2,
        "signal_dbfs": -20.0,
        "noise_floor_dbfs": -51.2,
        "reverberation": {"rt60_s": None, "label": "unknown", "decays": 0},
        "windows": [],
    }
    model = {"name": "ast-audioset", "weights": "none"}
    report = Report.model_validate(
        {
            "video": {
                "path": "a.mp4",
                "duration_s": 4.0,
                "fps": 30.0,
                "width": 360,
                "height": 640,
                "rotation": 0,
                "has_audio": True,
                "has_video": True,
                "codec": "h264",
            },
            "processing": {
                "started_at": "2026-12-06T00:00:00+00:00",
                "wall_s": 1.0,
                "realtime_factor": 0.25,
                "triton_url": "x",
                "versions": {},
            },
            "analyzers": {
                "audio_environment": {
                    "status": "partial",
                    "error": "without its model ...",
                    "elapsed_s": 0.1,
                    "model": model,
                    "result": result,
                    "unavailable_fields": missing,
                },
                "video_llava": {
                    "status": "unavailable",
                    "error": "real weights missing; run `tiktok-analyzer weights pull video_llava`",
                    "elapsed_s": 0.0,
                    "model": model,
                },
            },
        }
    )
    rows = dict((r[0], r[1:]) for r in summary_rows(report))
    status, _, text = rows["audio_environment"]
    assert status == "partial"
    assert "music 25% / speech 50%" in text and "SNR 31.2 dB" in text
    assert f"scene ({fix})" in text
    assert rows["video_llava"][0] == "unavailable"
    _print_summary(report, list(summary_rows(report)), False, None)
    out = capsys.readouterr().out
    assert "partial" in out and "SNR 31.2 dB" in out and "unavailable" in out


# ---------------------------------------------------------------------------------------
# composition_analysis: the saliency subject and the thirds need no CLIP


def test_composition_without_weights_measures_the_thirds(tmp_path):
    from tiktok_analyzer.analyzers.composition import CompositionAnalysis

    from .test_composition import three_shots

    bare = _build(CompositionAnalysis, "real", tmp_path / "empty")
    full = _build(CompositionAnalysis, "synthetic-tiny", tmp_path / "tiny")
    assert not bare.available
    clip, spans = three_shots()  # a subject on a thirds point, at the centre, in a corner
    r, missing = _partial(bare.analyze(clip))
    assert [(s.start_s, s.end_s) for s in r.shot_types] == spans
    assert [s.placement for s in r.shot_types] == ["thirds", "center", "edge"]
    scores = [s.thirds_score for s in r.shot_types]
    assert scores[0] >= 0.9 and scores[1] <= 0.1 and scores[2] == 0.0
    assert all(s.type is None and s.confidence is None and s.scores is None for s in r.shot_types)
    assert r.labels is None and r.dominant_shot_type is None
    assert set(missing) == set(r.made_by_model)
    assert all(
        "tiktok-analyzer weights pull composition_analysis" in f.fix for f in missing.values()
    )
    # With weights: the same measures, and the model's fields filled in.
    whole = full.analyze(clip)
    assert whole.labels and whole.dominant_shot_type in {"close_up", "medium", "wide"}
    drop = {"type", "confidence", "scores"}
    assert [s.model_dump(exclude=drop) for s in whole.shot_types] == [
        s.model_dump(exclude=drop) for s in r.shot_types
    ]
    assert whole.thirds_score == r.thirds_score and whole.subject == r.subject


# ---------------------------------------------------------------------------------------
# speech_emotion: the voiced windows need no wav2vec2


@pytest.fixture(scope="module")
def emotion_pair(tmp_path_factory):
    from tiktok_analyzer.analyzers.emotion import SpeechEmotion

    return (
        _build(SpeechEmotion, "real", tmp_path_factory.mktemp("no_emotion_weights")),
        _build(SpeechEmotion, "synthetic-tiny", tmp_path_factory.mktemp("tiny_emotion")),
    )


def test_emotion_without_weights_finds_the_speech_unlabelled(emotion_pair):
    from tiktok_analyzer.analyzers.results.emotion import SpeechEmotionResult

    from .speech_clips import clip_of

    bare, _ = emotion_pair
    assert not bare.available and bare.weights == "none"
    clip, info = clip_of("speech_160")
    r, missing = _partial(bare.analyze(clip))
    assert isinstance(r, SpeechEmotionResult) and r.source == "vad"
    # Measured, against the truth: the voiced windows cover the spoken span (Silero's
    # edges within 0.3 s), 6 s at most each.
    truth_ = info["speech"]
    span = truth_["end_s"] - truth_["start_s"]
    assert abs(r.segments[0].start_s - truth_["start_s"]) <= 0.3
    assert abs(r.segments[-1].end_s - truth_["end_s"]) <= 0.3
    assert len(r.segments) >= 2
    assert all(s.end_s - s.start_s <= bare.params.max_segment_s + 1e-3 for s in r.segments)
    assert 0.85 * span <= r.speech_s <= span + 0.6
    assert [p.time_s for p in r.arc] == [
        pytest.approx((s.start_s + s.end_s) / 2, abs=1e-3) for s in r.segments
    ]
    # Model-made: null, each listed with the fix.
    for s in r.segments:
        assert (s.emotion, s.confidence, s.scores, s.valence, s.arousal) == (None,) * 5
    assert all((p.emotion, p.valence, p.arousal) == (None,) * 3 for p in r.arc)
    assert r.dominant is None and r.distribution is None and r.labels is None
    assert r.valence is None and r.arousal is None
    assert set(missing) == set(SpeechEmotionResult.made_by_model)
    for f in missing.values():
        assert "real weights of speech_emotion" in f.reason
        assert f"{FIX} speech_emotion" in f.fix


def test_emotion_without_weights_keeps_the_transcribers_spans(emotion_pair):
    from .speech_clips import clip_of

    bare, _ = emotion_pair
    clip, _ = clip_of("speech_160")
    voiced = [{"start_s": 1.0, "end_s": 3.0}, {"start_s": 4.0, "end_s": 11.5}]
    clip = Clip(
        meta=clip.meta,
        audio=clip.audio,
        upstream={"speech_transcription": up.transcript([], [], voiced=voiced)},
    )
    r, _ = _partial(bare.analyze(clip))
    assert r.source == "speech_transcription"
    assert [(s.start_s, s.end_s) for s in r.segments] == [(1.0, 3.0), (4.0, 7.75), (7.75, 11.5)]
    assert r.speech_s == pytest.approx(9.5)


def test_emotion_without_weights_on_silence_has_no_windows(emotion_pair):
    bare, _ = emotion_pair
    r, _ = _partial(bare.analyze(_clip(np.zeros(3 * SR, np.float32))))
    assert r.segments == [] and r.arc == [] and r.speech_s == 0.0


def test_emotion_with_weights_labels_the_same_windows(emotion_pair):
    from .speech_clips import clip_of

    bare, full = emotion_pair
    clip, _ = clip_of("speech_160")
    whole = full.analyze(clip)
    measured, _ = _partial(bare.analyze(clip))
    assert full.weights == "synthetic-tiny" and whole.labels == ["neu", "hap", "ang", "sad"]
    assert whole.dominant in whole.labels and all(s.emotion in whole.labels for s in whole.segments)
    # The measured part is the same, number for number.
    assert [(s.start_s, s.end_s) for s in whole.segments] == [
        (s.start_s, s.end_s) for s in measured.segments
    ]
    assert [p.time_s for p in whole.arc] == [p.time_s for p in measured.arc]
    assert (whole.speech_s, whole.source) == (measured.speech_s, measured.source)


# ---------------------------------------------------------------------------------------
# product_detection: brands read on screen and the object tracks need no CLIP


@pytest.fixture(scope="module")
def branded(tmp_path_factory):
    """The text_overlays clip with two brands among its captions (NIKE over the first
    shot, Coca-Cola late), at 1 fps and 448 px as the analyzer samples it; text_overlay's
    texts are the truth's captions, object_detection's tracks a person, a bottle while NIKE
    shows and a phone while Coca-Cola does."""
    from tiktok_analyzer.groundtruth.clips import Overlay

    spec = dataclasses.replace(
        CATALOG["text_overlays"],
        overlays=[
            Overlay("NIKE AIR", 0.5, 3.0, y=0.18, size_px=72),
            Overlay("watch until the end", 2.0, 6.0, y=0.78, size_px=44),
            Overlay("Coca-Cola zero", 5.0, 7.6, y=0.45, size_px=60, box=(200, 30, 30)),
        ],
        audio=None,
    )
    info = truth(spec)
    path = tmp_path_factory.mktemp("branded") / "branded.mp4"
    render(spec, path)
    frames, times, _ = load_frames(path, short_side=448, fps=1.0)
    box = [0.3, 0.4, 0.6, 0.8]
    objects = up.objects(
        [
            up.track("person", 1, 0.0, 7.0, [(0.0, [0.1, 0.1, 0.9, 0.95])], share=1.0),
            up.track("bottle", 2, 1.0, 2.0, [(1.0, box), (2.0, box)], share=0.25),
            up.track("cell phone", 3, 6.0, 7.0, [(6.0, box), (7.0, box)], share=0.25),
        ]
    )
    texts = up.texts([up.text(o["text"], o["start_s"], o["end_s"]) for o in info["overlays"]])
    h, w = frames.shape[1:3]
    clip = Clip(
        meta=ClipMeta(info["duration_s"], 1.0, w, h),
        frames=frames,
        timestamps_s=times,
        frame_indices=np.arange(len(frames)),
        upstream={"object_detection": objects, "text_overlay": texts},
    )
    return clip, info


@pytest.fixture(scope="module")
def product_pair(tmp_path_factory):
    from tiktok_analyzer.analyzers.products import ProductDetection

    return (
        _build(ProductDetection, "real", tmp_path_factory.mktemp("no_clip_weights")),
        _build(ProductDetection, "synthetic-tiny", tmp_path_factory.mktemp("tiny_clip")),
    )


def test_products_without_weights_report_the_brands_on_screen_and_candidates(product_pair, branded):
    from tiktok_analyzer.analyzers.results.products import ProductDetectionResult

    bare, _ = product_pair
    assert not bare.available and bare.weights == "none"
    clip, info = branded
    r, missing = _partial(bare.analyze(clip))
    assert isinstance(r, ProductDetectionResult)
    # Measured, against the truth: each brand caption, at the caption's time.
    captions = {o["text"]: o for o in info["overlays"]}
    got = [(b.brand, b.text, b.start_s, b.end_s, b.confidence) for b in r.brands_in_text]
    assert got == [
        (key, text, pytest.approx(captions[text]["start_s"], abs=1e-3),
         pytest.approx(captions[text]["end_s"], abs=1e-3), 0.9)
        for key, text in (("nike", "NIKE AIR"), ("coca_cola", "Coca-Cola zero"))
    ]  # fmt: skip
    # The tracks that may be products (not the person), with the brand on screen meanwhile.
    assert [(c.track_id, c.label, c.brands) for c in r.candidates] == [
        (2, "bottle", ["nike"]),
        (3, "cell phone", ["coca_cola"]),
    ]
    assert [(c.first_s, c.last_s, c.screen_share) for c in r.candidates] == [
        (1.0, 2.0, 0.25),
        (6.0, 7.0, 0.25),
    ]
    assert r.mode == "objects"
    # Model-made: null, listed with the fix.
    assert r.products is None and r.crops_scored is None
    assert set(missing) == {"products", "crops_scored"}
    for f in missing.values():
        assert "real weights of product_detection" in f.reason
        assert f"{FIX} product_detection" in f.fix


def test_products_with_weights_report_the_same_measures(product_pair, branded):
    bare, full = product_pair
    clip, _ = branded
    whole = full.analyze(clip)
    measured, _ = _partial(bare.analyze(clip))
    assert full.weights == "synthetic-tiny"
    # Both text brands stand as products whatever the random CLIP sees; crops: 2 + 2 boxes
    # of the candidates and the person's one.
    assert {"nike", "coca_cola"} <= {p.brand for p in whole.products}
    assert whole.crops_scored == 5
    keep = {"brands_in_text", "candidates", "mode"}
    assert measured.model_dump(include=keep) == whole.model_dump(include=keep)


def test_headlines_say_what_a_partial_answer_measured(emotion_pair, product_pair, branded):
    """The summary's line of a partial answer: the measured part, no model-made words."""
    from tiktok_analyzer.orchestrator.summary import headline

    from .speech_clips import clip_of

    bare, full = product_pair
    clip, _ = branded
    measured, _ = _partial(bare.analyze(clip))
    assert headline("product_detection", measured.model_dump(mode="json")) == (
        "brands on screen: nike, coca_cola, 2 candidates (bottle, cell phone)"
    )
    whole = full.analyze(clip).model_dump(mode="json")
    assert headline("product_detection", whole).startswith(f"{len(whole['products'])} products: ")
    bare, full = emotion_pair
    speech, _ = clip_of("speech_160")
    r, _ = _partial(bare.analyze(speech))
    line = headline("speech_emotion", r.model_dump(mode="json"))
    assert line == f"{len(r.segments)} voiced windows, {r.speech_s:.1f} s of speech"
    whole = full.analyze(speech)
    assert headline("speech_emotion", whole.model_dump(mode="json")) == (
        f"mostly {whole.dominant}, {line}"
    )
