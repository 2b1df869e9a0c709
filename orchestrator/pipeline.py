"""Probe, decode once, fan out to Triton over gRPC, assemble the report.

Independent analyzers are in flight together; a dependant starts as soon as the analyzers it
reads have answered, and gets their results in its META tensor. When Triton runs on this
host, the frame sets and the audio are written once into one system shared-memory region
and every request points into it: no frame travels inside a gRPC message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import tritonclient.grpc.aio as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from .decode import Decoded, decode
from .models import ModelDecl, with_dependencies
from .probe import Limits, MediaInfo, probe
from .report import AnalyzerEntry, ModelInfo, Processing, Report, VideoInfo

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
    triton_url: str
    analyzers: Sequence[str]
    declarations: dict[str, ModelDecl]
    limits: Limits = field(default_factory=Limits)
    #: Ship frames through system shared memory (only when Triton shares this host).
    use_shm: bool = True
    timeout_s: float = 300.0
    progress: Progress | None = None


class TritonUnavailable(RuntimeError):
    """The Triton server does not answer: nothing can be analyzed (a service maps this to
    UNAVAILABLE / 503)."""


async def check_triton(url: str, timeout_s: float = 2.0) -> None:
    """Raise :class:`TritonUnavailable` unless the server at ``url`` is live, fast."""
    client = grpcclient.InferenceServerClient(url)
    try:
        live = await asyncio.wait_for(client.is_server_live(), timeout_s)
    except (TimeoutError, InferenceServerException, OSError) as exc:
        reason = exc.message() if isinstance(exc, InferenceServerException) else repr(exc)
        raise TritonUnavailable(f"Triton at {url} does not answer ({' '.join(reason.split())[:160]})") \
            from None
    finally:
        await client.close()
    if not live:
        raise TritonUnavailable(f"Triton at {url} is not live")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tiktok-analyzer", "tritonclient", "nvidia-pytriton", "av", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _failed(name: str, message: str, elapsed: float, status: str = "failed") -> AnalyzerEntry:
    return AnalyzerEntry(status=status, error=message, elapsed_s=round(elapsed, 4),
                         model=ModelInfo(name="n/a", weights="none"))


class _Transport:
    """The tensors of one clip, in a shared-memory region or as plain numpy arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], use_shm: bool) -> None:
        self.arrays = arrays
        self.use_shm = use_shm and bool(arrays)
        self.offsets: dict[str, int] = {}
        self.region = f"tta_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self.handle = None

    async def open(self, client: grpcclient.InferenceServerClient) -> None:
        if not self.use_shm:
            return
        total = 0
        for key, arr in self.arrays.items():
            self.offsets[key] = total
            total += (arr.nbytes + 63) // 64 * 64  # aligned starts
        self.handle = shm.create_shared_memory_region(self.region, f"/{self.region}", total)
        for key, arr in self.arrays.items():
            shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(arr)],
                                         offset=self.offsets[key])
        await client.register_system_shared_memory(self.region, f"/{self.region}", total)

    async def close(self, client: grpcclient.InferenceServerClient) -> None:
        if self.handle is None:
            return
        with contextlib.suppress(InferenceServerException, OSError):
            await client.unregister_system_shared_memory(self.region)
        shm.destroy_shared_memory_region(self.handle)
        self.handle = None

    def input(self, name: str, key: str, dtype: str) -> grpcclient.InferInput:
        arr = self.arrays[key]
        tensor = grpcclient.InferInput(name, [1, *arr.shape], dtype)
        if self.handle is not None:
            tensor.set_shared_memory(self.region, arr.nbytes, offset=self.offsets[key])
        else:
            tensor.set_data_from_numpy(arr[None])
        return tensor


def _array_key(spec) -> str:
    sel = "every" if spec.every_frame else (f"fps{spec.fps:g}" if spec.fps else f"n{spec.count}")
    return f"{sel}_{spec.short_side}"


