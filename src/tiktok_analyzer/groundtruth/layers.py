"""What is laid over a generated clip's shots and sound: text overlays, real photographs
(a face), and sound effects. Each is known exactly, so the learned analyzers (OCR, face and
gaze, sound events) can be checked against truth.

* :class:`Overlay`: text drawn over the picture from ``start_s`` to ``end_s`` (frames whose
  time falls in ``[start_s, end_s)``), centred at ``(x, y)`` (fractions of the frame), in
  Pillow's bundled font at ``size_px`` for a 720-px-wide frame (scaled with the width), on a
  solid box unless ``box`` is None.
* :class:`Photo`: a scikit-image photograph (``skimage.data.<name>()``, e.g. ``astronaut``,
  which shows a real face looking at the camera), optionally cropped (``crop``: x0, y0, x1,
  y1 fractions of the photo), scaled to ``height`` of the frame, mirrored, centred at
  ``(x, y)`` and moving by ``shift_px_per_s``.
* :class:`SoundEvent`: an ``impulse`` (a 50 ms broadband click), a ``whoosh`` (band-passed
  noise sweeping up then down, fast attack) or a ``ding`` (a decaying bell tone), starting
  at ``time_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "Overlay",
    "Photo",
    "SoundEvent",
    "apply_layers",
    "mix_events",
    "overlay_truth",
    "photo_truth",
    "sound_event_truth",
]

RGB = tuple[int, int, int]

#: Overlay sizes are given for a frame this wide and scale with the real width.
_REFERENCE_WIDTH = 720


@dataclass(frozen=True)
class Overlay:
    text: str
    start_s: float
    end_s: float
    x: float = 0.5
    y: float = 0.2
    size_px: int = 64
    color: RGB = (255, 255, 255)
    box: RGB | None = (0, 0, 0)

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("an overlay needs text")
        if self.end_s <= self.start_s:
            raise ValueError("overlay end_s must be after start_s")


@dataclass(frozen=True)
class Photo:
    name: str = "astronaut"
    start_s: float = 0.0
    end_s: float | None = None
    x: float = 0.5
    y: float = 0.5
    height: float = 0.6
    mirror: bool = False
    crop: tuple[float, float, float, float] | None = None
    shift_px_per_s: tuple[float, float] = (0.0, 0.0)


SoundKind = Literal["impulse", "whoosh", "ding"]
_DEFAULT_DURATION = {"impulse": 0.05, "whoosh": 0.6, "ding": 0.8}


@dataclass(frozen=True)
class SoundEvent:
    kind: SoundKind
    time_s: float
    duration_s: float | None = None
    gain: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in _DEFAULT_DURATION:
            raise ValueError(f"sound event kind must be one of {', '.join(_DEFAULT_DURATION)}")

    @property
    def length_s(self) -> float:
        return self.duration_s if self.duration_s is not None else _DEFAULT_DURATION[self.kind]


# ---------------------------------------------------------------------------------------
# Picture


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _overlay_geometry(
    ov: Overlay, width: int, height: int
) -> tuple[int, tuple[int, int], list[int], list[int]]:
    """(font size, drawing origin, text box, background box) in pixels for this frame."""
    size = max(8, round(ov.size_px * width / _REFERENCE_WIDTH))
    font = _font(size)
    cx, cy = ov.x * width, ov.y * height
    x0, y0, x1, y1 = font.getbbox(ov.text)
    tw, th = x1 - x0, y1 - y0
    left, top = round(cx - tw / 2 - x0), round(cy - th / 2 - y0)
    text_box = [left + x0, top + y0, left + x1, top + y1]
    pad = round(size * 0.25)
    bg = [text_box[0] - pad, text_box[1] - pad, text_box[2] + pad, text_box[3] + pad]
    return size, (left, top), text_box, bg


@lru_cache(maxsize=8)
def _photo_pixels(name: str, crop: tuple | None, mirror: bool, height_px: int) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if crop is not None:
        h, w = img.shape[:2]
        x0, y0, x1, y1 = crop
        img = img[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
    if mirror:
        img = img[:, ::-1]
    h, w = img.shape[:2]
    width_px = max(2, round(w * height_px / h))
    interp = cv2.INTER_AREA if height_px < h else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(img), (width_px, height_px), interpolation=interp)
    out.flags.writeable = False
    return out


def _photo_box(ph: Photo, width: int, height: int, t: float) -> tuple[np.ndarray, int, int]:
    pixels = _photo_pixels(ph.name, ph.crop, ph.mirror, max(2, round(ph.height * height)))
    ph_h, ph_w = pixels.shape[:2]
    dt = t - ph.start_s
    left = round(ph.x * width + ph.shift_px_per_s[0] * dt - ph_w / 2)
    top = round(ph.y * height + ph.shift_px_per_s[1] * dt - ph_h / 2)
    return pixels, left, top


def _visible(start: float, end: float | None, t: float) -> bool:
    return t >= start and (end is None or t < end)


def apply_layers(
    img: np.ndarray, t: float, photos: Sequence[Photo], overlays: Sequence[Overlay]
) -> np.ndarray:
    """The frame at time ``t`` with the photos and then the overlays laid over it (a new
    array when anything is drawn; ``img`` itself otherwise)."""
    photos = [p for p in photos if _visible(p.start_s, p.end_s, t)]
    overlays = [o for o in overlays if _visible(o.start_s, o.end_s, t)]
    if not photos and not overlays:
        return img
    out = np.array(img, copy=True)
    height, width = out.shape[:2]
    for ph in photos:
        pixels, left, top = _photo_box(ph, width, height, t)
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(width, left + pixels.shape[1]), min(height, top + pixels.shape[0])
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = pixels[y0 - top : y1 - top, x0 - left : x1 - left]
    if overlays:
        canvas = Image.fromarray(out)
        draw = ImageDraw.Draw(canvas)
        for ov in overlays:
            size, origin, _, bg = _overlay_geometry(ov, width, height)
            if ov.box is not None:
                draw.rectangle(bg, fill=tuple(ov.box))
            draw.text(origin, ov.text, font=_font(size), fill=tuple(ov.color))
        out = np.asarray(canvas)
    return out


def overlay_truth(overlays: Sequence[Overlay], width: int, height: int, fps: float) -> list[dict]:
    out = []
    for ov in overlays:
        size, _, text_box, bg = _overlay_geometry(ov, width, height)
        first, last = int(np.ceil(ov.start_s * fps - 1e-9)), int(np.ceil(ov.end_s * fps - 1e-9))
        out.append(
            {
                "text": ov.text,
                "start_s": first / fps,
                "end_s": last / fps,
                "start_frame": first,
                "end_frame": last,
                "bbox": text_box,
                "box": bg if ov.box is not None else None,
                "size_px": size,
            }
        )
    return out


def photo_truth(photos: Sequence[Photo], width: int, height: int, duration_s: float) -> list[dict]:
    out = []
    for ph in photos:
        pixels, left, top = _photo_box(ph, width, height, ph.start_s)
        out.append(
            {
                "name": ph.name,
                "start_s": ph.start_s,
                "end_s": duration_s if ph.end_s is None else min(ph.end_s, duration_s),
                "bbox": [left, top, left + pixels.shape[1], top + pixels.shape[0]],
                "mirror": ph.mirror,
                "crop": list(ph.crop) if ph.crop is not None else None,
                "shift_px_per_s": list(ph.shift_px_per_s),
            }
        )
    return out


# ---------------------------------------------------------------------------------------
# Sound


def _event_samples(ev: SoundEvent, sr: int, seed: int) -> np.ndarray:
    n = max(1, round(ev.length_s * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng([seed, 7_919, round(ev.time_s * 1000)])
    if ev.kind == "impulse":
        sig = rng.standard_normal(n) * np.exp(-t / 0.008)
    elif ev.kind == "whoosh":
        noise = rng.standard_normal(n)
        # A sweep of the band centre 400 Hz -> 3 kHz -> 800 Hz over the event, made by a
        # short-time filter bank: cheap and clearly "whoosh"-like.
        centre = 400 + 2600 * np.sin(np.pi * np.clip(t / ev.length_s, 0, 1)) ** 2
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        # Split into 20 ms blocks, each band-passed around its own centre.
        block = max(1, round(0.02 * sr))
        sig = np.zeros(n)
        for s in range(0, n, block):
            e = min(n, s + block)
            c = float(centre[(s + e) // 2])
            band = np.exp(-0.5 * ((freqs - c) / (0.35 * c)) ** 2)
            part = np.fft.irfft(spec * band, n)[s:e]
            sig[s:e] = part
        sig /= np.max(np.abs(sig)) + 1e-9
        attack = np.clip(t / 0.04, 0, 1)
        sig *= attack * np.exp(-np.clip(t - 0.04, 0, None) / (ev.length_s / 3))
    else:  # ding
        sig = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((1760, 1.0), (3520, 0.4), (5280, 0.2)))
        sig = sig * np.exp(-t / (ev.length_s / 4)) * np.clip(t / 0.003, 0, 1)
    peak = np.max(np.abs(sig)) + 1e-9
    return (ev.gain * sig / peak).astype(np.float64)


def mix_events(out: np.ndarray, events: Sequence[SoundEvent], sr: int, seed: int) -> None:
    """Add the sound events into ``out`` (mono, in place)."""
    for ev in events:
        samples = _event_samples(ev, sr, seed)
        s = round(ev.time_s * sr)
        e = min(len(out), s + len(samples))
        if s < e:
            out[s:e] += samples[: e - s]


def sound_event_truth(events: Sequence[SoundEvent], duration_s: float) -> list[dict[str, Any]]:
    return [
        {
            "kind": ev.kind,
            "onset_s": ev.time_s,
            "end_s": min(duration_s, ev.time_s + ev.length_s),
            "gain": ev.gain,
        }
        for ev in sorted(events, key=lambda e: e.time_s)
    ]
