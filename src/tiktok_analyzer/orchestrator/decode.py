"""Decode a clip once and derive every analyzer's frame set from that one pass.

Each analyzer declares a :class:`FrameSpec` (every frame, a rate, or a fixed count, and a
short side). One demux pass decodes video (ffmpeg's own frame/slice threads) and audio
together; a decoded frame is converted to RGB and resized once per size that some spec
wants at that instant, and shared by every spec of that size. Audio comes out once, 16 kHz
mono float32.

The conversions and resizes run on a pool of threads beside the demuxer (swscale releases
the GIL): done in the demuxing thread they were most of the decode time, 900 frames of
1080x1920 into 15 frame sets took 9.3 s on a 16-core host, one core busy. A bounded number
are in flight, so decoding never runs far ahead of them with full-size frames in memory.

Where each frame goes is known before the demux starts: the probe's duration and rate say
how many frames each set can take, so one block of memory is laid out for every frame set
at that length and the audio at its longest (a shared-memory :class:`.region.Region` when
the caller passes one, else this process's heap). A converter thread copies the frame it
made into its slot at once, while the frame is still in its cache, and drops it; the
arrays of the result are views of that block, cut to the frames taken. Holding every
converted frame until the pass ended and then stacking them into a block laid out then
cost a second pass over cold memory: on the 2-core host, 30 s of 1080x1920 into the 11
frame sets took 8.4-9.8 CPU-s and 5.1-5.9 s that way, 6.2-7.4 CPU-s and 3.8-4.6 s this
way. It also held each frame twice in address space, against the decoding child's cap.

A long clip whose plan would not fit beside the decoder under that cap, frames past what
the header said, and frames that find ``/dev/shm`` full still decode: they are kept apart
and stacked when the pass ends, as before.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tiktok_analyzer.analyzers.base import AUDIO_RATE, FrameSpec
from tiktok_analyzer.orchestrator import nvdec
from tiktok_analyzer.orchestrator.probe import (
    BadInput,
    Limits,
    MediaFile,
    MediaInfo,
    media_file,
    open_container,
)
from tiktok_analyzer.orchestrator.region import Region, layout, nbytes, view

__all__ = ["Decoded", "FrameSet", "decode", "target_size"]

log = logging.getLogger(__name__)


@dataclass
class FrameSet:
    spec: FrameSpec
    frames: np.ndarray  # uint8 (N, H, W, 3) RGB
    timestamps_s: np.ndarray  # float64 (N,)
    frame_indices: np.ndarray  # int64 (N,)


@dataclass
class Decoded:
    frame_sets: dict[FrameSpec, FrameSet]
    audio: np.ndarray | None
    n_frames: int
    decode_s: float
    warnings: list[str] = field(default_factory=list)
    #: Of ``decode_s``, the time spent waiting for a turn among decodes side by side
    #: (orchestrator/worker.py: :func:`~.worker.decodes_at_once`).
    waited_s: float = 0.0
    #: The shared-memory region every array views, where decode() was given one (and it had
    #: room); None: the arrays are in this process's memory.
    region: Region | None = None
    #: What decoded the picture: "cpu" (FFmpeg) or "nvdec" (the GPU's decoder, .nvdec).
    video_decoder: str = "cpu"

    def detach(self) -> Decoded:
        """This result with each array in :attr:`region` replaced by where it lies: what a
        worker process sends back instead of the frames."""
        return self._map_arrays(lambda a: _Slot.of(a, self.region), region=None)

    def attach(self, region: Region) -> Decoded:
        """A result from :meth:`detach` made whole again from ``region``, mapped here."""
        return self._map_arrays(lambda a: a.view_in(region) if isinstance(a, _Slot) else a, region)

    def _map_arrays(self, f: Callable, region: Region | None) -> Decoded:
        return replace(
            self,
            frame_sets={
                spec: replace(
                    fs,
                    frames=f(fs.frames),
                    timestamps_s=f(fs.timestamps_s),
                    frame_indices=f(fs.frame_indices),
                )
                for spec, fs in self.frame_sets.items()
            },
            audio=None if self.audio is None else f(self.audio),
            region=region,
        )


@dataclass(frozen=True)
class _Slot:
    """Where one array lies in a region."""

    offset: int
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, arr: np.ndarray, region: Region | None) -> _Slot | np.ndarray:
        offset = region.offset_of(arr) if region is not None else None
        return arr if offset is None else cls(offset, arr.shape, arr.dtype.str)

    def view_in(self, region: Region) -> np.ndarray:
        return region.array(self.offset, self.shape, self.dtype)


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``short_side``, aspect kept, both even;
    ``short_side`` 0 (or larger than the frame) keeps the frame's size."""
    short = min(width, height)
    if short_side <= 0 or short_side >= short:
        return width - width % 2, height - height % 2
    scale = short_side / short
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


