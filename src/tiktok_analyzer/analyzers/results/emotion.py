"""The emotion analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class EmotionSegment(BaseModel):
    start_s: float
    end_s: float
    emotion: str | None = Field(
        description="the label of highest probability in this window; null without the "
        "model (status partial)"
    )
    confidence: float | None = Field(
        description="that label's probability, 0..1; null without the model"
    )
    scores: dict[str, float] | None = Field(
        description="every label's probability; they sum to 1; null without the model"
    )
    valence: float | None = Field(
        description="-1 (unpleasant) .. 1 (pleasant), from the scores; null without the model"
    )
    arousal: float | None = Field(
        description="-1 (calm) .. 1 (excited), from the scores; null without the model"
    )


class ArcPoint(BaseModel):
    time_s: float = Field(description="the window's centre")
    valence: float | None = Field(description="null without the model")
    arousal: float | None = Field(description="null without the model")
    emotion: str | None = Field(description="null without the model")


class SpeechEmotionResult(AnalyzerResult):
    # Without wav2vec2's weights the voiced windows (VAD or the transcriber's spans) still
    # stand, unlabelled (status partial).
    made_by_model: ClassVar[tuple[str, ...]] = (
        "segments[].emotion",
        "segments[].confidence",
        "segments[].scores",
        "segments[].valence",
        "segments[].arousal",
        "dominant",
        "distribution",
        "valence",
        "arousal",
        "arc[].valence",
        "arc[].arousal",
        "arc[].emotion",
        "labels",
    )

    segments: list[EmotionSegment] = Field(
        description="one per window of voiced audio, in time order"
    )
    dominant: str | None = Field(
        description="label with the most probability mass over the speech, windows "
        "weighted by duration; None without speech or without the model"
    )
    distribution: dict[str, float] | None = Field(
        description="duration-weighted mean probability of each label; empty without "
        "speech; null without the model"
    )
    valence: float | None = Field(description="duration-weighted mean valence, -1..1")
    arousal: float | None = Field(description="duration-weighted mean arousal, -1..1")
    arc: list[ArcPoint] = Field(description="valence and arousal at each window's centre")
    speech_s: float = Field(
        description="seconds of voiced audio classified (without the model: found)"
    )
    source: Literal["speech_transcription", "vad"] = Field(
        description="where the voiced spans came from"
    )
    labels: list[str] | None = Field(
        description="the model's labels, in its order; null without the model"
    )
