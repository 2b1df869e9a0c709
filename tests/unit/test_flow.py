"""temporal_flow on the real upstream analyzers' results for rendered clips with known truth,
and on hand-made upstream results for what no analyzer builds yet (text_overlay)."""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import pytest

from tiktok_analyzer.analyzers import REGISTRY
from tiktok_analyzer.analyzers.audio import AudioAnalysis
from tiktok_analyzer.analyzers.base import Analyzer, Clip, ClipMeta
from tiktok_analyzer.analyzers.camera import CameraAnalysis
from tiktok_analyzer.analyzers.cuts import CutAnalysis
from tiktok_analyzer.analyzers.flow import FlowResult, TemporalFlow
from tiktok_analyzer.analyzers.speech_rate import SpeechRate
from tiktok_analyzer.groundtruth import CATALOG, AudioSpec, ClipSpec, Shot, load_frames, render
from tiktok_analyzer.groundtruth.clips import BLUE, GREEN, GREY, PURPLE, RED, YELLOW, scale_spec

from . import upstream as up
from .speech_clips import transcriber

W, H = 180, 320
ALL = [n for n in REGISTRY if n != "temporal_flow"]
TIME_S = 0.2  # hook timings against the truth


@functools.cache
def _audio_analyzer() -> AudioAnalysis:
    return AudioAnalysis()  # its constructor warms librosa's numba code: once


def _clip_for(analyzer: type[Analyzer], path, info, audio, upstream) -> Clip:
    spec = analyzer.frames
    frames = stamps = None
    if spec is not None and info["has_video"]:
        frames, stamps, _ = load_frames(
            path, spec.short_side, None if spec.every_frame else spec.fps
        )
    return Clip(
        meta=ClipMeta(
            info["duration_s"],
            info["fps"],
            info["width"],
            info["height"],
            has_video=info["has_video"],
            has_audio=info["has_audio"],
        ),
        frames=frames,
        timestamps_s=stamps,
        frame_indices=None if stamps is None else np.rint(stamps * info["fps"]).astype(int),
        audio=audio if analyzer.audio or analyzer is TemporalFlow else None,
        upstream={d: upstream[d] for d in analyzer.depends_on if d in upstream},
    )


def run_dag(path, info, speech: bool = False) -> tuple[Clip, dict]:
    """The upstream analyzers this test needs, run in-process in DAG order on the rendered
    clip, and temporal_flow's own Clip. Returns (clip, upstream results as JSON dicts)."""
    _, _, audio = load_frames(path, short_side=16, fps=1.0)
    audio = audio if audio.size else None
    stages: list[Analyzer] = []
    if info["has_video"]:
        stages += [CutAnalysis(), CameraAnalysis()]
    if audio is not None:
        stages.append(_audio_analyzer())
        if speech:
            stages += [transcriber(), SpeechRate()]
    upstream: dict = {}
    for analyzer in stages:
        clip = _clip_for(type(analyzer), path, info, audio, upstream)
        upstream[analyzer.name] = analyzer.analyze(clip).model_dump(mode="json")
    return _clip_for(TemporalFlow, path, info, audio, upstream), upstream


def _render(tmp_path_factory, name: str, spec: ClipSpec):
    path = tmp_path_factory.mktemp("flow") / f"{name}.mp4"
    return path, render(spec, path)


def _small(spec: ClipSpec, **changes) -> ClipSpec:
    return dataclasses.replace(scale_spec(spec, W, H), **changes)


def _analyze(clip: Clip, upstream: dict | None = None) -> FlowResult:
    if upstream is not None:
        clip = dataclasses.replace(clip, upstream=upstream)
    result = TemporalFlow().analyze(clip)
    FlowResult.model_validate(result.model_dump(mode="json"))  # what the report carries
    return result


@pytest.fixture(scope="module")
def cuts_run(tmp_path_factory):
    # Catalog "cuts": first cut 1.5 s (hard), a flash at 0.8 s that is not a cut.
    path, info = _render(tmp_path_factory, "cuts", _small(CATALOG["cuts"]))
    clip, upstream = run_dag(path, info)
    return clip, upstream, info


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    # 5 s of beat and pad, then speech from 5.0 s: the hook hears music, no words.
    path, info = _render(tmp_path_factory, "speech", CATALOG["speech_after_music"])
    clip, upstream = run_dag(path, info, speech=True)
    return clip, upstream, info


