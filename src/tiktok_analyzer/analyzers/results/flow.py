"""The flow analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

SegmentLabel = Literal["hook", "build_up", "climax", "body", "call_to_action"]


class HookFactor(BaseModel):
    name: str
    value: float = Field(description="0..1")
    weight: float = Field(description="weight among the factors available for this clip")
    points: float = Field(description="contribution to the score; the points sum to it")
    detail: str


class Hook(BaseModel):
    window_s: float
    first_cut_s: float | None = Field(description="None: no cut, or cut_analysis missing")
    first_face_s: float | None = Field(description="None: no face, or no face analyzer")
    first_text_s: float | None = Field(description="None: no text, or text_overlay missing")
    first_word_s: float | None = Field(description="None: no speech, or no speech analyzer")
    loudness_ramp_db_per_s: float | None = Field(
        description="least-squares slope of the loudness over the hook"
    )
    start_level_lu: float | None = Field(
        description="loudness of the first second relative to the whole clip"
    )
    score: float | None = Field(description="0..1; None when no factor could be measured")
    factors: list[HookFactor]
    sources: dict[str, str | None] = Field(
        description="the analyzer each first_* time came from (None: none available)"
    )


class PacingSecond(BaseModel):
    time_s: float = Field(description="start of the second")
    start_s: float
    end_s: float = Field(description="the second's end (the clip's end for the last one)")
    cuts: int | None
    words: int | None
    speech: float | None = Field(description="share of the second spoken")
    motion: float | None = Field(description="share of the second with camera motion")
    motion_magnitude: float | None = Field(description="camera_analysis magnitude, time-mean")
    picture_change: float | None = Field(
        description="share of pixels changing between sampled frames"
    )
    loudness: float | None = Field(description="LUFS")
    intensity: float = Field(description="0..1, the mean of the available signals")


class StructureSegment(BaseModel):
    label: SegmentLabel
    start_s: float
    end_s: float
    intensity: float = Field(description="mean smoothed intensity")


class CallToAction(BaseModel):
    start_s: float
    source: str
    text: str


class Structure(BaseModel):
    segments: list[StructureSegment]
    climax_s: float | None = Field(description="the smoothed intensity's peak; None if flat")
    call_to_action: CallToAction | None


class DeadZone(BaseModel):
    start_s: float
    end_s: float


class CaptionLag(BaseModel):
    lag_s: float | None = Field(description="median text start - word start; + = text late")
    mean_abs_s: float | None
    matched: int
    texts: int
    reason: str | None = Field(description="why lag_s is None")


class LoopDetail(BaseModel):
    picture: float | None
    picture_histogram_distance: float | None
    picture_correlation: float | None
    audio: float | None
    audio_level_diff_db: float | None
    beat_phase_error: float | None = Field(description="0 (on the grid) .. 0.5 beat periods")


class FlowResult(AnalyzerResult):
    duration_s: float
    hook: Hook
    pacing: list[PacingSecond]
    structure: Structure
    dead_zones: list[DeadZone]
    dead_zone_signals: list[str]
    loopability: float | None = Field(description="0..1; None with neither picture nor sound")
    loop: LoopDetail
    caption_lag: CaptionLag
    inputs_used: list[str]
    inputs_missing: list[str]
