"""The audio analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

#: Sample peaks and frame levels are floored here: digital silence has no finite dBFS.
DBFS_FLOOR = -100.0
#: BS.1770's absolute gate. Blocks quieter than this are silence to the loudness measure, and
#: loudness values are floored here (as ffmpeg's ebur128 reports silence as -70 LUFS).
LUFS_FLOOR = -70.0
WindowLabel = Literal["silence", "music", "speech", "other"]


class LoudnessPoint(BaseModel):
    time_s: float = Field(description="centre of the block")
    lufs: float = Field(description=f"K-weighted loudness of the block, floored at {LUFS_FLOOR}")


class Silence(BaseModel):
    start_s: float
    end_s: float


class WindowClass(BaseModel):
    start_s: float
    end_s: float
    label: WindowLabel


class AudioAnalysisResult(AnalyzerResult):
    tempo_bpm: float = Field(description="0.0 when no beat is found")
    beats_s: list[float]
    loudness_lufs: float = Field(
        description=f"BS.1770-4 integrated loudness; {LUFS_FLOOR} for a silent clip"
    )
    silences: list[Silence]
    music_share: float
    speech_share: float
    other_share: float = Field(description="sounding but neither music nor speech (noise)")
    loudness_curve: list[LoudnessPoint]
    onset_density: float = Field(description="detected onsets per second of clip")
    dynamic_range_db: float = Field(description="EBU Tech 3342 loudness range, LU")
    peak_dbfs: float = Field(description=f"sample peak, floored at {DBFS_FLOOR}")
    pulse_clarity: float = Field(
        description="onset-envelope autocorrelation at the beat period, 0..1"
    )
    windows: list[WindowClass] = Field(description="the per-window labels behind the shares")