def test_hook_first_cut_matches_truth(cuts_run):
    clip, _, info = cuts_run
    hook = _analyze(clip).hook
    assert abs(hook.first_cut_s - info["cuts"][0]["time_s"]) <= TIME_S
    assert hook.sources["first_cut_s"] == "cut_analysis"
    assert hook.score == pytest.approx(sum(f.points for f in hook.factors), abs=0.001)
    assert sum(f.weight for f in hook.factors) == pytest.approx(1.0, abs=0.01)
    # The clip's picture moves in most shots and its music plays from the start.
    assert {f.name for f in hook.factors} >= {"first_cut", "camera_motion", "start_level"}


def test_hook_first_word_after_leading_music(speech_run):
    clip, upstream, info = speech_run
    result = _analyze(clip)
    hook = result.hook
    assert hook.sources["first_word_s"] == "speech_transcription"
    assert abs(hook.first_word_s - info["speech"]["start_s"]) <= TIME_S
    # Words arrive after the hook: that factor earns nothing.
    assert next(f for f in hook.factors if f.name == "first_word").value == 0.0
    assert hook.first_cut_s is None  # one still shot
    # Pacing: nobody speaks before 5 s, most of each second is spoken after it.
    speech = np.array([s.speech for s in result.pacing])
    assert speech[:4].max() == 0.0
    assert np.median(speech[6:-2]) >= 0.6
    words = sum(s.words for s in result.pacing)
    assert words == len(upstream["speech_transcription"]["words"])


@pytest.fixture(scope="module")
def dead_zone_run(tmp_path_factory):
    # Four 1 s moving shots (busy), then 4 s of a static shot over silence, then a pan.
    spec = ClipSpec(
        shots=[
            Shot(1.0, RED, motion="pan_left"),
            Shot(1.0, BLUE, motion="pan_right"),
            Shot(1.0, GREEN, motion="tilt_up"),
            Shot(1.0, YELLOW, motion="zoom_in"),
            Shot(4.0, GREY),
            Shot(1.5, PURPLE, motion="pan_left"),
        ],
        audio=AudioSpec(tempo_bpm=120.0, silences=[(4.0, 8.0)]),
        seed=43,
    )
    path, info = _render(tmp_path_factory, "dead", _small(spec))
    clip, upstream = run_dag(path, info)
    return clip, upstream, info


def test_dead_zone_on_the_static_silent_shot_only(dead_zone_run):
    clip, _, _ = dead_zone_run
    result = _analyze(clip)
    assert {"cuts", "camera_motion", "picture_change"} <= set(result.dead_zone_signals)
    assert len(result.dead_zones) == 1, result.dead_zones
    zone = result.dead_zones[0]
    assert abs(zone.start_s - 4.0) <= 0.2 and abs(zone.end_s - 8.0) <= 0.2, zone
    # The busy first four seconds.
    busy = [s for s in result.pacing if s.time_s < 4.0]
    assert all(s.motion >= 0.5 for s in busy)
    # The climax is not the dead stretch.
    climax = [s for s in result.structure.segments if s.label == "climax"]
    assert not climax or climax[0].end_s <= 4.5 or climax[0].start_s >= 7.5
    # Nor does a busy hook sagging into the lull build anything up.
    assert "build_up" not in [s.label for s in result.structure.segments]


# Extra upstream results over the static shot (4-8 s), and whether its dead zone survives.
QUIET_CASES = {
    "words at 5.2 and 6.5 s": (
        {"speech_transcription": up.transcript([("hi", t, t + 0.3) for t in (5.2, 6.5)], [])},
        False,
    ),
    "a flash at 6 s": ({"visual_effects": up.effects([("flash", 6.0, 6.1)])}, False),
    "new text at 6 s": ({"text_overlay": up.texts([up.text("wow", 6.0, 6.5)])}, False),
    "a colour cast all along": ({"visual_effects": up.effects([("color_cast", 0.0, 9.5)])}, True),
}


@pytest.mark.parametrize("case", QUIET_CASES, ids=list(QUIET_CASES))
def test_dead_zones_need_the_whole_window_quiet(dead_zone_run, case):
    clip, upstream, _ = dead_zone_run
    extra, survives = QUIET_CASES[case]
    result = _analyze(clip, {**upstream, **extra})
    inside = [z for z in result.dead_zones if z.end_s > 4.5 and z.start_s < 7.5]
    # An event inside breaks the 4 s zone: no single zone spans most of the shot any more.
    assert (len(inside) == 1 and inside[0].end_s - inside[0].start_s >= 3.5) == survives, inside


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory):
    def spec(last) -> ClipSpec:
        shots = [Shot(2.0, RED), Shot(2.0, BLUE, motion="pan_left"), Shot(2.0, last)]
        return _small(ClipSpec(shots=shots, seed=47), audio=None)

    return {
        name: run_dag(*_render(tmp_path_factory, f"loop_{name}", spec(color)))[0]
        for name, color in (("same", RED), ("other", GREEN))
    }


