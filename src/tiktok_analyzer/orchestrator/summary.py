"""One line per analyzer for people: the headline of its result, read through the
analyzer's Result model (``analyzers.results``), so a renamed field shows in the log."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pydantic import ValidationError

from tiktok_analyzer.analyzers.results import result_class
from tiktok_analyzer.analyzers.results.audio import AudioAnalysisResult
from tiktok_analyzer.analyzers.results.camera import CameraResult
from tiktok_analyzer.analyzers.results.color import ColorResult
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.effects import VisualEffectsResult
from tiktok_analyzer.analyzers.results.environment import AudioEnvironmentResult
from tiktok_analyzer.analyzers.results.flow import FlowResult
from tiktok_analyzer.analyzers.results.quality import QualityResult
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult
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
        f"{len(r.silences)} silences"
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
    if not r.events:
        return "no sound events"
    kinds = Counter(e.label or e.shape for e in r.events)
    detail = ", ".join(f"{n} {k}" for k, n in kinds.most_common(3))
    on_cut = f", {r.on_cut_share:.0%} on cuts" if r.cuts_known else ""
    return f"{len(r.events)} events ({detail}){on_cut}"


def _transcript(r: SpeechTranscriptionResult) -> str:
    if not r.words:
        return "no speech found"
    text = " ".join(r.text.split())
    text = text if len(text) <= 60 else text[:57] + "..."
    return f'{r.language or "?"}, {len(r.words)} words: "{text}"'


def _rate(r: SpeechRateResult) -> str:
    if not r.words_per_minute:
        return "no speech to time"
    return (
        f"{r.words_per_minute:.0f} wpm, {r.syllables_per_second:.1f} syllables/s, "
        f"{r.pauses.count} pauses, speaking {r.speaking_share:.0%}"
    )


def _flow(r: FlowResult) -> str:
    first_cut = r.hook.first_cut_s
    cut = f"first cut {first_cut:.1f} s" if first_cut is not None else "no cut"
    return (
        f"hook {r.hook.score:.2f} ({cut}), {len(r.dead_zones)} dead zones, "
        f"loopability {r.loopability:.2f}"
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
