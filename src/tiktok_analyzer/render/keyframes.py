"""Keyframes: one still per shot (its middle), decoded with PyAV.

The renderers draw without them when the clip is gone or unreadable (a report outlives its
video, or travels without it), so nothing here raises: failures come back as a note.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = ["Keyframe", "Keyframes", "extract_keyframes", "keyframe_times", "to_data_uri"]

log = logging.getLogger(__name__)

#: More shots than this get an evenly spaced selection: a strip of 200 stamps says no more
#: than one of 40, and each costs a seek.
MAX_KEYFRAMES = 40
# Without shots, one still every few seconds, within these bounds.
_EVEN_MIN, _EVEN_MAX, _EVEN_EVERY_S = 4, 12, 2.0
# A target further ahead than this is reached by seeking; nearer, by decoding on: seeking
# costs a decode from the previous keyframe, which x264 places up to ~8 s apart.
_SEEK_AHEAD_S = 3.0


@dataclass(frozen=True)
class Keyframe:
    time_s: float
    start_s: float  # the span it stands for (its shot, or its share of the clip)
    end_s: float
    image: Image.Image


@dataclass
class Keyframes:
    frames: list[Keyframe] = field(default_factory=list)
    note: str = ""  # why there are none (or fewer than asked)
    per_shot: bool = True


def _dodge(
    t: float, s: float, e: float, avoid: Sequence[tuple[float, float]], frame_s: float
) -> float:
    # A flash's white frames say nothing of the shot: step past them, or before them when
    # the shot ends first.
    for a, b in avoid:
        if a - frame_s <= t <= b + frame_s:
            after, before = b + 2 * frame_s, a - 2 * frame_s
            return after if after < e else max(s, before)
    return t


def keyframe_times(
    shots: list[tuple[float, float]],
    duration_s: float,
    avoid: Sequence[tuple[float, float]] = (),
    frame_s: float = 1 / 30,
) -> tuple[list[tuple[float, float, float]], bool]:
    """(time, span start, span end) for each keyframe, and whether they follow shots;
    times in ``avoid`` (flashes) are stepped around."""
    spans = [(s, e) for s, e in shots if e > s]
    per_shot = bool(spans)
    if not spans:
        n = int(min(_EVEN_MAX, max(_EVEN_MIN, round(duration_s / _EVEN_EVERY_S))))
        step = duration_s / n
        spans = [(i * step, (i + 1) * step) for i in range(n)]
    if len(spans) > MAX_KEYFRAMES:
        pick = np.linspace(0, len(spans) - 1, MAX_KEYFRAMES).round().astype(int)
        spans = [spans[i] for i in pick]
    return [(_dodge((s + e) / 2, s, e, avoid, frame_s), s, e) for s, e in spans], per_shot


def _to_image(frame: av.VideoFrame, height: int, rotation: int) -> Image.Image:
    # Same convention as decode.py: the frame's display matrix, else the stream's tag.
    rot = (-int(getattr(frame, "rotation", 0) or 0)) % 360 or rotation
    w, h = frame.width, frame.height
    # The stored picture is turned a quarter: its width becomes the shown height.
    scale = height / max(w if rot in (90, 270) else h, 1)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    arr = frame.reformat(width=tw, height=th, format="rgb24", interpolation="AREA").to_ndarray()
    if rot:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rot // 90)))  # clockwise, as ffmpeg shows it
    return Image.fromarray(arr)


def extract_keyframes(
    video_path: str | Path | None,
    shots: list[tuple[float, float]],
    duration_s: float,
    height: int = 160,
    rotation: int = 0,
    avoid: Sequence[tuple[float, float]] = (),
    fps: float = 30.0,
) -> Keyframes:
    """One still ``height`` px high at the middle of each shot (evenly spaced without
    shots), off any span in ``avoid``. Never raises: a missing or broken clip gives an
    empty set with a note."""
    targets, per_shot = keyframe_times(shots, duration_s, avoid, 1 / max(fps, 1.0))
    out = Keyframes(per_shot=per_shot)
    if not video_path:
        out.note = "no video path given"
        return out
    path = Path(video_path)
    if not path.is_file():
        out.note = f"video not found: {path}"
        return out
    try:
        with av.open(str(path), options={"protocol_whitelist": "file"}) as container:
            if not container.streams.video:
                out.note = "the file has no video stream"
                return out
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = (
                float(stream.start_time * stream.time_base)
                if stream.start_time is not None
                else 0.0
            )
            rate = float(stream.average_rate or 30)
            half = 0.5 / rate
            frames = container.decode(stream)
            current: av.VideoFrame | None = None
            current_t = -1.0
            for t, s, e in targets:
                if current is None or t - current_t > _SEEK_AHEAD_S:
                    container.seek(
                        int((t + start) / stream.time_base),
                        stream=stream,
                        backward=True,
                        any_frame=False,
                    )
                    frames = container.decode(stream)
                    current, current_t = None, -1.0
                # Decode on to the first frame that covers t: seeking lands on the keyframe
                # before it. The clip's last frame stands in for a target past its end.
                while current is None or current_t + half < t:
                    nxt = next(frames, None)
                    if nxt is None:
                        break
                    current = nxt
                    current_t = (float(nxt.time) - start) if nxt.time is not None else t
                if current is not None:
                    out.frames.append(Keyframe(t, s, e, _to_image(current, height, rotation)))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        log.warning("keyframes from %s: %s", path, exc)
        out.note = f"video unreadable: {type(exc).__name__}: {exc}"
        out.frames.clear()
        return out
    if len(out.frames) < len(targets):
        out.note = f"{len(targets) - len(out.frames)} of {len(targets)} keyframes not decodable"
    return out


def to_data_uri(image: Image.Image, quality: int = 80) -> str:
    """The image as an inline JPEG ``data:`` URI."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