def test_loopability_prefers_an_end_that_matches_the_start(loop_runs):
    same, other = (_analyze(loop_runs[k]) for k in ("same", "other"))
    assert same.loopability - other.loopability >= 0.3, (same.loop, other.loop)
    assert same.loop.picture_histogram_distance < 0.2 < other.loop.picture_histogram_distance
    # Without sound, loopability is the picture's alone.
    assert same.loop.audio is None and same.loopability == same.loop.picture


def test_a_frame_that_returns_exactly_loops_fully():
    rng = np.random.default_rng(0)
    still = np.clip(rng.normal(128, 40, (1, 32, 18, 3)), 0, 255).astype(np.uint8)
    frames = np.concatenate([still, np.full_like(still, 30), still])
    clip = Clip(meta=ClipMeta(1.0, 3.0, 18, 32), frames=frames, timestamps_s=np.arange(3) / 3)
    assert _analyze(clip).loopability == pytest.approx(1.0, abs=0.01)


@pytest.fixture(scope="module")
def no_audio_run(tmp_path_factory):
    path, info = _render(tmp_path_factory, "no_audio", _small(CATALOG["no_audio"]))
    clip, upstream = run_dag(path, info)
    return clip, upstream, info


def test_clip_without_audio_still_gives_a_result(no_audio_run):
    clip, upstream, info = no_audio_run
    assert clip.audio is None and "audio_analysis" not in upstream
    result = _analyze(clip)
    assert abs(result.hook.first_cut_s - info["cuts"][0]["time_s"]) <= TIME_S
    assert result.hook.first_word_s is None and result.hook.loudness_ramp_db_per_s is None
    assert all(s.loudness is None and s.speech is None for s in result.pacing)
    assert result.loop.audio is None and result.loopability is not None
    assert "audio_analysis" in result.inputs_missing
    assert result.inputs_used == ["cut_analysis", "camera_analysis"]
    assert result.hook.score is not None
    # The base check would call a clip without audio not applicable; this one answers.
    TemporalFlow().check(clip)


# Each case: the upstream analyzers kept, and whether the clip has its frames.
MISSING_CASES = {
    "nothing": ((), True),
    "nothing, no frames": ((), False),
    "cuts only": (("cut_analysis",), True),
    "audio only": (("audio_analysis",), False),
    "no cuts": (("camera_analysis", "audio_analysis"), True),
    "all that ran": (("cut_analysis", "camera_analysis", "audio_analysis"), True),
}


@pytest.mark.parametrize("case", MISSING_CASES, ids=list(MISSING_CASES))
def test_missing_upstream_does_not_break(cuts_run, case):
    clip, upstream, _ = cuts_run
    kept, with_frames = MISSING_CASES[case]
    if not with_frames:
        clip = dataclasses.replace(clip, frames=None, timestamps_s=None, frame_indices=None)
    result = _analyze(clip, {k: upstream[k] for k in kept})
    assert result.inputs_used == [n for n in ALL if n in kept]
    assert set(result.inputs_missing) == set(ALL) - set(kept)
    hook = result.hook
    assert (hook.first_cut_s is None) == ("cut_analysis" not in kept)
    assert hook.first_face_s is None and hook.first_text_s is None
    assert hook.sources["first_face_s"] is None and hook.sources["first_text_s"] is None
    assert (hook.loudness_ramp_db_per_s is None) == ("audio_analysis" not in kept)
    assert (result.loopability is None) == (not with_frames and "audio_analysis" not in kept)
    assert len(result.pacing) == int(np.ceil(clip.meta.duration_s))
    assert result.caption_lag.lag_s is None and "text_overlay" in result.caption_lag.reason
    if not kept and not with_frames:
        assert hook.score is None and result.dead_zones == [] and result.loopability is None


# -- hand-made upstream results ----------------------------------------------------------


