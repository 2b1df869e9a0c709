"""Hand-made upstream results for dependants' tests, built through the real Result models:
a dependant reads its upstream typed (``Clip.upstream_result``), so what a test hands it
must be a result its analyzer could have produced. The render tests build their hand-made
report entries here too: the timeline reads results through the same models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiktok_analyzer.analyzers.results.composition import (
    CompositionAnalysisResult,
    CompositionLabel,
    ShotComposition,
)
from tiktok_analyzer.analyzers.results.cuts import Cut, CutAnalysisResult, ShotSpan
from tiktok_analyzer.analyzers.results.effects import Effect, VisualEffectsResult
from tiktok_analyzer.analyzers.results.emotion import EmotionSegment, SpeechEmotionResult
from tiktok_analyzer.analyzers.results.eyes import Blink, EyeTrackingResult, GazeSample
from tiktok_analyzer.analyzers.results.flow import (
    CaptionLag,
    FlowResult,
    Hook,
    LoopDetail,
    PacingSecond,
    Structure,
)
from tiktok_analyzer.analyzers.results.llava import SceneDescription, Timings, VideoLlavaResult
from tiktok_analyzer.analyzers.results.objects import (
    BoxSample,
    DetectedObject,
    LabelSummary,
    ObjectDetectionResult,
)
from tiktok_analyzer.analyzers.results.ocr import TextOverlayResult, TextTrack
from tiktok_analyzer.analyzers.results.scenes import Scene, SceneSegmentationResult
from tiktok_analyzer.analyzers.results.sfx import SoundEffectsResult, SoundEvent
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


def track(
    label: str,
    track_id: int,
    first: float,
    last: float,
    boxes: Sequence[tuple[float, Sequence[float]]] = (),
    *,
    share: float = 0.1,
    confidence: float = 0.8,
) -> dict[str, Any]:
    """One of object_detection's objects: ``boxes`` as (time_s, [x0, y0, x1, y1])."""
    return DetectedObject(
        label=label,
        track_id=track_id,
        first_s=first,
        last_s=last,
        screen_share=share,
        area_share=0.1,
        max_confidence=confidence,
        mean_confidence=confidence,
        frames_seen=max(len(boxes), 1),
        boxes=[BoxSample(time_s=t, bbox=list(bb), confidence=confidence) for t, bb in boxes],
    ).model_dump(mode="json")


