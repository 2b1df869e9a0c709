"""What the renderers draw, read once from a report: lanes of timed items, curves, the
clip's facts and headline numbers.

The report is untrusted input (it may come from another machine or be edited by hand), so
each analyzer's result is read through its Result model (``analyzers.results``) and its
numbers checked: a lane whose result does not fit shows that, instead of breaking the whole
page. Both the HTML and the PNG renderer draw from this one model, so they never disagree
about what a report says.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tiktok_analyzer.analyzers.base import AnalyzerResult
from tiktok_analyzer.analyzers.results import result_class
from tiktok_analyzer.analyzers.results.audio import AudioAnalysisResult
from tiktok_analyzer.analyzers.results.camera import CameraResult
from tiktok_analyzer.analyzers.results.color import ColorResult
from tiktok_analyzer.analyzers.results.composition import CompositionAnalysisResult
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.effects import VisualEffectsResult
from tiktok_analyzer.analyzers.results.emotion import SpeechEmotionResult
from tiktok_analyzer.analyzers.results.environment import AudioEnvironmentResult
from tiktok_analyzer.analyzers.results.eyes import EyeTrackingResult
from tiktok_analyzer.analyzers.results.flow import FlowResult, PacingSecond
from tiktok_analyzer.analyzers.results.objects import ObjectDetectionResult
from tiktok_analyzer.analyzers.results.ocr import TextOverlayResult
from tiktok_analyzer.analyzers.results.quality import QualityResult
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult
from tiktok_analyzer.analyzers.results.sfx import SoundEffectsResult
from tiktok_analyzer.analyzers.results.speech import SpeechTranscriptionResult
from tiktok_analyzer.orchestrator.summary import headline

__all__ = [
    "DRAWN",
    "HOOK_WINDOW_S",
    "STATUSES",
    "Curve",
    "Fact",
    "Item",
    "Lane",
    "Metric",
    "Timeline",
    "Unavailable",
    "build_timeline",
    "pack_rows",
    "partial_note",
]

#: The opening seconds that decide whether a viewer keeps watching.
HOOK_WINDOW_S = 3.0
#: Report statuses, plus ``missing`` (the analyzer is not in the report) and ``error``
#: (it says ``ok`` but its result cannot be read).
STATUSES = ("ok", "partial", "failed", "skipped", "unavailable", "missing", "error")
#: The statuses whose entry carries a result to draw (``partial``: what was measured
#: without the model; the fields only the model makes are null).
DRAWN = ("ok", "partial")
# Cut-rate window for the pacing curve when temporal_flow gives none: long enough to hold
# a couple of cuts at TikTok pace, short enough to show a burst.
_PACING_WINDOW_S = 2.0
_PACING_STEP_S = 0.25


@dataclass(frozen=True)
class Item:
    """One thing on a lane: a span (``end_s`` set) or an instant (``end_s`` None)."""

    kind: str  # what tests and CSS select on: cut, shot, scene, word, ...
    start_s: float
    end_s: float | None
    label: str  # shown inside the bar when there is room
    detail: str  # shown on hover
    variant: str = ""  # a colour class: the cut's kind, the camera motion, ...


@dataclass(frozen=True)
class Curve:
    kind: str
    points: tuple[tuple[float, float], ...]  # (time_s, value)
    lo: float  # the value drawn at the bottom of the lane
    hi: float
    unit: str
    detail: str


@dataclass
class Lane:
    name: str  # stable id: data-lane in the HTML
    title: str
    source: str  # the analyzer it comes from
    status: str = "ok"  # one of STATUSES
    note: str = ""  # why it holds nothing (the analyzer's error), or where its data came from
    summary: str = ""
    items: list[Item] = field(default_factory=list)
    curve: Curve | None = None
    # Spans of one variant (effect kind, object label) share rows and a colour, so a kind
    # reads as one strip across the clip.
    by_variant: bool = False

    def variant_colors(self) -> dict[str, str]:
        """A colour per variant, distinct within the lane (in order of first appearance)."""
        variants = dict.fromkeys(i.variant for i in sorted(self.items, key=lambda i: i.start_s))
        return {v: _VARIANT_COLORS[k % len(_VARIANT_COLORS)] for k, v in enumerate(variants)}


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class Metric:
    label: str
    value: str  # formatted; "-" when the analyzer gave nothing
    source: str


@dataclass(frozen=True)
class Unavailable:
    """One field a ``partial`` result lacks: only the model makes it."""

    field: str
    reason: str
    fix: str


@dataclass(frozen=True)
class AnalyzerRow:
    """One analyzer in the status table; all text, ready to show."""

    status: str  # one of STATUSES
    seconds: str
    model: str
    weights: str
    text: str  # the result's headline when ok or partial, else the error
    error: str
    # partial: each field only the model makes, why it is missing and the fix.
    unavailable: tuple[Unavailable, ...] = ()


@dataclass
class Timeline:
    title: str
    video_path: str
    duration_s: float
    has_audio: bool
    facts: list[Fact]
    warnings: list[str]
    lanes: list[Lane]
    metrics: list[Metric]
    palette: list[tuple[str, float]]  # (#rrggbb, share)
    shots: list[tuple[float, float]]  # for the keyframes: one per shot
    flashes: list[tuple[float, float]]  # white frames a keyframe must not land on
    statuses: dict[str, AnalyzerRow]
    llava: dict[str, Any] | None  # video_llava's result when it ran
    llava_note: str  # its status line otherwise

    def lane(self, name: str) -> Lane:
        return next(lane for lane in self.lanes if lane.name == name)

    def status_counts(self) -> Counter[str]:
        return Counter(row.status for row in self.statuses.values())


# --- defensive readers -------------------------------------------------------------------


class Unreadable(ValueError):
    """A result field is missing or of the wrong type."""


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unreadable(f"expected a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise Unreadable("expected a finite number")
    return out


def _opt_num(value: Any) -> float | None:
    try:
        return _num(value)
    except Unreadable:
        return None


def _text(value: Any, limit: int = 500) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _list(result: Mapping[str, Any], key: str) -> list[Any]:
    value = result.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f"{key} is not a list")
    return value


def _span(d: Any, start: str = "start_s", end: str = "end_s") -> tuple[float, float]:
    """A typed item's span, both ends finite; the end never before the start."""
    s, e = _num(getattr(d, start)), _num(getattr(d, end))
    return s, max(s, e)


