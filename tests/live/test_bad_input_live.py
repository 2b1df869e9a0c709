"""Bad input through the CLI: the defined exit code, a one-line reason, no traceback, and the
server still answering afterwards."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.hostile_media import claim_duration, claim_size, tiny_h264

from .conftest import analyze, run_cli, validate
from .test_analyze_live import AUDIO, PICTURE

pytestmark = pytest.mark.live


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _oversize(d: Path) -> Path:
    """A real 2-frame clip of 4096x2304 pixels, over the default 3840x2160 limit."""
    path = d / "huge.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 4096, 2304, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((2304, 4096, 3), np.uint8), "rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _truncated(d: Path, source: str) -> Path:
    data = Path(source).read_bytes()
    path = d / "truncated.mp4"
    path.write_bytes(data[: len(data) // 4])
    return path


CASES = [
    ("missing", lambda d, c: d / "nope.mp4", "no such file"),
    ("directory", lambda d, c: d, "is a directory"),
    ("zero bytes", lambda d, c: _write(d / "z.mp4", b""), "empty file"),
    (
        "text renamed .mp4",
        lambda d, c: _write(d / "t.mp4", b"just some text\n" * 100),
        "not a video",
    ),
    ("truncated mp4", lambda d, c: _truncated(d, c), ""),
    ("over-size frame", lambda d, c: _oversize(d), "over the limit"),
    (
        "header claiming 30000x30000",
        lambda d, c: claim_size(tiny_h264(d / "tiny.mp4"), d / "huge.mp4", 30000, 30000),
        "no frame size",
    ),
    (
        "header claiming 16000x16000",
        lambda d, c: claim_size(tiny_h264(d / "tiny.mp4"), d / "big.mp4", 16000, 16000),
        "16000x16000 is over the limit",
    ),
    (
        "10-hour duration claim",
        lambda d, c: claim_duration(tiny_h264(d / "tiny.mp4"), d / "long.mp4", 36000),
        "duration 36000.0 s is over the limit",
    ),
]


@pytest.mark.parametrize("label,make,reason", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(label, make, reason, clip_factory, triton, tmp_path):
    source, _ = clip_factory("cuts", width=360, height=640)
    path = make(tmp_path, source)
    proc = run_cli(
        "analyze", str(path), "--triton-url", triton.grpc_url, "--out", str(tmp_path / "r.json")
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert reason in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.json").exists()
    assert triton.model_states()["cut_analysis"][0] == "READY"


def test_over_long_duration(clip_factory, triton, tmp_path):
    path, truth = clip_factory("cuts", width=360, height=640)
    proc = run_cli(
        "analyze",
        path,
        "--triton-url",
        triton.grpc_url,
        "--max-duration",
        str(truth["duration_s"] - 1),
    )
    assert proc.returncode == 2
    assert "over the limit" in proc.stderr and "Traceback" not in proc.stderr


def test_clip_without_audio(clip_factory, triton, tmp_path, schema):
    path, _ = clip_factory("no_audio", width=360, height=640)
    proc, report = analyze(path, triton, tmp_path)
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    assert report["video"]["has_audio"] is False
    for name in AUDIO:
        entry = report["analyzers"][name]
        assert entry["status"] == "skipped" and "no audio" in entry["error"]
    for name in PICTURE:
        assert report["analyzers"][name]["status"] == "ok", name


def test_audio_only_file(clip_factory, triton, tmp_path, schema):
    path, truth = clip_factory("audio_only", suffix=".m4a")
    proc, report = analyze(path, triton, tmp_path)
    assert proc.returncode == 0, proc.stderr
    validate(report, schema)
    assert report["video"]["has_video"] is False
    for name in PICTURE:
        entry = report["analyzers"][name]
        assert entry["status"] == "skipped" and "no picture" in entry["error"], name
    assert report["analyzers"]["audio_analysis"]["status"] == "ok"
    # no picture, yet a flow: sent without frames (optional inputs), built from the sound
    flow = report["analyzers"]["temporal_flow"]
    assert flow["status"] == "ok", flow["error"]
    assert flow["result"]["hook"]["first_cut_s"] is None
    assert report["analyzers"]["audio_analysis"]["result"]["tempo_bpm"] == pytest.approx(
        truth["tempo_bpm"], rel=0.02
    )


def test_unknown_analyzer_name(clip_factory, triton):
    path, _ = clip_factory("cuts", width=360, height=640)
    proc = run_cli("analyze", path, "--triton-url", triton.grpc_url, "--analyzers", "cut,nope")
    assert proc.returncode == 2
    assert "unknown analyzer(s): cut, nope" in proc.stderr


def test_unreachable_triton_is_one_line(clip_factory):
    from tiktok_analyzer.serving.launcher import free_port

    path, _ = clip_factory("cuts", width=360, height=640)
    proc = run_cli("analyze", path, "--triton-url", f"127.0.0.1:{free_port()}", timeout=30)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0], proc.stderr