def objects(tracks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """object_detection's result holding these ``track`` objects."""
    labels = sorted({t["label"] for t in tracks})
    return ObjectDetectionResult(
        objects=[DetectedObject.model_validate(t) for t in tracks],
        labels=[
            LabelSummary(
                label=label,
                tracks=sum(t["label"] == label for t in tracks),
                screen_share=max(t["screen_share"] for t in tracks if t["label"] == label),
                max_confidence=max(t["max_confidence"] for t in tracks if t["label"] == label),
            )
            for label in labels
        ],
        frames_analyzed=10,
        detections=sum(t["frames_seen"] for t in tracks),
        objects_dropped=0,
    ).model_dump(mode="json")


def text(
    words: str,
    start: float,
    end: float,
    kind: str = "caption",
    bbox: Sequence[float] = (0.1, 0.1, 0.9, 0.2),
) -> dict[str, Any]:
    """One of text_overlay's texts."""
    return TextTrack(
        text=words,
        start_s=start,
        end_s=end,
        bbox=list(bbox),
        kind=kind,
        height=0.05,
        lines=1,
        confidence=0.9,
        unsafe_overlap=0.0,
        unsafe_zone=None,
        frames=3,
    ).model_dump(mode="json")


def texts(tracks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """text_overlay's result holding these ``text`` tracks."""
    return TextOverlayResult(
        texts=[TextTrack.model_validate(t) for t in tracks],
        frames_sampled=10,
        frames_detected=10,
        frames_recognized=len(tracks),
        lines_recognized=len(tracks),
        first_text_s=min((t["start_s"] for t in tracks), default=None),
        text_time_share=0.5 if tracks else 0.0,
        unsafe_share=0.0,
        unsafe_zones=[],
    ).model_dump(mode="json")


def effects(items: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """visual_effects' result: one effect per (kind, start_s, end_s)."""
    found = [Effect(kind=k, start_s=a, end_s=b, confidence=0.9) for k, a, b in items]
    counts: dict[str, int] = {}
    for e in found:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return VisualEffectsResult(effects=found, counts=counts).model_dump(mode="json")


def sound_events(
    items: Sequence[tuple[str, float, float, float]], duration: float
) -> dict[str, Any]:
    """sound_effects' result: one event per (label, start_s, end_s, confidence)."""
    return SoundEffectsResult(
        events=[
            SoundEvent(
                label=label,
                start_s=a,
                end_s=b,
                confidence=c,
                shape="other",
                stand_out_db=12.0,
                on_cut=False,
                cut_offset_s=None,
            )
            for label, a, b, c in items
        ],
        on_cut_share=0.0,
        cuts_known=False,
        beat_suppressed=0,
        speech_suppressed=0,
        events_per_minute=len(items) / duration * 60,
    ).model_dump(mode="json")


def eyes(
    gaze: Sequence[tuple[float, float, float, bool]], blinks: Sequence[float] = ()
) -> dict[str, Any]:
    """eye_tracking's result for one face: ``gaze`` as (time_s, yaw, pitch, eye_contact),
    a blink at each of ``blinks``."""
    contact = sum(c for *_, c in gaze) / len(gaze) if gaze else 0.0
    return EyeTrackingResult(
        faces_max=1 if gaze else 0,
        first_face_s=gaze[0][0] if gaze else None,
        face_share=1.0 if gaze else 0.0,
        eye_contact_share=contact,
        eye_contact_share_of_face_time=contact,
        gaze=[
            GazeSample(
                time_s=t,
                track_id=1,
                yaw=yaw,
                pitch=pitch,
                head_yaw=0.0,
                head_pitch=0.0,
                eye_contact=c,
            )
            for t, yaw, pitch, c in gaze
        ],
        blinks=[Blink(time_s=t, duration_s=0.15, track_id=1) for t in blinks],
        blink_count=len(blinks),
        blinks_per_minute=0.0,
        faces=[],
    ).model_dump(mode="json")


def composition(
    shots: Sequence[tuple[float, float, str]], labels: Sequence[tuple[str, float, str]] = ()
) -> dict[str, Any]:
    """composition_analysis' result: a shot type per (start_s, end_s, type), labels as
    (label, score, kind)."""
    return CompositionAnalysisResult(
        shot_types=[
            ShotComposition(
                start_s=a,
                end_s=b,
                type=kind,
                confidence=0.8,
                scores={kind: 0.8},
                frames=2,
                subject=None,
                thirds_score=None,
                placement=None,
            )
            for a, b, kind in shots
        ],
        labels=[CompositionLabel(label=lab, score=sc, kind=k) for lab, sc, k in labels],
        thirds_score=None,
        placement=None,
        subject=None,
        shot_source="cut_analysis",
        dominant_shot_type=shots[0][2] if shots else None,
        frames_analyzed=2 * len(shots),
    ).model_dump(mode="json")


def emotion(segments: Sequence[tuple[float, float, str, float]], dominant: str | None):
    """speech_emotion's result: a segment per (start_s, end_s, emotion, confidence)."""
    return SpeechEmotionResult(
        segments=[
            EmotionSegment(
                start_s=a,
                end_s=b,
                emotion=e,
                confidence=c,
                scores={e: c},
                valence=0.0,
                arousal=0.0,
            )
            for a, b, e, c in segments
        ],
        dominant=dominant,
        distribution={},
        valence=None,
        arousal=None,
        arc=[],
        speech_s=sum(b - a for a, b, *_ in segments),
        source="speech_transcription",
        labels=sorted({e for *_, e, _ in segments}),
    ).model_dump(mode="json")


def flow(
    duration: float,
    intensity: Sequence[float],
    score: float | None = None,
    **first: float | None,
) -> dict[str, Any]:
    """temporal_flow's result: one pacing second per ``intensity`` value, the hook's
    ``first_cut_s``, ``first_face_s``, ... as given."""
    times = {k: first.get(k) for k in ("first_cut_s", "first_face_s", "first_text_s")}
    return FlowResult(
        duration_s=duration,
        hook=Hook(
            window_s=3.0,
            **times,
            first_word_s=first.get("first_word_s"),
            loudness_ramp_db_per_s=None,
            start_level_lu=None,
            score=score,
            factors=[],
            sources={},
        ),
        pacing=[
            PacingSecond(
                time_s=float(k),
                start_s=float(k),
                end_s=float(min(k + 1, duration)),
                cuts=None,
                words=None,
                speech=None,
                motion=None,
                motion_magnitude=None,
                picture_change=None,
                loudness=None,
                intensity=v,
            )
            for k, v in enumerate(intensity)
        ],
        structure=Structure(segments=[], climax_s=None, call_to_action=None),
        dead_zones=[],
        dead_zone_signals=[],
        loopability=None,
        loop=LoopDetail(
            picture=None,
            picture_histogram_distance=None,
            picture_correlation=None,
            audio=None,
            audio_level_diff_db=None,
            beat_phase_error=None,
        ),
        caption_lag=CaptionLag(lag_s=None, mean_abs_s=None, matched=0, texts=0, reason="test"),
        inputs_used=[],
        inputs_missing=[],
    ).model_dump(mode="json")


def llava(
    description: str,
    scenes: Sequence[tuple[float, float, str]],
    hook: str | None = None,
    call_to_action: str | None = None,
) -> dict[str, Any]:
    """video_llava's result: a description per scene (start_s, end_s, text)."""
    return VideoLlavaResult(
        description=description,
        scenes=[SceneDescription(start_s=a, end_s=b, description=d) for a, b, d in scenes],
        hook=hook,
        call_to_action=call_to_action,
        setting=None,
        people=None,
        style=None,
        raw_text=description,
        parsed=True,
        new_tokens=10,
        max_new_tokens=384,
        frames_used=8,
        scenes_from="scene_segmentation",
        precision="fp32",
        timings=Timings(preprocess_s=0.1, generate_s=1.0, batch_clips=1, compiled=False),
    ).model_dump(mode="json")