def _words(pairs: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    return [(w, t, t + 0.25) for w, t in pairs]


def _bare(duration: float) -> Clip:
    return Clip(meta=ClipMeta(duration, 30.0, 720, 1280))


@pytest.mark.parametrize(
    ("text_start", "want"), [(1.3, 0.3), (0.9, -0.1), (1.0, 0.0)], ids=["late", "early", "on"]
)
def test_caption_lag_from_matching_words(text_start, want):
    transcript = up.transcript(_words([("Hello", 1.0), ("world", 1.4), ("again", 4.0)]), [])
    texts = [
        up.text("HELLO WORLD", text_start, 3.0, "caption"),
        up.text("again!", 4.0 + want, 5.0, "caption"),
        up.text("SALE", 2.0, 3.0, "title"),  # never spoken
    ]
    result = _analyze(
        _bare(6.0), {"speech_transcription": transcript, "text_overlay": up.texts(texts)}
    )
    lag = result.caption_lag
    assert lag.lag_s == pytest.approx(want, abs=1e-6)
    assert (lag.matched, lag.texts) == (2, 3)
    assert result.hook.first_text_s == min(text_start, 2.0)
    assert result.hook.sources["first_text_s"] == "text_overlay"


def test_structure_build_up_climax_and_call_to_action():
    # 15 s: slow start, cuts getting denser to a burst at 8-10 s, a spoken ask at 12 s.
    cut_times = [4.0, 6.0, 7.0, 7.6, 8.1, 8.4, 8.7, 9.0, 9.3, 9.6, 9.9]
    segments = [
        {"start_s": 1.0, "end_s": 3.0, "text": "So here is my morning"},
        {"start_s": 12.0, "end_s": 14.0, "text": "Follow for part two!"},
    ]
    words = _words([("So", 1.0), ("here", 1.5), ("Follow", 12.0), ("for", 12.5)])
    upstream = {
        "cut_analysis": up.cuts(cut_times, 15.0),
        "speech_transcription": up.transcript(words, segments),
    }
    structure = _analyze(_bare(15.0), upstream).structure
    labels = [s.label for s in structure.segments]
    assert labels == ["hook", "build_up", "climax", "body", "call_to_action"], structure
    climax = structure.segments[2]
    assert 7.0 <= climax.start_s <= 8.5 and 9.5 <= climax.end_s <= 11.0
    assert 8.0 <= structure.climax_s <= 10.0
    assert structure.call_to_action.start_s == 12.0
    assert structure.call_to_action.source == "speech_transcription"
    # The segments tile the clip.
    ends = [(s.start_s, s.end_s) for s in structure.segments]
    assert ends[0][0] == 0.0 and ends[-1][1] == 15.0
    assert all(a[1] == b[0] for a, b in zip(ends, ends[1:], strict=False))


def test_flat_clip_has_no_climax():
    upstream = {"cut_analysis": up.cuts([float(t) for t in range(1, 10)], 10.0)}
    structure = _analyze(_bare(10.0), upstream).structure
    assert structure.climax_s is None
    assert [s.label for s in structure.segments] == ["hook", "body"]


def test_face_from_object_detection_and_hook_factors():
    upstream = {
        "object_detection": up.objects(
            [up.track("cup", 1, 0.1, 2.0), up.track("person", 2, 0.4, 5.0)]
        ),
        "cut_analysis": up.cuts([1.75], 6.0),
    }
    hook = _analyze(_bare(6.0), upstream).hook
    assert hook.first_face_s == 0.4 and hook.sources["first_face_s"] == "object_detection"
    values = {f.name: f.value for f in hook.factors}
    # Full credit up to 0.5 s, none at 3 s, linear between.
    assert values == {"first_face": 1.0, "first_cut": 0.5}
    assert hook.score == pytest.approx((0.15 * 1.0 + 0.2 * 0.5) / 0.35, abs=0.001)


def test_analyze_time_on_a_15s_clip(tmp_path_factory):
    path, info = _render(tmp_path_factory, "sample", _small(CATALOG["sample"]))
    clip, upstream = run_dag(path, info)
    flow = TemporalFlow()
    flow.analyze(clip)
    t0 = time.perf_counter()
    for _ in range(3):
        result = flow.analyze(clip)
    elapsed = (time.perf_counter() - t0) / 3
    print(f"temporal_flow analyze: {elapsed * 1000:.1f} ms on {len(clip.frames)} frames")
    assert elapsed < 0.5
    assert abs(result.hook.first_cut_s - 2.5) <= TIME_S


def test_first_word_skips_sung_lyrics():
    segments = [
        {"start_s": 0.2, "end_s": 2.0, "text": "la la", "sung": True},
        {"start_s": 2.4, "end_s": 3.0, "text": "Hey you", "sung": False},
    ]
    words = _words([("la", 0.2), ("la", 0.6), ("Hey", 2.4), ("you", 2.7)])
    result = _analyze(_bare(4.0), {"speech_transcription": up.transcript(words, segments)})
    assert result.hook.first_word_s == 2.4
    # Singing is still voice: the pacing hears it.
    assert result.pacing[0].speech > 0 and result.pacing[0].words == 2
