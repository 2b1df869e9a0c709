"""The composition analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult

Placement = Literal["thirds", "center", "edge", "off_center"]
ShotTypeName = Literal["close_up", "medium", "wide"]


class CompositionSubject(BaseModel):
    x: float = Field(description="subject centre, 0 (left) .. 1 (right)")
    y: float = Field(description="subject centre, 0 (top) .. 1 (bottom)")
    strength: float = Field(
        description="share of the frame's saliency inside the subject region, 0..1: how "
        "clearly one region stands out"
    )


class ShotComposition(BaseModel):
    start_s: float
    end_s: float
    type: ShotTypeName | None = Field(description="zero-shot shot type; null without the model")
    confidence: float | None = Field(
        description="mean zero-shot probability of the type, 0..1; null without the model"
    )
    scores: dict[str, float] | None = Field(
        description="mean probability of each shot type; null without the model"
    )
    frames: int = Field(description="sampled frames inside the shot")
    subject: CompositionSubject | None = Field(description="median subject position over the shot")
    thirds_score: float | None = Field(
        description="mean rule-of-thirds score of the shot's frames with a subject, 0..1"
    )
    placement: Placement | None


class CompositionLabel(BaseModel):
    label: str
    score: float = Field(description="mean zero-shot probability within its vocabulary")
    kind: Literal["scene", "style"]


class CompositionAnalysisResult(AnalyzerResult):
    # Without CLIP's weights the saliency subject and thirds still stand (status partial).
    made_by_model: ClassVar[tuple[str, ...]] = (
        "shot_types[].type",
        "shot_types[].confidence",
        "shot_types[].scores",
        "labels",
        "dominant_shot_type",
    )

    shot_types: list[ShotComposition]
    labels: list[CompositionLabel] | None = Field(
        description="top scenes and styles, each by mean zero-shot probability; null without "
        "the model (status partial)"
    )
    thirds_score: float | None = Field(
        description="mean rule-of-thirds score over every frame with a subject, 0..1; "
        "None when no frame had one"
    )
    placement: Placement | None = Field(description="placement of the median subject")
    subject: CompositionSubject | None = Field(description="median subject position over the clip")
    shot_source: Literal["cut_analysis", "scene_segmentation", "whole_clip"]
    dominant_shot_type: ShotTypeName | None = Field(
        description="the shot type covering the most time; null without the model"
    )
    frames_analyzed: int
