"""Synthetic clips whose content is known exactly, for testing the analyzers.

A :class:`ClipSpec` describes a vertical clip as a list of :class:`Shot` s (picture, camera
motion, quality, the transition into it), full-white :class:`Flash` es and an
:class:`AudioSpec` (a click/kick beat at a known tempo over a soft tonal pad, with exact
silences). :func:`render` writes it as H.264 + AAC in MP4 and returns the truth: every cut,
shot, flash, beat and silence, with times in seconds. :func:`load_frames` decodes a rendered
clip into what an analyzer receives. Rendering is deterministic: the same spec and seed
give byte-identical frames and samples (every random draw comes from a numpy Generator
seeded by the spec's seed, the shot index and the frame index, so frames can be rendered
in any order).

Conventions (content motion is what an optical-flow estimator sees in the frame):

* ``pan_left``: the camera turns left, so the content moves RIGHT by ``speed`` px per frame;
  ``pan_right``: content moves left.
* ``tilt_up``: the camera tilts up, so the content moves DOWN; ``tilt_down``: content up.
* ``zoom_in``: the content grows by the factor ``speed`` per second about the frame centre
  (``speed`` > 1, e.g. 1.3); ``zoom_out``: it shrinks by that factor per second.
* ``shake``: the view jumps by a zero-mean Gaussian offset of ``speed`` px (each axis,
  clipped at 2.5 sigma) in every frame.

Pixel quantities (pan/tilt/shake speed, blur sigma, texture scale) are at the spec's size;
:func:`scale_spec` rescales them when a test wants a smaller clip with the same look.

Time layout: shot ``i`` starts at frame ``round(sum of earlier durations * fps)``. A cut's
``frame`` is the first frame of the new shot; for a fade or dissolve it is the centre of the
transition (the blackest frame of a fade, the 50/50 frame of a dissolve), and the
transition spans ``transition_s`` centred there. The first shot's ``transition_in`` is
ignored (there is nothing to cut from).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np

from tiktok_analyzer.analyzers.base import AUDIO_RATE
from tiktok_analyzer.groundtruth.layers import (
    Overlay,
    Photo,
    SoundEvent,
    apply_layers,
    mix_events,
    overlay_truth,
    photo_truth,
    sound_event_truth,
)
from tiktok_analyzer.groundtruth.speech import (
    SPEECH_TEXTS,
    SpeechSpec,
    mix_speech,
    speech_truth,
    synthesize,
)

__all__ = [
    "CATALOG",
    "DEFAULT_SPEED",
    "MOTIONS",
    "AudioSpec",
    "ClipSpec",
    "Flash",
    "Overlay",
    "Photo",
    "Shot",
    "SoundEvent",
    "SpeechSpec",
    "iter_frames",
    "load_frames",
    "render",
    "render_audio",
    "scale_spec",
    "truth",
]

Motion = Literal[
    "static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "shake"
]
Pattern = Literal["texture", "flat", "checker"]
Transition = Literal["hard", "fade", "dissolve"]
RGB = tuple[int, int, int]

MOTIONS: tuple[str, ...] = Motion.__args__  # type: ignore[attr-defined]

#: Speed used when a shot leaves ``speed`` as None: px per frame for pan/tilt/shake,
#: scale factor per second for zooms.
DEFAULT_SPEED: dict[str, float] = {
    "static": 0.0,
    "pan_left": 4.0,
    "pan_right": 4.0,
    "tilt_up": 4.0,
    "tilt_down": 4.0,
    "zoom_in": 1.3,
    "zoom_out": 1.3,
    "shake": 4.0,
}

#: Content moves (dx, dy) per unit speed, per frame (see the module docstring).
_PAN_DIRECTION: dict[str, tuple[int, int]] = {
    "pan_left": (1, 0),
    "pan_right": (-1, 0),
    "tilt_up": (0, 1),
    "tilt_down": (0, -1),
}

# The picture is cut from a canvas this much larger than the frame, so that zooming out
# and the split screen's second picture show real content; the canvas is periodic (its
# texture is filtered in the Fourier domain and sampled with BORDER_WRAP), so pans of any
# length move real, seamless content.
_CANVAS_SCALE = 1.5
_FLAT_AMPLITUDE = 3.0
_CHECKER_DARK = 0.55
_CHECKERS_ACROSS = 8


@dataclass(frozen=True)
class Shot:
    """One continuous shot.

    ``color`` is the dominant colour (for ``texture`` the picture's mean stays within a few
    units of it: the texture amplitude is reduced per channel so nothing clips).
    ``pattern``: ``texture`` = smooth random blobs of +-``amplitude`` around the colour,
    ``flat`` = the colour plus a tiny texture, ``checker`` = a checkerboard of the colour
    and a darker variant (``0.55 * color``). ``speed`` None takes :data:`DEFAULT_SPEED`.
    ``blur_sigma`` (px, Gaussian) and ``noise_sigma`` (additive Gaussian, 0..255 units)
    degrade the shot. ``split_screen`` shows a second picture (``split_color``, default the
    colour's channels rotated) in the right half. ``freeze`` repeats the shot's first
    image for its whole length; ``freeze_at_s`` (seconds after the shot's start) lets the
    shot move until then and repeats that frame's image from there on, a freeze-frame
    effect that, unlike a still shot, follows motion without a cut. ``punch_in_s`` (seconds after the shot's start) makes the
    picture jump to ``punch_in_scale`` times its size, a punch-in zoom within the shot.
    """

    duration_s: float
    color: RGB = (128, 128, 128)
    pattern: Pattern = "texture"
    motion: Motion = "static"
    speed: float | None = None
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    transition_in: Transition = "hard"
    transition_s: float = 0.5
    split_screen: bool = False
    freeze: bool = False
    freeze_at_s: float | None = None
    amplitude: float = 40.0
    split_color: RGB | None = None
    punch_in_s: float | None = None
    punch_in_scale: float = 1.4
    #: the picture's scale over the whole shot: above 1 a tighter framing of its canvas
    framing: float = 1.0

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"shot duration must be > 0, got {self.duration_s}")
        if self.motion not in DEFAULT_SPEED:
            raise ValueError(f"unknown motion {self.motion!r}; one of {sorted(DEFAULT_SPEED)}")
        if self.pattern not in ("texture", "flat", "checker"):
            raise ValueError(f"unknown pattern {self.pattern!r}")
        if self.transition_in not in ("hard", "fade", "dissolve"):
            raise ValueError(f"unknown transition {self.transition_in!r}")
        if self.framing <= 0:
            raise ValueError(f"framing is a scale and must be > 0, got {self.framing}")
        if self.motion.startswith("zoom") and self.speed is not None and self.speed <= 1.0:
            raise ValueError(
                f"zoom speed is a scale factor per second and must be > 1 (e.g. 1.3), "
                f"got {self.speed}"
            )

    @property
    def resolved_speed(self) -> float:
        return DEFAULT_SPEED[self.motion] if self.speed is None else float(self.speed)

    def freeze_frame(self, fps: float) -> int | None:
        """Local frame index from which the picture holds still, or None."""
        if self.freeze:
            return 0
        return None if self.freeze_at_s is None else round(self.freeze_at_s * fps)


@dataclass(frozen=True)
class Flash:
    """``frames`` full-white frames from ``time_s`` on, over the picture: not a cut."""

    time_s: float
    frames: int = 2


@dataclass(frozen=True)
class AudioSpec:
    """A beat at ``tempo_bpm`` (None: no beat) from ``first_beat_s`` on, a sustained chord
    pad when ``tone``, and exact digital silence over each ``(start_s, end_s)``. ``speech``
    adds spoken words (espeak-ng, see :mod:`.speech`); silences must not overlap them."""

    tempo_bpm: float | None = 120.0
    silences: Sequence[tuple[float, float]] = ()
    tone: bool = True
    first_beat_s: float = 0.5
    sample_rate: int = 44_100
    channels: int = 2
    beat_gain: float = 0.7
    tone_gain: float = 0.12
    speech: SpeechSpec | None = None
    #: sound effects laid over the rest (groundtruth/layers.py)
    events: Sequence[SoundEvent] = ()


@dataclass(frozen=True)
class ClipSpec:
    """A whole clip. With no shots but ``audio`` it renders an audio-only file of
    ``duration_s`` seconds (then required); with shots the duration is the shots' sum."""

    width: int = 720
    height: int = 1280
    fps: float = 30.0
    shots: Sequence[Shot] = ()
    flashes: Sequence[Flash] = ()
    audio: AudioSpec | None = field(default_factory=AudioSpec)
    seed: int = 0
    duration_s: float | None = None
    crf: int = 18
    #: laid over the shots, photos first (groundtruth/layers.py)
    overlays: Sequence[Overlay] = ()
    photos: Sequence[Photo] = ()
    #: share of the height covered by black bars, half at the top and half at the bottom
    #: (a wide picture letterboxed into a tall frame); drawn under the overlays
    letterbox: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.letterbox < 1.0:
            raise ValueError(f"letterbox is a share of the height in [0, 1), got {self.letterbox}")
        if self.width % 2 or self.height % 2:
            raise ValueError(
                f"width and height must be even for yuv420p, got {self.width}x{self.height}"
            )
        if not self.shots and (self.audio is None or self.duration_s is None):
            raise ValueError("a clip without shots is audio-only: it needs audio and duration_s")


def scale_spec(spec: ClipSpec, width: int, height: int) -> ClipSpec:
    """The same clip at another size: pixel speeds of pans, tilts and shakes and blur
    sigmas scale with the short side, so the clip looks the same, only smaller."""
    ratio = min(width, height) / min(spec.width, spec.height)

    def shot(s: Shot) -> Shot:
        speed = s.speed
        if not s.motion.startswith("zoom") and s.motion != "static":
            speed = s.resolved_speed * ratio
        return dataclasses.replace(s, speed=speed, blur_sigma=s.blur_sigma * ratio)

    return dataclasses.replace(
        spec, width=width, height=height, shots=[shot(s) for s in spec.shots]
    )


# ---------------------------------------------------------------------------------------
# Timeline


@dataclass(frozen=True)
class _Timeline:
    fps: float
    starts: np.ndarray  # (n_shots + 1,) frame index of each shot's start, then n_frames
    half: np.ndarray  # (n_shots,) half-length in frames of the transition into each shot

    @property
    def n_frames(self) -> int:
        return int(self.starts[-1])

    def shot_at(self, k: int) -> int:
        return int(np.searchsorted(self.starts, k, side="right") - 1)


def _timeline(spec: ClipSpec) -> _Timeline:
    edges = np.concatenate([[0.0], np.cumsum([s.duration_s for s in spec.shots])])
    starts = np.round(edges * spec.fps).astype(np.int64)
    half = np.array(
        [
            0.0 if i == 0 or s.transition_in == "hard" else s.transition_s * spec.fps / 2
            for i, s in enumerate(spec.shots)
        ]
    )
    for i in range(len(spec.shots)):
        length = starts[i + 1] - starts[i]
        outgoing = half[i + 1] if i + 1 < len(spec.shots) else 0.0
        if length < 1 or half[i] + outgoing > length:
            raise ValueError(
                f"shot {i} ({length} frames) is shorter than its transitions "
                f"({half[i] + outgoing:.1f} frames)"
            )
    return _Timeline(spec.fps, starts, half)


def _duration(spec: ClipSpec) -> float:
    if spec.shots:
        return _timeline(spec).n_frames / spec.fps
    assert spec.duration_s is not None
    return float(spec.duration_s)


# ---------------------------------------------------------------------------------------
# Picture


def _periodic_noise(
    rng: np.random.Generator, shape: tuple[int, int], short_side: int
) -> np.ndarray:
    """Smooth random blobs with unit std, periodic over ``shape``: white noise low-passed in
    the Fourier domain at two scales (large blobs plus finer detail for optical flow)."""
    h, w = shape
    spectrum = np.fft.rfft2(rng.standard_normal(shape))
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    coarse, fine = short_side / 40.0, short_side / 150.0
    gain = np.exp(-2 * np.pi**2 * coarse**2 * f2) + 0.5 * np.exp(-2 * np.pi**2 * fine**2 * f2)
    out = np.fft.irfft2(spectrum * gain, s=shape)
    out -= out.mean()
    out /= out.std()
    return out.astype(np.float32)


def _canvas(
    pattern: str, color: RGB, amplitude: float, rng: np.random.Generator, width: int, height: int
) -> np.ndarray:
    """A periodic uint8 RGB canvas about 1.5x the frame, showing ``pattern`` in ``color``."""
    short = min(width, height)
    cell = max(2, short // _CHECKERS_ACROSS)
    # Multiples of the checker cell keep the checkerboard seamless across the wrap.
    wc = cell * math.ceil(_CANVAS_SCALE * width / cell)
    hc = cell * math.ceil(_CANVAS_SCALE * height / cell)
    noise = np.clip(_periodic_noise(rng, (hc, wc), short) / 2.5, -1.0, 1.0)
    base = np.asarray(color, np.float32)
    amp = amplitude if pattern == "texture" else _FLAT_AMPLITUDE
    if pattern == "checker":
        ys, xs = np.indices((hc, wc))
        dark = ((ys // cell + xs // cell) % 2).astype(bool)
        base = np.where(dark[..., None], base * _CHECKER_DARK, base)
    # Reduce the amplitude per channel so nothing clips: clipping would pull the mean away
    # from the colour the truth promises.
    headroom = np.minimum(np.asarray(color, np.float32), 255.0 - np.asarray(color, np.float32))
    if pattern == "checker":
        headroom = np.minimum(headroom, np.asarray(color, np.float32) * _CHECKER_DARK)
    chan_amp = np.minimum(amp, headroom)
    img = base + noise[..., None] * chan_amp
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


class _ShotRenderer:
    """Renders frames of one shot by local frame index (negative or past its end too, for
    dissolves), building its canvases on first use."""

    def __init__(self, spec: ClipSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.shot = spec.shots[index]
        self._canvases: list[np.ndarray] | None = None
        self._frozen: np.ndarray | None = None
        self._freeze_from = self.shot.freeze_frame(spec.fps)

    def _rng(self, *stream: int) -> np.random.Generator:
        # A dissolve renders the incoming shot at negative local frame numbers; seeds must be
        # non-negative, so fold the sign into the stream instead of dropping it.
        words = [abs(v) * 2 + (v < 0) for v in stream]
        return np.random.default_rng([self.spec.seed, self.index, *words])

    def canvases(self) -> list[np.ndarray]:
        if self._canvases is None:
            s, w, h = self.shot, self.spec.width, self.spec.height
            self._canvases = [_canvas(s.pattern, s.color, s.amplitude, self._rng(0), w, h)]
            if s.split_screen:
                other = s.split_color or (s.color[1], s.color[2], s.color[0])
                self._canvases.append(_canvas(s.pattern, other, s.amplitude, self._rng(1), w, h))
        return self._canvases

    def _view(self, k: int) -> tuple[float, float, float]:
        """(ox, oy, scale): where the frame looks into the canvas at local frame k."""
        s = self.shot
        speed = s.resolved_speed
        ox = oy = 0.0
        scale = 1.0
        t = k / self.spec.fps
        if s.motion in _PAN_DIRECTION:
            dx, dy = _PAN_DIRECTION[s.motion]
            # The view moves against the content: content moving right = view moving left.
            ox, oy = -dx * speed * k, -dy * speed * k
        elif s.motion == "zoom_in":
            scale = speed**t
        elif s.motion == "zoom_out":
            scale = speed ** (-t)
        elif s.motion == "shake":
            # Clipped so that a rare outlier does not read as a jump cut.
            ox, oy = np.clip(self._rng(2, k).normal(0.0, speed, 2), -2.5 * speed, 2.5 * speed)
        if s.punch_in_s is not None and t >= s.punch_in_s:
            scale *= s.punch_in_scale
        scale *= s.framing
        return ox, oy, scale

    def frame(self, k: int) -> np.ndarray:
        if self._freeze_from is not None and k >= self._freeze_from:
            if self._frozen is None:
                self._frozen = self._render(self._freeze_from)
                self._frozen.flags.writeable = False  # yielded many times: shared
            return self._frozen
        return self._render(k)

    def _render(self, k: int) -> np.ndarray:
        w, h = self.spec.width, self.spec.height
        ox, oy, scale = self._view(k)
        views = []
        for canvas in self.canvases():
            hc, wc = canvas.shape[:2]
            # Inverse map: canvas point = canvas centre + (frame point - frame centre) / scale
            # + view offset, reduced modulo the period to keep OpenCV's fixed point exact.
            tx = (wc / 2 + ox - (w / 2) / scale) % wc
            ty = (hc / 2 + oy - (h / 2) / scale) % hc
            m = np.array([[1 / scale, 0, tx], [0, 1 / scale, ty]], np.float64)
            views.append(
                cv2.warpAffine(
                    canvas,
                    m,
                    (w, h),
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_WRAP,
                )
            )
        img = views[0]
        if len(views) == 2:
            img = img.copy()
            img[:, w // 2 :] = views[1][:, w // 2 :]
        if self.shot.blur_sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.shot.blur_sigma)
        if self.shot.noise_sigma > 0:
            noise = self._rng(3, k).standard_normal(img.shape, dtype=np.float32)
            img = np.clip(np.rint(img + noise * self.shot.noise_sigma), 0, 255).astype(np.uint8)
        return img


def iter_frames(spec: ClipSpec) -> Iterator[np.ndarray]:
    """Yield every frame of the clip, uint8 RGB (height, width, 3), in order. Repeated
    frames (flashes, freezes) are one read-only array: copy before modifying."""
    if not spec.shots:
        return
    tl = _timeline(spec)
    renderers = [_ShotRenderer(spec, i) for i in range(len(spec.shots))]
    white: set[int] = set()
    for fl in spec.flashes:
        first = round(fl.time_s * spec.fps)
        white.update(range(first, first + fl.frames))
    white_frame = np.full((spec.height, spec.width, 3), 255, np.uint8)
    white_frame.flags.writeable = False  # yielded many times: shared
    n_shots = len(spec.shots)
    layered = bool(spec.overlays or spec.photos)
    bars = letterbox_rows(spec)
    for k in range(tl.n_frames):
        if k in white:
            yield (
                apply_layers(white_frame, k / spec.fps, spec.photos, spec.overlays)
                if layered
                else white_frame
            )
            continue
        i = tl.shot_at(k)
        local = k - int(tl.starts[i])
        img = renderers[i].frame(local)
        # The transition that touches frame k, if any: into this shot or into the next.
        boundary = None
        if tl.half[i] > 0 and local < tl.half[i]:
            boundary = i
        elif i + 1 < n_shots and tl.half[i + 1] > 0 and tl.starts[i + 1] - k <= tl.half[i + 1]:
            boundary = i + 1
        if boundary is not None:
            b, half = int(tl.starts[boundary]), float(tl.half[boundary])
            if spec.shots[boundary].transition_in == "fade":
                alpha = min(1.0, abs(k - b) / half)
                img = np.rint(img * np.float32(alpha)).astype(np.uint8)
            else:
                later = float(np.clip((k - b) / (2 * half) + 0.5, 0.0, 1.0))
                j = boundary - 1 if boundary == i else boundary
                other = renderers[j].frame(k - int(tl.starts[j]))
                a, c = (other, img) if boundary == i else (img, other)
                mix = a.astype(np.float32) * (1 - later) + c.astype(np.float32) * later
                img = np.rint(mix).astype(np.uint8)
        if bars[0] or bars[1]:
            img = img.copy()
            img[: bars[0]] = 0
            img[spec.height - bars[1] :] = 0
        if layered:
            img = apply_layers(img, k / spec.fps, spec.photos, spec.overlays)
        yield img


def letterbox_rows(spec: ClipSpec) -> tuple[int, int]:
    """Rows of black bar at the top and at the bottom of every frame."""
    total = round(spec.letterbox * spec.height)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------------------
# Sound


def _beats(spec: ClipSpec) -> list[float]:
    """All beat onsets (inside silences too), seconds."""
    a = spec.audio
    if a is None or a.tempo_bpm is None:
        return []
    duration = _duration(spec)
    period = 60.0 / a.tempo_bpm
    n = max(0, math.ceil((duration - a.first_beat_s) / period))
    return [a.first_beat_s + j * period for j in range(n) if a.first_beat_s + j * period < duration]


def render_audio(spec: ClipSpec) -> tuple[np.ndarray, int]:
    """The clip's sound, mono float32 in [-1, 1], and its sample rate (empty if no audio)."""
    a = spec.audio
    if a is None:
        return np.zeros(0, np.float32), 0
    sr = a.sample_rate
    n = round(_duration(spec) * sr)
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    if a.tone:
        # An A-major chord with a slow swell: sustained and tonal, so it reads as music
        # rather than noise, but without onsets of its own.
        swell = 0.75 + 0.25 * np.sin(2 * np.pi * 0.25 * t)
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 440.0)) / 4
        out += a.tone_gain * swell * chord
    beats = _beats(spec)
    if beats:
        kt = np.arange(round(0.3 * sr)) / sr
        # Kick: a sine sweeping 150 -> 50 Hz under a fast exponential decay.
        phase = 2 * np.pi * (50 * kt + 100 * 0.03 * (1 - np.exp(-kt / 0.03)))
        kick = np.sin(phase) * np.exp(-kt / 0.07)
        click_len = round(0.006 * sr)
        rng = np.random.default_rng([spec.seed, 1_000_003])
        kick[:click_len] += 0.35 * rng.standard_normal(click_len) * np.linspace(1, 0, click_len)
        kick *= a.beat_gain
        for b in beats:
            s = round(b * sr)
            e = min(n, s + len(kick))
            out[s:e] += kick[: e - s]
    if a.speech is not None:
        sp = a.speech
        if sp.music_stops:
            # The music fades out over 50 ms ending where the voice starts.
            fade = np.clip((sp.start_s - t) / 0.05, 0.0, 1.0)
            out *= fade
        end_s = sp.start_s + synthesize(sp, sr)[1]["duration_s"]
        if sp.duck_db > 0:
            # Full cut over the speech span, linear (in dB) ramps of 0.1 s outside it.
            ramp = 0.1
            depth = np.clip(np.minimum(t - sp.start_s, end_s - t) / ramp + 1.0, 0.0, 1.0)
            out *= 10 ** (-sp.duck_db * depth / 20)
        mix_speech(out, sp, sr)
        for start, end in a.silences:
            if start < end_s and end > sp.start_s:
                raise ValueError(f"silence {start}-{end} s overlaps the speech")
    if a.events:
        mix_events(out, a.events, sr, spec.seed)
    for start, end in a.silences:
        out[max(0, round(start * sr)) : min(n, round(end * sr))] = 0.0
    return np.clip(out, -1.0, 1.0).astype(np.float32), sr


# ---------------------------------------------------------------------------------------
# Truth


def _shot_truth(
    s: Shot, i: int, start: int, end: int, fps: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Shot ``i`` (frames ``start``..``end``) as the truth has it, and the effects in it."""
    speed = s.resolved_speed
    # A frozen shot shows one image however its camera was meant to move; a shot
    # that freezes part-way reports the motion before the freeze.
    dx, dy = (0, 0) if s.freeze else _PAN_DIRECTION.get(s.motion, (0, 0))
    zoom = 1.0
    if not s.freeze and s.motion in ("zoom_in", "zoom_out"):
        zoom = speed if s.motion == "zoom_in" else 1 / speed
    punch = None if s.punch_in_s is None else (start + round(s.punch_in_s * fps)) / fps
    freeze_from = s.freeze_frame(fps)
    frozen = None if freeze_from is None else (start + freeze_from) / fps
    shot = {
        "start_s": start / fps,
        "end_s": end / fps,
        "start_frame": start,
        "end_frame": end,
        "color": list(s.color),
        "pattern": s.pattern,
        "motion": s.motion,
        "speed": speed,
        "content_dx_px": dx * speed,
        "content_dy_px": dy * speed,
        "zoom_per_s": zoom,
        "blur_sigma": s.blur_sigma,
        "noise_sigma": s.noise_sigma,
        "split_screen": s.split_screen,
        "freeze": frozen is not None,
        "freeze_start_s": frozen,
        "punch_in_s": punch,
        "transition_in": s.transition_in if i > 0 else "hard",
    }
    effects = []
    if s.split_screen:
        effects.append({"kind": "split_screen", "start_s": start / fps, "end_s": end / fps})
    if frozen is not None:
        effects.append({"kind": "freeze", "start_s": frozen, "end_s": end / fps})
    if punch is not None:
        effects.append({"kind": "punch_in", "start_s": punch, "end_s": end / fps})
    return shot, effects


def truth(spec: ClipSpec) -> dict[str, Any]:
    """What the clip contains, computed from the spec alone (times in seconds)."""
    fps = spec.fps
    has_video = bool(spec.shots)
    cuts: list[dict[str, Any]] = []
    shots: list[dict[str, Any]] = []
    flashes: list[dict[str, Any]] = []
    effects: list[dict[str, Any]] = []
    n_frames = 0
    if has_video:
        tl = _timeline(spec)
        n_frames = tl.n_frames
        for i, s in enumerate(spec.shots):
            start, end = int(tl.starts[i]), int(tl.starts[i + 1])
            if i > 0:
                cuts.append({"time_s": start / fps, "frame": start, "kind": s.transition_in})
            shot, shot_effects = _shot_truth(s, i, start, end, fps)
            shots.append(shot)
            effects += shot_effects
        for fl in spec.flashes:
            f = round(fl.time_s * fps)
            flashes.append({"time_s": f / fps, "frame": f, "frames": fl.frames})
            effects.append({"kind": "flash", "start_s": f / fps, "end_s": (f + fl.frames) / fps})
        effects.sort(key=lambda e: e["start_s"])
    a = spec.audio
    silences = [] if a is None else [{"start_s": s, "end_s": e} for s, e in a.silences]
    beats = [b for b in _beats(spec) if not any(s["start_s"] <= b < s["end_s"] for s in silences)]
    speech = None if a is None or a.speech is None else speech_truth(a.speech, a.sample_rate)
    if a is not None and a.speech is not None and a.speech.music_stops:
        beats = [b for b in beats if b < a.speech.start_s]
    return {
        "duration_s": _duration(spec),
        "fps": fps if has_video else 0.0,
        "width": spec.width if has_video else 0,
        "height": spec.height if has_video else 0,
        "n_frames": n_frames,
        "has_video": has_video,
        "has_audio": a is not None,
        "cuts": cuts,
        "shots": shots,
        "flashes": flashes,
        "effects": effects,
        "tempo_bpm": None if a is None else a.tempo_bpm,
        "beats_s": beats,
        "silences": silences,
        "audio_sample_rate": None if a is None else a.sample_rate,
        "speech": speech,
        "overlays": overlay_truth(spec.overlays, spec.width, spec.height, fps) if has_video else [],
        "photos": photo_truth(spec.photos, spec.width, spec.height, _duration(spec))
        if has_video
        else [],
        "sound_events": [] if a is None else sound_event_truth(a.events, _duration(spec)),
        "letterbox_rows": list(letterbox_rows(spec)) if has_video else [0, 0],
        "seed": spec.seed,
    }


# ---------------------------------------------------------------------------------------
# Encoding


def render(spec: ClipSpec, path: str | Path) -> dict[str, Any]:
    """Encode the clip to ``path`` (``.mp4``: H.264 yuv420p + AAC; ``.m4a`` for audio-only)
    at a constant frame rate (frame k at k / fps exactly), write the truth to
    ``<stem>.truth.json`` beside it, and return the truth."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = truth(spec)
    samples, sr = render_audio(spec)
    rate = Fraction(spec.fps).limit_denominator(100_000)
    with av.open(str(path), "w") as container:
        vstream = None
        if spec.shots:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = spec.width, spec.height
            vstream.pix_fmt = "yuv420p"
            vstream.codec_context.gop_size = max(1, round(2 * spec.fps))
            # One thread: x264's output depends on the thread count, and with two it also
            # varied under CPU load (3 of 30 renders of the effects clip differed from frame
            # 75 on). Even so, one CI run encoded a clip differently once (the frames and
            # samples were identical; the decoded pictures differed by 0.03 levels on
            # average): the tests hold the decoded clip to a tolerance, not the bytes.
            vstream.options = {"crf": str(spec.crf), "preset": "veryfast", "threads": "1"}
        astream = None
        channels = 0 if spec.audio is None else spec.audio.channels
        if channels:
            astream = container.add_stream(
                "aac", rate=sr, layout="stereo" if channels == 2 else "mono"
            )
            astream.bit_rate = 160_000
        audio_pos = 0

        def push_audio(until: int) -> None:
            nonlocal audio_pos
            assert astream is not None
            while audio_pos < until:
                chunk = samples[audio_pos : min(until, audio_pos + 1024)]
                planes = np.ascontiguousarray(np.repeat(chunk[None, :], channels, axis=0))
                frame = av.AudioFrame.from_ndarray(
                    planes, format="fltp", layout=astream.layout.name
                )
                frame.sample_rate = sr
                frame.pts = audio_pos
                frame.time_base = Fraction(1, sr)
                container.mux(astream.encode(frame))
                audio_pos += len(chunk)

        if vstream is not None:
            for k, img in enumerate(iter_frames(spec)):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                vf.pts = k
                vf.time_base = 1 / rate
                container.mux(vstream.encode(vf))
                # Interleave the sound with the picture as a real recording would be.
                if astream is not None:
                    push_audio(min(len(samples), round((k + 1) / spec.fps * sr)))
            container.mux(vstream.encode(None))
        if astream is not None:
            push_audio(len(samples))
            container.mux(astream.encode(None))
    path.with_name(path.stem + ".truth.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


# ---------------------------------------------------------------------------------------
# Decoding (a test helper: what the orchestrator would ship an analyzer)


def _resize_to(img: np.ndarray, short_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if short_side <= 0:
        return img
    ratio = short_side / min(h, w)
    nw, nh = max(2, round(w * ratio / 2) * 2), max(2, round(h * ratio / 2) * 2)
    if (nw, nh) == (w, h):
        return img
    interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (nw, nh), interpolation=interp)


def load_frames(
    path: str | Path, short_side: int, fps: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a rendered clip: frames uint8 RGB (N, H, W, 3) with the short side resized to
    ``short_side`` (even sizes, aspect kept; 0 keeps the size), their timestamps (N,) in
    seconds from the pts, and the sound as mono float32 at ``AUDIO_RATE`` (16 kHz; empty if
    none), the analyzers' input.
    ``fps`` None keeps every frame; otherwise the frame nearest each multiple of 1/fps."""
    frames: list[np.ndarray] = []
    stamps: list[float] = []
    audio_parts: list[np.ndarray] = []
    audio_duration: float | None = None
    with av.open(str(path)) as container:
        if container.streams.video:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            # Resize as we go: holding every full-size frame would take gigabytes.
            decoded = [
                (float(f.pts * f.time_base), _resize_to(f.to_ndarray(format="rgb24"), short_side))
                for f in container.decode(vs)
            ]
            times = np.array([t for t, _ in decoded])
            keep: Sequence[int] = range(len(decoded))
            if fps is not None and len(times):
                # The clip lasts until the last frame's end; a target at that end is past it.
                step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
                targets = np.arange(0.0, times[-1] + step - 1e-6, 1.0 / fps)
                keep = sorted({int(np.argmin(np.abs(times - t))) for t in targets})
            for i in keep:
                stamps.append(decoded[i][0])
                frames.append(decoded[i][1])
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            if stream.duration is not None:
                audio_duration = float(stream.duration * stream.time_base)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            for f in container.decode(stream):
                for r in resampler.resample(f):
                    audio_parts.append(r.to_ndarray().reshape(-1))
            for r in resampler.resample(None):
                audio_parts.append(r.to_ndarray().reshape(-1))
    audio = (
        np.concatenate(audio_parts).astype(np.float32) if audio_parts else np.zeros(0, np.float32)
    )
    if audio_duration is not None:
        # The AAC encoder pads its last frame; the stream's duration says where sound ends.
        audio = audio[: round(audio_duration * AUDIO_RATE)]
    arr = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    return arr, np.array(stamps, np.float64), audio


# ---------------------------------------------------------------------------------------
# Catalog

RED: RGB = (200, 60, 50)
GREEN: RGB = (60, 170, 80)
BLUE: RGB = (50, 90, 200)
YELLOW: RGB = (215, 190, 60)
PURPLE: RGB = (140, 70, 170)
ORANGE: RGB = (225, 130, 45)
TEAL: RGB = (45, 160, 160)
PINK: RGB = (215, 100, 150)
GREY: RGB = (128, 128, 128)


#: The astronaut's head and shoulders in scikit-image's photograph (fractions of the photo).
ASTRONAUT_HEAD = (0.22, 0.0, 0.72, 0.55)

#: The demo clip's caption and spoken sentence (``sample``; scripts/demo.sh analyzes it).
SAMPLE_CAPTION = "Follow for part 2"
SAMPLE_SPEECH = "kitchen"


def _sample(width: int, height: int) -> ClipSpec:
    # 15 s: cuts at 2.5 (hard), 4.5 (fade), 6.5 (hard), 9.0 (dissolve), 11.0 and 13.0 (hard);
    # a flash at 7.7 s inside the static green shot; silence over 11.5-12.5 s. Over it, so
    # that every analyzer with offline weights has something true to find:
    # - a real face (scikit-image's astronaut photograph) over the whole first shot; it
    #   comes and goes with the shot (a photo popping in mid-shot would read as a cut);
    # - espeak-ng speech from 0.6 s (the "kitchen" sentence, 160 wpm, -20 dBFS RMS) over
    #   the music, which is ducked 12 dB under the voice;
    # - a caption in the lower third (white on a black box) from the cut at 11.0 s to the
    #   end: a call to action;
    # - a whoosh on the cut at 13.0 s. The beat (120 BPM from 0.25 s) falls between the
    #   cuts, so the whoosh is not one of the music's own hits.
    return ClipSpec(
        width=width,
        height=height,
        fps=30.0,
        shots=[
            Shot(2.5, RED),
            Shot(2.0, BLUE, motion="pan_right", speed=6.0),
            Shot(2.0, YELLOW, motion="zoom_in", speed=1.3, transition_in="fade", transition_s=0.6),
            Shot(2.5, GREEN),
            Shot(
                2.0, PURPLE, motion="tilt_up", speed=4.0, transition_in="dissolve", transition_s=0.8
            ),
            Shot(2.0, ORANGE, pattern="checker"),
            Shot(2.0, TEAL, motion="pan_left", speed=3.0),
        ],
        flashes=[Flash(7.7, frames=2)],
        photos=[Photo("astronaut", 0.0, 2.5, crop=ASTRONAUT_HEAD, y=0.42, height=0.45)],
        overlays=[Overlay(SAMPLE_CAPTION, 11.0, 15.0, y=0.8, size_px=48)],
        audio=AudioSpec(
            tempo_bpm=120.0,
            silences=[(11.5, 12.5)],
            first_beat_s=0.25,
            speech=SpeechSpec(
                SPEECH_TEXTS[SAMPLE_SPEECH], wpm=160.0, start_s=0.6, music_stops=False, duck_db=12.0
            ),
            events=[SoundEvent("whoosh", 13.0)],
        ),
        seed=7,
    )


def _quality(blur: float = 0.0, noise: float = 0.0) -> ClipSpec:
    # Same content at every level (same seed): a detailed texture, then a checkerboard.
    return ClipSpec(
        shots=[
            Shot(3.0, TEAL, amplitude=60.0, blur_sigma=blur, noise_sigma=noise),
            Shot(3.0, ORANGE, pattern="checker", blur_sigma=blur, noise_sigma=noise),
        ],
        seed=11,
    )


def _tempo(bpm: float) -> ClipSpec:
    return ClipSpec(
        shots=[Shot(5.0, BLUE), Shot(5.0, YELLOW)],
        audio=AudioSpec(tempo_bpm=bpm, first_beat_s=0.3),
        seed=13,
    )


def _speech(wpm: float, lead_music_s: float = 0.0, text: str = "morning") -> ClipSpec:
    # A still picture under espeak-ng speech; with lead_music_s, the beat and pad play
    # first and stop as the voice starts (a clip opening on music). Small and at 15 fps:
    # only the sound matters here.
    speech = SpeechSpec(SPEECH_TEXTS[text], wpm=wpm, start_s=lead_music_s or 0.5)
    # The calibrated speech lasts its expected length to within 1.5 %; whole 0.2 s keep
    # the shot a whole number of frames.
    duration = math.ceil((speech.start_s + 1.03 * speech.expected_duration_s + 0.7) * 5) / 5
    music = lead_music_s > 0
    return ClipSpec(
        width=360,
        height=640,
        fps=15.0,
        shots=[Shot(duration, GREY, pattern="flat")],
        audio=AudioSpec(tempo_bpm=120.0 if music else None, tone=music, speech=speech),
        seed=31,
    )


def _overlays() -> ClipSpec:
    # A title, a caption and a late call to action on calm shots, at 540x960 and 15 fps:
    # OCR is the costly part, so the clip is small and short.
    return ClipSpec(
        width=540,
        height=960,
        fps=15.0,
        shots=[Shot(4.0, BLUE, amplitude=12.0), Shot(4.0, GREEN, amplitude=12.0)],
        overlays=[
            Overlay("SUMMER SALE", 0.5, 3.5, y=0.18, size_px=72),
            Overlay("watch until the end", 2.0, 6.0, y=0.78, size_px=44),
            Overlay("LIMITED OFFER", 5.0, 7.6, y=0.45, size_px=60, box=(200, 30, 30)),
        ],
        audio=AudioSpec(tempo_bpm=None, tone=True),
        seed=37,
    )


def _face(**photo: Any) -> ClipSpec:
    # A real face (scikit-image's astronaut photograph) over a calm shot, 540x960 at 15 fps.
    return ClipSpec(
        width=540,
        height=960,
        fps=15.0,
        shots=[Shot(4.0, GREY, amplitude=10.0)],
        photos=[Photo("astronaut", crop=ASTRONAUT_HEAD, **{"y": 0.4, "height": 0.45, **photo})],
        audio=None,
        seed=41,
    )


def _sound_events() -> ClipSpec:
    # Effects over a quiet pad and no beat, so that each event stands alone.
    return ClipSpec(
        width=360,
        height=640,
        fps=15.0,
        shots=[Shot(3.0, GREY, pattern="flat"), Shot(3.5, TEAL, pattern="flat")],
        audio=AudioSpec(
            tempo_bpm=None,
            tone=True,
            tone_gain=0.03,
            events=[
                SoundEvent("impulse", 0.8),
                SoundEvent("whoosh", 1.9),
                SoundEvent("ding", 3.0),
                SoundEvent("impulse", 4.4),
                SoundEvent("whoosh", 5.3, gain=0.6),
            ],
        ),
        seed=43,
    )


CATALOG: dict[str, ClipSpec] = {
    "sample": _sample(720, 1280),
    "sample_1080": _sample(1080, 1920),
    "cuts": ClipSpec(
        shots=[
            Shot(1.5, RED),
            Shot(1.5, BLUE, motion="pan_left", speed=3.0),
            Shot(1.5, GREEN, transition_in="fade", transition_s=0.6),
            Shot(1.5, YELLOW, motion="tilt_down", speed=3.0),
            Shot(2.0, PURPLE, motion="pan_right", speed=40.0),
            Shot(1.5, ORANGE, transition_in="dissolve", transition_s=0.8),
            Shot(1.5, TEAL, motion="zoom_out", speed=1.3),
            Shot(1.5, PINK, pattern="checker", transition_in="dissolve", transition_s=0.6),
            Shot(1.5, GREY, transition_in="fade", transition_s=0.5),
        ],
        flashes=[Flash(0.8, frames=2), Flash(5.2, frames=3)],
        seed=3,
    ),
    "camera": ClipSpec(
        shots=[
            Shot(1.75, c, motion=m)  # type: ignore[arg-type]
            for c, m in zip(
                (GREY, RED, BLUE, GREEN, YELLOW, PURPLE, ORANGE, TEAL), MOTIONS, strict=True
            )
        ],
        seed=5,
    ),
    "colors": ClipSpec(
        shots=[
            Shot(3.0, RED, pattern="flat"),
            Shot(2.0, GREEN, pattern="flat"),
            Shot(4.0, BLUE, pattern="flat"),
            Shot(1.0, YELLOW, pattern="flat"),
        ],
        seed=1,
    ),
    **{f"quality_blur_{b}": _quality(blur=float(b)) for b in (0, 1, 2, 4)},
    **{f"quality_noise_{n}": _quality(noise=float(n)) for n in (0, 8, 16, 32)},
    **{f"tempo_{b}": _tempo(float(b)) for b in (90, 120, 150)},
    "silences": ClipSpec(
        shots=[Shot(10.0, GREEN)],
        audio=AudioSpec(tempo_bpm=120.0, silences=[(2.0, 3.0), (6.0, 7.5)]),
        seed=17,
    ),
    "no_audio": ClipSpec(
        shots=[Shot(2.0, RED), Shot(2.0, BLUE, motion="pan_left"), Shot(2.0, GREEN)],
        audio=None,
        seed=19,
    ),
    "audio_only": ClipSpec(
        shots=[], audio=AudioSpec(tempo_bpm=100.0, silences=[(4.0, 5.0)]), duration_s=8.0, seed=23
    ),
    **{f"speech_{w}": _speech(float(w)) for w in (120, 160, 200)},
    "speech_after_music": _speech(160.0, lead_music_s=5.0),
    # Every shot moves a little, so that the freeze is the only run of repeated frames.
    "effects": ClipSpec(
        shots=[
            Shot(2.5, RED, motion="pan_right", speed=2.0),
            Shot(2.5, BLUE, motion="pan_left", speed=2.0, split_screen=True, split_color=YELLOW),
            Shot(2.5, GREEN, motion="pan_left", speed=5.0, freeze_at_s=1.0),
            Shot(2.5, PURPLE, motion="tilt_up", speed=2.0, punch_in_s=1.2),
        ],
        flashes=[Flash(1.2, frames=3)],
        seed=29,
    ),
    "text_overlays": _overlays(),
    "face": _face(),
    "face_mirrored": _face(mirror=True),
    "face_moved": _face(x=0.3),
    "sound_events": _sound_events(),
    # A beat over a chord pad and nothing else; and espeak-ng speech and nothing else.
    "music_only": ClipSpec(
        width=360,
        height=640,
        fps=15.0,
        shots=[Shot(8.0, PURPLE, pattern="flat")],
        audio=AudioSpec(tempo_bpm=110.0, first_beat_s=0.4),
        seed=47,
    ),
    "speech_only": _speech(160.0),
}


def render_sound(name: str, path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Catalog clip ``name``'s sound alone (no picture: the shots play no part) rendered to
    ``path`` and decoded as the orchestrator would, with the full clip's truth (its cuts
    come from the shots)."""
    spec = CATALOG[name]
    info = truth(spec)
    render(dataclasses.replace(spec, shots=(), duration_s=info["duration_s"]), path)
    return load_frames(path, short_side=0)[2], info
