"""The cuts analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tiktok_analyzer.analyzers.base import AnalyzerResult

CutKind = Literal["hard", "fade", "dissolve", "wipe"]


class Cut(BaseModel):
    """A shot change. ``time_s``/``frame``: the first frame of the new shot for a hard cut,
    the centre of a gradual transition; ``start_s``/``end_s``: the transition's span
    (both equal ``time_s`` for a hard cut)."""

    time_s: float
    frame: int
    kind: CutKind
    confidence: float
    start_s: float
    end_s: float


class ShotSpan(BaseModel):
    start_s: float
    end_s: float


class Flash(BaseModel):
    """A burst of light over the picture that is not a cut."""

    time_s: float
    frame: int
    frames: int
    end_s: float


class PunchIn(BaseModel):
    """A sudden zoom within a shot: the frame jumps to ``scale`` times the one before."""

    time_s: float
    frame: int
    scale: float
    confidence: float


class CutAnalysisResult(AnalyzerResult):
    cuts: list[Cut]
    shots: list[ShotSpan]
    cuts_per_minute: float
    mean_shot_s: float
    median_shot_s: float
    min_shot_s: float
    max_shot_s: float
    shot_count: int
    flashes: list[Flash]
    punch_ins: list[PunchIn]
