"""sound_effects on generated ground truth: the catalog's "sound_events" clip (impulses,
whooshes and a ding over a quiet pad, a cut at 3.0 s), music and speech with and without
effects mixed in (the generator's own SoundEvent sounds), via AAC and the test decoder, on
the tiny synthetic AudioSet model: where the events are is DSP and must hold whatever the
weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiktok_analyzer.analyzers import _audioset
from tiktok_analyzer.analyzers.base import AUDIO_RATE, Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.sfx import SFX_CLASSES, DspParams, SoundEffects, find_events
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV
from tiktok_analyzer.groundtruth import render_sound
from tiktok_analyzer.groundtruth.clips import SoundEvent
from tiktok_analyzer.groundtruth.layers import mix_events, sound_event_truth

from . import upstream as up

SR = AUDIO_RATE
CLIPS = ["sound_events", "music_only", "speech_only", "speech_after_music", "tempo_120"]
ONSET_TOLERANCE_S = 0.2
#: The generator's kinds and the DSP shape each should read as.
SHAPES = {"impulse": "impulsive", "whoosh": "swept", "ding": "tonal"}


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> SoundEffects:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        mp.setenv(DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        return SoundEffects()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[np.ndarray, dict]]:
    """Each catalog clip's sound rendered once, audio only, decoded as the orchestrator
    would; the truth is the full clip's (its cuts come from the shots)."""
    root: Path = tmp_path_factory.mktemp("sfx_gt")
    out = {}
    for name in CLIPS:
        out[name] = render_sound(name, root / f"{name}.m4a")
    return out


def _clip(y: np.ndarray, cuts: list[float] | None = None) -> Clip:
    y = np.asarray(y, dtype=np.float32)
    upstream = {} if cuts is None else {"cut_analysis": up.cuts(cuts, len(y) / SR)}
    return Clip(meta=ClipMeta(len(y) / SR, 0.0, 0, 0, has_video=False), audio=y, upstream=upstream)


def _with_events(audio: np.ndarray, events: list[SoundEvent]) -> tuple[np.ndarray, list[dict]]:
    """The generator's own effect sounds mixed into decoded audio at 16 kHz."""
    out = audio.astype(np.float64).copy()
    mix_events(out, events, SR, seed=5)
    return np.clip(out, -1, 1).astype(np.float32), sound_event_truth(events, len(out) / SR)


def _match(found, expected: list[dict]) -> list:
    """For each expected event, the found event whose onset is nearest (None if none is
    within the tolerance)."""
    out = []
    for e in expected:
        near = [f for f in found if abs(f.start_s - e["onset_s"]) <= ONSET_TOLERANCE_S]
        out.append(min(near, key=lambda f: abs(f.start_s - e["onset_s"])) if near else None)
    return out


# ---------------------------------------------------------------------------------------
# The catalog clip


def test_finds_every_generated_event_and_nothing_else(analyzer, rendered):
    audio, info = rendered["sound_events"]
    r = analyzer.analyze(_clip(audio, [c["time_s"] for c in info["cuts"]]))
    expected = info["sound_events"]
    matched = _match(r.events, expected)
    assert all(m is not None for m in matched), ([e.start_s for e in r.events], expected)
    assert len(r.events) == len(expected)
    for m, e in zip(matched, expected, strict=True):
        assert m.shape == SHAPES[e["kind"]], (e, m)
        # The end is where the sound has decayed into the pad: near the truth's end (a
        # ding's tail and a whoosh's decay fade under the pad a little early).
        assert e["onset_s"] < m.end_s <= e["end_s"] + 0.15
        assert m.label in SFX_CLASSES and 0.0 <= m.confidence <= 1.0
        assert m.stand_out_db >= 10.0
    SoundEffects.Result.model_validate(r.model_dump())
    assert analyzer.weights == "synthetic-tiny"


def test_events_on_cuts(analyzer, rendered):
    audio, info = rendered["sound_events"]
    cuts = [c["time_s"] for c in info["cuts"]]
    assert cuts == [3.0]  # the ding at 3.0 s lands on the clip's only cut
    r = analyzer.analyze(_clip(audio, cuts))
    assert r.cuts_known
    for ev in r.events:
        assert ev.cut_offset_s == pytest.approx(ev.start_s - 3.0, abs=1e-3)
        assert ev.on_cut == (abs(ev.start_s - 3.0) <= analyzer.params.cut_tolerance_s)
    assert [ev.on_cut for ev in r.events] == [False, False, True, False, False]
    assert r.on_cut_share == pytest.approx(0.2)


