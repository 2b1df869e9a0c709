"""Probe and decode-once against generated clips: frame sets by rate, count and every frame,
sizes, timestamps, audio, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.orchestrator.clips import sample_clip, turned_clip
from tiktok_analyzer.analyzers.base import AUDIO_RATE, FrameSpec
from tiktok_analyzer.orchestrator import decode as decode_mod
from tiktok_analyzer.orchestrator.decode import decode, target_size
from tiktok_analyzer.orchestrator.probe import BadInput, Limits, probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return sample_clip(tmp_path_factory.mktemp("decode"))


@pytest.mark.parametrize(
    "w,h,short,expected",
    [
        (720, 1280, 64, (64, 114)),
        (1080, 1920, 96, (96, 170)),
        (1280, 720, 90, (160, 90)),
        (720, 1280, 0, (720, 1280)),
        (721, 1281, 2000, (720, 1280)),
    ],
)
def test_target_size(w, h, short, expected):
    assert target_size(w, h, short) == expected


def test_probe_reports_the_stream(clip):
    path, truth = clip
    info = probe(path)
    assert info.width == truth["width"] and info.height == truth["height"]
    assert info.fps == pytest.approx(truth["fps"])
    assert info.duration_s == pytest.approx(truth["duration_s"], abs=0.1)
    assert info.has_video and info.has_audio and info.codec == "h264"


def test_one_pass_gives_every_frame_set(clip, monkeypatch):
    path, truth = clip
    info = probe(path)
    calls = []
    real = decode_mod._to_rgb

    def counting(frame, size, rotation):
        calls.append(size)
        return real(frame, size, rotation)

    monkeypatch.setattr(decode_mod, "_to_rgb", counting)
    every = FrameSpec(short_side=64, every_frame=True)
    rate = FrameSpec(short_side=64, fps=2.0)  # same size as `every`: shares its resize
    count = FrameSpec(short_side=128, count=8)
    out = decode(path, info, [every, rate, count], audio=True)
    n = truth["n_frames"]
    assert out.n_frames == n
    fs = out.frame_sets[every]
    assert fs.frames.shape == (n, 114, 64, 3) and fs.frames.dtype == np.uint8
    np.testing.assert_allclose(fs.timestamps_s, np.arange(n) / truth["fps"], atol=1e-3)
    np.testing.assert_array_equal(fs.frame_indices, np.arange(n))
    r = out.frame_sets[rate]
    assert len(r.frames) == int(truth["duration_s"] * 2)
    np.testing.assert_allclose(np.diff(r.timestamps_s), 0.5, atol=1 / truth["fps"])
    c = out.frame_sets[count]
    assert c.frames.shape == (8, 228, 128, 3)
    # each (frame, size) resized once: every frame at 64, plus 8 at 128
    assert len(calls) == n + 8
    # the rate set's frames are the very arrays of the every-frame set
    np.testing.assert_array_equal(r.frames, fs.frames[r.frame_indices])
    assert out.audio.dtype == np.float32
    assert len(out.audio) == pytest.approx(truth["duration_s"] * AUDIO_RATE, rel=0.02)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_share_of_the_cores_decodes_the_same_frames(clip, threads, monkeypatch):
    """``threads`` (a decode's share beside others) sets the video decoder's threads and
    the converters; the frames and audio are those of a decode on every core."""
    path, _ = clip
    info = probe(path)
    specs = [FrameSpec(short_side=64, every_frame=True), FrameSpec(short_side=128, count=8)]
    every_core = decode(path, info, specs, audio=True)
    counts = []
    real = decode_mod._demux

    def seeing(container, state, *args):
        real(container, state, *args)
        counts.append((container.streams.video[0].thread_count, state.pool._max_workers))

    monkeypatch.setattr(decode_mod, "_demux", seeing)
    shared = decode(path, info, specs, audio=True, threads=threads)
    assert counts == [(threads, max(1, threads - 1))]
    for spec in specs:
        np.testing.assert_array_equal(
            shared.frame_sets[spec].frames, every_core.frame_sets[spec].frames
        )
        np.testing.assert_array_equal(
            shared.frame_sets[spec].timestamps_s, every_core.frame_sets[spec].timestamps_s
        )
    np.testing.assert_array_equal(shared.audio, every_core.audio)


def test_colors_survive_decoding(clip):
    path, truth = clip
    info = probe(path)
    spec = FrameSpec(short_side=64, every_frame=True)
    fs = decode(path, info, [spec], audio=False).frame_sets[spec]
    for shot in truth["shots"]:
        if shot.get("motion") != "static" or shot.get("pattern", "texture") == "checker":
            continue
        # a third of the way in: clear of transitions (and of the sample's flash at 7.7 s)
        mid = int((shot["start_s"] + (shot["end_s"] - shot["start_s"]) / 3) * truth["fps"])
        frame = fs.frames[mid]
        # the shot's own picture: a photo laid over it (the sample's face) left out
        keep = np.ones(frame.shape[:2], bool)
        scale = frame.shape[1] / truth["width"]
        for p in truth["photos"]:
            if p["start_s"] <= mid / truth["fps"] < p["end_s"]:
                x0, y0, x1, y1 = (round(v * scale) for v in p["bbox"])
                keep[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = False
        mean = frame[keep].mean(0)
        assert np.abs(mean - np.array(shot["color"])).max() < 20, (shot, mean)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.mp4", b""), "empty file"),
        (lambda d: _write(d / "text.mp4", b"hello, not a video\n" * 50), "not a video"),
    ],
)
def test_probe_refusals(tmp_path, make, reason):
    with pytest.raises(BadInput, match=reason):
        probe(make(tmp_path))


def test_probe_limits(clip):
    path, truth = clip
    with pytest.raises(BadInput, match="duration .* over the limit"):
        probe(path, Limits(max_duration_s=truth["duration_s"] / 2))
    with pytest.raises(BadInput, match="frame size .* over the limit"):
        probe(path, Limits(max_pixels=360 * 640 - 1))
    with pytest.raises(BadInput, match="fps is over the limit"):
        probe(path, Limits(max_fps=10))


def test_truncated_file_is_refused_or_partial(clip, tmp_path):
    path, truth = clip
    data = open(path, "rb").read()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    try:
        info = probe(cut)
    except BadInput:
        return  # refused before decoding: fine
    spec = FrameSpec(short_side=32, every_frame=True)
    out = decode(str(cut), info, [spec], audio=True)
    assert out.n_frames < truth["n_frames"]
    assert json.dumps(out.warnings)  # what went wrong is said, not hidden


@pytest.mark.parametrize("matrix_angle,top", [(-90, "red"), (90, "blue"), (0, None)])
def test_display_rotation_is_applied(tmp_path, matrix_angle, top):
    """A phone's portrait clip: landscape frames plus a display matrix. Frames come out as
    the player shows them (ffmpeg's autorotate): -90 in the matrix turns the stored picture
    clockwise, so its left half (red) ends on top."""
    path = str(tmp_path / "rot.mp4")
    turned_clip(path, matrix_angle)
    info = probe(path)
    spec = FrameSpec(short_side=32, every_frame=True)
    frame = decode(path, info, [spec], audio=False).frame_sets[spec].frames[0]
    if top is None:
        assert (info.width, info.height, info.rotation) == (128, 64, 0)
        assert frame.shape == (32, 64, 3)
        return
    assert (info.width, info.height) == (64, 128)
    assert frame.shape == (64, 32, 3)
    upper = frame[: frame.shape[0] // 4].reshape(-1, 3).mean(0)
    assert (upper[0] > 200) == (top == "red") and (upper[2] > 200) == (top == "blue"), upper


def test_nothing_wanted_reads_nothing(clip):
    """Only analyzers that need neither frames nor audio (say, ones not built yet): demux()
    with no stream would read every stream; decode must not."""
    path, _ = clip
    out = decode(path, probe(path), [], audio=False)
    assert out.frame_sets == {} and out.audio is None and out.n_frames == 0
