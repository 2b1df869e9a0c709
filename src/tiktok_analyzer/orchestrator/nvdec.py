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

Needs NVIDIA's ``PyNvVideoCodec`` wheel (PyPI), torch with CUDA and the driver's
``libnvcuvid`` (in a container, the ``video`` driver capability). Where any is missing, or
the codec is one NVDEC cannot decode, :func:`open_decoder` raises :class:`Unavailable` and the
clip decodes on the CPU, saying so in the report's warnings.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import numpy as np

from tiktok_analyzer.orchestrator.probe import BadInput, MediaInfo

__all__ = ["GpuDecoder", "Unavailable", "convert_into", "open_decoder", "wanted"]

log = logging.getLogger(__name__)

#: Which decoder a process's decodes ask for: "cpu" (FFmpeg, the default) or "nvdec".
#: ``TIKTOK_ANALYZER_VIDEO_DECODER`` sets it for a process.
VIDEO_DECODER = os.environ.get("TIKTOK_ANALYZER_VIDEO_DECODER", "cpu").strip().lower() or "cpu"
_DECODERS = ("cpu", "nvdec")

#: Frames asked of the decoder at a time; each is copied out of the decoder's surfaces before
#: the next batch is asked for (they are reused).
BATCH = 32
#: Threads that resize and copy frames: GPU work and device-to-host copies, mostly waiting.
CONVERTERS = 4


def installed() -> bool:
    """Whether NVIDIA's PyNvVideoCodec is installed here (a GPU host's extra)."""
    return importlib.util.find_spec("PyNvVideoCodec") is not None


def wanted() -> bool:
    """Whether decodes should try NVDEC (:data:`VIDEO_DECODER`)."""
    if VIDEO_DECODER not in _DECODERS:
        raise ValueError(
            f"TIKTOK_ANALYZER_VIDEO_DECODER={VIDEO_DECODER!r}: expected one of "
            + ", ".join(_DECODERS)
        )
    return VIDEO_DECODER == "nvdec"


class Unavailable(RuntimeError):
    """This process cannot decode this clip on the GPU (the message says why)."""


class GpuDecoder:
    """One clip's picture on NVDEC: :meth:`frames` feeds each decoded frame to a
    :class:`.decode._Pass` as a ``(H, W, 3)`` uint8 tensor in GPU memory."""

    def __init__(self, decoder: Any, torch: Any) -> None:
        self.decoder = decoder
        self.torch = torch

    @property
    def convert(self):
        return convert_into

    def close(self) -> None:
        """Let the decoder and its GPU surfaces go (the CUDA context stays)."""
        self.decoder = None

    def frames(self, state, times: list[float], name: str, limit: float, warnings) -> None:
        """Every frame, in display order, into ``state`` at its time from ``times`` (the
        video packets' times, sorted; a frame past them is timed by its index). A decoder
        error after the first frame ends the picture there, as a damaged tail does on the
        CPU; before it, the file is refused."""
        torch = self.torch
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
            # Copied before the decoder is asked again: it reuses its surfaces.
            batch = [torch.from_dlpack(frame).clone() for frame in got]
            if batch[0].is_cuda:
                torch.cuda.current_stream().synchronize()
            for frame in batch:
                i = state.n_frames
                state.video_frame(frame, times[i] if i < len(times) else None, name, limit)
            done += len(got)


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
    try:
        decoder = nvc.SimpleDecoder(
            url,
            gpu_id=torch.cuda.current_device(),
            use_device_memory=True,
            output_color_type=nvc.OutputColorType.RGB,
        )
    except Exception as exc:  # noqa: BLE001 - an unknown codec, no libnvcuvid, no session
        raise Unavailable(f"NVDEC cannot open the {info.codec} stream ({exc})") from None
    return GpuDecoder(decoder, torch)


def convert_into(frame, size: tuple[int, int], rotation: int, into, keep: bool):
    """The GPU's :func:`.decode._convert_into`: ``frame`` (``(H, W, 3)`` uint8 on the GPU)
    at ``size`` (width, height of the picture as displayed), turned by ``rotation``,
    copied into each slot ``(frames, i)``; the array itself only where a set keeps it."""
    import torch
    import torch.nn.functional as F

    w, h = size
    if rotation in (90, 270):  # sizes are for the displayed picture; the stored one is turned
        w, h = h, w
    x = frame
    if (h, w) != tuple(x.shape[:2]):
        y = F.interpolate(x.permute(2, 0, 1)[None].float(), size=(h, w), mode="area")
        x = y[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
    if rotation:  # clockwise, as ffmpeg's autorotate shows it
        x = torch.rot90(x, k=-(rotation // 90), dims=(0, 1))
    arr: np.ndarray = x.contiguous().cpu().numpy()
    for frames, i in into:
        frames[i] = arr
    return arr if keep else None
