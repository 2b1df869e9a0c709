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