async def run_models(info: MediaInfo, decoded: Decoded, options: AnalysisOptions,
                     names: Sequence[str]) -> dict[str, AnalyzerEntry]:
    """Send every analyzer its request, each after its dependencies; one entry per name."""
    decls = options.declarations
    arrays: dict[str, np.ndarray] = {}
    for spec, fs in decoded.frame_sets.items():
        key = _array_key(spec)
        arrays[f"{key}/frames"] = fs.frames
        arrays[f"{key}/t"] = fs.timestamps_s
        arrays[f"{key}/i"] = fs.frame_indices
    if decoded.audio is not None and any(decls[n].audio for n in names):
        arrays["audio"] = decoded.audio
    meta = {"duration_s": info.duration_s, "fps": info.fps, "width": info.width,
            "height": info.height, "has_video": info.has_video, "has_audio": info.has_audio}

    entries: dict[str, AnalyzerEntry] = {}
    done: dict[str, asyncio.Event] = {n: asyncio.Event() for n in names}
    transport = _Transport(arrays, options.use_shm)
    client = grpcclient.InferenceServerClient(options.triton_url)

    async def one(name: str) -> None:
        decl = decls[name]
        for dep in decl.depends_on:
            if dep in done:
                await done[dep].wait()
        if options.progress:
            options.progress(name, "start", None)
        started = time.perf_counter()
        try:
            entries[name] = await _infer(name, decl)
        except InferenceServerException as exc:
            entries[name] = _failed(name, _server_message(exc), time.perf_counter() - started)
        except TimeoutError:
            entries[name] = _failed(name, f"no answer within {options.timeout_s:.0f} s",
                                    time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - one analyzer never sinks the report
            log.exception("%s: request failed", name)
            entries[name] = _failed(name, f"{type(exc).__name__}: {exc}",
                                    time.perf_counter() - started)
        finally:
            done[name].set()
            if options.progress:
                options.progress(name, "done", entries.get(name))

    async def _infer(name: str, decl: ModelDecl) -> AnalyzerEntry:
        # Nothing to ship for this analyzer: it does not apply, Triton need not be asked.
        if decl.frames is not None and decl.frames not in decoded.frame_sets:
            reason = "the clip has no picture" if not info.has_video else "no frames decoded"
            return _failed(name, reason, 0.0, status="skipped")
        if decl.audio and decoded.audio is None:
            reason = "the clip has no audio track" if not info.has_audio else "no audio decoded"
            return _failed(name, reason, 0.0, status="skipped")
        upstream = {d: entries[d].result for d in decl.depends_on
                    if d in entries and entries[d].status == "ok"}
        body = json.dumps({"meta": meta, "upstream": upstream})
        meta_in = grpcclient.InferInput("META", [1, 1], "BYTES")
        meta_in.set_data_from_numpy(np.array([[body.encode()]], dtype=np.object_))
        inputs = [meta_in]
        if decl.frames is not None:
            key = _array_key(decl.frames)
            inputs += [transport.input("FRAMES", f"{key}/frames", "UINT8"),
                       transport.input("TIMESTAMPS", f"{key}/t", "FP64"),
                       transport.input("FRAME_INDEX", f"{key}/i", "INT64")]
        if decl.audio:
            inputs.append(transport.input("AUDIO", "audio", "FP32"))
        result = await asyncio.wait_for(
            client.infer(name, inputs, outputs=[grpcclient.InferRequestedOutput("RESULT")],
                         client_timeout=options.timeout_s),
            timeout=options.timeout_s + 5,
        )
        raw = result.as_numpy("RESULT")
        if raw is None or raw.size != 1:
            raise RuntimeError("the model answered without a RESULT")
        return AnalyzerEntry.model_validate(json.loads(raw.reshape(-1)[0]))

    try:
        await transport.open(client)
        await asyncio.gather(*(one(n) for n in names))
    finally:
        await transport.close(client)
        await client.close()
    return entries


def _server_message(exc: InferenceServerException) -> str:
    text = exc.message() or str(exc)
    return " ".join(text.split())[:300]


async def analyze_clip_async(path: str, options: AnalysisOptions) -> Report:
    """The whole job for one clip. Raises BadInput before any decoding for what breaks the
    limits; everything after that ends in the report. Probe and decode run in a worker
    thread, so a service can keep other analyses in flight meanwhile."""
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    info = await asyncio.to_thread(probe, path, options.limits)
    await check_triton(options.triton_url)
    names = with_dependencies(options.analyzers, options.declarations)
    specs = [options.declarations[n].frames for n in names if options.declarations[n].frames]
    need_audio = any(options.declarations[n].audio for n in names)
    decoded = await asyncio.to_thread(decode, path, info, specs, need_audio, options.limits)
    log.info("decoded %d frames in %.2f s", decoded.n_frames, decoded.decode_s)
    entries = await run_models(info, decoded, options, names)
    wall = time.perf_counter() - t0
    processing = Processing(
        started_at=started_at.isoformat(timespec="seconds"),
        wall_s=round(wall, 3),
        realtime_factor=round(wall / info.duration_s, 4) if info.duration_s else 0.0,
        triton_url=options.triton_url,
        versions=_versions(),
        decode_s=round(decoded.decode_s, 3),
        warnings=decoded.warnings,
    )
    return Report(video=VideoInfo(**info.to_report()), processing=processing,
                  analyzers={n: entries[n] for n in names})


def analyze_clip(path: str, options: AnalysisOptions) -> Report:
    """:func:`analyze_clip_async` for callers without an event loop (the CLI, benchmarks)."""
    return asyncio.run(analyze_clip_async(path, options))
