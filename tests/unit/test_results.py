"""The analyzers' Result models live in a light package the orchestrator can import, and
dependants read their upstream results through them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.results import analyzer_of, report_result, result_class
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult
from tiktok_analyzer.orchestrator.summary import headline

from . import upstream as up


@pytest.mark.parametrize("name", ANALYZER_NAMES)
def test_each_analyzer_answers_with_its_light_result_model(name):
    model = result_class(name)
    assert load_class(name).Result is model
    assert analyzer_of(model) == name


def test_result_models_import_without_heavy_libraries():
    """What an orchestrator-only install (no torch, cv2, librosa, scipy) can still do: read
    every Result model and summarize a report."""
    code = (
        "import sys\n"
        "from tiktok_analyzer.analyzers import ANALYZER_NAMES\n"
        "from tiktok_analyzer.analyzers.results import result_class\n"
        "import tiktok_analyzer.orchestrator.summary, tiktok_analyzer.render.timeline\n"
        "for name in ANALYZER_NAMES:\n"
        "    result_class(name)\n"
        "heavy = {'torch', 'cv2', 'librosa', 'scipy', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_analyzer_of_refuses_other_models():
    with pytest.raises(TypeError, match="no analyzer's Result"):
        analyzer_of(ClipMeta)  # type: ignore[arg-type]


def test_upstream_result_is_typed_and_fails_loudly():
    cuts = up.cuts([1.0, 2.5], 4.0)
    clip = Clip(meta=ClipMeta(4.0, 30.0, 64, 64), upstream={"cut_analysis": cuts})
    got = clip.upstream_result(CutAnalysisResult)
    assert isinstance(got, CutAnalysisResult)
    assert [c.time_s for c in got.cuts] == [1.0, 2.5]
    assert [(s.start_s, s.end_s) for s in got.shots] == [(0.0, 1.0), (1.0, 2.5), (2.5, 4.0)]
    # not there (did not finish ok): None
    assert clip.upstream_result(SceneSegmentationResult) is None
    # a renamed field is an error, not a silent default
    renamed = {**cuts, "shot_list": cuts["shots"]}
    del renamed["shots"]
    bad = Clip(meta=clip.meta, upstream={"cut_analysis": renamed})
    with pytest.raises(ValidationError, match="shots"):
        bad.upstream_result(CutAnalysisResult)


def test_report_result_reads_ok_entries_only():
    entry = {"status": "ok", "error": None, "elapsed_s": 0.1, "model": {}, "result": None}
    report = {
        "analyzers": {
            "cut_analysis": {**entry, "result": up.cuts([1.0], 2.0)},
            "scene_segmentation": {**entry, "status": "failed", "error": "boom"},
        }
    }
    cuts = report_result(report, "cut_analysis")
    assert isinstance(cuts, CutAnalysisResult) and cuts.cuts_per_minute == 30.0
    assert report_result(report, "scene_segmentation") is None
    assert report_result(report, "camera_analysis") is None


def test_headline_reads_the_typed_result():
    assert headline("cut_analysis", up.cuts([1.0, 2.0], 3.0, kinds=["hard", "fade"])) == (
        "2 cuts (1 fade, 1 hard), 40.0/min, mean shot 1.00 s"
    )
    # a result its model refuses still gets a line, from its plain numbers
    assert headline("cut_analysis", {"cuts_per_minute": 12.0}) == "cuts_per_minute 12.0"


def test_headlines_show_what_was_read_seen_and_heard():
    """The demo's summary names the caption read, the faces seen and the effects heard."""
    track = {
        "text": "Follow for part 2",
        "start_s": 10.867,
        "end_s": 14.867,
        "bbox": [0.25, 0.77, 0.74, 0.82],
        "kind": "caption",
        "height": 0.04,
        "lines": 1,
        "confidence": 0.76,
        "unsafe_overlap": 0.47,
        "unsafe_zone": "bottom_band",
        "frames": 16,
    }
    texts = {
        "texts": [track],
        "frames_sampled": 60,
        "frames_detected": 5,
        "frames_recognized": 1,
        "lines_recognized": 1,
        "first_text_s": 10.867,
        "text_time_share": 0.27,
        "unsafe_share": 1.0,
        "unsafe_zones": [],
    }
    assert headline("text_overlay", texts) == '1 text: "Follow for part 2" 10.9-14.9 s (caption)'
    assert headline("text_overlay", {**texts, "texts": []}) == "no text found"
    face = {
        "track_id": 0,
        "first_s": 0.0,
        "last_s": 2.4,
        "frames": 25,
        "bbox": [0.3, 0.3, 0.6, 0.5],
        "bbox_first": [0.3, 0.3, 0.6, 0.5],
        "bbox_last": [0.3, 0.3, 0.6, 0.5],
        "irises_share": 1.0,
        "eye_contact_share": 1.0,
        "mean_yaw": 0.0,
        "mean_pitch": 0.0,
        "blink_count": 0,
        "iris_right": [0.4, 0.4],
        "iris_left": [0.5, 0.4],
    }
    eyes = {
        "faces_max": 1,
        "first_face_s": 0.0,
        "face_share": 0.17,
        "eye_contact_share": 0.17,
        "eye_contact_share_of_face_time": 1.0,
        "gaze": [],
        "blinks": [],
        "blink_count": 0,
        "blinks_per_minute": 0.0,
        "faces": [face],
    }
    assert headline("eye_tracking", eyes) == (
        "1 face (0.0-2.4 s), at most 1 at once, eye contact 100% of face time, 0 blinks"
    )
    event = {
        "label": "Whoosh, swoosh, swish",
        "start_s": 13.0,
        "end_s": 13.5,
        "confidence": 0.8,
        "shape": "swept",
        "stand_out_db": 20.0,
        "on_cut": True,
        "cut_offset_s": 0.0,
    }
    sfx = {
        "events": [event],
        "on_cut_share": 1.0,
        "cuts_known": True,
        "beat_suppressed": 3,
        "speech_suppressed": 0,
        "events_per_minute": 4.0,
    }
    assert headline("sound_effects", sfx) == "1 event: Whoosh, swoosh, swish@13.00s on a cut"
    # without the classifier (partial): the DSP shape stands for the label
    unlabelled = {**event, "label": None, "confidence": None}
    assert headline("sound_effects", {**sfx, "events": [unlabelled]}) == (
        "1 event: swept@13.00s on a cut"
    )


