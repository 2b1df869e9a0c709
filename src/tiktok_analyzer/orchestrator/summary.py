"""One line per analyzer for people: the headline of its result."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tiktok_analyzer.orchestrator.report import Report

__all__ = ["headline", "summary_rows"]


def _cuts(r: dict) -> str:
    kinds = Counter(c.get("kind", "?") for c in r.get("cuts", []))
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (
        f"{len(r.get('cuts', []))} cuts ({detail or 'none'}), "
        f"{r.get('cuts_per_minute', 0):.1f}/min, mean shot {r.get('mean_shot_s', 0):.2f} s"
    )


def _scenes(r: dict) -> str:
    scenes = r.get("scenes", [])
    return f"{len(scenes)} scenes from {sum(s.get('shot_count', 0) for s in scenes)} shots"


def _color(r: dict) -> str:
    top = ", ".join(f"{p['hex']} {p['share']:.0%}" for p in r.get("palette", [])[:4])
    return (
        f"{top}; brightness {r.get('brightness', 0):.2f}, "
        f"saturation {r.get('saturation', 0):.2f}, warmth {r.get('warmth', 0):+.2f}"
    )


def _quality(r: dict) -> str:
    return (
        f"overall {r.get('overall', 0):.0f}/100 (sharpness {r.get('sharpness', 0):.0f}, "
        f"noise {r.get('noise', 0):.1f}, blockiness {r.get('blockiness', 0):.2f})"
    )


def _camera(r: dict) -> str:
    time_by = Counter()
    for seg in r.get("segments", []):
        time_by[seg["motion"]] += seg["end_s"] - seg["start_s"]
    return ", ".join(f"{m} {t:.1f} s" for m, t in time_by.most_common(4)) or "no segments"


def _effects(r: dict) -> str:
    effects = r.get("effects", [])
    if not effects:
        return "none"
    return ", ".join(f"{e['kind']}@{e['start_s']:.1f}s" for e in effects[:5]) + (
        f" (+{len(effects) - 5})" if len(effects) > 5 else ""
    )


def _audio(r: dict) -> str:
    return (
        f"{r.get('tempo_bpm', 0):.1f} BPM, {r.get('loudness_lufs', 0):.1f} LUFS, "
        f"music {r.get('music_share', 0):.0%} / speech {r.get('speech_share', 0):.0%}, "
        f"{len(r.get('silences', []))} silences"
    )


def _transcript(r: dict) -> str:
    words = r.get("words", [])
    if not words:
        return "no speech found"
    text = " ".join(str(r.get("text", "")).split())
    text = text if len(text) <= 60 else text[:57] + "..."
    return f'{r.get("language") or "?"}, {len(words)} words: "{text}"'


def _rate(r: dict) -> str:
    if not r.get("words_per_minute"):
        return "no speech to time"
    pauses = r.get("pauses", {}) or {}
    return (
        f"{r['words_per_minute']:.0f} wpm, {r.get('syllables_per_second', 0):.1f} syllables/s, "
        f"{pauses.get('count', 0)} pauses, speaking {r.get('speaking_share', 0):.0%}"
    )


def _flow(r: dict) -> str:
    hook = r.get("hook", {}) or {}
    first_cut = hook.get("first_cut_s")
    cut = f"first cut {first_cut:.1f} s" if first_cut is not None else "no cut"
    return (
        f"hook {hook.get('score', 0):.2f} ({cut}), {len(r.get('dead_zones', []))} dead zones, "
        f"loopability {r.get('loopability', 0):.2f}"
    )


_HEADLINES = {
    "cut_analysis": _cuts,
    "scene_segmentation": _scenes,
    "color_analysis": _color,
    "content_quality": _quality,
    "camera_analysis": _camera,
    "visual_effects": _effects,
    "audio_analysis": _audio,
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
            return fn(result)
        except (KeyError, TypeError, ValueError):
            pass
    scalars = [f"{k} {v}" for k, v in result.items() if isinstance(v, (int, float, str))]
    return ", ".join(scalars[:4])


def summary_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(analyzer, status, seconds, headline or error) for each analyzer."""
    rows = []
    for name, entry in report.analyzers.items():
        text = headline(name, entry.result) if entry.status == "ok" else (entry.error or "")
        rows.append((name, entry.status, f"{entry.elapsed_s:.2f}", text))
    return rows
