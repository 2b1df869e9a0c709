"""Draw a report for people: a self-contained HTML timeline and a one-page PNG summary.

    from tiktok_analyzer.render import render_html, render_png
    render_html(report_dict, "clip.html")            # keyframes from report["video"]["path"]
    render_png(report_dict, "clip.png", video_path="elsewhere/clip.mp4")

Both take the report JSON as a dict (a :class:`~..report.Report` works too), read it
defensively (failed, skipped, unavailable or missing analyzers and clips without sound all
render), and draw without keyframes, saying why, when the clip cannot be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiktok_analyzer.render.keyframes import Keyframes, extract_keyframes
from tiktok_analyzer.render.timeline import Timeline, build_timeline

__all__ = ["build_timeline", "render_html", "render_png"]


def _as_dict(report: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if hasattr(report, "model_dump"):
        return report.model_dump(mode="json")
    if not isinstance(report, Mapping):
        raise TypeError(f"a report is a dict (the report JSON), not {type(report).__name__}")
    return report


def _keyframes(
    report: Mapping[str, Any], tl: Timeline, video_path: str | Path | None, height: int
) -> Keyframes:
    video = report.get("video") if isinstance(report.get("video"), Mapping) else {}
    rotation = video.get("rotation") if isinstance(video.get("rotation"), int) else 0
    fps = video.get("fps") if isinstance(video.get("fps"), (int, float)) else 30.0
    path = video_path if video_path is not None else (tl.video_path or None)
    return extract_keyframes(
        path,
        tl.shots,
        tl.duration_s,
        height=height,
        rotation=rotation,
        avoid=tl.flashes,
        fps=float(fps),
    )


def render_html(
    report: Mapping[str, Any], out_path: str | Path, video_path: str | Path | None = None
) -> Path:
    """Write the report as one self-contained HTML page to ``out_path``; keyframes come
    from ``video_path`` (default: the report's ``video.path``). Returns the path written."""
    from tiktok_analyzer.render.html import write_html

    report = _as_dict(report)
    tl = build_timeline(report)
    return write_html(tl, _keyframes(report, tl, video_path, height=160), out_path)


def render_png(
    report: Mapping[str, Any], out_path: str | Path, video_path: str | Path | None = None
) -> Path:
    """Write a one-page PNG summary (1600x900) of the report to ``out_path``."""
    from tiktok_analyzer.render.png import KEYFRAME_H, write_png

    report = _as_dict(report)
    tl = build_timeline(report)
    return write_png(tl, _keyframes(report, tl, video_path, height=KEYFRAME_H), out_path)
