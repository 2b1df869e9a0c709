"""The speech_rate analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class Pauses(BaseModel):
    count: int
    mean_s: float
    longest_s: float
    total_s: float


class RateSegment(BaseModel):
    start_s: float
    end_s: float
    words: int
    syllables: int
    words_per_minute: float
    syllables_per_second: float


class SpeechRateResult(AnalyzerResult):
    source: Literal["transcript", "acoustic"]
    words_per_minute: float
    syllables_per_second: float
    articulation_rate_sps: float = Field(description="syllables per second, pauses excluded")
    pauses: Pauses
    speaking_share: float = Field(description="speaking time (pauses excluded) / clip")
    speaking_s: float
    words: int = Field(description="counted (transcript) or estimated (acoustic)")
    syllables: int
    segments: list[RateSegment]