def test_without_cut_analysis_no_event_is_on_a_cut(analyzer, rendered):
    audio, _ = rendered["sound_events"]
    r = analyzer.analyze(_clip(audio))
    assert not r.cuts_known and r.on_cut_share == 0.0
    assert all(not e.on_cut and e.cut_offset_s is None for e in r.events)


# ---------------------------------------------------------------------------------------
# Beats and speech do not flood the output


@pytest.mark.parametrize("name", ["music_only", "tempo_120"])
def test_the_music_beat_is_no_sound_effect(analyzer, rendered, name):
    audio, info = rendered[name]
    r = analyzer.analyze(_clip(audio))
    assert r.events == []
    assert r.beat_suppressed >= 0.8 * len(info["beats_s"])


def test_effects_over_a_beat_are_found_and_the_beats_are_not(rendered):
    audio, info = rendered["music_only"]  # 110 BPM from 0.4 s: beats every 0.545 s
    events = [SoundEvent("impulse", 1.22), SoundEvent("whoosh", 3.4), SoundEvent("ding", 6.12)]
    assert all(min(abs(e.time_s - b) for b in info["beats_s"]) > 0.15 for e in events)
    mixed, expected = _with_events(audio, events)
    found, removed = find_events(mixed, DspParams())
    assert all(m is not None for m in _match(found, expected)), [f.start_s for f in found]
    assert len(found) == len(expected)
    assert removed["beat"] >= 10


@pytest.mark.parametrize("name", ["speech_only", "speech_after_music"])
def test_speech_is_no_sound_effect(rendered, name):
    audio, info = rendered[name]
    found, removed = find_events(audio, DspParams())
    # Syllables stand out of the pauses; the speech cues take them back, the first and
    # last words too (speech on one side of them: in speech_after_music a syllable at
    # 6.28 s, music before it, came out as a tonal event while both sides were pooled).
    assert [(f.start_s, f.shape) for f in found] == [] and removed["speech"] >= 5
    sp = info["speech"]
    assert sp["end_s"] - sp["start_s"] > 5.0


# ---------------------------------------------------------------------------------------
# Limits and bad input


def test_max_events_keeps_the_most_salient(rendered, tmp_path):
    audio, _ = rendered["sound_events"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        mp.setenv(DIR_ENV, str(tmp_path))
        small = SoundEffects(SoundEffects.Params(max_events=2))
    r = small.analyze(_clip(audio))
    # The two that stand out most: the ding (3.0 s) and the first whoosh (1.9 s), in time
    # order.
    assert [e.start_s for e in r.events] == pytest.approx([1.9, 3.0], abs=ONSET_TOLERANCE_S)


def test_batch_keeps_a_bad_neighbour_apart(analyzer, rendered):
    audio, _ = rendered["sound_events"]
    good = _clip(audio[: round(3.5 * SR)])  # the first impulse, whoosh and ding
    outs = analyzer.analyze_batch([good, _clip(np.zeros(1)), _clip(np.zeros(0)), good])
    assert isinstance(outs[0], SoundEffects.Result) and len(outs[0].events) == 3
    assert isinstance(outs[1], ValueError) and "too short" in str(outs[1])
    assert isinstance(outs[2], NotApplicable)
    assert outs[3].model_dump() == outs[0].model_dump()


def test_silence_and_a_twentieth_of_a_second(analyzer):
    assert analyzer.analyze(_clip(np.zeros(2 * SR))).events == []
    t = np.arange(SR // 20) / SR
    r = analyzer.analyze(_clip(0.3 * np.sin(2 * np.pi * 440 * t)))
    assert r.events_per_minute >= 0.0


def test_every_effect_class_is_an_audioset_class():
    labels = set(_audioset.audioset_labels())
    assert [c for c in SFX_CLASSES if c not in labels] == []
    assert len(set(SFX_CLASSES)) == len(SFX_CLASSES)
