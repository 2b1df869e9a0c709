"""Hand-made upstream results for dependants' tests, built through the real Result models:
a dependant reads its upstream typed (``Clip.upstream_result``), so what a test hands it
must be a result its analyzer could have produced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiktok_analyzer.analyzers.results.cuts import Cut, CutAnalysisResult, ShotSpan
from tiktok_analyzer.analyzers.results.scenes import Scene, SceneSegmentationResult
from tiktok_analyzer.analyzers.results.speech import (
    SpeechSegment,
    SpeechTranscriptionResult,
    VoicedSpan,
    Word,
)


def cuts(
    times: Sequence[float],
    duration: float | None = None,
    *,
    kinds: Sequence[str] | None = None,
    shots: Sequence[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """cut_analysis's result: a cut at each time (hard unless ``kinds`` says otherwise),
    the shots between them over ``duration`` unless ``shots`` are given."""
    times = list(times)
    if shots is None:
        end = duration if duration is not None else (max(times, default=0.0) + 1.0)
        edges = [0.0, *times, end]
        shots = list(zip(edges[:-1], edges[1:], strict=True))
    kinds = list(kinds) if kinds is not None else ["hard"] * len(times)
    lengths = [b - a for a, b in shots] or [0.0]
    total = sum(lengths)
    return CutAnalysisResult(
        cuts=[
            Cut(time_s=t, frame=0, kind=k, confidence=1.0, start_s=t, end_s=t)
            for t, k in zip(times, kinds, strict=True)
        ],
        shots=[ShotSpan(start_s=a, end_s=b) for a, b in shots],
        cuts_per_minute=len(times) / total * 60 if total > 0 else 0.0,
        mean_shot_s=total / len(lengths),
        median_shot_s=sorted(lengths)[len(lengths) // 2],
        min_shot_s=min(lengths),
        max_shot_s=max(lengths),
        shot_count=len(shots),
        flashes=[],
        punch_ins=[],
    ).model_dump(mode="json")


def scenes(spans: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """scene_segmentation's result: one scene (of one shot) per span."""
    return SceneSegmentationResult(
        scenes=[Scene(start_s=a, end_s=b, shot_count=1, keyframe_s=(a + b) / 2) for a, b in spans],
        scene_count=len(spans),
        mean_scene_s=sum(b - a for a, b in spans) / len(spans) if spans else 0.0,
    ).model_dump(mode="json")


def transcript(
    words: Sequence[tuple[str, float, float]],
    segments: Sequence[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """speech_transcription's result: ``words`` as (word, start_s, end_s); one segment over
    them unless ``segments`` are given; ``extra`` fields as the analyzer adds them."""
    if segments is None:
        segments = (
            [
                {
                    "start_s": words[0][1],
                    "end_s": words[-1][2],
                    "text": " ".join(w for w, _, _ in words),
                }
            ]
            if words
            else []
        )
    seg_defaults = {
        "no_speech_prob": 0.0,
        "avg_logprob": -0.2,
        "sung": False,
        "music_ratio_db": -20.0,
    }
    fields = {
        "language": "en",
        "language_probability": 1.0,
        "text": " ".join(w for w, _, _ in words),
        "segments": [SpeechSegment(**{**seg_defaults, **s}) for s in segments],
        "words": [Word(word=w, start_s=a, end_s=b, probability=0.9) for w, a, b in words],
        "voiced": [VoicedSpan(start_s=s["start_s"], end_s=s["end_s"]) for s in segments],
        "speech_s": sum(s["end_s"] - s["start_s"] for s in segments),
        "sung_share": 0.0,
        "engine": "test",
    }
    return SpeechTranscriptionResult(**{**fields, **extra}).model_dump(mode="json")
