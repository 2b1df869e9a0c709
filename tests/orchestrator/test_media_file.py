"""A clip opened once is read through its descriptor only: in this process and in the
worker's child, even after its name is gone; refusals name it as the caller did."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import BadInput, Limits, MediaFile, probe
from tiktok_analyzer.orchestrator.worker import probe_and_decode_isolated, probe_isolated

SPECS = [FrameSpec(short_side=64, fps=2.0)]


@pytest.fixture
def clip(clip_factory, tmp_path) -> str:
    src, _ = clip_factory("cuts", width=64, height=64)
    dst = tmp_path / "clip.mp4"
    shutil.copy(src, dst)
    return str(dst)


def test_the_descriptor_is_read_after_the_name_is_gone(clip):
    with MediaFile.open(clip, name="mine.mp4") as opened:
        os.unlink(clip)
        info = probe(opened)
        assert info.path == "mine.mp4" and info.width == 64
        assert decode(opened, info, SPECS, audio=False).n_frames > 0
        info, decoded = asyncio.run(probe_and_decode_isolated(opened, Limits(), SPECS, False))
        assert info.path == "mine.mp4" and decoded.n_frames > 0


def test_a_refusal_in_the_child_names_the_file_as_given(tmp_path):
    path = tmp_path / "list.mp4"
    path.write_text("ffconcat version 1.0\nfile 'a.mp4'\n")
    with MediaFile.open(path, name="shown.mp4") as opened:
        with pytest.raises(BadInput, match=r"^shown\.mp4: a playlist"):
            asyncio.run(probe_isolated(opened, Limits()))


def test_a_failing_child_names_the_file_as_given(clip):
    # 1 MiB of address space: the child fails however it tries (out of memory, or a
    # library that cannot be mapped); the message names the file, not the descriptor.
    with MediaFile.open(clip, name="shown.mp4") as opened:
        with pytest.raises(BadInput, match=r"^shown\.mp4: the decoder "):
            asyncio.run(probe_isolated(opened, Limits(worker_memory_bytes=1024**2)))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, this is text\n" * 10, "a text file"),
        (b'<?xml version="1.0"?><MPD/>', "a text file"),
        (b"\x00\x01garbage" * 100, "not a video or audio file"),
    ],
)
def test_refusals_from_the_head(tmp_path, data, reason):
    path = tmp_path / "x.mp4"
    path.write_bytes(data)
    with pytest.raises(BadInput, match=reason):
        probe(str(path))


def test_a_name_that_is_no_utf8_goes_into_the_report(clip, tmp_path):
    """The CLI exited 1 (PydanticSerializationError) after a whole analysis of such a file:
    the report's path held lone surrogates, which JSON cannot carry."""
    from tiktok_analyzer.orchestrator.report import VideoInfo

    raw = os.path.join(os.fsencode(tmp_path), b"clip-\xff\xfe.mp4")
    shutil.copy(clip, raw)
    info = probe(os.fsdecode(raw))  # as argv hands it over: surrogate escapes
    assert info.path.endswith("clip-\\xff\\xfe.mp4")
    text = VideoInfo(**info.to_report()).model_dump_json()
    assert "clip-\\\\xff\\\\xfe.mp4" in text
    with pytest.raises(BadInput, match=r"clip-\\xff\.mp4: no such file"):
        probe(os.fsdecode(raw.replace(b"\xfe", b"")))


def test_a_one_pixel_video_says_so(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "dot.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "yuv444p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((1, 1, 3), i * 40, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(BadInput, match=r"frame size 1x1 is too small to analyze \(at least 2x2"):
        probe(str(path))