def _fmt_t(t: float) -> str:
    return f"{t:.2f} s"


def _fmt_span(s: float, e: float) -> str:
    return f"{s:.2f}\u2013{e:.2f} s"


def _conf(c: float | None) -> str:
    c = _opt_num(c)
    return f", confidence {c:.2f}" if c is not None else ""


# --- lanes -------------------------------------------------------------------------------

# Each builder gets its analyzer's result read through that analyzer's Result model.
LaneBuilder = Callable[[Lane, Any], None]


def _shots(lane: Lane, r: CutAnalysisResult) -> None:
    shots = [_span(s) for s in r.shots]
    for i, (s, e) in enumerate(shots):
        lane.items.append(
            Item(
                "shot",
                s,
                e,
                f"#{i + 1}",
                f"shot {i + 1}: {_fmt_span(s, e)} ({e - s:.2f} s)",
                variant="odd" if i % 2 else "even",
            )
        )
    for c in r.cuts:
        t = _num(c.time_s)
        kind = _text(c.kind, 40)
        at = f" (frame {c.frame})"
        lane.items.append(
            Item("cut", t, None, "", f"{kind} cut at {_fmt_t(t)}{at}{_conf(c.confidence)}", kind)
        )
    for f in r.flashes:
        t = _num(f.time_s)
        lane.items.append(Item("flash", t, None, "", f"flash at {_fmt_t(t)}", variant="flash"))
    rate = _opt_num(r.cuts_per_minute)
    mean = _opt_num(r.mean_shot_s)
    lane.summary = (
        f"{len(r.cuts)} cuts, {len(shots)} shots"
        + (f", {rate:.1f}/min" if rate is not None else "")
        + (f", mean shot {mean:.2f} s" if mean is not None else "")
    )


