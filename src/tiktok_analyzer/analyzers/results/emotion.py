"""The emotion analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class EmotionSegment(BaseModel):
    start_s: float
    end_s: float
    emotion: str = Field(description="the label of highest probability in this window")
    confidence: float = Field(description="that label's probability, 0..1")
    scores: dict[str, float] = Field(description="every label's probability; they sum to 1")
    valence: float = Field(description="-1 (unpleasant) .. 1 (pleasant), from the scores")
    arousal: float = Field(description="-1 (calm) .. 1 (excited), from the scores")


class ArcPoint(BaseModel):
    time_s: float = Field(description="the window's centre")
    valence: float
    arousal: float
    emotion: str


class SpeechEmotionResult(AnalyzerResult):
    segments: list[EmotionSegment] = Field(
        description="one per window of voiced audio, in time order"
    )
    dominant: str | None = Field(
        description="label with the most probability mass over the speech, windows "
        "weighted by duration; None without speech"
    )
    distribution: dict[str, float] = Field(
        description="duration-weighted mean probability of each label; empty without speech"
    )
    valence: float | None = Field(description="duration-weighted mean valence, -1..1")
    arousal: float | None = Field(description="duration-weighted mean arousal, -1..1")
    arc: list[ArcPoint] = Field(description="valence and arousal at each window's centre")
    speech_s: float = Field(description="seconds of voiced audio classified")
    source: Literal["speech_transcription", "vad"] = Field(
        description="where the voiced spans came from"
    )
    labels: list[str] = Field(description="the model's labels, in its order")
