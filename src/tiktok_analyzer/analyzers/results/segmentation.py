"""The segmentation analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class ClassShare(BaseModel):
    label: str = Field(description="ADE20K class name")
    share: float = Field(description="share of the picture's area, 0..1")


class SceneBackground(BaseModel):
    start_s: float
    end_s: float
    frames: int = Field(
        description="sampled frames inside the scene (0: the nearest frame stood in for it)"
    )
    classes: list[ClassShare]
    foreground_share: float = Field(description="share of the area that is people (person)")
    green_screen_likelihood: float = Field(
        description="mean over the scene's frames of green_cover x green_flatness, 0..1"
    )
    green_cover: float = Field(
        description="share of the non-person area that is chroma-key green (hue ~90-160 deg, "
        "saturated, not dark), 0..1"
    )
    green_flatness: float = Field(
        description="1 when that green is flat like a lit screen, 0 when textured like foliage"
    )


class BackgroundSegmentationResult(AnalyzerResult):
    classes: list[ClassShare] = Field(description="over the clip, largest first")
    foreground_share: float = Field(description="share of the area that is people (person)")
    green_screen_likelihood: float = Field(
        description="the highest scene's green_screen_likelihood: chroma-key green cover "
        "of the non-person area times its flatness, 0..1"
    )
    green_screen_share: float = Field(
        description="share of sampled frames whose green-screen likelihood is >= 0.5"
    )
    scenes: list[SceneBackground]
    scenes_from: str = Field(description="scene_segmentation, or whole_clip without it")
    frames_analyzed: int
    classes_unavailable: str | None = Field(
        None,
        description="why classes (and each scene's) are empty: the offline tier (mediapipe "
        "selfie segmentation) ran, which has no ADE20K classes; names the weights to fetch. "
        "None when SegFormer ran",
    )
