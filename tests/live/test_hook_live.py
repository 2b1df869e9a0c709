"""temporal_flow's hook from every analyzer through the live Triton: the first cut, face,
text and spoken word of a generated clip, each against its truth (issue 4: within 0.2 s)."""

from __future__ import annotations

import pytest

from tiktok_analyzer.groundtruth import (
    SPEECH_TEXTS,
    AudioSpec,
    ClipSpec,
    Overlay,
    Photo,
    Shot,
    SpeechSpec,
    render,
)
from tiktok_analyzer.groundtruth.clips import ASTRONAUT_HEAD

from .conftest import analyze, validate

pytestmark = pytest.mark.live

TIME_S = 0.2


@pytest.fixture(scope="module")
def hook_clip(tmp_path_factory):
    """The first cut at 1.0 s brings a face (a photo popping in over a shot would itself
    read as a cut); a title from 1.8 s, speech from 2.2 s."""
    spec = ClipSpec(
        width=540,
        height=960,
        fps=15.0,
        shots=[Shot(1.0, (40, 60, 160)), Shot(5.0, (40, 140, 70)), Shot(6.0, (120, 120, 120))],
        overlays=[Overlay("BIG NEWS TODAY", 1.8, 6.0, y=0.15, size_px=64)],
        photos=[Photo("astronaut", 1.0, 11.5, crop=ASTRONAUT_HEAD, y=0.55, height=0.35)],
        audio=AudioSpec(
            tempo_bpm=None,
            tone=False,
            speech=SpeechSpec(SPEECH_TEXTS["morning"], wpm=180.0, start_s=2.2),
        ),
        seed=59,
    )
    path = tmp_path_factory.mktemp("hook") / "hook.mp4"
    return str(path), render(spec, path)


def test_hook_times_match_the_truth(hook_clip, triton, tmp_path, schema):
    path, truth = hook_clip
    proc, report = analyze(path, triton, tmp_path, "--analyzers", "temporal_flow")
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    flow = report["analyzers"]["temporal_flow"]
    assert flow["status"] == "ok", flow["error"]
    hook = flow["result"]["hook"]
    assert abs(hook["first_cut_s"] - truth["cuts"][0]["time_s"]) <= TIME_S
    assert abs(hook["first_face_s"] - truth["photos"][0]["start_s"]) <= TIME_S
    assert abs(hook["first_text_s"] - truth["overlays"][0]["start_s"]) <= TIME_S
    assert abs(hook["first_word_s"] - truth["speech"]["start_s"]) <= TIME_S
    assert hook["sources"]["first_face_s"] == "eye_tracking"
    assert hook["sources"]["first_text_s"] == "text_overlay"
