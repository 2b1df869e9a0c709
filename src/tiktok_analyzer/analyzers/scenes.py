"""Scene segmentation: consecutive shots that look alike form one scene.

cut_analysis gives the shots; this analyzer describes each shot by the mean HSV histogram
of a few frames well inside it (away from the transitions at its ends) and links every
shot to the later shots within ``link_span`` that look like it. A scene ends where no link
crosses: the classic overlapping-links grouping, so an A-B-A-B shot/reverse-shot exchange
stays one scene while a change of place (other colours and light) starts a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiktok_analyzer.analyzers._frames import hist_distance, hsv_histograms
from tiktok_analyzer.analyzers.base import Analyzer, Clip, FrameSpec, NotApplicable
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.scenes import (  # noqa: F401 - re-exported
    Scene,
    SceneSegmentationResult,
)

__all__ = ["Scene", "SceneSegmentation"]


class SceneSegmentation(Analyzer):
    name = "scene_segmentation"
    # A few frames a second is plenty to describe a shot's look; four a second still
    # lands a frame inside shots a quarter second long.
    frames = FrameSpec(short_side=64, fps=4.0)
    depends_on = ("cut_analysis",)

    @dataclass
    class Params:
        # Shots whose histograms differ by at most this (total variation, 0..1) look alike.
        max_distance: float = 0.5
        # A shot may link to a look-alike this many shots later (A-B-A patterns).
        link_span: int = 3
        # Frames this close to a shot's ends may still show the transition into it.
        edge_margin_s: float = 0.2

    Result = SceneSegmentationResult

    def analyze(self, clip: Clip) -> Result:
        cuts = clip.upstream_result(CutAnalysisResult)
        if cuts is None:
            raise NotApplicable("needs cut_analysis: its shots are what scenes group")
        frames, ts = clip.frames, clip.timestamps_s
        assert frames is not None and ts is not None
        shots = [(s.start_s, s.end_s) for s in cuts.shots if s.end_s > s.start_s]
        if not shots:
            raise NotApplicable("cut_analysis found no shots")
        p = self.params

        hists = hsv_histograms(frames)
        looks = np.stack([_shot_look(hists, ts, a, b, p.edge_margin_s) for a, b in shots])
        n = len(shots)
        # reach[k]: the furthest later shot that shot k, or any shot before it, links to.
        reach = np.arange(n)
        for i in range(n):
            for j in range(i + 1, min(i + p.link_span, n - 1) + 1):
                if hist_distance(looks[i], looks[j]) <= p.max_distance:
                    reach[i] = j
        reach = np.maximum.accumulate(reach)

        scenes: list[Scene] = []
        first = 0
        for k in range(n):
            if reach[k] > k:
                continue  # a link crosses the boundary after shot k
            members = shots[first : k + 1]
            longest = max(members, key=lambda s: s[1] - s[0])
            scenes.append(
                Scene(
                    start_s=members[0][0],
                    end_s=members[-1][1],
                    shot_count=len(members),
                    keyframe_s=round((longest[0] + longest[1]) / 2, 4),
                )
            )
            first = k + 1
        lengths = np.array([s.end_s - s.start_s for s in scenes])
        return self.Result(
            scenes=scenes,
            scene_count=len(scenes),
            mean_scene_s=round(float(lengths.mean()), 4),
        )


def _shot_look(
    hists: np.ndarray, ts: np.ndarray, start: float, end: float, margin: float
) -> np.ndarray:
    """Mean histogram of the frames inside the shot, clear of its ends; for a shot too
    short for that, the frame nearest its middle."""
    margin = min(margin, (end - start) / 4)
    inside = (ts >= start + margin) & (ts < end - margin)
    if inside.any():
        return hists[inside].mean(axis=0)
    return hists[int(np.argmin(np.abs(ts - (start + end) / 2)))]
