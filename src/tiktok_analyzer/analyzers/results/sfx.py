"""The sfx analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

Shape = Literal["impulsive", "tonal", "swept", "other"]


class SoundEvent(BaseModel):
    label: str | None = Field(
        description="AudioSet class (of the sound-effect list) heard; null without the model "
        "(status partial)"
    )
    start_s: float = Field(description="onset: where the sound rises out of the background")
    end_s: float = Field(description="where it has decayed back into the background")
    confidence: float | None = Field(
        description="the classifier's probability of the label; null without the model"
    )
    shape: Shape = Field(description="DSP shape: impulsive, tonal, swept or other")
    stand_out_db: float = Field(description="peak level above the local background, dB")
    on_cut: bool = Field(description="onset within cut_tolerance_s of a cut")
    cut_offset_s: float | None = Field(
        description="onset minus the nearest cut's time; None when there are no cuts"
    )


class SoundEffectsResult(AnalyzerResult):
    # Without the classifier's weights the DSP's events still stand, unlabelled (partial).
    made_by_model: ClassVar[tuple[str, ...]] = ("events[].label", "events[].confidence")

    events: list[SoundEvent]
    on_cut_share: float = Field(description="share of the events whose onset is on a cut")
    cuts_known: bool = Field(
        description="cut_analysis's cuts were available (False: on_cut is always False)"
    )
    beat_suppressed: int = Field(
        description="candidates dropped as the music's own beats (steady beat grid)"
    )
    speech_suppressed: int = Field(description="candidates dropped as syllables of speech")
    events_per_minute: float
