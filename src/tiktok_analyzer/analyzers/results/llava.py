"""The llava analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class SceneDescription(BaseModel):
    start_s: float
    end_s: float
    description: str = Field(description="what the model said about this scene; empty if nothing")


class Timings(BaseModel):
    preprocess_s: float = Field(description="frames and prompt to tensors, for the whole batch")
    generate_s: float = Field(description="model.generate for the whole batch")
    batch_clips: int = Field(description="clips generated together in that batch")
    compiled: bool = Field(
        description="static KV cache with the compiled decoding step (GPU), else eager"
    )
    decoder: str = Field(
        default="generate",
        description="loop: our greedy loop over the compiled step; generate: transformers'",
    )


class VideoLlavaResult(AnalyzerResult):
    description: str = Field(description="the video in a sentence or two (raw text if unparsed)")
    scenes: list[SceneDescription] = Field(
        description="scene_segmentation's scenes (exact ranges), or one for the whole clip"
    )
    hook: str | None = Field(description="what grabs attention in the first seconds")
    call_to_action: str | None = Field(description="the call to action; None when there is none")
    setting: str | None
    people: str | None = Field(description="who appears and what they do")
    style: str | None = Field(description="visual style: camera, editing, colours, text")
    raw_text: str = Field(description="the model's answer as generated")
    parsed: bool = Field(description="the answer had the asked-for structure")
    new_tokens: int
    max_new_tokens: int = Field(
        description="the token budget: at most this many (synthetic weights: exactly)"
    )
    frames_used: int
    scenes_from: str = Field(description="scene_segmentation or whole_clip")
    precision: str = Field(
        description="bf16, int4, fp8, int8, nf4 or fp32: what the model ran in (int4, fp8 "
        "and int8: its decoder weights, on top of bf16)"
    )
    timings: Timings