class _Selector:
    """Decides, frame by frame as they stream past, which frames a spec takes.

    A rate or count becomes a list of target times; a frame is taken for each target it is
    nearest to (the first frame whose time + half a frame interval reaches the target), so
    VFR clips are sampled by time, not by frame number."""

    def __init__(self, spec: FrameSpec, info: MediaInfo) -> None:
        self.spec = spec
        self.half = 0.5 / info.fps
        if spec.every_frame:
            self.targets = None
        elif spec.fps is not None:
            rate = min(spec.fps, info.fps)
            n = max(1, int(np.floor(info.duration_s * rate + 1e-6)))
            self.targets = np.arange(n) / rate
        else:
            n = int(spec.count or 0)
            self.targets = (np.arange(n) + 0.5) * info.duration_s / max(n, 1)
        self.next = 0

    def take(self, t: float) -> int:
        """How many times the frame at ``t`` enters this set (0 = not taken)."""
        if self.targets is None:
            return 1
        start = self.next
        while self.next < len(self.targets) and self.targets[self.next] <= t + self.half:
            self.next += 1
        taken = self.next - start
        # A rate keeps a frame once; a fixed count keeps its length even when frames repeat.
        return min(taken, 1) if self.spec.fps is not None else taken


#: One swscale context per converter thread. A frame's own ``reformat`` keeps one context on
#: the frame, and two sizes of one frame converted at once on two threads then share it:
#: that crashed the process on a 16-core host (SIGSEGV), never on 2 cores.
_reformatters = threading.local()


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int], rotation: int) -> np.ndarray:
    w, h = size
    if rotation in (90, 270):  # sizes are for the displayed picture; the stored one is turned
        w, h = h, w
    reformatter = getattr(_reformatters, "one", None)
    if reformatter is None:
        reformatter = _reformatters.one = VideoReformatter()
    if (w, h) == (frame.width, frame.height):
        arr = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
    else:
        arr = reformatter.reformat(
            frame, width=w, height=h, format="rgb24", interpolation="AREA", threads=1
        ).to_ndarray()
    if rotation:  # clockwise, as ffmpeg's autorotate shows it
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rotation // 90)))
    return arr


