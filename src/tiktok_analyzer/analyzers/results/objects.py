"""The objects analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class BoxSample(BaseModel):
    time_s: float
    bbox: list[float] = Field(description="[x0, y0, x1, y1] normalised to 0..1")
    confidence: float


class DetectedObject(BaseModel):
    label: str = Field(description="COCO class name")
    track_id: int = Field(description="1, 2, ... in order of first appearance within the clip")
    first_s: float = Field(description="time of the first sampled frame the object is seen in")
    last_s: float = Field(description="time of the last sampled frame the object is seen in")
    screen_share: float = Field(
        description="share of the clip's sampled frames (so of its time) in which the object "
        "is seen, 0..1"
    )
    area_share: float = Field(
        description="mean share of the frame's area its box covers while it is seen, 0..1"
    )
    max_confidence: float
    mean_confidence: float
    frames_seen: int = Field(description="sampled frames in which the object is seen")
    boxes: list[BoxSample] = Field(
        description="up to max_boxes_per_track sightings spread over the track, its most "
        "confident one always among them, in time order"
    )


class LabelSummary(BaseModel):
    label: str
    tracks: int = Field(description="objects of this label followed in the clip")
    screen_share: float = Field(
        description="share of sampled frames in which at least one object of this label is seen"
    )
    max_confidence: float


class ObjectDetectionResult(AnalyzerResult):
    objects: list[DetectedObject]
    labels: list[LabelSummary] = Field(description="per label, the most seen first")
    frames_analyzed: int
    detections: int = Field(description="detections kept over all sampled frames")
    objects_dropped: int = Field(description="tracks beyond max_objects left out")