def test_the_age_headline_gives_the_range_and_the_expected_age():
    face = {
        "track_id": 0,
        "age_min": 26,
        "age_max": 32,
        "confidence": 0.8085,
        "label": "26",
        "mean_age": 30.2,
        "first_s": 0.0,
        "last_s": 2.233,
        "frames": 9,
        "crops": 4,
        "bbox": [0.3, 0.3, 0.5, 0.5],
        "probabilities": {},
    }
    ages = {"faces": [face], "faces_max": 1, "bins": [], "model": "dlib-age-predictor-v1"}
    assert headline("age_estimation", ages) == "face 0.0-2.2 s: 26-32 (81%, mean 30)"
    assert headline("age_estimation", {**ages, "faces": []}) == "no face found"


def test_headlines_of_the_offline_tiers():
    """Objects seen with their times; the people share per scene without ADE20K classes."""
    box = {"time_s": 0.0, "bbox": [0.08, 0.21, 0.74, 0.65], "confidence": 0.43}
    person = {
        "label": "person",
        "track_id": 1,
        "first_s": 0.0,
        "last_s": 2.0,
        "screen_share": 0.13,
        "area_share": 0.29,
        "max_confidence": 0.45,
        "mean_confidence": 0.43,
        "frames_seen": 5,
        "boxes": [box],
    }
    objects = {
        "objects": [person],
        "labels": [{"label": "person", "tracks": 1, "screen_share": 0.13, "max_confidence": 0.45}],
        "frames_analyzed": 30,
        "detections": 5,
        "objects_dropped": 0,
    }
    assert headline("object_detection", objects) == "1 object: person 0.0-2.0 s"
    assert headline("object_detection", {**objects, "objects": []}) == "no object found"

    def scene(start: float, end: float, people: float) -> dict:
        return {
            "start_s": start,
            "end_s": end,
            "frames": 2,
            "classes": [],
            "foreground_share": people,
            "green_screen_likelihood": 0.0,
            "green_cover": 0.0,
            "green_flatness": 0.0,
        }

    background = {
        "classes": [],
        "foreground_share": 0.035,
        "green_screen_likelihood": 0.0,
        "green_screen_share": 0.0,
        "scenes": [scene(0.0, 2.5, 0.1767), scene(2.5, 4.5, 0.0)],
        "scenes_from": "scene_segmentation",
        "frames_analyzed": 15,
        "classes_unavailable": "ADE20K class shares need SegFormer",
    }
    assert headline("background_segmentation", background) == (
        "people 0.0-2.5 s 18% of the picture, green screen 0%"
    )
    wall = {"label": "wall", "share": 0.6}
    assert headline(
        "background_segmentation",
        {**background, "classes": [wall], "scenes": [scene(0.0, 4.5, 0.0)]},
    ) == ("wall 60%; no people, green screen 0%")
