"""Partial results through the real Triton: audio_environment and sound_effects on a server
whose weights folder is empty (real mode) answer `partial`, with what their DSP measured on
generated sound of known content, the model-made fields null and listed with the fix; the
orchestrator's report carries that, validates against the schema, exits 0, and its table and
HTML page say `partial`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tiktok_analyzer.groundtruth import render_sound
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from .conftest import validate
from .raw import infer

pytestmark = pytest.mark.live

MODELS = ["cut_analysis", "audio_environment", "sound_effects"]


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A server of its own: the two sound models without weights, cut_analysis for cuts."""
    empty = tmp_path_factory.mktemp("no_weights")
    env = {"TIKTOK_ANALYZER_WEIGHTS": "real", "TIKTOK_ANALYZER_WEIGHTS_DIR": str(empty)}
    with EmbeddedTriton(models=MODELS, env=env) as server:
        yield server


def test_environment_measures_the_shares_without_weights(bare, tmp_path):
    """Five seconds of beat and pad, then a voice: the shares are those stretches."""
    audio, info = render_sound("speech_after_music", tmp_path / "speech_after_music.m4a")
    env = infer(bare, "audio_environment", audio=audio)
    assert env["status"] == "partial", env["error"]
    assert env["model"]["weights"] == "none"
    r = env["result"]
    music = info["speech"]["start_s"] / info["duration_s"]
    spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
    assert r["music_share"] == pytest.approx(music, abs=0.1)
    assert r["speech_share"] == pytest.approx(spoken, abs=0.15)
    assert r["snr_db"] >= 20.0
    assert r["scene"] is None and r["audioset_top"] is None
    assert [f["field"] for f in env["unavailable_fields"]] == ["scene", "audioset_top"]
    assert all(
        "tiktok-analyzer weights pull audio_environment" in f["fix"]
        for f in env["unavailable_fields"]
    )


def test_report_of_a_clip_without_the_sound_models_weights(bare, clip_factory, schema, tmp_path):
    path, info = clip_factory("sound_events", width=360, height=640)
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    # The CLI under this interpreter (its console script's shebang may name another venv).
    cli = [sys.executable, "-m", "tiktok_analyzer.cli"]
    args = [
        "analyze",
        path,
        "--triton-url",
        bare.grpc_url,
        "--analyzers",
        "audio_environment,sound_effects",
        "--out",
        str(out),
        "--html",
        str(page),
    ]
    proc = subprocess.run(
        [*cli, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    # partial is no failure: the report is complete.
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    validate(report, schema)
    a = report["analyzers"]
    assert a["cut_analysis"]["status"] == "ok"
    for name in ("audio_environment", "sound_effects"):
        assert a[name]["status"] == "partial", a[name]["error"]
        assert a[name]["model"]["weights"] == "none"
        assert f"weights pull {name}" in a[name]["error"]
    events = a["sound_effects"]["result"]["events"]
    assert len(events) == len(info["sound_events"])
    for e, found in zip(info["sound_events"], events, strict=True):
        assert abs(found["start_s"] - e["onset_s"]) <= 0.2, (e, found)
        assert found["label"] is None and found["confidence"] is None
    # cut_analysis's cut at 3.0 s reached sound_effects through the orchestrator.
    assert [e["on_cut"] for e in events] == [False, False, True, False, False]
    # The table (stdout, the report went to a file) and the page say partial.
    assert "partial" in proc.stdout and "unavailable without the model" in proc.stdout
    html = page.read_text()
    assert 'data-analyzer="sound_effects" data-status="partial"' in html
    assert 'class="unavailable-field" data-field="events[].label"' in html
