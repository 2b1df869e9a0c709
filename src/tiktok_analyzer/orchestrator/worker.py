"""Probe and decode in a child process with a memory cap and a wall-clock limit.

The demuxers and decoders are C code fed with whatever a caller sends. In a child process
a segfault, a decompression bomb or a hang ends that child, never the service: the parent
gets :class:`BadInput` with what happened ("the decoder crashed", "ran out of memory",
"timed out") and goes on answering. One child per call, forked from a forkserver that has
already imported the decoding code, so a start costs milliseconds and nothing a hostile
file did survives into the next call. The child caps its own address space
(``RLIMIT_AS``) before it touches the file; its result comes back pickled through a pipe.

A decode writes its frames and audio into a shared-memory region that the parent created
before the child started (:mod:`.region`): the child gets the open file, sizes and maps it
(the mapping counts against its cap like any other memory), and sends back only where each
array lies. The name is the parent's from start to end: the child never makes one, so
however it ends (crash, memory cap, time limit, cancelled caller) the parent's unlink
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator import nvdec
from tiktok_analyzer.orchestrator.decode import Decoded, decode, usable_cores
from tiktok_analyzer.orchestrator.probe import (
    BadInput,
    Limits,
    MediaFile,
    MediaInfo,
    probe,
    source_name,
)
from tiktok_analyzer.orchestrator.region import Region

__all__ = ["probe_and_decode_isolated", "probe_isolated", "run_isolated", "shutdown"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
_context: multiprocessing.context.BaseContext | None = None
_waiter_pool: concurrent.futures.ThreadPoolExecutor | None = None
#: Threads that wait for children: one per child, so a child's wait never queues behind
#: another's. Callers bound how many children run (the service's admission control).
_MAX_WAITERS = 64


def _waiters() -> concurrent.futures.ThreadPoolExecutor:
    # Not the event loop's default executor: slow children waited for there (a probe holds
    # its thread up to its time limit) starved everything else the service runs in threads.
    global _waiter_pool
    if _waiter_pool is None:
        _waiter_pool = concurrent.futures.ThreadPoolExecutor(
            _MAX_WAITERS, thread_name_prefix="decode-wait"
        )
    return _waiter_pool


#: Whether the forkserver imported torch (:func:`_get_context`): then every child is capped
#: by RLIMIT_DATA (:func:`memory_cap`).
_preloaded_torch = False


def _get_context() -> multiprocessing.context.BaseContext:
    # forkserver, not fork: the service's process has threads (gRPC, asyncio's executor)
    # and forking those is unsafe; not spawn: a fresh interpreter per call costs ~0.3 s.
    global _context, _preloaded_torch
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        # "__main__" too: the forkserver imports the main script once (guarded, as every
        # script is) rather than every child importing it again. torch too where the GPU
        # decodes (importing it starts no CUDA: each child makes its own context).
        _preloaded_torch = nvdec.wanted()
        ctx.set_forkserver_preload(["__main__", __name__] + (["torch"] if _preloaded_torch else []))
        _context = ctx
    return _context


def memory_cap(cuda: bool) -> int:
    """The limit that holds a decoding child to its memory cap: its address space
    (``RLIMIT_AS``), or its heap and private writable mappings (``RLIMIT_DATA``) for a child
    that may use CUDA, whose driver reserves tens of GiB of address space it never fills,
    and for every child of a forkserver that imported torch: CUDA torch's libraries alone
    map more address space than the 4 GiB cap (on the H100 host, every CPU decode under
    RLIMIT_AS then failed to start its threads and hung until its time limit)."""
    return resource.RLIMIT_DATA if cuda or _preloaded_torch else resource.RLIMIT_AS


def _child(
    conn: multiprocessing.connection.Connection,
    work: Callable,
    args: tuple,
    memory_bytes: int,
    cap: int = resource.RLIMIT_AS,
) -> None:
    """The child's whole life: cap memory, do the work, send ``(kind, payload)`` back."""
    try:
        if memory_bytes > 0:
            resource.setrlimit(cap, (memory_bytes, memory_bytes))
        message: tuple[str, Any] = ("ok", work(*args))
    except BadInput as exc:
        message = ("bad_input", str(exc))
    except MemoryError:
        message = ("memory", None)
    except RuntimeError as exc:
        # A thread whose stack no longer fits under the cap: Python says only this.
        cap_hit = memory_bytes > 0 and "can't start new thread" in str(exc)
        message = ("memory", None) if cap_hit else ("error", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        message = ("error", f"{type(exc).__name__}: {exc}")
    try:
        _send(conn, message)
    except MemoryError:
        _send(conn, ("memory", None))
    finally:
        conn.close()


def _send(conn: multiprocessing.connection.Connection, message: tuple[str, Any]) -> None:
    # Pickle protocol 5 with out-of-band buffers: an array outside the region (one that
    # /dev/shm had no room for) goes through the pipe straight from its own memory, not
    # from a pickled copy of the whole result.
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    conn.send((head, [r.nbytes for r in raws]))
    for raw in raws:
        conn.send_bytes(raw)


def _receive(conn: multiprocessing.connection.Connection) -> tuple[str, Any]:
    head, sizes = conn.recv()
    buffers = []
    for size in sizes:
        buf = bytearray(size)  # writable, as the arrays were in the child
        conn.recv_bytes_into(buf)
        buffers.append(buf)
    return pickle.loads(head, buffers=buffers)


class _Child:
    def __init__(
        self, work: Callable, args: tuple, memory_bytes: int, timeout_s: float, cuda: bool
    ) -> None:
        ctx = _get_context()  # first: the forkserver's imports decide the cap
        cap = memory_cap(cuda)
        self.timeout_s = timeout_s
        self.conn, child_end = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_child,
            args=(child_end, work, args, memory_bytes, cap),
            daemon=True,
            name="tiktok-analyzer-decode",
        )
        self.process.start()
        child_end.close()  # the child holds the only writer: its death reads as EOF here

    def wait(self) -> tuple[str, Any]:
        """Blocking (run in a thread): the child's message, or what became of it."""
        try:
            if not self.conn.poll(self.timeout_s):
                return "timeout", None
            try:
                return _receive(self.conn)
            except EOFError:  # died without a word
                self.process.join(2)
                return "died", self.process.exitcode
        finally:
            self.conn.close()
            self.end()

    def end(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


async def run_isolated(
    work: Callable[..., T],
    *args: Any,
    what: str,
    limits: Limits,
    timeout_s: float,
    cuda: bool = False,
) -> T:
    """``work(*args)`` in a child process. ``what`` names the input in error messages.
    Raises :class:`BadInput` when the child refuses the input, crashes, runs out of memory
    or time, or fails otherwise (that one is logged as an error: a defect to fix).
    Cancelling the caller kills the child.

    ``cuda``: the child may use CUDA; it is then held to ``limits.worker_memory_bytes`` by
    its heap, not its address space (:func:`memory_cap`)."""
    child = _Child(work, args, limits.worker_memory_bytes, timeout_s, cuda)
    try:
        loop = asyncio.get_running_loop()
        kind, payload = await loop.run_in_executor(_waiters(), child.wait)
    except asyncio.CancelledError:
        child.process.kill()  # the waiting thread then reads EOF and ends
        raise
    if kind == "ok":
        return payload
    if kind == "bad_input":
        raise BadInput(payload)
    if kind == "memory":
        raise BadInput(
            f"{what}: the decoder ran out of memory (limit "
            f"{limits.worker_memory_bytes / 1024**3:.3g} GiB)"
        )
    if kind == "timeout":
        raise BadInput(f"{what}: the decoder timed out after {timeout_s:g} s")
    if kind == "died":
        raise BadInput(f"{what}: {_death(payload)}")
    # An exception probe or decode did not turn into BadInput: a defect of ours that this
    # file reached. The caller still gets a refusal of the file, not a failed service.
    log.error("%s: the decoder failed: %s", what, payload)
    raise BadInput(f"{what}: the decoder failed ({payload})")


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode)
        if sig in _CRASH_SIGNALS:
            return f"the decoder crashed ({sig.name})"
        if sig == signal.SIGKILL:  # the kernel's OOM killer sends this one
            return "the decoder was killed (SIGKILL; out of memory?)"
        return f"the decoder was stopped by {sig.name}"
    return f"the decoder exited unexpectedly (code {exitcode})"


