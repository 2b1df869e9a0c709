"""Probe, decode once, fan out to Triton over gRPC, assemble the report.

Independent analyzers are in flight together; a dependant starts as soon as the analyzers it
reads have answered, and gets their results in its META tensor. Requests go through an
:class:`.endpoints.EndpointPool` (one Triton server or several). When a server runs on this
host, the decoder writes the frame sets and the audio straight into one system shared-memory
region (:mod:`.region`; in the service, from its worker process), which is registered with
each local server the first time a request goes there, and every request points into it: no
frame is copied again, and none travels inside a gRPC message. The region is the clip's: it
is unregistered and unlinked when the analysis ends, fails or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import platform
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from tiktok_analyzer import wire
from tiktok_analyzer.analyzers.base import ClipMeta
from tiktok_analyzer.orchestrator import nvdec
from tiktok_analyzer.orchestrator.decode import Decoded, decode
from tiktok_analyzer.orchestrator.endpoints import Endpoint, EndpointPool, InferFailed
from tiktok_analyzer.orchestrator.models import ModelDecl, with_dependencies
from tiktok_analyzer.orchestrator.probe import Limits, MediaInfo, probe
from tiktok_analyzer.orchestrator.region import Region, layout
from tiktok_analyzer.orchestrator.report import (
    AnalyzerEntry,
    ModelInfo,
    Processing,
    Report,
    VideoInfo,
)
from tiktok_analyzer.orchestrator.worker import probe_and_decode_isolated

__all__ = [
    "AnalysisOptions",
    "Progress",
    "TritonUnavailable",
    "analyze_clip",
    "analyze_clip_async",
    "check_triton",
    "run_models",
]

log = logging.getLogger(__name__)

#: Called as progress(analyzer, event, entry_or_None); event is "start" or "done".
Progress = Callable[[str, str, AnalyzerEntry | None], None]


@dataclass
class AnalysisOptions:
    #: Triton's gRPC endpoint HOST:PORT, or several separated by commas.
    triton_url: str
    analyzers: Sequence[str]
    declarations: dict[str, ModelDecl]
    limits: Limits = field(default_factory=Limits)
    #: Ship frames through system shared memory to the servers on this host.
    use_shm: bool = True
    timeout_s: float = 300.0
    progress: Progress | None = None
    #: The endpoints to use, kept across analyses by a service; None: a pool of
    #: ``triton_url``'s endpoints for this analysis only.
    pool: EndpointPool | None = None
    #: Probe and decode in a worker process with a memory cap (orchestrator/worker.py):
    #: what a service does with clips from others. A one-shot CLI run decodes in-process.
    isolate_decode: bool = False


class TritonUnavailable(RuntimeError):
    """No Triton server answers: nothing can be analyzed (a service maps this to
    UNAVAILABLE / 503)."""


async def check_triton(pool: EndpointPool) -> None:
    """Raise :class:`TritonUnavailable` unless some endpoint of ``pool`` is ready, fast."""
    ready, reason = await pool.ready(fresh=True)
    if not ready:
        raise TritonUnavailable(reason)


@contextlib.asynccontextmanager
async def _pool_for(options: AnalysisOptions) -> AsyncIterator[EndpointPool]:
    if options.pool is not None:
        yield options.pool
        return
    pool = EndpointPool(options.triton_url)
    try:
        yield pool
    finally:
        # A model found dead is being reloaded: let that finish, so the next run (which
        # may be another process) finds it working.
        await pool.wait_reloads(pool.reload_timeout_s)
        await pool.close()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tiktok-analyzer", "tritonclient", "nvidia-pytriton", "av", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _failed(name: str, message: str, elapsed: float, status: str = "failed") -> AnalyzerEntry:
    return AnalyzerEntry(
        status=status,
        error=message,
        elapsed_s=round(elapsed, 4),
        model=ModelInfo(name="n/a", weights="none"),
    )


#: Timeouts of the tries to unregister a clip's region at a server.
UNREGISTER_TIMEOUTS_S = (2.0, 5.0, 10.0)
#: Regions this process failed to unregister (a one-element list: the service's metrics
#: read it); each failure is also logged.
SHM_UNREGISTER_FAILURES = [0]


class _Transport:
    """The tensors of one clip: in one shared-memory region for the servers on this host
    (registered with each the first time a request goes there), inline for the others.

    The region is the decoder's where every array already lies in it (``region``); else
    (a decode without one, or one that found no room) one is made and filled on first use,
    in a worker thread. Either way :meth:`close` unlinks it."""

    def __init__(
        self, arrays: dict[str, np.ndarray], use_shm: bool, region: Region | None = None
    ) -> None:
        self.arrays = arrays
        self.use_shm = use_shm and bool(arrays)
        self.decoded_in = region
        #: The region requests point into, and where each array lies there, once known.
        self.region: Region | None = None
        self.offsets: dict[str, int] = {}
        self.registered: set[Endpoint] = set()
        self._lock = asyncio.Lock()

    def _in_decoded(self) -> bool:
        if self.decoded_in is None:
            return False
        found = {key: self.decoded_in.offset_of(arr) for key, arr in self.arrays.items()}
        if any(offset is None for offset in found.values()):
            return False
        self.region, self.offsets = self.decoded_in, found  # type: ignore[assignment]
        return True

    def _fill(self, region: Region) -> dict[str, int]:
        """A copy of every array into ``region``; where each lies (blocking: in a thread)."""
        starts, size = layout([arr.nbytes for arr in self.arrays.values()])
        offsets = dict(zip(self.arrays, starts, strict=True))
        region.allocate(size)
        for key, arr in self.arrays.items():
            region.array(offsets[key], arr.shape, arr.dtype)[...] = arr
        return offsets

    async def prepare(self, ep: Endpoint) -> bool:
        """Whether requests to ``ep`` point into the region (registered there by now)."""
        if not (self.use_shm and ep.local):
            return False
        async with self._lock:
            if self.region is None and not self._in_decoded():
                # Named here, before the copy, so that close() unlinks it even while a
                # cancelled analysis's copy is still running.
                region = self.region = Region.create()
                try:
                    self.offsets = await asyncio.to_thread(self._fill, region)  # off the loop
                except BaseException as exc:
                    region.unlink()
                    self.region = None
                    if not isinstance(exc, OSError):
                        raise
                    # No room in /dev/shm: inline, as to a remote server.
                    log.warning("no shared memory for this clip's tensors (%s): inline", exc)
                    self.use_shm = False
                    return False
            assert self.region is not None
            if ep not in self.registered:
                await ep.client.register_system_shared_memory(
                    self.region.name, self.region.key, self.region.size
                )
                self.registered.add(ep)
        return True

    def forget(self, ep: Endpoint) -> None:
        """``ep`` lost our registration (it restarted): register again on next use."""
        self.registered.discard(ep)

    async def close(self) -> None:
        # A region left registered stays mapped inside tritonserver for good (about 3 % of
        # analyses under load leaked 12 MB each when a single 2 s try failed silently): try
        # again with longer timeouts, and log and count what still fails.
        name = self.region.name if self.region is not None else ""
        for ep in self.registered:
            for attempt, timeout_s in enumerate(UNREGISTER_TIMEOUTS_S):
                try:
                    await ep.client.unregister_system_shared_memory(name, client_timeout=timeout_s)
                    break
                except (InferenceServerException, OSError) as exc:
                    if attempt + 1 < len(UNREGISTER_TIMEOUTS_S):
                        await asyncio.sleep(0.1 * (attempt + 1))
                        continue
                    SHM_UNREGISTER_FAILURES[0] += 1
                    log.warning("could not unregister shm region %s at %s: %s", name, ep.url, exc)
        self.registered.clear()
        for region in (self.region, self.decoded_in):
            if region is not None:
                region.unlink()  # the name goes; the memory with the last array viewing it

    def input(self, spec: wire.Tensor, key: str, in_shm: bool) -> grpcclient.InferInput:
        arr = self.arrays[key]
        tensor = grpcclient.InferInput(spec.name, [1, *arr.shape], spec.dtype)
        if in_shm:
            assert self.region is not None and self.offsets is not None
            tensor.set_shared_memory(self.region.name, arr.nbytes, offset=self.offsets[key])
        else:
            tensor.set_data_from_numpy(arr[None])
        return tensor


async def run_models(
    info: MediaInfo, decoded: Decoded, options: AnalysisOptions, names: Sequence[str]
) -> dict[str, AnalyzerEntry]:
    """Send every analyzer its request, each after its dependencies; one entry per name."""
    async with _pool_for(options) as pool:
        return await _run_models(info, decoded, options, names, pool)


def _arrays(decoded: Decoded, decls: dict[str, ModelDecl], names: Sequence[str]) -> dict:
    """Every array any request points into, once, keyed by frame set and tensor."""
    arrays: dict[str, np.ndarray] = {}
    for spec, fs in decoded.frame_sets.items():
        key = wire.frames_key(spec)
        arrays[f"{key}/{wire.FRAMES.name}"] = fs.frames
        arrays[f"{key}/{wire.TIMESTAMPS.name}"] = fs.timestamps_s
        arrays[f"{key}/{wire.FRAME_INDEX.name}"] = fs.frame_indices
    if decoded.audio is not None and any(decls[n].audio for n in names):
        arrays[wire.AUDIO.name] = decoded.audio
    return arrays


def _clip_meta(info: MediaInfo) -> ClipMeta:
    return ClipMeta(
        duration_s=info.duration_s,
        fps=info.fps,
        width=info.width,
        height=info.height,
        has_video=info.has_video,
        has_audio=info.has_audio,
    )


class _Run:
    """One clip's requests: each analyzer waits for its dependencies, then asks Triton.
    ``entries`` and ``done`` are shared by the analyzers' tasks: a dependant reads its
    upstream entries once their events are set."""

    def __init__(
        self,
        info: MediaInfo,
        decoded: Decoded,
        options: AnalysisOptions,
        names: Sequence[str],
        pool: EndpointPool,
    ) -> None:
        self.info, self.decoded, self.options, self.pool = info, decoded, options, pool
        self.decls = options.declarations
        self.meta = _clip_meta(info)
        self.transport = _Transport(
            _arrays(decoded, self.decls, names), options.use_shm, decoded.region
        )
        self.entries: dict[str, AnalyzerEntry] = {}
        self.done: dict[str, asyncio.Event] = {n: asyncio.Event() for n in names}

    async def all(self) -> dict[str, AnalyzerEntry]:
        try:
            await asyncio.gather(*(self.one(n) for n in self.done))
        finally:
            # Shielded: a cancelled analysis must still unregister its region.
            await asyncio.shield(self.transport.close())
        return self.entries

    async def one(self, name: str) -> None:
        """Run one analyzer after its dependencies; whatever happens, it gets an entry."""
        for dep in self.decls[name].depends_on:
            if dep in self.done:
                await self.done[dep].wait()
        progress = self.options.progress
        if progress:
            progress(name, "start", None)
        started = time.perf_counter()
        try:
            self.entries[name] = await self.infer(name)
        except InferFailed as exc:
            self.entries[name] = _failed(name, str(exc), time.perf_counter() - started)
        except TimeoutError:
            self.entries[name] = _failed(
                name,
                f"no answer within {self.options.timeout_s:g} s",
                time.perf_counter() - started,
            )
        except Exception as exc:  # noqa: BLE001 - one analyzer never sinks the report
            log.exception("%s: request failed", name)
            self.entries[name] = _failed(
                name, f"{type(exc).__name__}: {exc}", time.perf_counter() - started
            )
        finally:
            self.done[name].set()
            if progress:
                progress(name, "done", self.entries.get(name))

    def _skip_reason(self, decl: ModelDecl, has_frames: bool, has_audio: bool) -> str | None:
        # Nothing to ship for this analyzer: it does not apply, Triton need not be asked
        # (unless it declared its inputs optional: then it gets what the clip has).
        if decl.optional:
            return None
        if decl.frames is not None and not has_frames:
            return "the clip has no picture" if not self.info.has_video else "no frames decoded"
        if decl.audio and not has_audio:
            return "the clip has no audio track" if not self.info.has_audio else "no audio decoded"
        return None

    async def infer(self, name: str) -> AnalyzerEntry:
        decl = self.decls[name]
        has_frames = decl.frames is not None and decl.frames in self.decoded.frame_sets
        has_audio = decl.audio and self.decoded.audio is not None
        reason = self._skip_reason(decl, has_frames, has_audio)
        if reason is not None:
            return _failed(name, reason, 0.0, status="skipped")
        upstream = {
            d: self.entries[d].result
            for d in decl.depends_on
            # A partial result is typed like a full one (its model-made fields null).
            if d in self.entries and self.entries[d].status in wire.WITH_RESULT
        }
        body = np.array([[wire.Meta(meta=self.meta, upstream=upstream).encode()]], np.object_)
        frames_key = wire.frames_key(decl.frames) if has_frames else None

        async def inputs_for(ep: Endpoint) -> list[grpcclient.InferInput]:
            in_shm = await self.transport.prepare(ep)
            meta_in = grpcclient.InferInput(wire.META.name, [1, 1], wire.META.dtype)
            meta_in.set_data_from_numpy(body)
            inputs = [meta_in]
            if frames_key is not None:
                inputs += [
                    self.transport.input(t, f"{frames_key}/{t.name}", in_shm)
                    for t in wire.FRAME_TENSORS
                ]
            if has_audio:
                inputs.append(self.transport.input(wire.AUDIO, wire.AUDIO.name, in_shm))
            return inputs

        result = await self.pool.infer(
            name,
            inputs_for,
            [grpcclient.InferRequestedOutput(wire.RESULT.name)],
            self.options.timeout_s,
            on_shm_lost=self.transport.forget,
        )
        raw = result.as_numpy(wire.RESULT.name)
        if raw is None or raw.size != 1:
            raise RuntimeError(f"the model answered without a {wire.RESULT.name}")
        return wire.parse_envelope(raw.reshape(-1)[0])


async def _run_models(
    info: MediaInfo,
    decoded: Decoded,
    options: AnalysisOptions,
    names: Sequence[str],
    pool: EndpointPool,
) -> dict[str, AnalyzerEntry]:
    return await _Run(info, decoded, options, names, pool).all()


async def analyze_clip_async(path: str, options: AnalysisOptions) -> Report:
    """The whole job for one clip. Raises BadInput before any decoding for what breaks the
    limits (with ``isolate_decode``, also for a decoder that crashes, runs out of memory or
    time); TritonUnavailable when no endpoint is ready; everything else ends in the report.
    Probe and decode run in a worker thread or process, so a service keeps other analyses
    in flight meanwhile."""
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    names = with_dependencies(options.analyzers, options.declarations)
    specs = [options.declarations[n].frames for n in names if options.declarations[n].frames]
    need_audio = any(options.declarations[n].audio for n in names)
    async with _pool_for(options) as pool:
        # The frames' region, for a local server (its name is registered there) or a worker
        # process to write into. Its name is unlinked here whatever happens: a failed or
        # cancelled decode too (a decoder still running then writes into an unlinked file).
        shared = options.use_shm and any(ep.local for ep in pool.endpoints)
        region: Region | None = None
        try:
            if options.isolate_decode:
                # One child probes and decodes; Triton is asked first so that an outage is
                # not paid for with a decode.
                await check_triton(pool)
                region = Region.create()
                info, decoded = await probe_and_decode_isolated(
                    path, options.limits, specs, need_audio, region
                )
            else:
                info = await asyncio.to_thread(probe, path, options.limits)
                await check_triton(pool)
                region = Region.create() if shared else None
                decoded = await asyncio.to_thread(
                    partial(decode, gpu=nvdec.wanted()),
                    path,
                    info,
                    specs,
                    need_audio,
                    options.limits,
                    region,
                )
            if not shared and region is not None:
                region.unlink()  # no server maps it by name; the arrays keep the memory
                decoded.region = None
            log.info(
                "decoded %d frames in %.2f s (%.2f s of it waiting for a turn)",
                decoded.n_frames,
                decoded.decode_s,
                decoded.waited_s,
            )
            entries = await _run_models(info, decoded, options, names, pool)
        finally:
            if region is not None:
                region.unlink()
    wall = time.perf_counter() - t0
    processing = Processing(
        started_at=started_at.isoformat(timespec="seconds"),
        wall_s=round(wall, 3),
        realtime_factor=round(wall / info.duration_s, 4) if info.duration_s else 0.0,
        triton_url=pool.url,
        versions=_versions(),
        decode_s=round(decoded.decode_s, 3),
        video_decoder=decoded.video_decoder,
        warnings=decoded.warnings,
    )
    return Report(
        video=VideoInfo(**info.to_report()),
        processing=processing,
        analyzers={n: entries[n] for n in names},
    )


def analyze_clip(path: str, options: AnalysisOptions) -> Report:
    """:func:`analyze_clip_async` for callers without an event loop (the CLI, benchmarks)."""
    return asyncio.run(analyze_clip_async(path, options))
