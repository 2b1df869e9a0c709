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
