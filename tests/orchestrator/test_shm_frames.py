"""Frames written once into the clip's shared-memory region: what a model reads is the same
bytes with and without shared memory and from a worker process, and no region outlives its
analysis, however it ends. The server is a stand-in that reads regions by name, as Triton
does; the live tier runs the same path against a real one."""

from __future__ import annotations

import asyncio
import errno
import glob
import json
import mmap
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from tiktok_analyzer import wire
from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator import pipeline, worker
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip_async
from tiktok_analyzer.orchestrator.probe import BadInput, Limits, probe
from tiktok_analyzer.orchestrator.region import SHM_DIR, Region
from tiktok_analyzer.orchestrator.worker import probe_and_decode_isolated
from tiktok_analyzer.serving.launcher import default_model_repository

#: An every-frame set, two rates at other sizes, a fixed count, and the audio.
NAMES = ["cut_analysis", "content_quality", "video_llava", "audio_analysis"]
DECLS = read_declarations(default_model_repository())
ALL = with_dependencies(NAMES, DECLS)


def regions() -> list[str]:
    """This process's clip regions still named in /dev/shm."""
    return glob.glob(os.path.join(SHM_DIR, f"tta_{os.getpid()}_*"))


@pytest.fixture(scope="module")
def clip(clip_factory) -> str:
    return clip_factory("sample", width=360, height=640)[0]


@pytest.fixture(autouse=True)
def no_region_left():
    assert not regions()
    yield
    assert not regions()


