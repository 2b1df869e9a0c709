"""The color analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class PaletteColor(BaseModel):
    rgb: list[int] = Field(description="sRGB 0..255")
    hex: str
    share: float = Field(description="share of all analysed pixels in this colour, 0..1")
    lab: list[float] = Field(description="CIELAB (D65) centre of the cluster")


class ScenePalette(BaseModel):
    start_s: float
    end_s: float
    palette: list[PaletteColor]
    brightness: float
    saturation: float
    warmth: float


class ColorVariety(BaseModel):
    """Delta-E (CIEDE2000) between the mean colours of consecutive sampled frames."""

    mean_delta_e: float
    max_delta_e: float


class ColorResult(AnalyzerResult):
    palette: list[PaletteColor]
    brightness: float = Field(description="mean CIELAB lightness, 0 (black) .. 1 (white)")
    saturation: float = Field(description="mean HSV saturation, 0 .. 1")
    warmth: float = Field(description="mean (R - B) / 255: -1 all blue .. +1 all red/yellow")
    colorfulness: float = Field(
        description="Hasler & Suesstrunk (2003) M: ~0 grey, ~33 moderately, >~80 very colourful"
    )
    per_scene: list[ScenePalette]
    per_scene_source: Literal["scene_segmentation", "windows"] = Field(
        description="where the scene bounds came from: the scene_segmentation result, or "
        "equal time windows when it was not available"
    )
    variety: ColorVariety
