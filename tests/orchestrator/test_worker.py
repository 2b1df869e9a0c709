"""Probe and decode in a child process: the same frames as in-process, and a child that
crashes, fills its memory cap or hangs ends as BadInput while the parent goes on."""

from __future__ import annotations

import asyncio
import os
import time

import av
import numpy as np
import pytest

from tests import worker_hooks
from tests.hostile_media import broken_tag, tiny_h264, tiny_mpeg_ps, unknown_codec
from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator import nvdec, worker
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import BadInput, Limits, probe
from tiktok_analyzer.orchestrator.worker import (
    probe_and_decode_isolated,
    probe_isolated,
    run_isolated,
)

SPECS = [FrameSpec(short_side=64, every_frame=True), FrameSpec(short_side=144, fps=2.0)]


@pytest.fixture(scope="module")
def clip(clip_factory) -> str:
    return clip_factory("cuts", width=360, height=640)[0]


@pytest.fixture(scope="module")
def big_frames(tmp_path_factory) -> str:
    """240 black 1280x720 frames: a small file that decodes to 660 MB at full size."""
    path = tmp_path_factory.mktemp("bomb") / "black.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.zeros((720, 1280, 3), np.uint8), "rgb24")
        for _ in range(240):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def test_the_child_decodes_what_the_parent_would(clip):
    """Under the default memory cap (4 GiB), frames and audio arrive intact and writable."""
    info, decoded = asyncio.run(probe_and_decode_isolated(clip, Limits(), SPECS, True))
    assert info == probe(clip)
    here = decode(clip, info, SPECS, True)
    assert decoded.frame_sets.keys() == here.frame_sets.keys()
    for spec, fs in here.frame_sets.items():
        got = decoded.frame_sets[spec]
        np.testing.assert_array_equal(got.frames, fs.frames)
        np.testing.assert_array_equal(got.timestamps_s, fs.timestamps_s)
        assert got.frames.flags.writeable
    np.testing.assert_array_equal(decoded.audio, here.audio)


def _run(coro):
    t0 = time.monotonic()
    with pytest.raises(BadInput) as info:
        asyncio.run(coro)
    return str(info.value), time.monotonic() - t0


CASES = [
    (
        "a crash",
        lambda clip, bomb, tmp: run_isolated(
            worker_hooks.abort, what=clip, limits=Limits(), timeout_s=10
        ),
        "the decoder crashed (SIGABRT)",
    ),
    (
        "a hang",
        lambda clip, bomb, tmp: run_isolated(
            worker_hooks.sleep, 30, what=clip, limits=Limits(), timeout_s=0.5
        ),
        "the decoder timed out after 0.5 s",
    ),
    # decoded at full size the clip needs 660 MB; the child may have 450 MB in all
    (
        "a decompression bomb",
        lambda clip, bomb, tmp: probe_and_decode_isolated(
            bomb, Limits(worker_memory_bytes=450 * 1024**2), [FrameSpec(0, every_frame=True)], False
        ),
        "the decoder ran out of memory (limit 0.439 GiB)",
    ),
    (
        "a defect of ours",
        lambda clip, bomb, tmp: run_isolated(
            worker_hooks.fail, what=clip, limits=Limits(), timeout_s=10
        ),
        "the decoder failed (ZeroDivisionError: division by zero)",
    ),
    (
        "a refused file",
        lambda clip, bomb, tmp: probe_isolated(str(tmp), Limits()),
        "is a directory",
    ),
    # found by the fuzz run
    (
        "a video codec nobody knows",
        lambda clip, bomb, tmp: probe_and_decode_isolated(
            str(unknown_codec(tiny_h264(tmp / "t.mp4"), tmp / "u.mp4")), Limits(), SPECS, True
        ),
        "no decoder for its video stream",
    ),
    # PyAV refused the per-stream pixel limit for it with a ValueError
    (
        "an MPEG program stream",
        lambda clip, bomb, tmp: probe_isolated(str(tiny_mpeg_ps(tmp / "t.mpg")), Limits()),
        "container format 'mpeg' is not accepted",
    ),
]


@pytest.mark.parametrize("name, make, message", CASES, ids=[c[0] for c in CASES])
def test_a_misbehaving_child_is_bad_input(clip, big_frames, tmp_path, name, make, message):
    text, wall = _run(make(clip, big_frames, tmp_path))
    assert message in text, text
    assert wall < 5.0
    # and the next good request works
    info = asyncio.run(probe_isolated(clip, Limits()))
    assert info.width == 360


