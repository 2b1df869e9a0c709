"""Look at a file before decoding it, and refuse what breaks the limits.

Everything here reads the container's header and stream parameters (FFmpeg decodes a frame
or so per stream to learn them, under our pixel limit), so a hostile or huge file costs
almost nothing to refuse.

A clip is opened once (:class:`MediaFile`) and read only through that descriptor from then
on: FFmpeg gets ``/proc/self/fd/N``, which reopens the same inode, never the name again, so
a path swapped after the check cannot redirect the read. Before FFmpeg sees a byte, the
file's own head decides that it is no playlist, file list or manifest (those make a demuxer
open the files they name), and FFmpeg itself is held to the accepted container formats and
to the ``file`` protocol.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction

import av

__all__ = [
    "BadInput",
    "Limits",
    "MediaFile",
    "MediaInfo",
    "open_container",
    "printable",
    "probe",
    "source_name",
]


class BadInput(Exception):
    """Nothing to analyze: the message is the one-line reason shown to the user (exit 2)."""


@dataclass(frozen=True)
class Limits:
    """What the service accepts. Defaults fit short-form video with room to spare."""

    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    #: Fewer pixels on a side than this is no picture to analyze (and frames are scaled to
    #: even sizes: a 1-pixel side would become 0).
    min_side: int = 2
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


#: Opens that never block (a FIFO opens at once; fstat then refuses it) and never make the
#: file our controlling terminal.
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
#: How much of a file's head decides that it is no list of other files.
_SNIFF_BYTES = 4096
#: How much of a refused file FFmpeg sees to name its format.
_NAMING_BYTES = 1 << 20
#: HLS/M3U tags: a playlist wherever they appear in the head.
_PLAYLIST_TAGS = (b"#EXTM3U", b"#EXT-X-", b"#EXTINF")
#: How other lists of files or URLs begin: ffconcat lists, DASH/SMIL/ASX manifests, PLS
#: playlists, SDP (RTP) descriptions, bare concat lines.
_LIST_STARTS = (
    *_PLAYLIST_TAGS,
    b"ffconcat",
    b"<MPD",
    b"<smil",
    b"<SMIL",
    b"<asx",
    b"<ASX",
    b"[playlist]",
    b"v=0",
    b"file '",
    b"file /",
)


class MediaFile:
    """A clip opened once; probe and decode read it through this descriptor only.

    Pickled into the worker process (orchestrator/worker.py), the descriptor itself travels
    (``multiprocessing`` passes it over a Unix socket), not the name."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.size = check_regular(fd, name)

    @classmethod
    def open(cls, path: str | os.PathLike, name: str | None = None) -> MediaFile:
        """Open a path the user named (symlinks followed: the CLI reads what its user
        names; the service opens through service/paths.py instead)."""
        shown = name if name is not None else printable(path)
        try:
            fd = os.open(path, OPEN_FLAGS)
        except FileNotFoundError:
            raise BadInput(f"{shown}: no such file") from None
        except PermissionError:
            raise BadInput(f"{shown}: permission denied") from None
        except IsADirectoryError:
            raise BadInput(f"{shown}: is a directory, not a video file") from None
        except OSError as exc:
            raise BadInput(f"{shown}: cannot read ({exc.strerror})") from None
        try:
            return cls(fd, shown)
        except BaseException:
            os.close(fd)
            raise

    @property
    def url(self) -> str:
        # The kernel's link to the open file: FFmpeg reopens this inode, whatever the name
        # points at by now.
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MediaFile({self.name!r}, fd={self.fd})"

    def __reduce__(self):
        from multiprocessing import reduction

        return _rebuild, (reduction.DupFd(self.fd), self.name)


def printable(path: str | bytes | os.PathLike) -> str:
    """A file name as text that any output takes: bytes that are no UTF-8 (a name from
    another system) are shown as ``\\xff`` escapes. The report is JSON, which has no room
    for the lone surrogates Python keeps such bytes as."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _rebuild(dup, name: str) -> MediaFile:
    return MediaFile(dup.detach(), name)


def check_regular(fd: int, name: str) -> int:
    """The size of the regular file open on ``fd``, or BadInput for anything else (a FIFO
    or a device would block or never end)."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{name}: is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
        )
        raise BadInput(f"{name}: is {kind}, not a regular file")
    return st.st_size


def sniff(fd: int, name: str) -> None:
    """Refuse, from the file's own head, what would make FFmpeg open other files: every
    accepted container is binary, every list of other files is text."""
    head = os.pread(fd, _SNIFF_BYTES, 0)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if any(tag in head for tag in _PLAYLIST_TAGS) or text.startswith(_LIST_STARTS):
        raise BadInput(
            f"{name}: a playlist or list of other files, not a video; name the media file itself"
        )
    if text[:5].lower() == b"<?xml" or (head and b"\x00" not in head and _is_text(head)):
        raise BadInput(f"{name}: a text file, not a video or audio file")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the head
    return True


