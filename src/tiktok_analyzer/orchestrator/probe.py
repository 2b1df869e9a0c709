"""Look at a file before decoding it, and refuse what breaks the limits.

Everything here reads the container's header and stream parameters (FFmpeg decodes a frame
or so per stream to learn them, under our pixel limit), so a hostile or huge file costs
almost nothing to refuse.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

__all__ = ["BadInput", "Limits", "MediaInfo", "probe"]


class BadInput(Exception):
    """Nothing to analyze: the message is the one-line reason shown to the user (exit 2)."""


@dataclass(frozen=True)
class Limits:
    """What the service accepts. Defaults fit short-form video with room to spare."""

    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    max_fps: float = 240.0
    max_streams: int = 8
    max_file_bytes: int = 2 * 1024**3
    #: Address-space cap of the worker process that probes and decodes (the service's
    #: path; orchestrator/worker.py): a decompression bomb ends there.
    worker_memory_bytes: int = 4 * 1024**3
    #: Wall-clock limits of that worker: a probe reads headers and a frame or so; a decode of the
    #: longest clip allowed stays well inside its limit on a small CPU.
    probe_timeout_s: float = 10.0
    decode_timeout_s: float = 300.0
    #: Container formats we open. A whitelist keeps playlists (hls, concat) and device
    #: inputs from making the demuxer read other files.
    formats: frozenset[str] = frozenset(
        {
            "mov",
            "mp4",
            "m4a",
            "3gp",
            "3g2",
            "mj2",
            "matroska",
            "webm",
            "avi",
            "flv",
            "mpegts",
            "mp3",
            "wav",
            "ogg",
            "aac",
            "flac",
        }
    )


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format: str
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float = 0.0
    width: int = 0
    height: int = 0
    rotation: int = 0
    codec: str = ""
    n_frames: int = 0
    audio_codec: str = ""
    audio_rate: int = 0

    def to_report(self) -> dict:
        d = asdict(self)
        return {
            k: d[k]
            for k in (
                "path",
                "duration_s",
                "fps",
                "width",
                "height",
                "rotation",
                "has_audio",
                "has_video",
                "codec",
            )
        }


def _rotation(container, stream) -> int:
    """Degrees to turn the stored picture clockwise for display (0, 90, 180, 270).

    Phones store portrait clips as landscape frames plus a display rotation. Older muxers
    put it in the "rotate" tag; newer ones in a display matrix, which PyAV exposes only on
    decoded frames, so the first frame is decoded (the limits have passed by then)."""
    value = stream.metadata.get("rotate")
    if value:
        try:
            return int(float(value)) % 360
        except ValueError:
            return 0
    try:
        frame = next(container.decode(stream))
    except (StopIteration, av.error.FFmpegError):
        return 0
    # The display matrix angle is counter-clockwise; we keep the clockwise turn.
    return int(round(-(frame.rotation or 0))) % 360


def probe(path: str | os.PathLike, limits: Limits | None = None) -> MediaInfo:
    """Return what the clip is, or raise :class:`BadInput` with a one-line reason."""
    limits = limits or Limits()
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except PermissionError:
        raise BadInput(f"{p}: permission denied") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{p}: is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{p}: not a regular file")
    if st.st_size == 0:
        raise BadInput(f"{p}: empty file (0 bytes)")
    if st.st_size > limits.max_file_bytes:
        raise BadInput(f"{p}: {st.st_size} bytes is over the limit of {limits.max_file_bytes}")
    if not os.access(p, os.R_OK):
        raise BadInput(f"{p}: permission denied")
    try:
        container = _open(p, limits)
    except av.error.InvalidDataError:
        raise BadInput(f"{p}: not a video or audio file (unrecognised data)") from None
    except av.error.FFmpegError as exc:
        raise BadInput(
            f"{p}: cannot open as media ({exc.strerror or type(exc).__name__})"
        ) from None
    with container:
        fmt_names = set(container.format.name.split(","))
        if not fmt_names & limits.formats:
            raise BadInput(f"{p}: container format '{container.format.name}' is not accepted")
        if len(container.streams) > limits.max_streams:
            raise BadInput(
                f"{p}: {len(container.streams)} streams is over the limit of {limits.max_streams}"
            )
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is not None and video.codec_context is None:
            # PyAV opens no decoder for a codec FFmpeg does not know (a damaged sample
            # entry does this too): the picture cannot be had.
            raise BadInput(f"{p}: no decoder for its video stream (unknown codec)")
        if audio is not None and audio.codec_context is None:
            audio = None  # sound that cannot be decoded: analyze the picture alone
        if video is None and audio is None:
            raise BadInput(f"{p}: no video or audio stream")
        duration = _duration(container, video, audio)
        if duration <= 0:
            raise BadInput(f"{p}: duration unknown or zero (truncated or damaged file?)")
        if duration > limits.max_duration_s:
            raise BadInput(
                f"{p}: duration {duration:.1f} s is over the limit of {limits.max_duration_s:.0f} s"
            )
        info = dict(
            path=str(p),
            format=container.format.name,
            duration_s=round(duration, 4),
            has_video=video is not None,
            has_audio=audio is not None,
        )
        if video is not None:
            ctx = video.codec_context
            width, height = ctx.width, ctx.height
            if width <= 0 or height <= 0:
                raise BadInput(f"{p}: video stream has no frame size (damaged header?)")
            if width * height > limits.max_pixels:
                raise BadInput(
                    f"{p}: frame size {width}x{height} is over the limit of "
                    f"{limits.max_pixels} pixels"
                )
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else 0.0
            if fps <= 0:
                raise BadInput(f"{p}: video frame rate unknown")
            if fps > limits.max_fps:
                raise BadInput(f"{p}: {fps:.0f} fps is over the limit of {limits.max_fps:.0f}")
            rotation = _rotation(container, video)
            if rotation in (90, 270):
                width, height = height, width
            info.update(
                fps=round(fps, 4),
                width=width,
                height=height,
                rotation=rotation,
                codec=ctx.name,
                n_frames=int(video.frames or round(duration * fps)),
            )
        if audio is not None:
            info.update(
                audio_codec=audio.codec_context.name,
                audio_rate=int(audio.codec_context.sample_rate or 0),
            )
        return MediaInfo(**info)


def _open(p: Path, limits: Limits):
    # Opening decodes a frame or so per stream to learn its parameters: decoders told our
    # pixel limit refuse a huge frame instead of allocating it (a header claiming
    # 16000x16000 cost a second of decoding without). Tags in a broken encoding are no
    # reason to refuse the picture and sound.
    common = dict(mode="r", options={"protocol_whitelist": "file"}, metadata_errors="replace")
    try:
        return av.open(
            str(p),
            **common,
            stream_options=[{"max_pixels": str(limits.max_pixels)}] * limits.max_streams,
        )
    except ValueError:
        # Containers that find their streams only while probing (MPEG program streams)
        # take no per-stream options: PyAV refuses them (found by the fuzz run).
        return av.open(str(p), **common)


def _duration(container, video, audio) -> float:
    candidates = []
    for stream in (video, audio):
        if stream is not None and stream.duration and stream.time_base:
            candidates.append(float(stream.duration * Fraction(stream.time_base)))
    if not candidates and container.duration:
        candidates.append(container.duration / av.time_base)
    return max(candidates, default=0.0)
