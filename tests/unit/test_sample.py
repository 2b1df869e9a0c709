"""The demo clip (catalog ``sample``, analyzed by scripts/demo.sh): its truth lists a real
face, espeak-ng speech over ducked music, a caption and a whoosh on a cut, and the rendered
clip holds each where the truth says. No Triton and no learned weights but mediapipe's
bundled face detector: the live check of the analyzers is tests/live/test_demo_live.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, Partial
from tiktok_analyzer.analyzers.sfx import DspParams, SoundEffects, find_events
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV
from tiktok_analyzer.groundtruth import CATALOG, SPEECH_TEXTS, load_frames, render_audio, truth
from tiktok_analyzer.groundtruth.clips import SAMPLE_CAPTION, SAMPLE_SPEECH
from tiktok_analyzer.groundtruth.speech import words_of

from . import upstream as up

SR = 16_000
W, H = 360, 640
FPS = 10.0


@pytest.fixture(scope="module")
def full():
    return truth(CATALOG["sample"])


@pytest.fixture(scope="module")
def small(clip_factory):
    """The sample at 360x640, decoded at 10 fps, with its truth (at that size)."""
    path, info = clip_factory("sample", width=W, height=H)
    frames, stamps, audio = load_frames(path, short_side=0, fps=FPS)
    return info, frames, stamps, audio


def _frame(small, t: float) -> np.ndarray:
    _, frames, stamps, _ = small
    return frames[int(np.argmin(np.abs(stamps - t)))]


def test_truth_lists_a_face_speech_a_caption_and_a_sound_effect(full):
    cut_times = [c["time_s"] for c in full["cuts"]]
    assert (full["width"], full["height"], full["duration_s"]) == (720, 1280, 15.0)
    # The face fills the first shot, coming and going with it.
    (photo,) = full["photos"]
    assert photo["name"] == "astronaut" and photo["start_s"] == 0.0
    assert photo["end_s"] == cut_times[0]
    # The sentence, its words and its span: clear of the silence.
    sp = full["speech"]
    assert sp["text"] == SPEECH_TEXTS[SAMPLE_SPEECH]
    assert sp["words"] == words_of(sp["text"]) and sp["n_words"] == 21
    assert sp["start_s"] == 0.6 and 7.0 < sp["end_s"] - sp["start_s"] < 9.0
    assert abs(sp["wpm"] - 160.0) <= 0.015 * 160.0
    assert sp["music_under_speech"] and sp["music_duck_db"] == 12.0
    assert all(s["start_s"] >= sp["end_s"] for s in full["silences"])
    # The caption: lower third, from a cut to the end.
    (cap,) = full["overlays"]
    assert cap["text"] == SAMPLE_CAPTION
    assert cap["start_s"] in cut_times and cap["end_frame"] == full["n_frames"]
    assert cap["box"][1] > full["height"] * 2 / 3
    # The whoosh starts exactly on a cut, away from the voice and the silence.
    (sfx,) = full["sound_events"]
    assert sfx["kind"] == "whoosh" and sfx["onset_s"] in cut_times
    assert sfx["onset_s"] > sp["end_s"] + 2.0
    assert all(not (s["start_s"] <= sfx["onset_s"] <= s["end_s"]) for s in full["silences"])


def test_the_face_is_a_face_for_mediapipe(small):
    """mediapipe's bundled face detector finds one face, inside the photo, while the first
    shot lasts, and none after it."""
    import mediapipe as mp

    info = small[0]
    (photo,) = info["photos"]
    x0, y0, x1, y1 = photo["bbox"]
    with mp.solutions.face_detection.FaceDetection(model_selection=1) as detector:
        for t in (0.5, 1.5, 2.3):
            found = detector.process(_frame(small, t)).detections or []
            assert len(found) == 1, t
            box = found[0].location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * W, (box.ymin + box.height / 2) * H
            assert x0 < cx < x1 and y0 < cy < y1, (t, cx, cy, photo["bbox"])
        for t in (3.0, 8.0, 12.0):
            assert not detector.process(_frame(small, t)).detections, t


def test_the_caption_is_white_on_a_dark_box_only_while_the_truth_says(small):
    info = small[0]
    (cap,) = info["overlays"]
    x0, y0, x1, y1 = cap["box"]
    during = _frame(small, cap["start_s"] + 1.0)[y0:y1, x0:x1].astype(int)
    before = _frame(small, cap["start_s"] - 0.2)[y0:y1, x0:x1].astype(int)
    assert np.median(during) < 30 and (during.min(axis=2) > 200).mean() > 0.05
    assert np.median(before) > 60


def test_music_is_ducked_12_db_under_the_voice():
    """The music alone (the voice made inaudible) is the truth's duck quieter over the
    speech span than the same music left as it is, and untouched away from it."""
    spec = CATALOG["sample"]
    a = spec.audio
    sp = truth(spec)["speech"]

    def music(duck_db: float) -> np.ndarray:
        voice = dataclasses.replace(a.speech, level_dbfs=-150.0, duck_db=duck_db)
        audio = dataclasses.replace(a, speech=voice, events=())
        return render_audio(dataclasses.replace(spec, audio=audio))[0]

    ducked, plain = music(a.speech.duck_db), music(0.0)
    sr = a.sample_rate

    def level_db(y: np.ndarray, t0: float, t1: float) -> float:
        return 10 * np.log10(np.mean(y[round(t0 * sr) : round(t1 * sr)].astype(np.float64) ** 2))

    under = (sp["start_s"] + 0.1, sp["end_s"] - 0.1)
    after = (sp["end_s"] + 0.2, 11.4)
    assert level_db(ducked, *under) - level_db(plain, *under) == pytest.approx(
        -sp["music_duck_db"], abs=0.3
    )
    assert level_db(ducked, *after) == pytest.approx(level_db(plain, *after), abs=0.01)
    # the voice stands well over the ducked bed (its level is -20 dBFS RMS)
    assert level_db(ducked, *under) < -20.0 - 6.0


def test_the_whoosh_stands_out_on_its_cut(small):
    """sound_effects' onset finder (its DSP part, the same whatever the weights) hears the
    whoosh within 50 ms of its cut, through AAC."""
    info, _, _, audio = small
    (sfx,) = info["sound_events"]
    events, _ = find_events(audio, DspParams())
    near = [e for e in events if abs(e.start_s - sfx["onset_s"]) <= 0.05]
    assert len(near) == 1, [(e.start_s, e.end_s) for e in events]
    assert near[0].stand_out_db >= 10.0


def test_sound_effects_hears_the_whoosh_and_not_the_voice(small, tmp_path):
    """sound_effects without its model (``partial``: the DSP's events, unlabelled) on the
    sample's sound: the whoosh on its cut, and none of the voice's syllables (espeak's
    voiced syllables read as tonal and stand 10-13 dB out of the pauses between words;
    the first and last of them used to come out as events, 2.14 and 7.59 s)."""
    info, _, _, audio = small
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "real")
        mp.setenv(DIR_ENV, str(tmp_path))  # empty: no weights
        bare = SoundEffects()
    cuts = [c["time_s"] for c in info["cuts"]]
    y = np.asarray(audio, dtype=np.float32)
    clip = Clip(
        meta=ClipMeta(len(y) / SR, 0.0, 0, 0, has_video=False),
        audio=y,
        upstream={"cut_analysis": up.cuts(cuts, len(y) / SR)},
    )
    outcome = bare.analyze(clip)
    assert isinstance(outcome, Partial), outcome
    r = outcome.result
    (sfx,) = info["sound_events"]
    near = [e for e in r.events if abs(e.start_s - sfx["onset_s"]) <= 0.05]
    assert len(near) == 1, [(e.start_s, e.shape) for e in r.events]
    assert near[0].shape == "swept" and near[0].on_cut and near[0].label is None
    sp = info["speech"]
    truth_inside = [
        e for e in info["sound_events"] if e["onset_s"] < sp["end_s"] and e["end_s"] > sp["start_s"]
    ]
    assert truth_inside == []
    inside = [e for e in r.events if e.start_s < sp["end_s"] and e.end_s > sp["start_s"]]
    assert inside == [], [(e.start_s, e.shape, e.stand_out_db) for e in inside]
    # The syllables were candidates and the speech test held them back.
    assert r.speech_suppressed >= 5
    assert len(r.events) == 1