def _scenes(lane: Lane, r: SceneSegmentationResult) -> None:
    for i, sc in enumerate(r.scenes):
        s, e = _span(sc)
        lane.items.append(
            Item(
                "scene",
                s,
                e,
                f"scene {i + 1}",
                f"scene {i + 1}: {_fmt_span(s, e)}, {sc.shot_count} shots",
                variant="odd" if i % 2 else "even",
            )
        )
    lane.summary = f"{len(lane.items)} scenes"


def _camera(lane: Lane, r: CameraResult) -> None:
    for seg in r.segments:
        s, e = _span(seg)
        motion = _text(seg.motion, 40)
        mag = _opt_num(seg.magnitude)
        lane.items.append(
            Item(
                "camera",
                s,
                e,
                motion.replace("_", " "),
                f"{motion}: {_fmt_span(s, e)}"
                + (f", magnitude {mag:.3f}" if mag is not None else ""),
                variant=motion,
            )
        )
    lane.summary = f"{len(lane.items)} segments" + (
        f", mostly {_text(r.dominant, 40)}" if r.dominant else ""
    )


def _effects(lane: Lane, r: VisualEffectsResult) -> None:
    lane.by_variant = True
    for fx in r.effects:
        s, e = _span(fx)
        kind = _text(fx.kind, 60)
        what = kind.replace("_", " ") + (f" ({_text(fx.detail, 40)})" if fx.detail else "")
        lane.items.append(
            Item(
                "effect",
                s,
                e,
                what,
                f"{what}: {_fmt_span(s, e)}{_conf(fx.confidence)}",
                variant=kind,
            )
        )
    kinds = Counter(i.variant for i in lane.items)
    lane.summary = f"{len(lane.items)} effects" + (
        f", {len(kinds)} kinds" if len(kinds) > 1 else ""
    )


def _framing(lane: Lane, r: CompositionAnalysisResult) -> None:
    for st in r.shot_types:
        s, e = _span(st)
        # Without the model (partial) a shot has no type: its span and subject still show.
        kind = _text(st.type or "shot", 40)
        placed = _text(st.placement, 20)
        detail = f"{kind}: {_fmt_span(s, e)}" + (f", subject {placed}" if placed else "")
        lane.items.append(Item("framing", s, e, kind.replace("_", " "), detail, variant=kind))
    labels = [_text(x.label, 40) for x in (r.labels or [])[:3]]
    lane.summary = f"{len(lane.items)} spans" + (f"; {', '.join(labels)}" if labels else "")


def _texts(lane: Lane, r: TextOverlayResult) -> None:
    for t in r.texts:
        s, e = _span(t)
        text = _text(t.text, 300)
        kind = _text(t.kind, 40)
        lane.items.append(
            Item("text", s, e, text, f"{kind} \u201c{text}\u201d: {_fmt_span(s, e)}", variant=kind)
        )
    lane.summary = f"{len(lane.items)} texts"


def _objects(lane: Lane, r: ObjectDetectionResult) -> None:
    for o in r.objects:
        s, e = _span(o, "first_s", "last_s")
        label = _text(o.label, 60)
        share = _opt_num(o.screen_share)
        conf = _opt_num(o.max_confidence)
        lane.items.append(
            Item(
                "object",
                s,
                e,
                label,
                f"{label} (track {o.track_id}): {_fmt_span(s, e)}"
                + (f", screen share {share:.0%}" if share is not None else "")
                + (f", max confidence {conf:.2f}" if conf is not None else ""),
                variant=label,
            )
        )
    lane.by_variant = True
    labels = Counter(i.label for i in lane.items)
    lane.summary = f"{len(lane.items)} tracks" + (
        ": " + ", ".join(f"{n} {k}" for k, n in labels.most_common(3)) if labels else ""
    )


