"""The ocr analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

Kind = Literal["caption", "title", "decorative"]
Zone = Literal["right_rail", "bottom_band"]


class UnsafeZone(BaseModel):
    name: Zone
    bbox: list[float] = Field(description="[x0, y0, x1, y1], shares of the frame")


class TextTrack(BaseModel):
    text: str
    start_s: float
    end_s: float
    bbox: list[float] = Field(
        description="[x0, y0, x1, y1] normalised 0..1: median of the block's boxes over the track"
    )
    kind: Kind = Field(description="caption / title / decorative (rule in the module docstring)")
    height: float = Field(
        description="text size: median line height (detector box, margin removed) / frame height"
    )
    lines: int = Field(description="lines of text in the block")
    confidence: float = Field(description="recognizer confidence of the chosen reading, 0..1")
    unsafe_overlap: float = Field(
        description="share of the box inside the player's unsafe zones (right rail + bottom band)"
    )
    unsafe_zone: Zone | None = Field(description="the zone holding most of that overlap")
    frames: int = Field(description="sampled frames the text was seen in")


class TextOverlayResult(AnalyzerResult):
    texts: list[TextTrack]
    frames_sampled: int
    frames_detected: int = Field(description="sampled frames CRAFT ran on")
    frames_recognized: int = Field(description="sampled frames the recognizer ran on")
    lines_recognized: int = Field(description="line crops read by the recognizer")
    first_text_s: float | None
    text_time_share: float = Field(description="share of the clip with any text on screen")
    unsafe_share: float = Field(description="share of the tracks overlapping an unsafe zone at all")
    unsafe_zones: list[UnsafeZone]
