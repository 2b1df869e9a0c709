"""The quality analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class SecondQuality(BaseModel):
    time_s: float = Field(description="start of the second")
    sharpness: float
    noise: float
    noise_score: float
    exposure: float
    contrast: float
    blockiness: float
    overall: float


class QualityResult(AnalyzerResult):
    sharpness: float = Field(description="0 (blurred) .. 100 (crisp)")
    noise: float = Field(
        description="noise sigma in 8-bit grey levels, measured at a 360 px short side "
        "(higher is noisier)"
    )
    noise_score: float = Field(description="0 (very noisy) .. 100 (clean)")
    exposure: float = Field(description="0 (clipped or far too dark/bright) .. 100 (balanced)")
    contrast: float = Field(description="0 (flat) .. 100 (RMS contrast >= 0.2)")
    blockiness: float = Field(description="0 (no visible coding blocks) .. 100 (strong)")
    overall: float = Field(description="0 .. 100, a weighted mean of the scores above")
    per_second: list[SecondQuality]
