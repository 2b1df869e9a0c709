"""scene_segmentation on rendered shots of known looks: shots of one colour and texture in a
row are one scene, a new look starts a new one, an A-B-A-B exchange stays together; and it
refuses to run without cut_analysis's shots."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.cuts import CutAnalysis
from tiktok_analyzer.analyzers.results.cuts import Cut, CutAnalysisResult, ShotSpan
from tiktok_analyzer.analyzers.scenes import SceneSegmentation
from tiktok_analyzer.groundtruth import ClipSpec, Shot, load_frames, render, scale_spec
from tiktok_analyzer.groundtruth.clips import BLUE, GREEN, PINK, PURPLE, RED, YELLOW

# Groups of shots with one look each (colour and pattern), the camera doing something
# different in every shot; the fourth group alternates two looks, as a conversation cuts
# between two faces.
GROUPS: list[list[Shot]] = [
    [Shot(0.8, RED), Shot(1.0, RED, motion="pan_left"), Shot(0.8, RED, motion="zoom_in")],
    [Shot(0.8, BLUE, motion="pan_right"), Shot(0.8, BLUE, motion="tilt_up")],
    [Shot(1.0, GREEN, pattern="flat", transition_in="fade")],
    [Shot(0.7, YELLOW), Shot(0.7, PINK), Shot(0.7, YELLOW, motion="shake"), Shot(0.7, PINK)],
    [Shot(1.0, PURPLE, transition_in="dissolve")],
]
SPEC = ClipSpec(shots=list(itertools.chain(*GROUPS)), audio=None, seed=5)


@pytest.fixture(scope="module")
def scenes_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenes") / "scenes.mp4"
    info = render(scale_spec(SPEC, 180, 320), path)
    meta = ClipMeta(info["duration_s"], info["fps"], info["width"], info["height"])

    def clip(spec) -> Clip:
        frames, stamps, _ = load_frames(
            path, short_side=spec.short_side, fps=None if spec.every_frame else spec.fps
        )
        return Clip(
            meta=meta,
            frames=frames,
            timestamps_s=stamps,
            frame_indices=np.rint(stamps * meta.fps).astype(int),
        )

    return info, clip(CutAnalysis.frames), clip(SceneSegmentation.frames)


def _expected_scenes(info) -> list[tuple[float, float, int]]:
    bounds = np.cumsum([0] + [len(g) for g in GROUPS])
    shots = info["shots"]
    return [
        (shots[a]["start_s"], shots[b - 1]["end_s"], b - a)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _upstream_from_truth(info) -> dict:
    """cut_analysis's result as the truth has it: the shots, a hard cut at each boundary."""
    shots = [ShotSpan(start_s=s["start_s"], end_s=s["end_s"]) for s in info["shots"]]
    lengths = [s.end_s - s.start_s for s in shots]
    cuts = [
        Cut(
            time_s=s.start_s,
            frame=0,
            kind="hard",
            confidence=1.0,
            start_s=s.start_s,
            end_s=s.start_s,
        )
        for s in shots[1:]
    ]
    duration = shots[-1].end_s - shots[0].start_s
    result = CutAnalysisResult(
        cuts=cuts,
        shots=shots,
        cuts_per_minute=len(cuts) / duration * 60,
        mean_shot_s=sum(lengths) / len(lengths),
        median_shot_s=sorted(lengths)[len(lengths) // 2],
        min_shot_s=min(lengths),
        max_shot_s=max(lengths),
        shot_count=len(shots),
        flashes=[],
        punch_ins=[],
    )
    return result.model_dump(mode="json")


@pytest.mark.parametrize("shots_from", ["truth", "cut_analysis"])
def test_scenes_group_shots_of_one_look(scenes_clip, shots_from):
    info, cut_clip, scene_clip = scenes_clip
    if shots_from == "truth":
        upstream = _upstream_from_truth(info)
    else:
        upstream = CutAnalysis().analyze(cut_clip).model_dump()
        # Every shot change in this clip is one cut_analysis can see.
        assert len(upstream["shots"]) == len(info["shots"]), upstream["cuts"]
    clip = dataclasses.replace(scene_clip, upstream={"cut_analysis": upstream})
    result = SceneSegmentation().analyze(clip)
    want = _expected_scenes(info)
    got = [(s.start_s, s.end_s, s.shot_count) for s in result.scenes]
    assert len(got) == len(want), (want, got)
    for (ws, we, wn), (gs, ge, gn) in zip(want, got, strict=True):
        # Boundaries within 2 frames; gradual transitions are cut at their centre.
        assert gs == pytest.approx(ws, abs=2 / 30) and ge == pytest.approx(we, abs=2 / 30)
        assert gn == wn
    for s in result.scenes:
        assert s.start_s <= s.keyframe_s <= s.end_s
    assert result.model_dump()["scene_count"] == len(want)


def test_without_links_every_look_change_is_a_scene(scenes_clip):
    # link_span 1: only neighbours may join, so the A-B-A-B group splits into four.
    info, _, scene_clip = scenes_clip
    clip = dataclasses.replace(scene_clip, upstream={"cut_analysis": _upstream_from_truth(info)})
    params = SceneSegmentation.Params(link_span=1)
    result = SceneSegmentation(params).analyze(clip)
    assert [s.shot_count for s in result.scenes] == [3, 2, 1, 1, 1, 1, 1, 1]


def test_needs_cut_analysis(scenes_clip):
    _, _, scene_clip = scenes_clip
    with pytest.raises(NotApplicable, match="cut_analysis"):
        SceneSegmentation().analyze(scene_clip)
