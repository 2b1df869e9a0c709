"""`tiktok-analyzer analyze` against a real embedded Triton, on generated clips with truth."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers.color import delta_e_2000, rgb_to_lab

from ..conftest import triton_processes
from .conftest import analyze, run_cli, validate

pytestmark = pytest.mark.live

ALL = list(ANALYZER_NAMES)
AUDIO = [n for n in ALL if load_class(n).audio]
# Those that need a picture (temporal_flow takes what the clip has: its inputs are optional)
PICTURE = [n for n in ALL if load_class(n).frames is not None and not load_class(n).inputs_optional]


def cut_f1(found: list[dict], truth: list[dict], tolerance_frames: int = 2) -> float:
    """F1 of detected cut frames against truth, each truth cut matched at most once."""
    unmatched = [c["frame"] for c in truth]
    tp = 0
    for cut in found:
        hits = [t for t in unmatched if abs(t - cut["frame"]) <= tolerance_frames]
        if hits:
            unmatched.remove(min(hits, key=lambda t: abs(t - cut["frame"])))
            tp += 1
    if not found or not truth:
        return float(found == truth)
    precision, recall = tp / len(found), tp / len(truth)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="module")
def sample(clip_factory, triton, tmp_path_factory):
    path, truth = clip_factory("sample")
    proc, report = analyze(path, triton, tmp_path_factory.mktemp("sample"))
    return proc, report, truth


def test_sample_report_is_complete_and_valid(sample, schema):
    proc, report, truth = sample
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    assert set(report["analyzers"]) == set(ANALYZER_NAMES)
    for name, entry in report["analyzers"].items():
        # every analyzer runs: real weights where they ship offline, tiny synthetic elsewhere
        assert entry["status"] == "ok", (name, entry["error"])
    assert report["video"]["width"] == 720 and report["video"]["height"] == 1280
    assert report["processing"]["realtime_factor"] > 0
    # the summary table names every analyzer
    for name in ANALYZER_NAMES:
        assert name in proc.stdout


def test_sample_matches_truth(sample):
    _, report, truth = sample
    a = report["analyzers"]
    assert cut_f1(a["cut_analysis"]["result"]["cuts"], truth["cuts"]) >= 0.95
    kinds = {c["kind"] for c in a["cut_analysis"]["result"]["cuts"]}
    assert {c["kind"] for c in truth["cuts"]} <= kinds
    assert a["audio_analysis"]["result"]["tempo_bpm"] == pytest.approx(truth["tempo_bpm"], rel=0.02)
    silences = a["audio_analysis"]["result"]["silences"]
    for s in truth["silences"]:
        assert any(
            abs(x["start_s"] - s["start_s"]) < 0.15 and abs(x["end_s"] - s["end_s"]) < 0.15
            for x in silences
        ), s


def test_triton_metrics_show_the_requests(sample, triton):
    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    for name in ALL:
        m = re.search(rf'nv_inference_request_success\{{model="{name}",version="1"\}} (\d+)', text)
        assert m and int(m.group(1)) >= 1, name


def test_frames_in_messages_give_the_same_report(clip_factory, triton, tmp_path):
    path, _ = clip_factory("cuts", width=360, height=640)
    _, with_shm = analyze(path, triton, tmp_path / "a", "--analyzers", "cut_analysis")
    _, without = analyze(path, triton, tmp_path / "b", "--analyzers", "cut_analysis", "--no-shm")
    assert (
        with_shm["analyzers"]["cut_analysis"]["result"]
        == without["analyzers"]["cut_analysis"]["result"]
    )


def test_dependencies_are_pulled_in(clip_factory, triton, tmp_path):
    path, truth = clip_factory("colors", width=360, height=640)
    proc, report = analyze(path, triton, tmp_path, "--analyzers", "color_analysis")
    assert proc.returncode == 0, proc.stderr
    assert list(report["analyzers"]) == ["cut_analysis", "scene_segmentation", "color_analysis"]
    scenes = report["analyzers"]["scene_segmentation"]["result"]["scenes"]
    assert len(report["analyzers"]["color_analysis"]["result"]["per_scene"]) == len(scenes)
    # through the whole pipeline, each shot's colour is in the palette within Delta-E 5,
    # with a share within 0.1 of the shot's share of the clip
    palette = report["analyzers"]["color_analysis"]["result"]["palette"]
    lab = rgb_to_lab(np.array([p["rgb"] for p in palette], np.uint8)[None])[0]
    for shot in truth["shots"]:
        want = rgb_to_lab(np.array([[shot["color"]]], np.uint8))[0, 0]
        de = delta_e_2000(lab, np.broadcast_to(want, lab.shape))
        best = int(np.argmin(de))
        assert de[best] < 5, (shot["color"], palette[best])
        share = (shot["end_s"] - shot["start_s"]) / truth["duration_s"]
        assert abs(palette[best]["share"] - share) < 0.1


def test_one_analyzer_down_does_not_sink_the_report(clip_factory, triton, tmp_path):
    """Unload a model on the live server: its entry fails with the server's reason, the
    others complete, the exit code says 'partial' (3)."""
    path, _ = clip_factory("cuts", width=360, height=640)
    req = urllib.request.Request(
        f"{triton.http_url}/v2/repository/models/visual_effects/unload", data=b"{}", method="POST"
    )
    urllib.request.urlopen(req, timeout=30).read()
    try:
        proc, report = analyze(
            path, triton, tmp_path, "--analyzers", "cut_analysis,visual_effects,audio_analysis"
        )
    finally:
        triton.load(["visual_effects"])
    assert proc.returncode == 3, proc.stderr
    entry = report["analyzers"]["visual_effects"]
    assert entry["status"] == "failed" and "visual_effects" in entry["error"]
    assert report["analyzers"]["cut_analysis"]["status"] == "ok"
    assert report["analyzers"]["audio_analysis"]["status"] == "ok"


def test_embedded_server_starts_and_leaves_nothing(clip_factory, tmp_path):
    """Without --triton-url the CLI starts its own server and stops it cleanly."""
    path, truth = clip_factory("tempo_120")
    before = set(_shm())
    procs_before = set(triton_processes())
    out = tmp_path / "r.json"
    proc = run_cli("analyze", path, "--analyzers", "audio_analysis", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "realtime factor" in proc.stdout
    assert set(triton_processes()) <= procs_before
    assert set(_shm()) <= before


def _shm():
    import os

    return [p for p in os.listdir("/dev/shm") if p.startswith("tta")]


def test_cli_draws_the_report(sample, tmp_path):
    """`analyze --html/--png` and `render` write the drawings (tests/render checks their
    content in Chromium); a file that is not a report is refused with one line."""
    _, report, _ = sample
    path = tmp_path / "r.json"
    path.write_text(__import__("json").dumps(report))
    proc = run_cli(
        "render", str(path), "--html", str(tmp_path / "r.html"), "--png", str(tmp_path / "r.png")
    )
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and 'data-lane="shots"' in html
    markers = re.findall(r'class="[^"]*\bcut-marker\b[^"]*"', html)
    assert len(markers) == len(report["analyzers"]["cut_analysis"]["result"]["cuts"])
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "junk.json").write_text('{"not": "a report"}')
    proc = run_cli("render", str(tmp_path / "junk.json"), "--html", str(tmp_path / "j.html"))
    assert proc.returncode == 2 and "not a tiktok-analyzer report" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_models_lists_every_analyzer():
    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    for name in ANALYZER_NAMES:
        assert name in proc.stdout
