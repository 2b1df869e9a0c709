"""The demo clip (catalog ``sample``, what scripts/demo.sh analyzes) through the live Triton:
each analyzer that reads its face, speech, caption or sound effect says something true
about it, and the summary table shows it.

Quick on its own: ``TIKTOK_ANALYZER_TEST_MODELS=cut_analysis,speech_transcription,
text_overlay,eye_tracking,sound_effects`` (the session server then loads only these).
Weights as in the live tier (LIVE_WEIGHTS): real Whisper base, EasyOCR and face mesh;
sound_effects on tiny synthetic weights, so its onsets (DSP) are checked, not its labels."""

from __future__ import annotations

import numpy as np
import pytest

from tiktok_analyzer.analyzers.ocr import character_error_rate, text_similarity
from tiktok_analyzer.groundtruth.clips import SAMPLE_CAPTION
from tiktok_analyzer.groundtruth.speech import words_of

from ..unit.speech_clips import wer
from .conftest import analyze, validate

pytestmark = pytest.mark.live

MODELS = ["cut_analysis", "speech_transcription", "text_overlay", "eye_tracking", "sound_effects"]


@pytest.fixture(scope="module")
def demo(clip_factory, triton, tmp_path_factory, schema):
    path, truth = clip_factory("sample")
    proc, report = analyze(
        path, triton, tmp_path_factory.mktemp("demo"), "--analyzers", ",".join(MODELS)
    )
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    for name in MODELS:
        entry = report["analyzers"][name]
        assert entry["status"] == "ok", (name, entry["error"])
    return proc, {n: e["result"] for n, e in report["analyzers"].items()}, truth


def test_whisper_hears_the_sentence_over_the_music(demo):
    proc, results, truth = demo
    r, speech = results["speech_transcription"], truth["speech"]
    assert r["language"] == "en"
    error = wer(speech["words"], words_of(r["text"]))
    assert error <= 0.15, (error, r["text"])
    starts = [w["start_s"] for w in r["words"]]
    assert abs(starts[0] - speech["start_s"]) <= 0.2
    assert abs(r["words"][-1]["end_s"] - speech["end_s"]) <= 0.5
    # the ducked bed is well under the voice: speech, not singing
    assert not any(s["sung"] for s in r["segments"])
    assert f"{len(r['words'])} words" in proc.stdout


def test_easyocr_reads_the_caption(demo):
    proc, results, truth = demo
    (cap,) = truth["overlays"]
    texts = results["text_overlay"]["texts"]
    assert len(texts) == 1, [t["text"] for t in texts]
    (found,) = texts
    assert character_error_rate(found["text"], SAMPLE_CAPTION) <= 0.1, found["text"]
    assert text_similarity(found["text"], SAMPLE_CAPTION) >= 0.9
    assert abs(found["start_s"] - cap["start_s"]) <= 0.5
    assert abs(found["end_s"] - cap["end_s"]) <= 0.5
    x0, y0, x1, y1 = found["bbox"]
    w, h = truth["width"], truth["height"]
    bx0, by0, bx1, by1 = cap["box"]
    # the reading lies inside the caption's box, in the lower third
    assert bx0 / w - 0.02 <= x0 < x1 <= bx1 / w + 0.02 and y0 >= 2 / 3
    assert by0 / h - 0.02 <= y0 < y1 <= by1 / h + 0.02
    assert found["text"] in proc.stdout


def test_face_mesh_finds_the_one_face_of_the_first_shot(demo):
    proc, results, truth = demo
    r = results["eye_tracking"]
    (photo,) = truth["photos"]
    assert r["faces_max"] == 1 and len(r["faces"]) == 1
    (face,) = r["faces"]
    assert r["first_face_s"] <= 0.2
    # eye_tracking samples 10 fps: the last face frame is within 0.1 s of the shot's end
    assert photo["end_s"] - 0.25 <= face["last_s"] < photo["end_s"]
    cx, cy = (face["bbox"][0] + face["bbox"][2]) / 2, (face["bbox"][1] + face["bbox"][3]) / 2
    px0, py0, px1, py1 = np.array(photo["bbox"]) / np.tile([truth["width"], truth["height"]], 2)
    assert px0 < cx < px1 and py0 < cy < py1, (face["bbox"], photo["bbox"])
    assert "1 face (" in proc.stdout


def test_the_whoosh_is_heard_on_its_cut(demo):
    proc, results, truth = demo
    (sfx,) = truth["sound_events"]
    events = results["sound_effects"]["events"]
    near = [e for e in events if abs(e["start_s"] - sfx["onset_s"]) <= 0.1]
    assert len(near) == 1, [(e["start_s"], e["on_cut"]) for e in events]
    assert near[0]["on_cut"] and abs(near[0]["cut_offset_s"]) <= 0.1
    assert "on a cut" in proc.stdout
