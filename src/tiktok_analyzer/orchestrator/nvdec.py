"""Video frames from the GPU's own decoder (NVDEC), for :func:`.decode.decode` on a GPU host.

On the CPU the decode is the pipeline's largest cost with clips in flight: 10.7-10.9 of
26.5-27.1 CPU-s a clip on a 16-core H100 host with eight in flight, which caps that host near
36 clips a minute. NVDEC decoded the same 30 s 1080x1920 clip to RGB in GPU memory in 1.54 s
for 0.3 CPU-s, and eight side by side in 2.8-3.05 s for 4.3-5.3 CPU-s in all
(bench/gpu/nvdec_probe.py; bench/results/gpu_h100.md, tenth session).

Only the picture moves. PyAV still demuxes the file once: it decodes the audio as before and
reads each video packet's time without decoding it; the frames, which NVIDIA's decoder gives
in display order, take those times, sorted. Each frame set's frames are then chosen by the
same selectors as on the CPU, resized on the GPU (torch's area filter, where the CPU uses
swscale's) and copied into the same planned slots, so the analyzers see the same arrays in
the same shared memory. A frame's values differ from the CPU's by the two filters' and
colour conversions' rounding, a few levels.

One clip may also be cut at key frames into parts decoded at once, each on its own decoder
(:data:`SEGMENTS`, :func:`segments`): the times being known from the demux, every frame's
places are chosen first, in order, and each part fills its own. A part that fails or ends
short has the whole picture decoded again in one pass.

Needs NVIDIA's ``PyNvVideoCodec`` wheel (PyPI), torch with CUDA and the driver's
``libnvcuvid`` (in a container, the ``video`` driver capability). Where any is missing, or
the codec is one NVDEC cannot decode, :func:`open_decoder` raises :class:`Unavailable` and the
clip decodes on the CPU, saying so in the report's warnings.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from tiktok_analyzer.orchestrator.probe import BadInput, MediaInfo

__all__ = ["GpuDecoder", "Unavailable", "open_decoder", "parts", "wanted"]

log = logging.getLogger(__name__)

#: Which decoder a process's decodes ask for: "cpu" (FFmpeg, the default) or "nvdec".
#: ``TIKTOK_ANALYZER_VIDEO_DECODER`` sets it for a process.
VIDEO_DECODER = os.environ.get("TIKTOK_ANALYZER_VIDEO_DECODER", "cpu").strip().lower() or "cpu"
_DECODERS = ("cpu", "nvdec")
#: Parts one clip is cut into at key frames, each decoded on its own decoder (the H100 has 7
#: NVDEC engines) at once. The 30 s bench clip (a key frame every 2 s) took 1.54 s on one,
#: 1.05 s on 2 and 0.80 s on 4, the same frames (bench/gpu/nvdec_probe.py --segments).
#: 1 until the pipeline is measured with more. ``TIKTOK_ANALYZER_NVDEC_SEGMENTS`` sets it
#: (read by :func:`parts`).
SEGMENTS = os.environ.get("TIKTOK_ANALYZER_NVDEC_SEGMENTS", "1").strip() or "1"

#: Frames asked of the decoder at a time; each is copied out of the decoder's surfaces before
#: the next batch is asked for (they are reused).
BATCH = 32
#: Threads of the pass's pool, which only copies frames kept apart from the plan here.
CONVERTERS = 4


def wanted() -> bool:
    """Whether decodes should try NVDEC (:data:`VIDEO_DECODER`)."""
    if VIDEO_DECODER not in _DECODERS:
        raise ValueError(
            f"TIKTOK_ANALYZER_VIDEO_DECODER={VIDEO_DECODER!r}: expected one of "
            + ", ".join(_DECODERS)
        )
    return VIDEO_DECODER == "nvdec"


def parts() -> int:
    """The parts one clip is cut into (:data:`SEGMENTS`)."""
    if not SEGMENTS.isdigit() or int(SEGMENTS) < 1:
        raise ValueError(
            f"TIKTOK_ANALYZER_NVDEC_SEGMENTS={SEGMENTS!r}: expected a whole number, 1 or more"
        )
    return int(SEGMENTS)


class Unavailable(RuntimeError):
    """This process cannot decode this clip on the GPU (the message says why)."""


class _SegmentFailed(RuntimeError):
    """A part of a clip decoded apart ended short or failed: the clip is decoded again in
    one pass."""


class GpuDecoder:
    """One clip's picture on NVDEC: :meth:`frames` takes each decoded frame into a
    :class:`.decode._Pass`'s sets, a batch of frames at a time on the GPU.

    ``reopen`` opens another decoder on the same clip, for :data:`SEGMENTS` parts of it
    decoded side by side."""

    def __init__(
        self,
        decoder: Any,
        torch: Any,
        reopen: Callable[[], Any] | None = None,
        segments: int = 1,
    ) -> None:
        self.decoder = decoder
        self.torch = torch
        self.reopen = reopen
        self.segments = segments

    def close(self) -> None:
        """Let the decoder and its GPU surfaces go (the CUDA context stays)."""
        self.decoder = None

    def frames(
        self, state, times: list[float], keys: list[float], name: str, limit: float, warnings
    ) -> None:
        """Every frame, in display order, into ``state`` at its time from ``times`` (the
        video packets' times, sorted; a frame past them is timed by its index). ``keys``:
        the key frames' times, where the clip may be cut into parts decoded side by side
        (:func:`segments`). A batch of frames is chosen frame by frame (``state.select``,
        as on the CPU), then each size some set wants is made for the batch's frames at once
        and copied to the host once. A decoder error after the first frame ends the picture
        there, as a damaged tail does on the CPU; before it, the file is refused."""
        bounds = segments(times, keys, self.segments) if self.reopen is not None else []
        if len(bounds) > 1 and len(times) == len(self.decoder):
            try:
                self._side_by_side(state, times, bounds, name, limit)
                return
            except _SegmentFailed as exc:
                log.warning("%s: %s; decoding the clip again in one pass", name, exc)
                state.restart()
                self.decoder = self.reopen()
        self._in_one_pass(state, times, name, limit, warnings)

    def _in_one_pass(self, state, times, name, limit, warnings) -> None:
        total = len(self.decoder)
        done = 0
        while total <= 0 or done < total:
            try:
                got = self.decoder.get_batch_frames(
                    BATCH if total <= 0 else min(BATCH, total - done)
                )
            except Exception as exc:  # noqa: BLE001 - the decoder's errors have no common type
                if state.n_frames == 0:
                    raise BadInput(f"{name}: no decodable frames on the GPU ({exc})") from None
                warnings.append(f"decoding stopped early at frame {state.n_frames}: {exc}")
                log.warning("%s: %s", name, warnings[-1])
                break
            if not got:
                break
            places = []
            for _ in got:
                i = state.n_frames
                places.append(
                    _waiting(state.select(times[i] if i < len(times) else None, name, limit))
                )
            self._take(self._copied(got), places, state.info.rotation)
            done += len(got)

    def _side_by_side(self, state, times, bounds, name, limit) -> None:
        """The clip's parts ``bounds`` (first and end frame, each starting at a key frame)
        decoded at once, one decoder and thread each: every frame's places are chosen
        first, in order, as the times are known."""
        places = [_waiting(state.select(t, name, limit)) for t in times]

        def part(a: int, b: int) -> None:
            try:
                decoder = self.decoder if a == 0 else self.reopen()
                if a:
                    decoder.seek_to_index(a)
                i = a
                while i < b:
                    got = decoder.get_batch_frames(min(BATCH, b - i))
                    if not got:
                        raise _SegmentFailed(f"frames {i} to {b - 1} did not decode")
                    self._take(self._copied(got), places[i : i + len(got)], state.info.rotation)
                    i += len(got)
            except _SegmentFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - the decoder's errors have no common type
                raise _SegmentFailed(f"frames {a} to {b - 1}: {exc}") from None

        with ThreadPoolExecutor(len(bounds), thread_name_prefix="nvdec") as pool:
            done = [pool.submit(part, a, b) for a, b in bounds]
        for future in done:
            future.result()

    def _copied(self, got: list):
        """The decoder's frames as one ``(n, H, W, 3)`` tensor of our own: it reuses its
        surfaces once asked again."""
        torch = self.torch
        batch = torch.stack([torch.from_dlpack(frame) for frame in got])
        if batch.is_cuda:
            torch.cuda.current_stream().synchronize()
        return batch

    def _take(self, batch, places: list[dict], rotation: int) -> None:
        """``batch``'s frames into their places (one :func:`_waiting` dict a frame): each
        size made for all the frames that want it at once."""
        jobs: dict[tuple[int, int], list[tuple[int, tuple]]] = {}
        for k, frame_places in enumerate(places):
            for size, place in frame_places.items():
                jobs.setdefault(size, []).append((k, place))
        for size, items in jobs.items():
            arrays = _resized(self.torch, batch, [k for k, _ in items], size, rotation)
            for (_, (into, kept)), arr in zip(items, arrays, strict=True):
                for frames, i in into:
                    frames[i] = arr
                if kept is not None:
                    kept.set_result(arr.copy())


def _waiting(places: dict) -> dict:
    """``state.select``'s places with one future for the sets that keep the array itself,
    appended to their lists now (in frame order) and set once the array is made."""
    out = {}
    for size, (into, keep) in places.items():
        kept: Future | None = None
        if keep:
            kept = Future()
            for futures in keep:
                futures.append(kept)
        out[size] = (into, kept)
    return out


def segments(times: list[float], keys: list[float], parts: int) -> list[tuple[int, int]]:
    """The clip's frames (``times``, sorted) cut into at most ``parts`` runs, each starting
    at a key frame (``keys``) near an equal share: ``(first, end)`` pairs. One run where
    the first frame is not a key frame or nothing else is near."""
    n = len(times)
    starts = sorted({bisect.bisect_left(times, k) for k in keys} & set(range(n)))
    if parts <= 1 or not starts or starts[0] != 0:
        return [(0, n)] if n else []
    cuts = sorted({min(starts, key=lambda s: abs(s - n * j / parts)) for j in range(parts)})
    return list(zip(cuts, [*cuts[1:], n], strict=True))


#: Frames resized at once: their float copies at 1080x1920 take 8 x 25 MB of GPU memory.
CHUNK = 8


def _resized(torch, batch, picks: list[int], size: tuple[int, int], rotation: int) -> np.ndarray:
    """``batch[picks]`` (``(n, H, W, 3)`` uint8, on the GPU) at ``size`` (width, height of
    the picture as displayed; torch's area filter), turned by ``rotation``: one host array."""
    import torch.nn.functional as F

    w, h = size
    if rotation in (90, 270):  # sizes are for the displayed picture; the stored one is turned
        w, h = h, w
    out = []
    for start in range(0, len(picks), CHUNK):
        x = batch[picks[start : start + CHUNK]]
        if (h, w) != tuple(x.shape[1:3]):
            y = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(h, w), mode="area")
            x = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        if rotation:  # clockwise, as ffmpeg's autorotate shows it
            x = torch.rot90(x, k=-(rotation // 90), dims=(1, 2))
        out.append(x.contiguous())
    return torch.cat(out).cpu().numpy()


def open_decoder(url: str, info: MediaInfo) -> GpuDecoder:
    """NVDEC opened on ``url`` (the clip, already probed as ``info``); :class:`Unavailable`
    where this process or this clip cannot use it."""
    try:
        import PyNvVideoCodec as nvc
        import torch
    except ImportError as exc:
        raise Unavailable(f"{exc.name or 'PyNvVideoCodec'} is not installed") from None
    except Exception as exc:  # noqa: BLE001 - the wheel checks the driver while it imports
        raise Unavailable(f"PyNvVideoCodec does not load ({exc})") from None
    if not torch.cuda.is_available():
        raise Unavailable("no CUDA GPU")

    def reopen():
        return nvc.SimpleDecoder(
            url,
            gpu_id=torch.cuda.current_device(),
            use_device_memory=True,
            output_color_type=nvc.OutputColorType.RGB,
        )

    try:
        decoder = reopen()
    except Exception as exc:  # noqa: BLE001 - an unknown codec, no libnvcuvid, no session
        raise Unavailable(f"NVDEC cannot open the {info.codec} stream ({exc})") from None
    return GpuDecoder(decoder, torch, reopen, parts())