class _Server:
    """The shared-memory side of a Triton server: maps a region by its key when registered."""

    def __init__(self) -> None:
        self.maps: dict[str, mmap.mmap] = {}

    async def register_system_shared_memory(self, name, key, byte_size):
        fd = os.open(SHM_DIR + key, os.O_RDONLY)
        try:
            self.maps[name] = mmap.mmap(fd, byte_size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    async def unregister_system_shared_memory(self, name, client_timeout=None):
        self.maps.pop(name).close()


@dataclass(eq=False)
class _Endpoint:
    local: bool
    url: str = "127.0.0.1:1"
    client: _Server = field(default_factory=_Server)


class _Result:
    def __init__(self, name: str) -> None:
        self.body = json.dumps(
            {
                "status": "ok",
                "error": None,
                "elapsed_s": 0.0,
                "model": {"name": name, "weights": "none"},
                "result": {},
            }
        )

    def as_numpy(self, name):
        return np.array([[self.body.encode()]], np.object_)


class _Pool:
    """An endpoint pool of one stand-in server that records the bytes of every input."""

    url = "stand-in"

    def __init__(self, local: bool = True, hold: asyncio.Event | None = None) -> None:
        self.endpoints = [_Endpoint(local)]
        self.hold = hold
        self.started = asyncio.Event()
        self.seen: dict[str, dict[str, bytes]] = {}
        self.in_shm: set[str] = set()

    async def ready(self, fresh=False):
        return True, ""

    async def infer(self, name, make_inputs, outputs, timeout_s, on_shm_lost=None):
        ep = self.endpoints[0]
        got = {}
        for tensor in await make_inputs(ep):
            params = tensor._get_tensor().parameters
            if "shared_memory_region" in params:
                view = ep.client.maps[params["shared_memory_region"].string_param]
                start = params["shared_memory_offset"].int64_param
                got[tensor.name()] = bytes(
                    view[start : start + params["shared_memory_byte_size"].int64_param]
                )
                self.in_shm.add(name)
            else:
                got[tensor.name()] = tensor._get_content()
        self.seen[name] = got
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        return _Result(name)


def _options(pool: _Pool, **kw) -> AnalysisOptions:
    return AnalysisOptions(
        triton_url="stand-in", analyzers=NAMES, declarations=DECLS, pool=pool, **kw
    )


def _analyze(path: str, **kw) -> _Pool:
    async def main():
        pool = _Pool(local=kw.pop("local", True))
        report = await analyze_clip_async(path, _options(pool, **kw))
        assert {n: e.status for n, e in report.analyzers.items()} == dict.fromkeys(ALL, "ok")
        return pool

    return asyncio.run(main())


def test_the_decoder_writes_the_arrays_into_the_region(clip):
    info = probe(clip)
    specs = [DECLS[n].frames for n in ALL if DECLS[n].frames]
    here = decode(clip, info, specs, True)
    region = Region.create()
    try:
        there = decode(clip, info, specs, True, region=region)
        assert there.region is region and here.region is None
        assert there.frame_sets.keys() == here.frame_sets.keys()
        for spec, fs in here.frame_sets.items():
            got = there.frame_sets[spec]
            for a, b in [
                (got.frames, fs.frames),
                (got.timestamps_s, fs.timestamps_s),
                (got.frame_indices, fs.frame_indices),
            ]:
                assert region.offset_of(a) is not None  # a view of the region, no copy
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
        assert region.offset_of(there.audio) is not None
        np.testing.assert_array_equal(there.audio, here.audio)
    finally:
        region.unlink()
    assert there.frame_sets[specs[0]].frames.sum() >= 0  # the memory outlives the name


def _same_sets(got, want) -> None:
    assert got.frame_sets.keys() == want.frame_sets.keys()
    for spec, fs in want.frame_sets.items():
        other = got.frame_sets[spec]
        np.testing.assert_array_equal(other.frames, fs.frames)
        np.testing.assert_array_equal(other.timestamps_s, fs.timestamps_s)
        np.testing.assert_array_equal(other.frame_indices, fs.frame_indices)
    np.testing.assert_array_equal(got.audio, want.audio)


def test_frames_past_what_the_header_says_are_kept_too(clip):
    """A header that says half the clip's length: the every-frame set gets more frames than
    were planned. They are kept apart and joined to the planned ones; that set leaves the
    region (the transport copies it later), the others stay in it."""
    info = probe(clip)
    short = replace(info, duration_s=info.duration_s / 2)
    every, rate = FrameSpec(short_side=64, every_frame=True), FrameSpec(short_side=96, fps=2.0)
    want = decode(clip, short, [every, rate], True)
    region = Region.create()
    try:
        got = decode(clip, short, [every, rate], True, region=region)
    finally:
        region.unlink()
    _same_sets(got, want)
    assert len(got.frame_sets[every].frames) == info.n_frames  # all of them, not half
    assert region.offset_of(got.frame_sets[every].frames) is None
    assert region.offset_of(got.frame_sets[rate].frames) is not None
    assert region.offset_of(got.audio) is not None


def test_a_header_that_claims_more_takes_memory_for_what_the_file_holds(clip):
    """A header four times the clip's length: the region is laid out for four times the
    frames, but only the pages of frames taken are reserved."""
    info = probe(clip)
    long = replace(info, duration_s=info.duration_s * 4)
    specs = [DECLS[n].frames for n in ALL if DECLS[n].frames]
    region = Region.create()
    try:
        got = decode(clip, long, specs, True, region=region)
        held = os.stat(os.path.join(SHM_DIR, region.name)).st_blocks * 512
    finally:
        region.unlink()
    used = sum(fs.frames.nbytes for fs in got.frame_sets.values()) + got.audio.nbytes
    assert region.size > 3 * used
    assert used <= held < 1.1 * used + 1e6
    assert all(region.offset_of(fs.frames) is not None for fs in got.frame_sets.values())


def test_a_full_shm_mid_decode_keeps_the_rest_in_memory(clip, monkeypatch, caplog):
    """/dev/shm fills up after some frames: the frames from there on, and the audio, stay in
    this process, with one warning; nothing is lost, and nothing faults."""
    info = probe(clip)
    specs = [DECLS[n].frames for n in ALL if DECLS[n].frames]
    want = decode(clip, info, specs, True)
    calls = []
    real = Region.reserve

    def reserve(self, offset, length):
        calls.append(length)
        if len(calls) > 40:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, offset, length)

    monkeypatch.setattr(Region, "reserve", reserve)
    region = Region.create()
    try:
        got = decode(clip, info, specs, True, region=region)
    finally:
        region.unlink()
    _same_sets(got, want)
    assert len(calls) > 41
    full = [r for r in caplog.records if "shared memory is full" in r.getMessage()]
    assert len(full) == 1
    assert region.offset_of(got.audio) is None


def test_a_model_reads_the_same_bytes_with_and_without_shm_and_isolated(clip):
    inline = _analyze(clip, use_shm=False)
    shared = _analyze(clip)
    isolated = _analyze(clip, isolate_decode=True)
    isolated_inline = _analyze(clip, isolate_decode=True, use_shm=False)
    remote = _analyze(clip, local=False)
    assert not inline.in_shm and not remote.in_shm and not isolated_inline.in_shm
    assert shared.in_shm == isolated.in_shm == set(ALL)
    for other in (shared, isolated, isolated_inline, remote):
        assert other.seen.keys() == inline.seen.keys()
        for name, tensors in inline.seen.items():
            assert other.seen[name].keys() == tensors.keys(), name
            for tensor, data in tensors.items():
                if tensor != wire.META.name:  # META carries the run's own upstream results
                    assert other.seen[name][tensor] == data, (name, tensor)
    assert len(inline.seen["content_quality"][wire.FRAMES.name]) > 0