class _Plan:
    """Where each frame set goes before any frame is decoded: one block (the region, or
    heap memory) laid out for every set at its largest length and the audio at its
    longest, so that a converted frame is copied into its slot on the converter's thread,
    while it is still in the cache, and then dropped.

    The lengths come from the probe: a rate or a count knows its frames from the duration;
    every frame is the duration times the rate, with some slack. A region is sized up front
    but its pages are reserved slot by slot as frames are taken (``posix_fallocate``): a
    header that claims more than the file holds costs address space, not memory. A frame
    with no slot (more frames than the header said, or no room left in ``/dev/shm``) is
    kept apart and its set ends up in this process's memory."""

    def __init__(
        self,
        sets: dict[FrameSpec, tuple[int, tuple[int, ...]]],
        audio_len: int | None,
        region: Region | None,
        name: str,
    ) -> None:
        wanted: list[tuple[tuple[int, ...], np.dtype]] = []
        for n, shape in sets.values():
            wanted += [((n, *shape), np.dtype(np.uint8)), ((n,), np.float64), ((n,), np.int64)]
        if audio_len is not None:
            wanted.append(((audio_len,), np.dtype(np.float32)))
        offsets, total = layout([nbytes(shape, dtype) for shape, dtype in wanted])
        self.name = name
        self.warned = False
        self.region: Region | None = None
        if region is not None and total:
            region.allocate(total, reserve=False)  # MemoryError: over the caller's cap
            self.region = region
        while True:
            buffer = self.region.buffer if self.region is not None else np.empty(total, np.uint8)
            views = iter(
                view(buffer, o, shape, dt) for o, (shape, dt) in zip(offsets, wanted, strict=True)
            )
            #: spec -> (frames, timestamps, frame indices), each at its planned length.
            self.slots = {spec: (next(views), next(views), next(views)) for spec in sets}
            self.audio = next(views) if audio_len is not None else None
            # The times and indices are written as frames are taken, on this thread: their
            # pages first. Where even those find no room, the whole plan is in the heap.
            if all(self.reserve(a) for _, *index in self.slots.values() for a in index):
                break
            self.done()
            self.region = None

    def reserve(self, arr: np.ndarray) -> bool:
        """Whether ``arr`` (a view of the block) may be written: its pages are reserved, or
        it is heap memory. False (and a warning, once) where ``/dev/shm`` is full."""
        try:
            self._reserve(arr)
            return True
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            if not self.warned:
                self.warned = True
                log.warning(
                    "%s: shared memory is full (%s): frames from here on stay in this process",
                    self.name,
                    exc.strerror,
                )
            return False

    def _reserve(self, arr: np.ndarray) -> None:
        if self.region is not None and arr.nbytes:
            self.region.reserve(self.region.offset_of(arr), arr.nbytes)

    def done(self) -> None:
        """Nothing more is written: the region's descriptor, kept for reserving, closes."""
        if self.region is not None:
            self.region.close()


#: How many frames more than its duration times its rate a clip may hold and still have every
#: frame planned: frame counts and durations disagree by a frame or two, a VFR clip's
#: average rate by a little more. The slack costs address space only.
_EVERY_FRAME_SLACK = 1.05


#: Address space a decode needs beside its frames: the interpreter, the decoder's own frames
#: and threads (its stacks, a 4K frame per frame thread).
_DECODER_ROOM = 1024**3


