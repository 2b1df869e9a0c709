"""The environment analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

ReverbLabel = Literal["dry", "room", "hall", "unknown"]


class SceneScore(BaseModel):
    label: str
    score: float = Field(description="highest clip-level AudioSet probability among its classes")


class Reverberation(BaseModel):
    rt60_s: float | None = Field(
        description="decay time to -60 dB estimated from free decays (T20); None if none found"
    )
    label: ReverbLabel
    decays: int = Field(description="free decays the estimate rests on")


class ShareWindow(BaseModel):
    start_s: float
    end_s: float
    speech: bool
    music: bool
    noise: bool


class AudioEnvironmentResult(AnalyzerResult):
    # Without the classifier's weights the DSP measures still stand (status partial).
    made_by_model: ClassVar[tuple[str, ...]] = ("scene", "audioset_top")

    scene: list[SceneScore] | None = Field(
        description="scenes by score (AudioSet classifier; random with synthetic weights); "
        "null without the model (status partial)"
    )
    music_share: float = Field(description="share of the clip's time with music")
    speech_share: float = Field(description="share of the clip's time with speech")
    noise_share: float = Field(
        description="share of the clip's time with noise (a flat bed, or sound that is "
        "neither speech nor music); shares overlap where sounds do"
    )
    silence_share: float
    shares_source: Literal["dsp", "dsp+model"] = Field(
        description="dsp: measured by the DSP frame classifier alone; dsp+model: the "
        "classifier (real weights) overruled it where sure"
    )
    snr_db: float = Field(
        description="foreground (speech/music) power over the broadband noise floor, dB "
        "(capped at 100)"
    )
    signal_dbfs: float
    noise_floor_dbfs: float
    reverberation: Reverberation
    audioset_top: list[SceneScore] | None = Field(
        description="the five AudioSet classes with the highest clip-level probability; null "
        "without the model (status partial)"
    )
    windows: list[ShareWindow] = Field(description="the DSP windows behind the shares")