@contextmanager
def media_file(source: str | os.PathLike | MediaFile) -> Iterator[MediaFile]:
    """``source`` itself when already open (its owner closes it), else the path opened."""
    if isinstance(source, MediaFile):
        yield source
        return
    with MediaFile.open(source) as f:
        yield f


def source_name(source: str | os.PathLike | MediaFile) -> str:
    """What messages call ``source``: an open file's name, or the path."""
    return source.name if isinstance(source, MediaFile) else str(source)


def open_container(f: MediaFile, limits: Limits, **kwargs):
    """FFmpeg on ``f``'s descriptor, after the head is checked, held to our formats and to
    the ``file`` protocol (a refused format fails before its demuxer reads anything)."""
    sniff(f.fd, f.name)
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(sorted(limits.formats))}
    return av.open(f.url, mode="r", options=options, metadata_errors="replace", **kwargs)


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


def probe(source: str | os.PathLike | MediaFile, limits: Limits | None = None) -> MediaInfo:
    """Return what the clip is, or raise :class:`BadInput` with a one-line reason.
    ``source`` is a path the user named or a :class:`MediaFile` already open."""
    limits = limits or Limits()
    with media_file(source) as f:
        p = f.name
        if f.size == 0:
            raise BadInput(f"{p}: empty file (0 bytes)")
        if f.size > limits.max_file_bytes:
            raise BadInput(f"{p}: {f.size} bytes is over the limit of {limits.max_file_bytes}")
        try:
            container = _open(f, limits)
        except av.error.InvalidDataError:
            raise BadInput(f"{p}: not a video or audio file (unrecognised data)") from None
        except av.error.FFmpegError as exc:
            refused = _refused_format(f)
            if refused:
                raise BadInput(f"{p}: container format '{refused}' is not accepted") from None
            raise BadInput(
                f"{p}: cannot open as media ({exc.strerror or type(exc).__name__})"
            ) from None
        with container:
            return _describe(container, p, limits)


def _describe(container, p: str, limits: Limits) -> MediaInfo:
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
        path=p,
        format=container.format.name,
        duration_s=round(duration, 4),
        has_video=video is not None,
        has_audio=audio is not None,
    )
    if video is not None:
        info.update(_video_info(container, video, p, duration, limits))
    if audio is not None:
        info.update(
            audio_codec=audio.codec_context.name,
            audio_rate=int(audio.codec_context.sample_rate or 0),
        )
    return MediaInfo(**info)


def _video_info(container, video, p: str, duration: float, limits: Limits) -> dict:
    ctx = video.codec_context
    width, height = ctx.width, ctx.height
    if width <= 0 or height <= 0:
        raise BadInput(f"{p}: video stream has no frame size (damaged header?)")
    if min(width, height) < limits.min_side:
        raise BadInput(
            f"{p}: frame size {width}x{height} is too small to analyze (at least "
            f"{limits.min_side}x{limits.min_side} pixels)"
        )
    if width * height > limits.max_pixels:
        raise BadInput(
            f"{p}: frame size {width}x{height} is over the limit of {limits.max_pixels} pixels"
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
    return dict(
        fps=round(fps, 4),
        width=width,
        height=height,
        rotation=rotation,
        codec=ctx.name,
        n_frames=int(video.frames or round(duration * fps)),
    )


def _open(f: MediaFile, limits: Limits):
    # Opening decodes a frame or so per stream to learn its parameters: decoders told our
    # pixel limit refuse a huge frame instead of allocating it (a header claiming
    # 16000x16000 cost a second of decoding without).
    try:
        return open_container(
            f, limits, stream_options=[{"max_pixels": str(limits.max_pixels)}] * limits.max_streams
        )
    except ValueError:
        # Containers that find their streams only while probing (MPEG program streams)
        # take no per-stream options: PyAV refuses them (found by the fuzz run).
        return open_container(f, limits)


def _refused_format(f: MediaFile) -> str:
    """The name of a format the whitelist refused, for the message: FFmpeg identifies it
    from an in-memory copy of the head, allowed no protocol, so its demuxer can open
    nothing else."""
    head = io.BytesIO(os.pread(f.fd, _NAMING_BYTES, 0))
    try:
        with av.open(head, options={"protocol_whitelist": "none"}) as container:
            return container.format.name
    except (av.error.FFmpegError, ValueError):
        return ""


def _duration(container, video, audio) -> float:
    candidates = []
    for stream in (video, audio):
        if stream is not None and stream.duration and stream.time_base:
            candidates.append(float(stream.duration * Fraction(stream.time_base)))
    if not candidates and container.duration:
        candidates.append(container.duration / av.time_base)
    return max(candidates, default=0.0)