def test_tags_in_a_broken_encoding_do_not_refuse_the_clip(tmp_path):
    """Found by the fuzz run: PyAV's strict UTF-8 made av.open raise on such a tag."""
    path = broken_tag(tiny_h264(tmp_path / "t.mp4"), tmp_path / "b.mp4")
    info, decoded = asyncio.run(probe_and_decode_isolated(str(path), Limits(), SPECS, False))
    assert info.width == 64 and decoded.n_frames == 10


def test_cancelling_the_caller_kills_the_child(tmp_path):
    pid_file = tmp_path / "pid"

    async def main():
        task = asyncio.create_task(
            run_isolated(
                worker_hooks.sleep, 30, str(pid_file), what="x", limits=Limits(), timeout_s=60
            )
        )
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(pid_file.read_text())

    pid = asyncio.run(main())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"child {pid} outlived its cancelled caller")


@pytest.mark.parametrize(
    ("side_by_side", "cores", "threads"),
    [(1, 16, 0), (2, 16, 8), (3, 16, 5), (8, 16, 2), (16, 16, 2), (2, 2, 2), (4, 2, 2)],
)
def test_decodes_side_by_side_share_the_cores(side_by_side, cores, threads):
    """One decode alone takes every core (0); more share them, at least 2 threads each."""
    assert worker.decode_share(side_by_side, cores) == threads


def test_each_decode_gets_its_share_at_its_start(monkeypatch):
    """The count of decodes running sets a starting decode's threads; an ended one leaves."""
    monkeypatch.setattr(worker, "usable_cores", lambda: 16)
    monkeypatch.setattr(worker, "SHARE_CORES", True)
    with worker._share() as first:
        with worker._share() as second, worker._share() as third:
            assert (first, second, third) == (0, 8, 5)
        with worker._share() as fourth:
            assert fourth == 8
    with worker._share() as alone:
        assert alone == 0
    monkeypatch.setattr(worker, "SHARE_CORES", False)
    with worker._share(), worker._share() as unshared:
        assert unshared == 0


def test_decodes_side_by_side_decode_what_one_alone_does(clip, monkeypatch):
    """Two children at once, each on its share of the cores: the frames of a decode alone."""
    monkeypatch.setattr(worker, "SHARE_CORES", True)

    async def two():
        return await asyncio.gather(
            *(probe_and_decode_isolated(clip, Limits(), SPECS, True) for _ in range(2))
        )

    here = decode(clip, probe(clip), SPECS, True)
    for _, decoded in asyncio.run(two()):
        for spec, fs in here.frame_sets.items():
            np.testing.assert_array_equal(decoded.frame_sets[spec].frames, fs.frames)
        np.testing.assert_array_equal(decoded.audio, here.audio)


@pytest.mark.parametrize(
    ("cores", "set_to", "at_once"), [(2, 0, 1), (16, 0, 2), (64, 0, 8), (16, 3, 3)]
)
def test_decodes_at_once_follows_the_cores_unless_set(monkeypatch, cores, set_to, at_once):
    monkeypatch.setattr(worker, "usable_cores", lambda: cores)
    monkeypatch.setattr(worker, "DECODES_AT_ONCE", set_to)
    assert worker.decodes_at_once() == at_once


def test_decodes_take_turns_first_come_first_served(clip, monkeypatch):
    """Four decodes asked for at once with two at a time: never more than two children
    decode together, the first two wait for nothing, and the frames are a lone decode's."""
    monkeypatch.setattr(worker, "DECODES_AT_ONCE", 2)
    running, most = 0, 0
    real = worker.run_isolated

    async def counted(*args, **kwargs):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(worker, "run_isolated", counted)

    async def four():
        return await asyncio.gather(
            *(probe_and_decode_isolated(clip, Limits(), SPECS, True) for _ in range(4))
        )

    results = asyncio.run(four())
    assert most == 2
    # A turn ends after TURN_S even where the decode goes on: a slow clip holds the ones
    # behind it up by that long at most.
    monkeypatch.setattr(worker, "TURN_S", 0.0)
    most = 0
    asyncio.run(four())
    assert most == 4
    waits = [decoded.waited_s for _, decoded in results]
    assert waits[0] < 0.05 and waits[1] < 0.05
    # the last two waited for a turn: at least about as long as a decode of the first two
    first_two = min(decoded.decode_s - decoded.waited_s for _, decoded in results[:2])
    assert min(waits[2:]) > 0.5 * first_two
    here = decode(clip, probe(clip), SPECS, True)
    for _, decoded in results:
        for spec, fs in here.frame_sets.items():
            np.testing.assert_array_equal(decoded.frame_sets[spec].frames, fs.frames)


