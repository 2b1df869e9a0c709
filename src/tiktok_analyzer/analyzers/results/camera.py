"""The camera analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

Motion = Literal[
    "static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "shake"
]


class MotionSegment(BaseModel):
    start_s: float
    end_s: float
    motion: Motion
    magnitude: float = Field(
        description="pan/tilt: picture speed in short sides per second; zoom: |ln scale| "
        "per second; shake: RMS of the jitter about the net motion, in short sides per "
        "sampled-frame step; static: the net speed"
    )


class CameraResult(AnalyzerResult):
    segments: list[MotionSegment]
    shares: dict[str, float] = Field(description="share of the analysed time per motion")
    dominant: Motion
    shots_source: Literal["cut_analysis", "own"] = Field(
        description="shot bounds came from cut_analysis, or from this analyzer's own "
        "tracking failures when cut_analysis was missing"
    )
