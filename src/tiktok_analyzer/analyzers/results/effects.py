"""The effects analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tiktok_analyzer.analyzers.base import AnalyzerResult

EffectKind = Literal[
    # transitions and events that cut_analysis told apart from plain cuts
    "fade",
    "dissolve",
    "wipe",
    "flash",
    "punch_in",
    "punch_out",
    # found here
    "freeze",
    "split_screen",
    "whip_pan",
    "speed_ramp",
    # looks, one per shot
    "color_cast",
    "high_saturation",
    "monochrome",
]


class Effect(BaseModel):
    start_s: float
    end_s: float
    kind: EffectKind
    confidence: float
    detail: str | None = None  # e.g. "vertical seam at 0.50", "scale 1.40", "warm"


class VisualEffectsResult(AnalyzerResult):
    effects: list[Effect]
    counts: dict[str, int]  # effects of each kind found