def test_a_child_asked_for_the_gpu_decoder_decodes_on_the_cpu_without_one(clip, monkeypatch):
    """TIKTOK_ANALYZER_VIDEO_DECODER=nvdec on a host without PyNvVideoCodec: the child, held
    by RLIMIT_DATA instead of RLIMIT_AS, decodes on the CPU and the warning says why."""
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "nvdec")
    info, decoded = asyncio.run(probe_and_decode_isolated(clip, Limits(), SPECS, True))
    here = decode(clip, info, SPECS, True)
    assert decoded.video_decoder == "cpu"
    assert decoded.warnings == ["video decoded on the CPU: PyNvVideoCodec is not installed"]
    for spec, fs in here.frame_sets.items():
        np.testing.assert_array_equal(decoded.frame_sets[spec].frames, fs.frames)
    np.testing.assert_array_equal(decoded.audio, here.audio)


def test_the_gpu_decoders_memory_cap_still_stops_a_bomb(big_frames, monkeypatch):
    """The heap cap (RLIMIT_DATA) of a child that may use CUDA ends a decompression bomb
    as the address-space cap does: the frames past the plan's budget go to the heap."""
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "nvdec")
    message, _ = _run(
        probe_and_decode_isolated(
            big_frames,
            Limits(worker_memory_bytes=450 * 1024**2),
            [FrameSpec(0, every_frame=True)],
            False,
        )
    )
    assert message.endswith("the decoder ran out of memory (limit 0.439 GiB)"), message


@pytest.mark.parametrize(
    "gpu,torch_preloaded,cap",
    [
        (False, False, "RLIMIT_AS"),
        (True, False, "RLIMIT_DATA"),
        (False, True, "RLIMIT_DATA"),
    ],
)
def test_the_memory_cap_follows_cuda_and_torch(monkeypatch, gpu, torch_preloaded, cap):
    import resource

    monkeypatch.setattr(worker, "_preloaded_torch", torch_preloaded)
    assert worker.memory_cap(gpu) == getattr(resource, cap)


@pytest.fixture
def torch_forkserver(monkeypatch):
    """A forkserver that imported torch, as one does where the GPU decodes; the next test
    gets a plain one again."""
    pytest.importorskip("torch")
    worker.shutdown()
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "nvdec")
    worker._get_context()
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "cpu")
    yield
    worker.shutdown()


def test_a_cpu_decode_beside_torch_in_the_forkserver_still_fits(big_frames, torch_forkserver):
    """torch mapped into every child (3.2 GiB of address space here, more with CUDA's
    libraries) left a 4 GiB address-space cap too little for a decode: on the H100 host every
    CPU decode hung. Such children are held by their heap instead, and 660 MB of frames
    decode under 3.5 GiB (which torch's 3.2 GiB of address space here would not leave)."""
    assert worker._preloaded_torch
    spec = FrameSpec(0, every_frame=True)
    limits = Limits(worker_memory_bytes=int(3.5 * 1024**3), decode_timeout_s=60)
    info, decoded = asyncio.run(probe_and_decode_isolated(big_frames, limits, [spec], False))
    assert decoded.video_decoder == "cpu" and decoded.frame_sets[spec].frames.shape[0] == 240


def test_every_child_of_a_torch_forkserver_is_held_by_its_heap(torch_forkserver):
    """Not only the decodes: the service's probe children come from the same forkserver."""
    cap = 3 * 1024**3
    limits = Limits(worker_memory_bytes=cap)
    got = asyncio.run(run_isolated(worker_hooks.limits, what="x", limits=limits, timeout_s=60))
    assert got["data"] == cap and got["as"] != cap


def test_a_plain_forkservers_children_are_held_by_their_address_space():
    cap = 3 * 1024**3
    limits = Limits(worker_memory_bytes=cap)
    got = asyncio.run(run_isolated(worker_hooks.limits, what="x", limits=limits, timeout_s=60))
    assert got["as"] == cap and got["data"] != cap