def _faces(lane: Lane, r: EyeTrackingResult) -> None:
    for g in r.gaze:
        t = _num(g.time_s)
        yaw, pitch = _opt_num(g.yaw), _opt_num(g.pitch)
        angles = ", ".join(
            f"{k} {v:.1f}" for k, v in (("yaw", yaw), ("pitch", pitch)) if v is not None
        )
        lane.items.append(
            Item(
                "gaze",
                t,
                None,
                "",
                f"gaze at {_fmt_t(t)}: {angles}" + (", eye contact" if g.eye_contact else ""),
                variant="contact" if g.eye_contact else "",
            )
        )
    for b in r.blinks:
        t = _num(b.time_s)
        lane.items.append(Item("blink", t, None, "", f"blink at {_fmt_t(t)}"))
    share = _opt_num(r.eye_contact_share)
    parts = [
        f"up to {r.faces_max} faces",
        f"eye contact {share:.0%}" if share is not None else "",
        f"{r.blink_count} blinks",
    ]
    lane.summary = ", ".join(p for p in parts if p)


def _words(lane: Lane, r: SpeechTranscriptionResult) -> None:
    for w in r.words:
        s, e = _span(w)
        word = _text(w.word, 100).strip()
        p = _opt_num(w.probability)
        lane.items.append(
            Item(
                "word",
                s,
                e,
                word,
                f"\u201c{word}\u201d {_fmt_span(s, e)}"
                + (f", probability {p:.2f}" if p is not None else ""),
            )
        )
    if not r.words:  # a model without word timings still gives segments
        for seg in r.segments:
            s, e = _span(seg)
            text = _text(seg.text, 300).strip()
            lane.items.append(Item("segment", s, e, text, f"\u201c{text}\u201d {_fmt_span(s, e)}"))
    lane.summary = f"{len(r.words)} words" + (
        f", language {_text(r.language, 20)}" if r.language else ""
    )


def _emotion(lane: Lane, r: SpeechEmotionResult) -> None:
    for seg in r.segments:
        s, e = _span(seg)
        # Without the model (partial) a window has no emotion: its voiced span still shows.
        emo = _text(seg.emotion, 40)
        shown = emo or "voice"
        what = emo or "voiced window (no emotion: no model)"
        lane.items.append(
            Item(
                "emotion",
                s,
                e,
                shown,
                f"{what}: {_fmt_span(s, e)}{_conf(seg.confidence)}",
                variant=shown,
            )
        )
    lane.summary = (
        f"mostly {_text(r.dominant, 40)}" if r.dominant else f"{len(lane.items)} segments"
    )


def _sounds(lane: Lane, r: SoundEffectsResult) -> None:
    for ev in r.events:
        s, e = _span(ev)
        # Without the model (partial) an event has no label: its measured shape stands in.
        label = _text(ev.label, 60)
        shown = label or _text(ev.shape or "sound", 40)
        what = label or f"{shown} sound (unlabelled: no model)"
        lane.items.append(
            Item(
                "sound",
                s,
                e,
                shown,
                f"{what}: {_fmt_span(s, e)}{_conf(ev.confidence)}",
                variant=shown,
            )
        )
    lane.by_variant = True
    lane.summary = f"{len(lane.items)} events"


LUFS_RANGE = (-60.0, 0.0)


def _loudness(lane: Lane, r: AudioAnalysisResult) -> None:
    points = [(_num(p.time_s), _num(p.lufs)) for p in r.loudness_curve]
    if points:
        lo, hi = LUFS_RANGE
        lane.curve = Curve(
            "loudness",
            tuple(points),
            lo,
            hi,
            "LUFS",
            f"short-term loudness, {lo:.0f}..{hi:.0f} LUFS",
        )
    for s in r.silences:
        a, b = _span(s)
        lane.items.append(Item("silence", a, b, "silence", f"silence {_fmt_span(a, b)}"))
    for b in r.beats_s:
        t = _num(b)
        lane.items.append(Item("beat", t, None, "", f"beat at {_fmt_t(t)}"))
    tempo = _opt_num(r.tempo_bpm)
    lufs = _opt_num(r.loudness_lufs)
    lane.summary = ", ".join(
        p
        for p in (
            f"{tempo:.1f} BPM" if tempo else "no beat",
            f"{lufs:.1f} LUFS" if lufs is not None else "",
            f"{len(r.beats_s)} beats, {sum(1 for i in lane.items if i.kind == 'silence')} silences",
        )
        if p
    )