def test_a_decode_without_a_region_is_copied_off_the_event_loop(clip, monkeypatch):
    """run_models with a decode of its own: the transport makes a region and fills it in a
    worker thread."""
    threads = []
    real = pipeline._Transport._fill

    def fill(self, region):
        threads.append(threading.current_thread())
        return real(self, region)

    monkeypatch.setattr(pipeline._Transport, "_fill", fill)
    info = probe(clip)
    specs = [DECLS[n].frames for n in ALL if DECLS[n].frames]
    decoded = decode(clip, info, specs, True)

    async def main():
        pool = _Pool()
        entries = await pipeline.run_models(info, decoded, _options(pool), ALL)
        assert {e.status for e in entries.values()} == {"ok"}
        return pool

    pool = asyncio.run(main())
    assert pool.in_shm == set(ALL)
    assert len(threads) == 1 and threads[0].name != "MainThread"
    fs = decoded.frame_sets[DECLS["cut_analysis"].frames]
    assert pool.seen["cut_analysis"][wire.FRAMES.name] == fs.frames.tobytes()


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_no_region_is_left_after_a_bad_input(tmp_path, isolate):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    with pytest.raises(BadInput):
        asyncio.run(analyze_clip_async(str(bad), _options(_Pool(), isolate_decode=isolate)))


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_no_region_is_left_after_a_cancelled_analysis(clip, isolate):
    async def main():
        pool = _Pool(hold=asyncio.Event())  # answers never come
        task = asyncio.create_task(analyze_clip_async(clip, _options(pool, isolate_decode=isolate)))
        await asyncio.wait_for(pool.started.wait(), 60)
        assert regions()  # registered with the server, requests in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not pool.endpoints[0].client.maps  # unregistered too

    asyncio.run(main())


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_no_region_is_left_after_a_cancelled_decode(clip, isolate):
    async def main():
        task = asyncio.create_task(
            analyze_clip_async(clip, _options(_Pool(), isolate_decode=isolate))
        )
        while not regions():  # made before the decode starts
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(1.0)  # an in-process decode runs on into the unlinked file, and makes no name


def test_no_region_is_left_after_the_child_is_killed_mid_decode(clip, monkeypatch):
    children = []
    real = worker._Child.__init__

    def record(self, *args, **kw):
        real(self, *args, **kw)
        children.append(self.process.pid)

    monkeypatch.setattr(worker._Child, "__init__", record)

    async def main():
        task = asyncio.create_task(analyze_clip_async(clip, _options(_Pool(), isolate_decode=True)))
        while not children:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        os.kill(children[0], signal.SIGKILL)
        with pytest.raises(BadInput, match="killed"):
            await task

    asyncio.run(main())


def test_the_childs_memory_cap_counts_the_region(clip_factory):
    """The region's mapping counts against the decoding child's cap like any other memory,
    and the frames are held once: a cap with room for them once beside the decoder is
    enough (stacking them after the pass, as the decoder once did, needed room for two)."""
    path = clip_factory("cuts", width=720, height=1280)[0]
    spec = FrameSpec(short_side=0, every_frame=True)
    info = probe(path)
    frames_mb = info.duration_s * info.fps * 720 * 1280 * 3 / 1024**2
    base = 300  # the interpreter, numpy, PyAV and the decoder before any frame
    limits = Limits(worker_memory_bytes=int((base + 0.8 * frames_mb) * 1024**2))
    with pytest.raises(BadInput, match="ran out of memory"):
        asyncio.run(probe_and_decode_isolated(path, limits, [spec], False, None))
    # the plan's slack and the decoder's room (decode._DECODER_ROOM), but not two copies
    once = 1024 + 1.1 * frames_mb
    assert once < base + 2 * frames_mb
    limits = Limits(worker_memory_bytes=int(once * 1024**2))
    info, decoded = asyncio.run(probe_and_decode_isolated(path, limits, [spec], False))
    assert decoded.frame_sets[spec].frames.shape == (info.n_frames, 1280, 720, 3)