async def probe_isolated(path: str | MediaFile, limits: Limits) -> MediaInfo:
    """:func:`.probe.probe` in a child process. A :class:`MediaFile` travels to the child
    as its descriptor: the child reads the file the caller opened, never a name."""
    return await run_isolated(
        probe, path, limits, what=source_name(path), limits=limits, timeout_s=limits.probe_timeout_s
    )


#: Decodes of this process's callers running now (each in its own child).
_decoding = 0
_decoding_lock = threading.Lock()
#: Whether decodes side by side share the cores (:func:`decode_share`) instead of each
#: taking every core. Off: on two H100 hosts, eight decodes started at once took 5 % and
#: 18 % more wall time shared, for 8 % and 5 % less CPU (bench/decode_to_shm.py
#: --side-by-side 8; bench/results/gpu_h100.md, eighth session), and a clip waits on its
#: decode's wall time.
SHARE_CORES = False


def decode_share(side_by_side: int, cores: int) -> int:
    """The threads each of ``side_by_side`` decodes may take on ``cores`` cores: 0 (every
    core) for one alone, else an even share and at least 2 (a decoder thread and a
    converter)."""
    if side_by_side <= 1:
        return 0
    return max(2, cores // side_by_side)


#: How many decodes run at once in this process's callers; the others wait their turn,
#: first come first served. 0: one per :data:`CORES_A_DECODE` usable cores, at least one.
#: ``TIKTOK_ANALYZER_DECODES_AT_ONCE`` sets it for a process.
DECODES_AT_ONCE = int(os.environ.get("TIKTOK_ANALYZER_DECODES_AT_ONCE", "0") or 0)
#: The cores one decode of a 1080x1920 clip keeps busy when it has them all: about 7.5
#: on a 16-core H100 host (10 CPU-s in 1.33 s; bench/results/gpu_h100.md).
CORES_A_DECODE = 8
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


#: A decode's turn ends when it does or after this many seconds, whichever comes first: a
#: slow clip (a long one, or one made to decode slowly) then holds up the clips behind
#: it by at most this long, not by its whole decode. A 30 s 1080x1920 clip decodes in
#: 1.3 s on a 16-core H100 host, in about 5.5 s on 2 cores.
TURN_S = 6.0


class _Turn:
    """One decode's hold on the gate: given back by :meth:`end`, or by the event loop
    after :data:`TURN_S` while the decode goes on."""

    def __init__(self, gate: asyncio.Semaphore) -> None:
        self.gate, self.held = gate, True
        self.timer = asyncio.get_running_loop().call_later(TURN_S, self.release)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.gate.release()

    def end(self) -> None:
        self.timer.cancel()
        self.release()


def decodes_at_once() -> int:
    """How many decodes may run side by side now (:data:`DECODES_AT_ONCE`)."""
    if DECODES_AT_ONCE > 0:
        return DECODES_AT_ONCE
    return max(1, usable_cores() // CORES_A_DECODE)


def _gate() -> asyncio.Semaphore:
    """This event loop's turn-taking for decodes (a new one when the limit changed)."""
    loop = asyncio.get_running_loop()
    limit = decodes_at_once()
    held = _gates.get(loop)
    if held is None or held[0] != limit:
        held = _gates[loop] = (limit, asyncio.Semaphore(limit))
    return held[1]


@contextmanager
def _share() -> Iterator[int]:
    """Count one decode in while it runs; yields its thread share, fixed at its start
    (0, every core, unless :data:`SHARE_CORES`)."""
    global _decoding
    with _decoding_lock:
        _decoding += 1
        threads = decode_share(_decoding, usable_cores()) if SHARE_CORES else 0
    try:
        yield threads
    finally:
        with _decoding_lock:
            _decoding -= 1


def _probe_and_decode(
    path: str | MediaFile,
    limits: Limits,
    specs: list[FrameSpec],
    audio: bool,
    region: Region,
    threads: int = 0,
    gpu: bool = False,
) -> tuple[MediaInfo, Decoded, int]:
    info = probe(path, limits)
    decoded = decode(path, info, specs, audio, limits, region, threads, gpu)
    # The arrays stay in the region; only where they lie goes back, and the region's size.
    return info, decoded.detach(), region.size if decoded.region is not None else 0


async def probe_and_decode_isolated(
    path: str | MediaFile,
    limits: Limits,
    specs: Iterable[FrameSpec],
    audio: bool,
    region: Region | None = None,
) -> tuple[MediaInfo, Decoded]:
    """Probe and decode in one child process; ``decode_s`` of the result is the wall time
    seen here. ``region``: a new, empty :class:`.region.Region` for the arrays (the
    result's ``region`` then), whose name the caller unlinks, also when this raises;
    without one, a region of this call whose name is gone by the time this returns (the
    arrays still view its memory).

    Decodes take turns: at most :func:`decodes_at_once` run side by side, the others wait,
    first come first served (``waited_s`` of the result), and a turn lasts at most
    :data:`TURN_S`. Eight 1080x1920 clips decoded at once on 16 cores all end late
    together; in turns the first ends in a fraction of that and the GPU models start on
    it, while the last ends about when it would have.
    Decodes that run side by side may share the cores (:data:`SHARE_CORES`)."""
    t0 = time.perf_counter()
    private = region is None
    region = region if region is not None else Region.create()
    try:
        gate = _gate()
        await gate.acquire()
        decoded_at = time.perf_counter()
        turn = _Turn(gate)
        gpu = nvdec.wanted()
        try:
            with _share() as threads:
                info, decoded, size = await run_isolated(
                    _probe_and_decode,
                    path,
                    limits,
                    list(specs),
                    audio,
                    region,
                    threads,
                    gpu,
                    what=source_name(path),
                    limits=limits,
                    timeout_s=limits.probe_timeout_s + limits.decode_timeout_s,
                    cuda=gpu,
                )
        finally:
            turn.end()
        if size:
            region.map(size)
            decoded = decoded.attach(region)
    finally:
        region.close()
        if private:
            region.unlink()
    if private:
        decoded = replace(decoded, region=None)
    decoded.decode_s = time.perf_counter() - t0
    decoded.waited_s = decoded_at - t0
    return info, decoded


def shutdown() -> None:
    """Stop the forkserver and the resource tracker it started, and reap both, so that a
    service that exits leaves no process behind (on a host whose init does not reap,
    orphans stay as zombies). Uses the stdlib's own stop methods: private, but there since
    Python 3.8 and what its tests stop them with. A later call starts them again, deciding
    anew what the forkserver imports (:func:`_get_context`)."""
    global _context
    if _context is None:
        return
    from multiprocessing import forkserver, resource_tracker

    for server in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(server, "_stop", None)
        if stop is not None:
            stop()
    _context = None