def _plan_budget(limits: Limits) -> int:
    """The most bytes a plan may map: what the decoder's memory cap leaves beside the
    decoder, and at least half the cap (a small cap's clip decodes as it did unplanned)."""
    cap = limits.worker_memory_bytes
    return max(cap // 2, cap - _DECODER_ROOM)


def _plan_lengths(info: MediaInfo, selectors: list[_Selector]) -> dict[FrameSpec, int]:
    """The most frames each spec can take, from the probe."""
    return {
        sel.spec: len(sel.targets)
        if sel.targets is not None
        else int(np.ceil(info.duration_s * info.fps * _EVERY_FRAME_SLACK)) + 2
        for sel in selectors
    }


class _Pass:
    """The state of one demux pass: where each spec's frames go (the plan's slots, or
    apart), the audio so far, and the packets that would not decode."""

    def __init__(
        self,
        info: MediaInfo,
        specs: list[FrameSpec],
        want_video: bool,
        pool: ThreadPoolExecutor,
        max_in_flight: int,
        threads: int = 0,
    ) -> None:
        self.info = info
        self.pool = pool
        #: Conversions not yet awaited, oldest first: at most ``max_in_flight``.
        self.in_flight: deque[Future] = deque()
        self.max_in_flight = max_in_flight
        self.specs = specs
        self.selectors = [_Selector(s, info) for s in specs] if want_video else []
        self.sizes = {s: target_size(info.width, info.height, s.short_side) for s in specs}
        self.plan: _Plan | None = None
        #: Frames taken so far into each spec's planned slots.
        self.taken = dict.fromkeys(specs, 0)
        #: Frames with no planned slot, per spec: (futures of RGB arrays, times, indices).
        self.apart: dict[FrameSpec, tuple[list, list, list]] = {s: ([], [], []) for s in specs}
        self.chunks: list[np.ndarray] = []
        self.n_frames = 0
        self.bad_packets = {"video": 0, "audio": 0}
        self.first_error = ""
        self.name = ""
        #: The video decoder's threads (0: ffmpeg's own choice, one per core).
        self.threads = max(0, int(threads))

    def restart(self) -> None:
        """Forget every frame taken: the picture is decoded again from its start (the
        plan's slots are written over)."""
        self.selectors = [_Selector(sel.spec, self.info) for sel in self.selectors]
        self.taken = dict.fromkeys(self.specs, 0)
        self.apart = {s: ([], [], []) for s in self.specs}
        self.n_frames = 0

    def make_plan(
        self, audio_len: int | None, region: Region | None, budget: int, name: str
    ) -> None:
        """Lay out the block for every set and the audio, unless it would take more than
        ``budget`` bytes (a long clip, or a header that says so): then every frame is kept
        apart and stacked once the pass ends (:func:`_place`)."""
        sets = {}
        for spec, n in _plan_lengths(self.info, self.selectors).items():
            w, h = self.sizes[spec]
            sets[spec] = (n, (h, w, 3))
        planned = sum(n * int(np.prod(shape)) for n, shape in sets.values())
        if planned + 4 * (audio_len or 0) > budget:
            log.info(
                "%s: %.0f MB of frames planned, over %.0f MB", name, planned / 1e6, budget / 1e6
            )
            return
        try:
            self.plan = _Plan(sets, audio_len, region, name)
        except MemoryError:
            log.info("%s: no address space for the planned frames", name)

    def video_frame(self, frame, t: float | None, name: str, limit: float) -> None:
        """Take the next decoded frame (in display order) into every set that wants it at
        ``t`` s from the stream's start (None: unknown, its index over the rate)."""
        for size, (into, keep) in self.select(t, name, limit).items():
            future = self._convert(frame, size, into, bool(keep))
            for futures in keep:
                futures.append(future)

    def select(self, t: float | None, name: str, limit: float) -> dict[tuple[int, int], tuple]:
        """The next frame's places, counted in: for each size some set wants it at, the
        planned slots ``(frames, i)`` its array goes into and the lists of the sets that
        keep the array itself (frames apart from the plan), which the caller appends the
        array's future to. Each size is made once per frame."""
        if t is None:
            t = self.n_frames / self.info.fps
        if t > limit:
            raise BadInput(f"{name}: runs past {limit:.0f} s although its header says otherwise")
        places: dict[tuple[int, int], tuple[list, list]] = {}
        for sel in self.selectors:
            times = sel.take(t)
            if not times:
                continue
            spec = sel.spec
            into, keep = places.setdefault(self.sizes[spec], ([], []))
            for _ in range(times):
                slot = self._slot(spec)
                if slot is not None:
                    frames, stamps, idx = slot
                    i = self.taken[spec]
                    stamps[i], idx[i] = t, self.n_frames
                    into.append((frames, i))
                    self.taken[spec] += 1
                else:
                    futures, stamps, idx = self.apart[spec]
                    keep.append(futures)
                    stamps.append(t)
                    idx.append(self.n_frames)
        self.n_frames += 1
        return places

    def _slot(self, spec: FrameSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The next planned slot of ``spec``, its pages reserved; None: the frame goes apart
        (no plan, the plan is full, a frame already went apart, or no room to reserve)."""
        if self.plan is None or self.apart[spec][0]:
            return None
        frames, stamps, idx = self.plan.slots[spec]
        i = self.taken[spec]
        if i >= len(frames) or not self.plan.reserve(frames[i]):
            return None
        return frames, stamps, idx

    def _convert(
        self,
        frame: av.VideoFrame,
        size: tuple[int, int],
        into: list[tuple[np.ndarray, int]],
        keep: bool,
    ) -> Future:
        while len(self.in_flight) >= self.max_in_flight:
            self.in_flight.popleft().result()  # backpressure; raises what the task raised
        future = self.pool.submit(_convert_into, frame, size, self.info.rotation, into, keep)
        self.in_flight.append(future)
        return future

    def finish(self) -> None:
        """Wait for every conversion; raise the first error any raised."""
        while self.in_flight:
            self.in_flight.popleft().result()

    def undecodable(self, kind: str, exc: Exception) -> None:
        self.bad_packets[kind] += 1
        self.first_error = self.first_error or (
            getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        )

    @property
    def decoded_anything(self) -> bool:
        return self.n_frames > 0 or bool(self.chunks)


def _convert_into(
    frame: av.VideoFrame,
    size: tuple[int, int],
    rotation: int,
    into: list[tuple[np.ndarray, int]],
    keep: bool,
) -> np.ndarray | None:
    """One frame to RGB at ``size``, copied into each slot ``(frames, i)``; the array itself
    only where a set keeps it apart."""
    arr = _to_rgb(frame, size, rotation)
    for frames, i in into:
        frames[i] = arr
    return arr if keep else None


def decode(
    source: str | os.PathLike | MediaFile,
    info: MediaInfo,
    specs: Iterable[FrameSpec],
    audio: bool,
    limits: Limits | None = None,
    region: Region | None = None,
    threads: int = 0,
    gpu: bool = False,
) -> Decoded:
    """One pass over ``source`` (a path, or a :class:`MediaFile` already open): every
    spec's frame set, and the audio if asked for. A packet that does not decode is skipped
    and counted in the warnings; the file is refused only when nothing decodes.

    ``region``: a new, empty :class:`.region.Region` to put every array in (the result's
    ``region`` then); its name stays the caller's to unlink, whatever happens here. Where
    ``/dev/shm`` has no room for it, the arrays stay in this process's memory.

    ``threads``: the cores this decode may keep busy, the video decoder's frame threads
    and the converters each (0: every core this process may use). Decodes side by side
    may be given a share each (:data:`.worker.SHARE_CORES`, off).

    ``gpu``: decode the picture on the GPU's decoder (:mod:`.nvdec`) where this process and
    the clip's codec can; else on the CPU, with a warning that says why."""
    limits = limits or Limits()
    started = time.perf_counter()
    specs = list(dict.fromkeys(specs))
    want_video = bool(specs) and info.has_video
    want_audio = audio and info.has_audio
    warnings: list[str] = []
    with media_file(source) as f, _video_decoder(f, info, gpu and want_video, warnings) as on_gpu:
        workers = nvdec.CONVERTERS if on_gpu is not None else _converters(threads)
        with ThreadPoolExecutor(workers, thread_name_prefix="decode-rgb") as pool:
            state = _Pass(info, specs, want_video, pool, max_in_flight=4 * workers, threads=threads)
            longest_audio = int(round(info.duration_s * AUDIO_RATE)) if want_audio else None
            state.make_plan(longest_audio, region, _plan_budget(limits), f.name)
            frame_sets, audio_out, region = _pass(
                f, info, state, want_video, want_audio, limits, warnings, workers, region, on_gpu
            )
    if want_audio and audio_out is None:
        warnings.append("the audio stream held no decodable samples")
    return Decoded(
        frame_sets=frame_sets,
        audio=audio_out,
        n_frames=state.n_frames,
        decode_s=time.perf_counter() - started,
        warnings=warnings,
        region=region,
        video_decoder="nvdec" if on_gpu is not None else "cpu",
    )


@contextmanager
def _video_decoder(
    f: MediaFile, info: MediaInfo, gpu: bool, warnings: list[str]
) -> Iterator[nvdec.GpuDecoder | None]:
    """NVDEC opened on ``f`` where asked for and possible; None: the CPU decodes."""
    if not gpu:
        yield None
        return
    try:
        decoder = nvdec.open_decoder(f.url, info)
    except nvdec.Unavailable as exc:
        warnings.append(f"video decoded on the CPU: {exc}")
        log.warning("%s: %s", f.name, warnings[-1])
        yield None
        return
    try:
        yield decoder
    finally:
        decoder.close()


def _pass(
    f: MediaFile,
    info: MediaInfo,
    state: _Pass,
    want_video: bool,
    want_audio: bool,
    limits: Limits,
    warnings: list[str],
    workers: int,
    region: Region | None,
    on_gpu: nvdec.GpuDecoder | None,
) -> tuple[dict[FrameSpec, FrameSet], np.ndarray | None, Region | None]:
    """The pass itself, once planned: read, wait for every conversion, place the arrays."""
    try:
        _read(f, state, want_video, want_audio, limits, warnings, on_gpu)
        state.finish()
        _check(state, want_video, warnings)
        if state.plan is not None:
            frame_sets, audio_out = _planned(state, _audio_length(state, info))
            return frame_sets, audio_out, state.plan.region
    finally:
        if state.plan is not None:
            state.plan.done()
    return _place(state, _audio_length(state, info), workers, region)


#: Frames one copying task moves: the threads end close together.
_CHUNK = 8


def _audio_length(state: _Pass, info: MediaInfo) -> int | None:
    if not state.chunks:
        return None
    # AAC pads its last frame; the stream's duration says where the sound ends.
    return min(sum(len(c) for c in state.chunks), int(round(info.duration_s * AUDIO_RATE)))


def _planned(
    state: _Pass, audio_len: int | None
) -> tuple[dict[FrameSpec, FrameSet], np.ndarray | None]:
    """The frame sets and audio of a planned pass: views of the block, cut to the frames
    taken; a set with frames apart is joined with them in this process's memory."""
    plan = state.plan
    assert plan is not None
    frame_sets = {}
    for spec, (frames, stamps, idx) in plan.slots.items():
        n = state.taken[spec]
        futures, more_stamps, more_idx = state.apart[spec]
        if futures:
            frames = np.concatenate([frames[:n], np.stack([f.result() for f in futures])])
            stamps = np.concatenate([stamps[:n], np.asarray(more_stamps, np.float64)])
            idx = np.concatenate([idx[:n], np.asarray(more_idx, np.int64)])
            futures.clear()
        elif n:
            frames, stamps, idx = frames[:n], stamps[:n], idx[:n]
        else:
            continue
        frame_sets[spec] = FrameSet(
            spec=spec, frames=frames, timestamps_s=stamps, frame_indices=idx
        )
    audio = None
    if audio_len is not None:
        audio = plan.audio[:audio_len]
        if not plan.reserve(audio):
            audio = np.empty(audio_len, np.float32)
        _copy_audio(audio, state.chunks)()
    state.chunks = []
    return frame_sets, audio


def _place(
    state: _Pass, audio_len: int | None, workers: int, region: Region | None
) -> tuple[dict[FrameSpec, FrameSet], np.ndarray | None, Region | None]:
    """An unplanned pass's block, laid out once the pass has ended, for every frame set
    and the audio, then filled: each converted frame is copied once, into its slot, on
    the pool's threads and this one."""
    sets = [(spec, *lists) for spec, lists in state.apart.items() if lists[0]]
    wanted: list[tuple[tuple[int, ...], np.dtype]] = []
    for _, frames, _, _ in sets:
        first = frames[0].result()  # every frame of a set has this one's shape
        n = len(frames)
        wanted += [((n, *first.shape), first.dtype), ((n,), np.float64), ((n,), np.int64)]
    if audio_len is not None:
        wanted.append(((audio_len,), np.dtype(np.float32)))
    offsets, total = layout([nbytes(shape, dtype) for shape, dtype in wanted])
    buffer, region = _memory(total, region, state.name)
    views = iter(view(buffer, o, shape, dt) for o, (shape, dt) in zip(offsets, wanted, strict=True))
    tasks: list[Callable[[], None]] = []
    frame_sets = {}
    for spec, frames, stamps, idx in sets:
        out, ts, fi = next(views), next(views), next(views)
        ts[:], fi[:] = stamps, idx
        for start in range(0, len(frames), _CHUNK):
            tasks.append(_copy_frames(out, start, frames[start : start + _CHUNK]))
        frames.clear()  # the tasks hold the only references: a frame goes once copied
        frame_sets[spec] = FrameSet(spec=spec, frames=out, timestamps_s=ts, frame_indices=fi)
    audio = None
    if audio_len is not None:
        audio = next(views)
        tasks.append(_copy_audio(audio, state.chunks))
    _run_all(tasks, state.pool, workers)
    state.chunks = []
    return frame_sets, audio, region


def _memory(total: int, region: Region | None, name: str) -> tuple[np.ndarray, Region | None]:
    """``total`` bytes: the region's, sized now, or (no region, no room in it) the heap's."""
    if region is not None and total:
        try:
            region.allocate(total)
            return region.buffer, region
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            log.warning(
                "%s: no room for %.0f MB in shared memory (%s): the frames stay in this process",
                name,
                total / 1e6,
                exc.strerror,
            )
    return np.empty(total, np.uint8), None


def _copy_frames(out: np.ndarray, start: int, futures: list[Future]) -> Callable[[], None]:
    def copy() -> None:
        for i, future in enumerate(futures):
            out[start + i] = future.result()
        futures.clear()

    return copy


def _copy_audio(out: np.ndarray, chunks: list[np.ndarray]) -> Callable[[], None]:
    def copy() -> None:
        pos = 0
        for chunk in chunks:
            take = min(len(chunk), len(out) - pos)
            if take <= 0:
                break
            out[pos : pos + take] = chunk[:take]
            pos += take

    return copy


def _run_all(tasks: list[Callable[[], None]], pool: ThreadPoolExecutor, workers: int) -> None:
    """Every task, on up to ``workers`` pool threads and this one; the first error ends the
    rest and is raised here."""
    lock = threading.Lock()
    todo = iter(tasks)
    failed: list[BaseException] = []

    def run() -> None:
        while not failed:
            with lock:
                task = next(todo, None)
            if task is None:
                return
            try:
                task()  # numpy copies without the GIL: the threads copy side by side
            except BaseException as exc:
                failed.append(exc)
                raise

    helpers = [pool.submit(run) for _ in range(min(workers, max(len(tasks) - 1, 0)))]
    try:
        run()
    finally:
        errors = [h.exception() for h in helpers]
    for exc in errors:
        if exc is not None:
            raise exc


def _limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates a malloc arena of up to 64 MiB of address
    space: 15 converter threads would add ~1 GiB against the decode worker's RLIMIT_AS cap.
    A few arenas shared by all threads cost nothing measurable here."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, 4)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to limit


_limit_malloc_arenas()


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _converters(threads: int = 0) -> int:
    """Threads for the RGB conversions: the cores this decode may use (``threads``, else
    every core of this process), less the demuxer's."""
    return max(1, (threads if threads > 0 else usable_cores()) - 1)


def _read(
    f: MediaFile, state: _Pass, want_video, want_audio, limits: Limits, warnings, on_gpu=None
) -> None:
    """Demux ``f`` once, decoding the audio and, unless ``on_gpu`` decodes it, the picture;
    with ``on_gpu``, the picture's frames come from it after the demux, timed by the
    video packets' times."""
    name = state.name = f.name
    try:
        container = open_container(f, limits)
    except av.error.FFmpegError as exc:
        raise BadInput(
            f"{name}: cannot open as media ({exc.strerror or type(exc).__name__})"
        ) from None
    times: list[float] | None = [] if on_gpu is not None and want_video else None
    keys: list[float] = []
    with container:
        _demux(container, state, want_video, want_audio, name, limits, warnings, times, keys)
    if times is not None:
        on_gpu.frames(state, sorted(times), sorted(keys), name, limits.max_duration_s, warnings)


def _check(state: _Pass, want_video: bool, warnings: list[str]) -> None:
    """Say what was skipped; refuse the file if nothing (or no wanted picture) decoded."""
    name = state.name
    for kind, count in state.bad_packets.items():
        if count:
            warnings.append(
                f"skipped {count} undecodable {kind} packet{'s' if count > 1 else ''} "
                f"({state.first_error})"
            )
            log.warning("%s: %s", name, warnings[-1])
    if not state.decoded_anything and any(state.bad_packets.values()):
        raise BadInput(f"{name}: no decodable data ({state.first_error})")
    if want_video and state.n_frames == 0:
        raise BadInput(f"{name}: the video stream holds no decodable frames")


def _demux(
    container, state: _Pass, want_video, want_audio, name, limits, warnings, times=None, keys=None
) -> None:
    """Feed every packet of the wanted streams through its decoder; a packet that fails
    is skipped, a container that fails to read on (a damaged tail) ends the pass.
    ``times``: the video packets are not decoded here; their times go into this list, and
    those of the key frames into ``keys``."""
    vstream = container.streams.video[0] if want_video else None
    astream = container.streams.audio[0] if want_audio else None
    streams = [s for s in (vstream, astream) if s is not None]
    if vstream is not None:
        vstream.thread_type = "AUTO"
        if state.threads:
            vstream.thread_count = state.threads
    mono = _Mono(state) if astream is not None else None
    start_time = (
        float(vstream.start_time * vstream.time_base)
        if vstream is not None and vstream.start_time is not None
        else 0.0
    )
    try:
        # demux() with no stream reads them all: ask only when something is wanted.
        for packet in container.demux(streams) if streams else ():
            kind = "audio" if packet.stream is astream else "video"
            if times is not None and kind == "video":
                if packet.pts is not None and packet.size:
                    times.append(float(packet.pts * packet.time_base) - start_time)
                    if packet.is_keyframe and keys is not None:
                        keys.append(times[-1])
                continue
            try:
                frames = packet.decode()
            except MemoryError:
                raise  # the worker's memory cap (PyAV's ENOMEM is both)
            except av.error.FFmpegError as exc:
                state.undecodable(kind, exc)
                continue
            for frame in frames:
                if kind == "audio":
                    mono.add(frame)
                else:
                    t = (float(frame.time) - start_time) if frame.time is not None else None
                    state.video_frame(frame, t, name, limits.max_duration_s)
    except MemoryError:
        raise  # not a damaged tail: the worker's memory cap (PyAV's ENOMEM is both)
    except av.error.FFmpegError as exc:
        # A damaged tail: keep what decoded, say so in the report.
        if not state.decoded_anything:
            raise BadInput(
                f"{name}: no decodable data ({exc.strerror or type(exc).__name__})"
            ) from None
        warnings.append(f"decoding stopped early at frame {state.n_frames}: {exc.strerror or exc}")
        log.warning("%s: %s", name, warnings[-1])
    if mono is not None:
        mono.flush()


class _Mono:
    """Audio frames to mono float samples at ``AUDIO_RATE``, appended to the pass's chunks.

    A spliced or damaged stream can change its sample rate, layout or sample format
    mid-stream (two MP3s joined, an ADTS stream re-cut), and PyAV's resampler refuses a
    frame unlike its first: such a change flushes the resampler and starts a new one. A
    frame it cannot convert at all (a damaged header's 48 channels) is skipped and counted
    like an undecodable packet; the resampler, its graph now broken, starts anew."""

    def __init__(self, state: _Pass) -> None:
        self.state = state
        self.resampler: av.AudioResampler | None = None
        self.setup: tuple | None = None

    def add(self, frame: av.AudioFrame) -> None:
        setup = (frame.format.name, frame.layout.name, frame.layout.nb_channels, frame.sample_rate)
        if setup != self.setup:
            self.flush()
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            self.setup = setup
        self._convert(frame)

    def flush(self) -> None:
        if self.resampler is not None:
            self._convert(None)
        self.resampler = self.setup = None

    def _convert(self, frame: av.AudioFrame | None) -> None:
        try:
            for out in self.resampler.resample(frame):
                self.state.chunks.append(out.to_ndarray().reshape(-1))
        except MemoryError:
            raise  # the worker's memory cap (PyAV's ENOMEM is both)
        except (av.error.FFmpegError, ValueError) as exc:
            self.state.undecodable("audio", exc)
            self.resampler = self.setup = None
