"""The scenes analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel

from tiktok_analyzer.analyzers.base import AnalyzerResult


class Scene(BaseModel):
    start_s: float
    end_s: float
    shot_count: int
    keyframe_s: float  # middle of the scene's longest shot: a frame that represents it


class SceneSegmentationResult(AnalyzerResult):
    scenes: list[Scene]
    scene_count: int
    mean_scene_s: float
