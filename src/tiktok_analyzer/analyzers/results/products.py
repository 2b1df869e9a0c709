"""The products analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class BrandInText(BaseModel):
    brand: str = Field(description="brand key of the vocabulary")
    text: str = Field(description="the on-screen text that named it")
    start_s: float
    end_s: float
    confidence: float


class ProductItem(BaseModel):
    label: str = Field(
        description="product category of the vocabulary; for a brand read only in "
        "on-screen text, the brand's broad category (e.g. sportswear, beverage)"
    )
    brand: str | None = Field(description="brand key of the vocabulary, or None")
    first_s: float = Field(description="first appearance")
    last_s: float
    screen_time_s: float = Field(description="time on screen (union of its spans)")
    screen_share: float = Field(description="screen time over the clip's duration, 0..1")
    confidence: float = Field(description="0..1; vision and text combined for source both")
    source: Literal["vision", "text", "both"]
    brand_confidence: float | None = Field(
        description="zero-shot brand probability (vision), or the text hit's confidence"
    )
    track_ids: list[int] = Field(description="object_detection tracks it was seen on")
    texts: list[str] = Field(description="on-screen texts that named the brand")


class ProductCandidate(BaseModel):
    track_id: int = Field(description="object_detection's track")
    label: str = Field(description="the detector's COCO class (bottle, cell phone, handbag, ...)")
    first_s: float
    last_s: float
    screen_share: float = Field(description="the track's share of the clip's time, 0..1")
    confidence: float = Field(description="the detector's highest confidence on the track")
    brands: list[str] = Field(
        description="brand keys read on screen (brands_in_text) while the track is on screen, "
        "within join_window_s"
    )


class ProductDetectionResult(AnalyzerResult):
    # Without CLIP's weights the brands read on screen and the object tracks that may be
    # products still stand; which are products, and of what, is CLIP's (status partial).
    made_by_model: ClassVar[tuple[str, ...]] = ("products", "crops_scored")

    products: list[ProductItem] | None = Field(
        description="products seen (CLIP zero-shot) or named on screen, joined; null without "
        "the model (status partial: brands_in_text and candidates still stand)"
    )
    brands_in_text: list[BrandInText] = Field(
        description="every brand hit in on-screen text (text_overlay)"
    )
    mode: Literal["objects", "frames"] = Field(
        description="objects: crops of object_detection's boxes; frames: whole frames "
        "and their centres (no boxes upstream)"
    )
    crops_scored: int | None = Field(description="crops CLIP scored; null without the model")
    candidates: list[ProductCandidate] = Field(
        default_factory=list,
        description="object_detection's tracks whose class can be a product (not people, "
        "animals or street furniture), with the brands on screen meanwhile: measured "
        "without the model, which then decides what each is",
    )