def _pacing_points(pacing: list[PacingSecond]) -> list[tuple[float, float]]:
    """temporal_flow's intensity at the middle of each second."""
    return [((_num(p.start_s) + _num(p.end_s)) / 2, _num(p.intensity)) for p in pacing]


def cut_rate_curve(cut_times: list[float], duration: float) -> list[tuple[float, float]]:
    """Cuts per second in a sliding window, sampled every quarter second."""
    n = max(1, int(duration / _PACING_STEP_S) + 1)
    half = _PACING_WINDOW_S / 2
    points = []
    for i in range(n):
        t = min(i * _PACING_STEP_S, duration)
        lo, hi = max(0.0, t - half), min(duration, t + half)
        count = sum(1 for c in cut_times if lo <= c < hi)
        points.append((t, count / max(hi - lo, 1e-6)))
    return points


def _curve_from(points: list[tuple[float, float]], unit: str, detail: str) -> Curve:
    hi = max((v for _, v in points), default=1.0)
    lo = min(0.0, min((v for _, v in points), default=0.0))
    return Curve("pacing", tuple(points), lo, hi if hi > lo else lo + 1.0, unit, detail)


# (name, title, source analyzer, builder)
_LANES: tuple[tuple[str, str, str, LaneBuilder], ...] = (
    ("shots", "Shots & cuts", "cut_analysis", _shots),
    ("scenes", "Scenes", "scene_segmentation", _scenes),
    ("camera", "Camera motion", "camera_analysis", _camera),
    ("effects", "Visual effects", "visual_effects", _effects),
    ("framing", "Shot framing", "composition_analysis", _framing),
    ("text", "On-screen text", "text_overlay", _texts),
    ("objects", "Objects", "object_detection", _objects),
    ("faces", "Faces & eye contact", "eye_tracking", _faces),
    ("words", "Transcript", "speech_transcription", _words),
    ("emotion", "Speech emotion", "speech_emotion", _emotion),
    ("sounds", "Sound events", "sound_effects", _sounds),
    ("loudness", "Loudness & beats", "audio_analysis", _loudness),
)


def _entry(analyzers: Mapping[str, Any], name: str) -> tuple[str, str, Mapping[str, Any] | None]:
    """(status, error, result) of one analyzer; ``missing`` when the report lacks it."""
    entry = analyzers.get(name)
    if not isinstance(entry, Mapping):
        return "missing", "not in this report", None
    status = entry.get("status")
    status = status if status in STATUSES[:5] else "error"
    error = _text(
        entry.get("error")
        or ("" if status != "error" else f"unknown status {_text(entry.get('status'), 40)!r}")
    )
    result = entry.get("result")
    if status in DRAWN and not isinstance(result, Mapping):
        result = {}
    return status, error, result if status in DRAWN else None


def _unavailable(entry: Any) -> tuple[Unavailable, ...]:
    """The fields a partial entry lists as unavailable, read defensively."""
    raw = entry.get("unavailable_fields") if isinstance(entry, Mapping) else None
    return tuple(
        Unavailable(
            _text(f.get("field"), 80), _text(f.get("reason"), 300), _text(f.get("fix"), 300)
        )
        for f in (raw if isinstance(raw, list) else [])
        if isinstance(f, Mapping)
    )


def partial_note(fields: tuple[Unavailable, ...]) -> str:
    """One line: which fields only the model makes, and the fix."""
    if not fields:
        return ""
    fixes = "; ".join(dict.fromkeys(f.fix for f in fields))
    return f"{', '.join(f.field for f in fields)} unavailable without the model: {fixes}"


def _read(analyzers: Mapping[str, Any], name: str) -> tuple[str, str, AnalyzerResult | None]:
    """(status, error, result) of one analyzer, its result read through its Result model;
    a result the model refuses is status ``error`` with the reason."""
    status, error, raw = _entry(analyzers, name)
    if raw is None:
        return status, error, None
    try:
        return status, error, result_class(name).model_validate(raw)
    except ValidationError as exc:
        return "error", f"unreadable result: {_text(_first_error(exc), 200)}", None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', exc)}" if where else str(first.get("msg", exc))


