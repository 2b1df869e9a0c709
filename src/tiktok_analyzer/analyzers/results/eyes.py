"""The eyes analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class GazeSample(BaseModel):
    time_s: float
    track_id: int
    yaw: float = Field(description="gaze yaw, degrees; positive towards the image's right")
    pitch: float = Field(description="gaze pitch, degrees; positive up")
    head_yaw: float
    head_pitch: float
    eye_contact: bool = Field(description="gaze within contact_cone_deg of the camera")


class Blink(BaseModel):
    time_s: float = Field(description="the frame where the eyes were most closed")
    duration_s: float = Field(description="first closed frame to first open frame")
    track_id: int


class FacePresence(BaseModel):
    track_id: int
    first_s: float
    last_s: float
    frames: int
    bbox: list[float] = Field(description="median box over the track, normalised [x0,y0,x1,y1]")
    bbox_first: list[float]
    bbox_last: list[float]
    irises_share: float = Field(
        description="share of the face's frames where both irises sat inside their eyes"
    )
    eye_contact_share: float = Field(description="share of the face's frames with eye contact")
    mean_yaw: float
    mean_pitch: float
    blink_count: int
    iris_right: list[float] = Field(
        description="median centre of the subject's right iris (image left when frontal), [x, y]"
    )
    iris_left: list[float] = Field(description="median centre of the left iris, [x, y]")


class EyeTrackingResult(AnalyzerResult):
    faces_max: int = Field(description="most faces seen in one frame")
    first_face_s: float | None = Field(description="first frame with a face; None: none")
    face_share: float = Field(description="share of the analysed frames with a face")
    eye_contact_share: float = Field(
        description="share of the clip's analysed frames where a face looks at the camera"
    )
    eye_contact_share_of_face_time: float = Field(
        description="the same, over the frames that show a face"
    )
    gaze: list[GazeSample] = Field(description="one sample per face and analysed frame")
    blinks: list[Blink]
    blink_count: int
    blinks_per_minute: float = Field(description="blinks per minute of face time")
    faces: list[FacePresence]
