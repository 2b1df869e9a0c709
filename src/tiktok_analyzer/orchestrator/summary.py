"""One line per analyzer for people: the headline of its result, read through the
analyzer's Result model (``analyzers.results``), so a renamed field shows in the log."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pydantic import ValidationError

from tiktok_analyzer.analyzers.results import result_class
from tiktok_analyzer.analyzers.results.age import AgeEstimationResult
from tiktok_analyzer.analyzers.results.audio import AudioAnalysisResult
from tiktok_analyzer.analyzers.results.camera import CameraResult
from tiktok_analyzer.analyzers.results.color import ColorResult
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.effects import VisualEffectsResult
from tiktok_analyzer.analyzers.results.emotion import SpeechEmotionResult
from tiktok_analyzer.analyzers.results.environment import AudioEnvironmentResult
from tiktok_analyzer.analyzers.results.eyes import EyeTrackingResult
from tiktok_analyzer.analyzers.results.flow import FlowResult
from tiktok_analyzer.analyzers.results.objects import ObjectDetectionResult
from tiktok_analyzer.analyzers.results.ocr import TextOverlayResult
from tiktok_analyzer.analyzers.results.products import ProductDetectionResult
from tiktok_analyzer.analyzers.results.quality import QualityResult
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult
from tiktok_analyzer.analyzers.results.segmentation import BackgroundSegmentationResult
from tiktok_analyzer.analyzers.results.sfx import SoundEffectsResult
from tiktok_analyzer.analyzers.results.speech import SpeechTranscriptionResult
from tiktok_analyzer.analyzers.results.speech_rate import SpeechRateResult
from tiktok_analyzer.orchestrator.report import Report
from tiktok_analyzer.wire import AnalyzerEntry

__all__ = ["headline", "partial_note", "summary_rows"]

log = logging.getLogger(__name__)


def _cuts(r: CutAnalysisResult) -> str:
    kinds = Counter(c.kind for c in r.cuts)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (
        f"{len(r.cuts)} cuts ({detail or 'none'}), "
        f"{r.cuts_per_minute:.1f}/min, mean shot {r.mean_shot_s:.2f} s"
    )


def _scenes(r: SceneSegmentationResult) -> str:
    return f"{len(r.scenes)} scenes from {sum(s.shot_count for s in r.scenes)} shots"


def _color(r: ColorResult) -> str:
    top = ", ".join(f"{p.hex} {p.share:.0%}" for p in r.palette[:4])
    return (
        f"{top}; brightness {r.brightness:.2f}, "
        f"saturation {r.saturation:.2f}, warmth {r.warmth:+.2f}"
    )


def _quality(r: QualityResult) -> str:
    return (
        f"overall {r.overall:.0f}/100 (sharpness {r.sharpness:.0f}, "
        f"noise {r.noise:.1f}, blockiness {r.blockiness:.2f})"
    )


def _camera(r: CameraResult) -> str:
    time_by = Counter()
    for seg in r.segments:
        time_by[seg.motion] += seg.end_s - seg.start_s
    return ", ".join(f"{m} {t:.1f} s" for m, t in time_by.most_common(4)) or "no segments"


def _effects(r: VisualEffectsResult) -> str:
    effects = r.effects
    if not effects:
        return "none"
    return ", ".join(f"{e.kind}@{e.start_s:.1f}s" for e in effects[:5]) + (
        f" (+{len(effects) - 5})" if len(effects) > 5 else ""
    )


def _audio(r: AudioAnalysisResult) -> str:
    return (
        f"{r.tempo_bpm:.1f} BPM, {r.loudness_lufs:.1f} LUFS, "
        f"music {r.music_share:.0%} / speech {r.speech_share:.0%}, "
        f"{_count(len(r.silences), 'silence')}"
    )


def _environment(r: AudioEnvironmentResult) -> str:
    scene = f"{r.scene[0].label}; " if r.scene else ""
    rt60 = r.reverberation.rt60_s
    return (
        f"{scene}music {r.music_share:.0%} / speech {r.speech_share:.0%} / "
        f"noise {r.noise_share:.0%}, SNR {r.snr_db:.1f} dB, {r.reverberation.label}"
        + (f" (RT60 {rt60:.2f} s)" if rt60 is not None else "")
    )


def _sounds(r: SoundEffectsResult) -> str:
    # Each event's label (its DSP shape without the classifier), onset and whether it
    # lands on a cut.
    if not r.events:
        return "no sound events"
    shown = ", ".join(
        f"{e.label or e.shape}@{e.start_s:.2f}s{' on a cut' if e.on_cut else ''}"
        for e in r.events[:4]
    )
    more = f" (+{len(r.events) - 4})" if len(r.events) > 4 else ""
    return f"{_count(len(r.events), 'event')}: {shown}{more}"


def _transcript(r: SpeechTranscriptionResult) -> str:
    if not r.words:
        return "no speech found"
    return f'{r.language or "?"}, {len(r.words)} words: "{_short(r.text, 120)}"'


def _rate(r: SpeechRateResult) -> str:
    if not r.words_per_minute:
        return "no speech to time"
    return (
        f"{r.words_per_minute:.0f} wpm, {r.syllables_per_second:.1f} syllables/s, "
        f"{r.pauses.count} pauses, speaking {r.speaking_share:.0%}"
    )


def _flow(r: FlowResult) -> str:
    h = r.hook
    firsts = [
        f"{what} {t:.1f} s"
        for what, t in (
            ("cut", h.first_cut_s),
            ("face", h.first_face_s),
            ("text", h.first_text_s),
            ("word", h.first_word_s),
        )
        if t is not None
    ]
    cta = r.structure.call_to_action
    return (
        f"hook {h.score:.2f} (first {', '.join(firsts) or 'nothing'}), "
        + (f'call to action {cta.start_s:.1f} s "{_short(cta.text, 30)}", ' if cta else "")
        + f"{_count(len(r.dead_zones), 'dead zone')}, loopability {r.loopability:.2f}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _texts(r: TextOverlayResult) -> str:
    if not r.texts:
        return "no text found"
    shown = "; ".join(
        f'"{_short(t.text, 30)}" {t.start_s:.1f}-{t.end_s:.1f} s ({t.kind})' for t in r.texts[:3]
    )
    more = f" (+{len(r.texts) - 3})" if len(r.texts) > 3 else ""
    return f"{_count(len(r.texts), 'text')}: {shown}{more}"


def _eyes(r: EyeTrackingResult) -> str:
    if not r.faces:
        return "no face found"
    spans = ", ".join(f"{f.first_s:.1f}-{f.last_s:.1f} s" for f in r.faces[:3])
    return (
        f"{_count(len(r.faces), 'face')} ({spans}), at most "
        f"{r.faces_max} at once, eye contact {r.eye_contact_share_of_face_time:.0%} of face "
        f"time, {r.blink_count} blinks"
    )


def _objects(r: ObjectDetectionResult) -> str:
    if not r.objects:
        return "no object found"
    shown = ", ".join(f"{o.label} {o.first_s:.1f}-{o.last_s:.1f} s" for o in r.objects[:4])
    more = f" (+{len(r.objects) - 4})" if len(r.objects) > 4 else ""
    return f"{_count(len(r.objects), 'object')}: {shown}{more}"


def _emotion(r: SpeechEmotionResult) -> str:
    # The windows are measured; the emotion only with the model (partial: none).
    if not r.segments:
        return "no speech found"
    windows = f"{_count(len(r.segments), 'voiced window')}, {r.speech_s:.1f} s of speech"
    return f"mostly {r.dominant}, {windows}" if r.dominant else windows


def _products(r: ProductDetectionResult) -> str:
    # Products with the model; without it (partial) what stands: brands read on screen
    # and the tracks that may be products.
    brands = list(dict.fromkeys(b.brand for b in r.brands_in_text))
    if r.products is not None:
        shown = ", ".join(
            f"{p.brand + ' ' if p.brand else ''}{p.label} {p.first_s:.1f}-{p.last_s:.1f} s"
            for p in r.products[:3]
        )
        more = f" (+{len(r.products) - 3})" if len(r.products) > 3 else ""
        return f"{_count(len(r.products), 'product')}: {shown}{more}" if shown else "no product"
    parts = [f"brands on screen: {', '.join(brands)}" if brands else "no brand on screen"]
    if r.candidates:
        labels = ", ".join(dict.fromkeys(c.label for c in r.candidates))
        parts.append(f"{_count(len(r.candidates), 'candidate')} ({labels})")
    return ", ".join(parts)


def _background(r: BackgroundSegmentationResult) -> str:
    people = [s for s in r.scenes if s.foreground_share >= 0.01]
    where = ", ".join(
        f"{s.start_s:.1f}-{s.end_s:.1f} s {s.foreground_share:.0%}" for s in people[:3]
    )
    top = ", ".join(f"{c.label} {c.share:.0%}" for c in r.classes[:3])
    return (
        (f"{top}; " if top else "")
        + (f"people {where} of the picture" if people else "no people")
        + f", green screen {r.green_screen_likelihood:.0%}"
    )


def _ages(r: AgeEstimationResult) -> str:
    if not r.faces:
        return "no face found"
    # The range with its probability, and the expected age (the packaged tier's package
    # reports only that): "face 0.0-2.2 s: 26-32 (81%, mean 30)".
    return ", ".join(
        f"face {f.first_s:.1f}-{f.last_s:.1f} s: {f.age_min}-{f.age_max} "
        f"({f.confidence:.0%}, mean {f.mean_age:.0f})"
        for f in r.faces[:3]
    )


_HEADLINES = {
    "cut_analysis": _cuts,
    "scene_segmentation": _scenes,
    "color_analysis": _color,
    "content_quality": _quality,
    "camera_analysis": _camera,
    "visual_effects": _effects,
    "audio_analysis": _audio,
    "audio_environment": _environment,
    "sound_effects": _sounds,
    "speech_transcription": _transcript,
    "speech_rate": _rate,
    "temporal_flow": _flow,
    "text_overlay": _texts,
    "eye_tracking": _eyes,
    "age_estimation": _ages,
    "object_detection": _objects,
    "background_segmentation": _background,
    "speech_emotion": _emotion,
    "product_detection": _products,
}


def headline(name: str, result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    fn = _HEADLINES.get(name)
    if fn is not None:
        try:
            return fn(result_class(name).model_validate(result))
        except ValidationError as exc:
            # A result its model does not accept (an older report, a renamed field): say
            # so in the log, and still show what can be shown.
            log.warning("%s: result does not fit its model: %s", name, str(exc).splitlines()[0])
        except (TypeError, ValueError):
            pass  # a None where a number was expected (no hook score): the generic line
    scalars = [f"{k} {v}" for k, v in result.items() if isinstance(v, (int, float, str))]
    return ", ".join(scalars[:4])


def partial_note(entry: AnalyzerEntry) -> str:
    """What a ``partial`` entry lacks and what fixes it, in one line; empty otherwise."""
    if not entry.unavailable_fields:
        return ""
    fields = ", ".join(f.field for f in entry.unavailable_fields)
    fixes = "; ".join(dict.fromkeys(f.fix for f in entry.unavailable_fields))
    return f"unavailable without the model: {fields} ({fixes})"


def summary_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(analyzer, status, seconds, headline or error) for each analyzer; a ``partial``
    one's headline of what was measured, then what is missing and its fix."""
    rows = []
    for name, entry in report.analyzers.items():
        if entry.status == "ok":
            text = headline(name, entry.result)
        elif entry.status == "partial":
            text = " | ".join(t for t in (headline(name, entry.result), partial_note(entry)) if t)
        else:
            text = entry.error or ""
        rows.append((name, entry.status, f"{entry.elapsed_s:.2f}", text))
    return rows