def _build_lane(
    analyzers: Mapping[str, Any],
    name: str,
    title: str,
    source: str,
    builder: LaneBuilder,
) -> Lane:
    lane = Lane(name, title, source)
    lane.status, lane.note, result = _read(analyzers, source)
    if result is None:
        return lane
    if lane.status == "partial":
        lane.note = partial_note(_unavailable(analyzers.get(source))) or lane.note
    try:
        builder(lane, result)
    except (Unreadable, KeyError, TypeError, ValueError, AttributeError) as exc:
        lane.items.clear()
        lane.curve = None
        lane.status, lane.note = "error", f"unreadable result: {_text(exc, 200)}"
    return lane


def _pacing_lane(analyzers: Mapping[str, Any], shots: Lane, duration: float) -> Lane:
    lane = Lane("pacing", "Pacing", "temporal_flow")
    status, error, result = _read(analyzers, "temporal_flow")
    if isinstance(result, FlowResult) and result.pacing:
        try:
            points = _pacing_points(result.pacing)
            lane.curve = _curve_from(points, "", "pacing from temporal_flow")
            lane.summary = "from temporal_flow"
            return lane
        except (Unreadable, KeyError, TypeError, ValueError) as exc:
            status, error = "error", f"unreadable pacing: {_text(exc, 200)}"
    if shots.status == "ok":
        cuts = [i.start_s for i in shots.items if i.kind == "cut"]
        lane.source = "cut_analysis"
        lane.curve = _curve_from(
            cut_rate_curve(cuts, duration),
            "cuts/s",
            f"cuts per second over a {_PACING_WINDOW_S:.0f} s window",
        )
        lane.note = f"computed from cuts (temporal_flow {status})"
        lane.summary = f"cuts/s, {_PACING_WINDOW_S:.0f} s window"
        return lane
    lane.status = status
    lane.note = error or f"temporal_flow {status}; cut_analysis {shots.status}"
    return lane


def _hook_lane(analyzers: Mapping[str, Any], duration: float) -> Lane:
    """The first seconds, always drawn (it depends only on the clip's length), with
    temporal_flow's first cut/face/text/word when it ran."""
    lane = Lane("hook", "Hook", "temporal_flow")
    end = min(HOOK_WINDOW_S, duration)
    lane.items.append(
        Item("hook-window", 0.0, end, f"first {end:g} s", f"hook window: the first {end:g} s")
    )
    status, error, result = _read(analyzers, "temporal_flow")
    if isinstance(result, FlowResult):
        hook = result.hook
        for key in ("first_cut_s", "first_face_s", "first_text_s", "first_word_s"):
            t = _opt_num(getattr(hook, key))
            if t is not None:
                what = key[len("first_") : -2]
                lane.items.append(
                    Item("hook-event", t, None, what, f"first {what} at {_fmt_t(t)}", variant=what)
                )
        score = _opt_num(hook.score)
        lane.summary = f"hook score {score:.2f}" if score is not None else ""
    elif status != "ok":
        lane.note = f"temporal_flow {status}" + (f": {error}" if error else "")
    return lane


# --- facts and numbers ---------------------------------------------------------------------


def _result(analyzers: Mapping[str, Any], name: str) -> Any:
    """Analyzer ``name``'s result as its Result model; None when it has none to read."""
    return _read(analyzers, name)[2]


def _fmt(value: Any, pattern: str) -> str:
    v = _opt_num(value)
    return pattern.format(v) if v is not None else "-"


def _metrics(analyzers: Mapping[str, Any]) -> list[Metric]:
    cuts: CutAnalysisResult | None = _result(analyzers, "cut_analysis")
    audio: AudioAnalysisResult | None = _result(analyzers, "audio_analysis")
    quality: QualityResult | None = _result(analyzers, "content_quality")
    camera: CameraResult | None = _result(analyzers, "camera_analysis")
    environment: AudioEnvironmentResult | None = _result(analyzers, "audio_environment")
    tempo = _opt_num(audio.tempo_bpm) if audio else None
    return [
        Metric("cuts / min", _fmt(cuts and cuts.cuts_per_minute, "{:.1f}"), "cut_analysis"),
        Metric("mean shot", _fmt(cuts and cuts.mean_shot_s, "{:.2f} s"), "cut_analysis"),
        Metric("tempo", "no beat" if tempo == 0 else _fmt(tempo, "{:.0f} BPM"), "audio_analysis"),
        Metric("loudness", _fmt(audio and audio.loudness_lufs, "{:.1f} LUFS"), "audio_analysis"),
        Metric("quality", _fmt(quality and quality.overall, "{:.0f} / 100"), "content_quality"),
        Metric(
            "camera",
            _text(camera.dominant if camera else None, 20).replace("_", " ") or "-",
            "camera_analysis",
        ),
        Metric("SNR", _fmt(environment and environment.snr_db, "{:.0f} dB"), "audio_environment"),
    ]


def _palette(analyzers: Mapping[str, Any]) -> list[tuple[str, float]]:
    color: ColorResult | None = _result(analyzers, "color_analysis")
    out = []
    for p in color.palette if color else []:
        share = _opt_num(p.share) or 0.0
        # Rebuilt from rgb, never copied from `hex`: the colour lands in CSS and SVG.
        if len(p.rgb) == 3:
            r, g, b = (min(255, max(0, int(c))) for c in p.rgb)
            out.append((f"#{r:02x}{g:02x}{b:02x}", share))
    return out[:8]


def _facts(video: Mapping[str, Any], processing: Mapping[str, Any], schema: Any) -> list[Fact]:
    facts = [
        Fact("duration", _fmt(video.get("duration_s"), "{:.2f} s")),
        Fact(
            "picture",
            f"{_text(video.get('width'), 10)}x{_text(video.get('height'), 10)} @ "
            f"{_fmt(video.get('fps'), '{:g}')} fps"
            + (
                f", rotated {_text(video.get('rotation'), 5)}\u00b0"
                if video.get("rotation")
                else ""
            ),
        ),
        Fact("codec", _text(video.get("codec"), 40) or "-"),
        Fact("audio", "yes" if video.get("has_audio") else "none"),
        Fact("analysis wall time", _fmt(processing.get("wall_s"), "{:.2f} s")),
        Fact(
            "realtime factor",
            _fmt(processing.get("realtime_factor"), "{:.3f}")
            + (
                " (faster than realtime)"
                if (_opt_num(processing.get("realtime_factor")) or 9) < 1
                else ""
            ),
        ),
        Fact("decode", _fmt(processing.get("decode_s"), "{:.2f} s")),
    ]
    if processing.get("server_start_s") is not None:
        facts.append(Fact("server start", _fmt(processing.get("server_start_s"), "{:.2f} s")))
    facts += [
        Fact("started at", _text(processing.get("started_at"), 40) or "-"),
        Fact("Triton", _text(processing.get("triton_url"), 80) or "-"),
        Fact("schema", _text(schema, 20) or "-"),
    ]
    return facts


def _statuses(analyzers: Mapping[str, Any]) -> dict[str, AnalyzerRow]:
    rows = {}
    for name, entry in analyzers.items():
        status, error, result = _entry(analyzers, name)
        entry = entry if isinstance(entry, Mapping) else {}
        model = entry.get("model") if isinstance(entry.get("model"), Mapping) else {}
        secs = _fmt(entry.get("elapsed_s"), "{:.2f}")
        if status in DRAWN:
            try:
                text = headline(name, dict(result or {}))
            except Exception:  # noqa: BLE001 - a headline must never stop the page
                text = ""
        else:
            text = error
        rows[_text(name, 80)] = AnalyzerRow(
            status=status,
            seconds=secs,
            model=_text(model.get("name"), 80) or "-",
            weights=_text(model.get("weights"), 40) or "-",
            text=_text(text, 600),
            error=error,
            unavailable=_unavailable(entry) if status == "partial" else (),
        )
    return rows


def build_timeline(report: Mapping[str, Any]) -> Timeline:
    """Read ``report`` (the report JSON as a dict) into what the renderers draw."""
    video = report.get("video") if isinstance(report.get("video"), Mapping) else {}
    processing = report.get("processing") if isinstance(report.get("processing"), Mapping) else {}
    analyzers = report.get("analyzers") if isinstance(report.get("analyzers"), Mapping) else {}

    lanes = [_build_lane(analyzers, *spec) for spec in _LANES]
    # The clip's length from the probe; from the latest item when the report lacks it.
    duration = _opt_num(video.get("duration_s")) or 0.0
    if duration <= 0:
        ends = [i.end_s or i.start_s for lane in lanes for i in lane.items]
        duration = max(ends, default=0.0) or 1.0
    shots_lane = lanes[0]
    lanes.append(_pacing_lane(analyzers, shots_lane, duration))
    lanes.append(_hook_lane(analyzers, duration))

    shots = [(i.start_s, i.end_s or i.start_s) for i in shots_lane.items if i.kind == "shot"]
    fps = _opt_num(video.get("fps")) or 30.0
    flashes = []
    cuts: CutAnalysisResult | None = _result(analyzers, "cut_analysis")
    for f in cuts.flashes if cuts else []:
        t = _opt_num(f.time_s)
        if t is not None:
            end = _opt_num(f.end_s) or t + (f.frames or 1) / fps
            flashes.append((t, end))
    llava_status, llava_error, llava = _read(analyzers, "video_llava")
    path = _text(video.get("path"), 1000)
    return Timeline(
        title=Path(path).name or "clip",
        video_path=path,
        duration_s=duration,
        has_audio=bool(video.get("has_audio")),
        facts=_facts(video, processing, report.get("schema_version")),
        warnings=[_text(w) for w in _list(processing, "warnings") if w]
        if isinstance(processing.get("warnings"), list)
        else [],
        lanes=lanes,
        metrics=_metrics(analyzers),
        palette=_palette(analyzers),
        shots=shots,
        flashes=flashes,
        statuses=_statuses(analyzers),
        llava=llava.model_dump(mode="json") if llava is not None else None,
        llava_note=""
        if llava is not None
        else f"video_llava {llava_status}" + (f": {llava_error}" if llava_error else ""),
    )


def _pack(items: list[Item], order: list[int], slack: float) -> tuple[dict[int, int], int]:
    rows: dict[int, int] = {}
    ends: list[float] = []
    for idx in order:
        it = items[idx]
        row = next((r for r, end in enumerate(ends) if end <= it.start_s + slack), None)
        if row is None:
            ends.append(it.start_s)
            row = len(ends) - 1
        ends[row] = max(ends[row], it.end_s or it.start_s)
        rows[idx] = row
    return rows, len(ends)


def pack_rows(
    items: list[Item], duration: float, max_rows: int, by_variant: bool = False
) -> list[int]:
    """A row for each span so that overlapping spans sit on different rows (greedy, in
    start order; spans that only touch share a row); instants get row 0. ``by_variant``
    gives each variant rows of its own, in order of first appearance. Rows past
    ``max_rows`` fold onto the last one."""
    slack = duration * 1e-4  # rounding in the report must not split touching spans
    spans = sorted(
        (k for k, it in enumerate(items) if it.end_s is not None), key=lambda k: items[k].start_s
    )
    groups: dict[str, list[int]] = {}
    for k in spans:
        groups.setdefault(items[k].variant if by_variant else "", []).append(k)
    out = [0] * len(items)
    offset = 0
    for order in groups.values():
        rows, used = _pack(items, order, slack)
        for k, r in rows.items():
            out[k] = min(offset + r, max_rows - 1)
        offset += used
    return out


# Distinct from each other, readable under white text.
_VARIANT_COLORS = (
    "#c2417f",
    "#2f6f9f",
    "#8c6d31",
    "#4d9a52",
    "#7a5cc7",
    "#c0632d",
    "#3b8f8a",
    "#b3409c",
    "#5c6b84",
    "#9a4a4a",
)
