"""Temporal flow: the clip's narrative structure, read from the other analyzers' results.

It is the last stage of the DAG: it depends on every other analyzer and uses whichever
finished ``ok`` (``inputs_used``); a missing one only blanks the fields it feeds
(``inputs_missing``), never the result. Its own input is the frame set scene_segmentation
already gets (4 fps, 64 px short side: decoded once, shared), for picture change and the
first-vs-last-frame comparison. It declares no audio: the orchestrator skips an analyzer
that declares audio on a clip without sound, and this one must still answer there; the
sound side comes from audio_analysis. (The orchestrator skips it likewise on a clip with
no picture, for its frames; :meth:`TemporalFlow.check` itself accepts any clip.)

* **hook** (the first ``hook_s`` seconds): time to the first cut, face, on-screen text and
  spoken word, the loudness ramp (least-squares slope of audio_analysis' loudness curve over
  the hook, dB/s) and the start level (first second vs the whole clip, LU). The score (0..1,
  like loopability) is a weighted mean of factors in 0..1, each listed with its points
  (their sum is the score); factors whose analyzer is missing are left out and the remaining
  weights renormalised, so a missing analyzer neither helps nor hurts. Time factors score 1
  up to ``hook_full_s`` and fall linearly to 0 at the hook's end (0 when the event never
  comes); motion is the hook's non-static camera share; the start level scores 1 within 3 LU
  of the clip's loudness and 0 at 20 LU under; the ramp scores 0.5 when flat, 1 rising 3
  dB/s, 0 falling 3 dB/s (a fade-in from silence ramps but loses on the start level).
* **pacing**, per second: cuts, words and speaking share, non-static camera share and its
  magnitude, picture change (share of pixels that changed between sampled frames) and
  loudness (LUFS), and an ``intensity`` in 0..1: the mean of those available, each mapped to
  0..1 (cuts: 2 a second is full; picture change: 20 % of pixels is full; loudness: 20 LU
  under the loudest second is 0).
* **structure**: the intensity curve smoothed over 3 s. The hook is the first ``hook_s``.
  The climax is the smoothed peak after the hook, grown while each second (raw or smoothed)
  stays above ``median + climax_level * (peak - median)``; there is none when the peak
  stands less than ``min_contrast`` above the median (a flat clip). A call to action is a
  transcript segment or on-screen text in the last ``cta_region`` of the clip holding a call
  word (follow, like, subscribe, link, shop, ...) or video_llava's ``call_to_action``; it
  runs from there to the end. Between the hook and the climax is a build-up when the
  smoothed curve rises from the hook's end to the climax's first second by at least half the
  climax's contrast, a body otherwise; the rest is body.
* **dead_zones**: stretches of ``min_dead_s`` or more with no cut, no camera motion, no
  speech, no new text, no visual event (flash, punch-in, transition, whip pan) or sound
  effect and no picture change, on a 0.1 s grid, from whichever of those signals exist
  (``dead_zone_signals``); none without any.
* **loopability** (0..1): how seamlessly the end runs into the start. Picture: the last
  sampled frame against the first (half colour histogram similarity, half layout correlation
  once aligned: the features cut_analysis uses, so a loop that would read as a cut scores
  low). Sound: the loudness of the last second against the first, and whether the beat grid
  runs on across the seam (the gap from the last beat round to the first is a whole number
  of beat periods). Picture weighs ``loop_picture_weight``.
* **caption_lag**: for on-screen texts whose first word matches a spoken word nearby, the
  median of (text start - word start): positive means the caption trails the voice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from tiktok_analyzer.analyzers import REGISTRY
from tiktok_analyzer.analyzers._frames import (
    aligned_correlation,
    gray_frames,
    hist_distance,
    hsv_histograms,
)
from tiktok_analyzer.analyzers.base import Analyzer, AnalyzerResult, Clip, FrameSpec
from tiktok_analyzer.analyzers.results.audio import AudioAnalysisResult
from tiktok_analyzer.analyzers.results.camera import CameraResult
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.effects import VisualEffectsResult
from tiktok_analyzer.analyzers.results.eyes import EyeTrackingResult
from tiktok_analyzer.analyzers.results.flow import (  # noqa: F401 - re-exported
    CallToAction,
    CaptionLag,
    DeadZone,
    FlowResult,
    Hook,
    HookFactor,
    LoopDetail,
    PacingSecond,
    SegmentLabel,
    Structure,
    StructureSegment,
)
from tiktok_analyzer.analyzers.results.llava import VideoLlavaResult
from tiktok_analyzer.analyzers.results.objects import ObjectDetectionResult
from tiktok_analyzer.analyzers.results.ocr import TextOverlayResult, TextTrack
from tiktok_analyzer.analyzers.results.sfx import SoundEffectsResult
from tiktok_analyzer.analyzers.results.speech import SpeechTranscriptionResult
from tiktok_analyzer.analyzers.results.speech_rate import SpeechRateResult

__all__ = [
    "CaptionLag",
    "DeadZone",
    "Hook",
    "HookFactor",
    "LoopDetail",
    "PacingSecond",
    "Structure",
    "StructureSegment",
    "TemporalFlow",
]

_NAME = "temporal_flow"
_LUFS_FLOOR = -70.0  # audio_analysis' floor: a silent block
# Words that ask the viewer to act, matched on word starts (follows, subscribed, linked).
_CTA_WORDS = re.compile(
    r"\b(follow|like|subscrib|comment|share|link|bio|shop|buy|order|download|sign up|"
    r"click|tap|save|check (it )?out|join|visit|swipe|dm|use code)",
    re.IGNORECASE,
)
_FACE_LABELS = {"person", "face"}
_GRID_S = 0.1  # dead-zone resolution
# visual_effects kinds that are something happening on screen (dead zones need none).
_EVENT_EFFECTS = {
    "fade",
    "dissolve",
    "wipe",
    "flash",
    "punch_in",
    "punch_out",
    "whip_pan",
    "speed_ramp",
}


@dataclass(frozen=True)
class _Upstream:
    """The other analyzers' results, read through their Result models; None: it did not
    finish ok."""

    cuts: CutAnalysisResult | None
    camera: CameraResult | None
    transcript: SpeechTranscriptionResult | None
    rate: SpeechRateResult | None
    audio: AudioAnalysisResult | None
    overlay: TextOverlayResult | None
    visual: VisualEffectsResult | None
    sound: SoundEffectsResult | None
    eyes: EyeTrackingResult | None
    objects: ObjectDetectionResult | None
    llava: VideoLlavaResult | None

    @classmethod
    def of(cls, clip: Clip) -> _Upstream:
        return cls(
            cuts=clip.upstream_result(CutAnalysisResult),
            camera=clip.upstream_result(CameraResult),
            transcript=clip.upstream_result(SpeechTranscriptionResult),
            rate=clip.upstream_result(SpeechRateResult),
            audio=clip.upstream_result(AudioAnalysisResult),
            overlay=clip.upstream_result(TextOverlayResult),
            visual=clip.upstream_result(VisualEffectsResult),
            sound=clip.upstream_result(SoundEffectsResult),
            eyes=clip.upstream_result(EyeTrackingResult),
            objects=clip.upstream_result(ObjectDetectionResult),
            llava=clip.upstream_result(VideoLlavaResult),
        )


@dataclass(frozen=True)
class _Inputs:
    """The upstream facts, flattened, with what is unknown as None."""

    duration: float
    cuts: list[tuple[float, float, float]] | None  # (time, start, end)
    motion: list[tuple[float, float, bool, float]] | None  # (start, end, moving, magnitude)
    words: list[tuple[float, float, str]] | None
    speech_spans: list[tuple[float, float]] | None  # words, or acoustic speech
    speech_source: str | None
    first_word: float | None  # the first word not sung (a song's lyrics are no hook talk)
    texts: list[TextTrack] | None
    loudness: list[tuple[float, float]] | None  # (centre, LUFS)
    integrated_lufs: float | None
    events: list[tuple[float, float]] | None  # visual and sound effect spans
    change: tuple[np.ndarray, np.ndarray] | None  # per pair: (start, end) times, changed share


class TemporalFlow(Analyzer):
    """Hook, pacing, structure, dead zones, loopability and caption lag of the clip."""

    name: ClassVar[str] = _NAME
    # scene_segmentation's frame set: the orchestrator decodes it once for both.
    frames: ClassVar[FrameSpec] = FrameSpec(short_side=64, fps=4.0)
    # An audio-only file still has a flow (words, loudness): send it without frames.
    inputs_optional: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = tuple(n for n in REGISTRY if n != _NAME)
    Result: ClassVar[type[AnalyzerResult]] = FlowResult

    @dataclass
    class Params:
        hook_s: float = 3.0
        # Hook time factors are full up to this and fall to 0 at the hook's end.
        hook_full_s: float = 0.5
        w_first_cut: float = 0.2
        w_motion: float = 0.1
        w_first_word: float = 0.2
        w_first_face: float = 0.15
        w_first_text: float = 0.15
        w_start_level: float = 0.1
        w_loudness_ramp: float = 0.1
        min_dead_s: float = 1.5
        # A pixel changed when its gray level moved this much (0..255) between samples, and
        # a frame pair moved when this share of pixels changed (a talking head: a few %).
        change_level: float = 12.0
        change_share: float = 0.02
        climax_level: float = 0.7
        min_contrast: float = 0.1
        cta_region: float = 0.4
        caption_window_s: float = 3.0
        loop_picture_weight: float = 0.6

    def check(self, clip: Clip) -> None:
        # Whatever the clip lacks (picture, sound, upstream results) only blanks fields.
        return None

    def analyze(self, clip: Clip) -> FlowResult:
        up = _Upstream.of(clip)
        inputs = self._inputs(clip, up)
        duration = inputs.duration
        pacing = self._pacing(inputs)
        return FlowResult(
            duration_s=round(duration, 3),
            hook=self._hook(inputs, up),
            pacing=pacing,
            structure=self._structure(inputs, pacing, up),
            **self._dead_zones(inputs),
            **self._loop(clip, up.audio),
            caption_lag=self._caption_lag(inputs),
            inputs_used=[n for n in self.depends_on if n in clip.upstream],
            inputs_missing=[n for n in self.depends_on if n not in clip.upstream],
        )

    # -- inputs ----------------------------------------------------------------------------

    def _inputs(self, clip: Clip, up: _Upstream) -> _Inputs:
        duration = float(clip.meta.duration_s)
        cuts = motion = words = texts = loudness = events = change = None
        integrated = None
        if up.cuts is not None:
            cuts = [(c.time_s, c.start_s, c.end_s) for c in up.cuts.cuts]
        if up.camera is not None:
            motion = [
                (s.start_s, s.end_s, s.motion != "static", s.magnitude) for s in up.camera.segments
            ]
        if up.transcript is not None:
            words = [(w.start_s, w.end_s, w.word) for w in up.transcript.words]
        spans, speech_source, first_word = _speech(up)
        if up.overlay is not None:
            texts = list(up.overlay.texts)
        if up.audio is not None:
            loudness = [(q.time_s, q.lufs) for q in up.audio.loudness_curve]
            integrated = up.audio.loudness_lufs
        if up.visual is not None or up.sound is not None:
            # A look (colour cast, saturation) or a split screen lasts its shot, and a
            # freeze is stillness: none of them is something happening.
            found = [
                e for e in (up.visual.effects if up.visual else []) if e.kind in _EVENT_EFFECTS
            ]
            events = [(e.start_s, e.end_s) for e in found] + [
                (e.start_s, e.end_s) for e in (up.sound.events if up.sound else [])
            ]
        if clip.frames is not None and len(clip.frames) >= 2 and clip.timestamps_s is not None:
            change = self._picture_change(clip.frames, np.asarray(clip.timestamps_s, float))
        if duration <= 0:
            ends = [float(clip.timestamps_s[-1])] if clip.timestamps_s is not None else []
            duration = max(ends + [q[0] for q in loudness or []] + [0.0])
        return _Inputs(
            duration=duration,
            cuts=cuts,
            motion=motion,
            words=words,
            speech_spans=spans,
            speech_source=speech_source,
            first_word=first_word,
            texts=texts,
            loudness=loudness,
            integrated_lufs=integrated,
            events=events,
            change=change,
        )

    def _picture_change(
        self, frames: np.ndarray, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per consecutive pair: its (start, end) times and the share of pixels whose gray
        level moved more than ``change_level``. A light blur first, so codec noise on a
        still picture stays under the level."""
        gray = gray_frames(frames)
        gray = np.stack([cv2.GaussianBlur(g, (3, 3), 0) for g in gray])
        changed = (np.abs(np.diff(gray, axis=0)) > self.params.change_level).mean(axis=(1, 2))
        return np.stack([times[:-1], times[1:]], axis=1), changed

    # -- hook ------------------------------------------------------------------------------

    def _hook(self, x: _Inputs, up: _Upstream) -> Hook:
        p = self.params
        hook_end = min(p.hook_s, x.duration) if x.duration > 0 else p.hook_s
        first_cut = min((c[0] for c in x.cuts), default=None) if x.cuts is not None else None
        first_word = x.first_word
        face, face_src = _first_face(up)
        text = min((t.start_s for t in x.texts), default=None) if x.texts is not None else None
        ramp, level = _opening_loudness(x, hook_end)

        def timing(t: float | None) -> float:
            if t is None:
                return 0.0
            return float(np.clip((hook_end - t) / max(hook_end - p.hook_full_s, 1e-6), 0, 1))

        raw: list[tuple[str, float, float, str]] = []  # name, value, weight, detail
        if x.cuts is not None:
            raw.append(
                ("first_cut", timing(first_cut), p.w_first_cut, f"first cut {_s(first_cut)}")
            )
        if x.motion is not None:
            share = _covered([(a, b) for a, b, moving, _ in x.motion if moving], 0.0, hook_end)
            raw.append(
                ("camera_motion", share / hook_end, p.w_motion, f"{share / hook_end:.0%} moving")
            )
        if x.speech_spans is not None:
            raw.append(
                ("first_word", timing(first_word), p.w_first_word, f"first word {_s(first_word)}")
            )
        if face_src is not None:
            raw.append(("first_face", timing(face), p.w_first_face, f"first face {_s(face)}"))
        if x.texts is not None:
            raw.append(("first_text", timing(text), p.w_first_text, f"first text {_s(text)}"))
        if x.loudness is not None:
            if level is not None:
                value = float(np.clip((level + 20.0) / 17.0, 0.0, 1.0))
            else:
                value = 0.0  # a silent clip
            raw.append(("start_level", value, p.w_start_level, f"{_s(level, 'LU')} vs the clip"))
            if ramp is not None:
                raw.append(
                    (
                        "loudness_ramp",
                        float(np.clip(0.5 + ramp / 6.0, 0.0, 1.0)),
                        p.w_loudness_ramp,
                        f"{ramp:+.1f} dB/s over the hook",
                    )
                )
        factors, score = _weighted(raw)
        return Hook(
            window_s=round(hook_end, 3),
            first_cut_s=_r(first_cut),
            first_face_s=_r(face),
            first_text_s=_r(text),
            first_word_s=_r(first_word),
            loudness_ramp_db_per_s=_r(ramp, 2),
            start_level_lu=_r(level, 2),
            score=score,
            factors=factors,
            sources={
                "first_cut_s": "cut_analysis" if x.cuts is not None else None,
                "first_face_s": face_src,
                "first_text_s": "text_overlay" if x.texts is not None else None,
                "first_word_s": x.speech_source,
            },
        )

    # -- pacing ----------------------------------------------------------------------------

    def _pacing(self, x: _Inputs) -> list[PacingSecond]:
        n = max(1, int(np.ceil(x.duration - 1e-6)))
        levels = [
            _energy_mean([v for t, v in x.loudness if k <= t < k + 1]) if x.loudness else None
            for k in range(n)
        ]
        known = [v for v in levels if v is not None]
        loudest = max(known) if known else None
        out = []
        for k in range(n):
            a, b = float(k), min(float(k + 1), max(x.duration, k + 1e-3))
            length = b - a
            cuts = words = speech = motion = magnitude = change = None
            parts: list[float] = []
            if x.cuts is not None:
                cuts = sum(a <= c[0] < b for c in x.cuts)
                parts.append(min(cuts, 2) / 2.0)
            if x.words is not None:
                words = sum(a <= (s + e) / 2 < b for s, e, _ in x.words)
            if x.speech_spans is not None:
                speech = _covered(x.speech_spans, a, b) / length
                parts.append(speech)
            if x.motion is not None:
                moving = [(s, e) for s, e, m, _ in x.motion if m]
                motion = _covered(moving, a, b) / length
                weights = [_covered([(s, e)], a, b) for s, e, m, _ in x.motion if m]
                mags = [g for s, e, m, g in x.motion if m]
                magnitude = float(np.average(mags, weights=weights)) if sum(weights) > 0 else 0.0
                parts.append(motion)
            if x.change is not None:
                spans, shares = x.change
                mids = spans.mean(axis=1)
                inside = (mids >= a) & (mids < b)
                change = float(shares[inside].mean()) if inside.any() else None
                if change is not None:
                    parts.append(min(change / 0.2, 1.0))
            if levels[k] is not None and loudest is not None:
                parts.append(float(np.clip((levels[k] - (loudest - 20.0)) / 20.0, 0.0, 1.0)))
            out.append(
                PacingSecond(
                    time_s=a,
                    start_s=a,
                    end_s=round(b, 4),
                    cuts=cuts,
                    words=words,
                    speech=_r(speech),
                    motion=_r(motion),
                    motion_magnitude=_r(magnitude, 4),
                    picture_change=_r(change, 4),
                    loudness=_r(levels[k], 2),
                    intensity=round(float(np.mean(parts)), 3) if parts else 0.0,
                )
            )
        return out

    # -- structure -------------------------------------------------------------------------

    def _structure(self, x: _Inputs, pacing: list[PacingSecond], up: _Upstream) -> Structure:
        p = self.params
        dur = x.duration
        hook_end = min(p.hook_s, dur)
        curve = np.array([q.intensity for q in pacing])
        smooth = np.convolve(np.pad(curve, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        cta = _call_to_action(x, up, dur, p.cta_region, hook_end)
        tail = cta.start_s if cta is not None else dur

        climax: tuple[float, float] | None = None
        peak_s = None
        first = int(np.ceil(hook_end - 1e-6))
        last = int(np.ceil(tail - 1e-6))  # seconds [first, last) lie between hook and tail
        median = float(np.median(smooth))
        if last > first:
            k = first + int(np.argmax(smooth[first:last]))
            contrast = float(smooth[k]) - median
            if contrast >= p.min_contrast:
                bar = median + p.climax_level * contrast
                # The smoothed curve finds the peak (one busy second is no climax); its
                # edges follow the seconds themselves, which smoothing would blur inward.
                level = np.maximum(curve, smooth)
                a = b = k
                while a - 1 >= first and level[a - 1] >= bar:
                    a -= 1
                while b + 1 < last and level[b + 1] >= bar:
                    b += 1
                climax = (float(a), min(float(b + 1), tail))
                peak_s = float(k) + 0.5
        bounds: list[tuple[SegmentLabel, float, float]] = [("hook", 0.0, hook_end)]
        if climax is not None:
            if climax[0] > hook_end:
                # Rising from the hook's end into the climax's first second: a build-up;
                # a busy hook sagging into a lull before the climax is not one.
                rise = float(smooth[int(climax[0])] - smooth[int(hook_end)])
                label: SegmentLabel = "build_up" if rise >= 0.5 * contrast else "body"
                bounds.append((label, hook_end, climax[0]))
            bounds.append(("climax", max(climax[0], hook_end), climax[1]))
            if climax[1] < tail:
                bounds.append(("body", climax[1], tail))
        elif tail > hook_end:
            bounds.append(("body", hook_end, tail))
        if cta is not None:
            bounds.append(("call_to_action", cta.start_s, dur))
        segments = [
            StructureSegment(
                label=lab,
                start_s=round(a, 3),
                end_s=round(b, 3),
                intensity=round(_mean_over(smooth, a, b), 3),
            )
            for lab, a, b in bounds
            if b - a > 1e-6
        ]
        return Structure(segments=segments, climax_s=peak_s, call_to_action=cta)

    # -- dead zones ------------------------------------------------------------------------

    def _dead_zones(self, x: _Inputs) -> dict[str, Any]:
        n = int(np.ceil(x.duration / _GRID_S - 1e-6))
        active = np.zeros(max(n, 0), dtype=bool)
        signals: list[str] = []

        def mark(a: float, b: float | None = None) -> None:
            # An instant marks the cell it falls in; a span every cell it overlaps.
            lo = max(int(np.floor(a / _GRID_S)), 0)
            hi = lo + 1 if b is None else int(np.ceil(b / _GRID_S - 1e-9))
            active[lo : max(hi, lo + 1)] = True

        if x.cuts is not None:
            signals.append("cuts")
            for t, a, b in x.cuts:
                if b > a:
                    mark(a, b)
                else:
                    mark(t)
        if x.motion is not None:
            signals.append("camera_motion")
            for a, b, moving, _ in x.motion:
                if moving:
                    mark(a, b)
        if x.speech_spans is not None:
            signals.append("speech")
            for a, b in x.speech_spans:
                mark(a, b)
        if x.texts is not None:
            signals.append("new_text")
            for t in x.texts:
                mark(t.start_s)
        if x.events is not None:
            signals.append("effects")
            for a, b in x.events:
                mark(a, b if b > a else None)
        if x.change is not None:
            signals.append("picture_change")
            spans, shares = x.change
            cut_times = [c[0] for c in x.cuts or []]
            for (a, b), share in zip(spans, shares, strict=True):
                # A pair across a cut changes wholesale; the cut marks itself, to the frame,
                # where the pair would blur a quarter second of stillness before it.
                if share >= self.params.change_share and not any(a < t <= b for t in cut_times):
                    mark(a, b)
        zones: list[DeadZone] = []
        if signals:
            run = 0
            for i in range(n + 1):
                if i < n and not active[i]:
                    run += 1
                    continue
                if run * _GRID_S >= self.params.min_dead_s - 1e-9:
                    start = (i - run) * _GRID_S
                    zones.append(
                        DeadZone(
                            start_s=round(start, 3), end_s=round(min(i * _GRID_S, x.duration), 3)
                        )
                    )
                run = 0
        return {"dead_zones": zones, "dead_zone_signals": signals}

    # -- loop ------------------------------------------------------------------------------

    def _loop(self, clip: Clip, aa: AudioAnalysisResult | None) -> dict[str, Any]:
        p = self.params
        picture = hist_d = corr = None
        frames = clip.frames
        if frames is not None and len(frames) >= 2:
            ends = np.ascontiguousarray(frames[[0, -1]])
            hists = hsv_histograms(ends)
            hist_d = float(hist_distance(hists[0], hists[1]))
            gray = gray_frames(ends)
            h, w = gray.shape[1:]
            window = cv2.createHanningWindow((w, h), cv2.CV_32F)
            corr = aligned_correlation(gray[1], gray[0], window)[0]
            picture = 0.5 * (1.0 - hist_d) + 0.5 * float(np.clip(corr, 0.0, 1.0))
        audio = level_diff = phase = None
        if aa is not None and aa.loudness_curve:
            dur = float(clip.meta.duration_s)
            pts = [(q.time_s, q.lufs) for q in aa.loudness_curve]
            head = _energy_mean([v for t, v in pts if t < 1.0])
            tail = _energy_mean([v for t, v in pts if t > dur - 1.0])
            parts = []
            if head is not None and tail is not None:
                level_diff = abs(head - tail)
                parts.append(float(np.clip(1.0 - level_diff / 12.0, 0.0, 1.0)))
            beats = list(aa.beats_s)
            tempo = aa.tempo_bpm
            if tempo > 0 and len(beats) >= 2:
                period = 60.0 / tempo
                gap = (dur - beats[-1] + beats[0]) / period
                phase = float(abs(gap - round(gap)))
                parts.append(1.0 - 2.0 * phase)
            if parts:
                audio = float(np.mean(parts))
        weighted = [
            (v, w)
            for v, w in ((picture, p.loop_picture_weight), (audio, 1.0 - p.loop_picture_weight))
            if v is not None
        ]
        score = sum(v * w for v, w in weighted) / sum(w for _, w in weighted) if weighted else None
        return {
            "loopability": _r(score),
            "loop": LoopDetail(
                picture=_r(picture),
                picture_histogram_distance=_r(hist_d),
                picture_correlation=_r(corr),
                audio=_r(audio),
                audio_level_diff_db=_r(level_diff, 2),
                beat_phase_error=_r(phase),
            ),
        }

    # -- caption lag -----------------------------------------------------------------------

    def _caption_lag(self, x: _Inputs) -> CaptionLag:
        if x.texts is None:
            reason = "text_overlay result missing"
            return CaptionLag(lag_s=None, mean_abs_s=None, matched=0, texts=0, reason=reason)
        if x.words is None:
            return CaptionLag(
                lag_s=None,
                mean_abs_s=None,
                matched=0,
                texts=len(x.texts),
                reason="speech_transcription result missing: no spoken words to match",
            )
        spoken = [(_norm(w), s) for s, _, w in x.words]
        lags = []
        for t in x.texts:
            tokens = [_norm(w) for w in t.text.split() if _norm(w)]
            start = t.start_s
            if not tokens:
                continue
            near = [
                s
                for w, s in spoken
                if w == tokens[0] and abs(start - s) <= self.params.caption_window_s
            ]
            if near:
                lags.append(start - min(near, key=lambda s: abs(start - s)))
        if not lags:
            return CaptionLag(
                lag_s=None,
                mean_abs_s=None,
                matched=0,
                texts=len(x.texts),
                reason="no on-screen text matches a spoken word",
            )
        return CaptionLag(
            lag_s=round(float(np.median(lags)), 3),
            mean_abs_s=round(float(np.mean(np.abs(lags))), 3),
            matched=len(lags),
            texts=len(x.texts),
            reason=None,
        )


# -- helpers -------------------------------------------------------------------------------


def _speech(up: _Upstream) -> tuple[list[tuple[float, float]] | None, str | None, float | None]:
    """Where speech is (spans), who says so, and the first word: the transcript's words
    (the first one not sung: a song's lyrics are no hook talk), else speech_rate's acoustic
    segments, else audio_analysis' speech windows."""
    if (tr := up.transcript) is not None:
        sung = [(s.start_s, s.end_s) for s in tr.segments if s.sung]
        first_word = min(
            (
                w.start_s
                for w in tr.words
                if not any(a <= (w.start_s + w.end_s) / 2 <= b for a, b in sung)
            ),
            default=None,
        )
        return [(w.start_s, w.end_s) for w in tr.words], "speech_transcription", first_word
    if up.rate is not None:
        # Without a transcript, speech_rate's acoustic segments say where speech is.
        spans = [(s.start_s, s.end_s) for s in up.rate.segments]
        return spans, "speech_rate", min((a for a, _ in spans), default=None)
    if up.audio is not None:
        spans = [(w.start_s, w.end_s) for w in up.audio.windows if w.label == "speech"]
        return spans, "audio_analysis", min((a for a, _ in spans), default=None)
    return None, None, None


def _first_face(up: _Upstream) -> tuple[float | None, str | None]:
    """The first time a face is seen, and the analyzer that says so (None: none ran).
    eye_tracking's face mesh is the witness when it ran; object_detection's person boxes
    only stand in without it."""
    if (et := up.eyes) is not None:
        first = et.first_face_s
        if first is None and et.faces_max > 0:
            first = min((g.time_s for g in et.gaze), default=None)
        return first, "eye_tracking"
    if (od := up.objects) is not None:
        found = [o.first_s for o in od.objects if o.label.lower() in _FACE_LABELS]
        return (min(found) if found else None), "object_detection"
    return None, None


def _call_to_action(
    x: _Inputs, up: _Upstream, dur: float, region: float, hook_end: float
) -> CallToAction | None:
    """The earliest call to action in the clip's last ``region`` share, after the hook."""
    after = max(dur * (1.0 - region), hook_end)
    found: list[CallToAction] = []
    if up.transcript is not None:
        for seg in up.transcript.segments:
            if seg.start_s >= after and _CTA_WORDS.search(seg.text):
                found.append(
                    CallToAction(start_s=seg.start_s, source="speech_transcription", text=seg.text)
                )
    for t in x.texts or []:
        if t.start_s >= after and _CTA_WORDS.search(t.text):
            found.append(CallToAction(start_s=t.start_s, source="text_overlay", text=t.text))
    llava = up.llava.call_to_action if up.llava is not None else None
    if not found and llava:
        # A description with no time: the usual place, the last hook-length of the clip.
        found.append(
            CallToAction(start_s=max(dur - 3.0, hook_end), source="video_llava", text=llava)
        )
    return min(found, key=lambda c: c.start_s) if found else None


def _opening_loudness(x: _Inputs, hook_end: float) -> tuple[float | None, float | None]:
    """The loudness ramp over the hook (least-squares slope, dB/s) and the start level
    (the first second against the clip's integrated loudness, LU); None where unknown."""
    ramp = level = None
    if x.loudness:
        pts = [(t, v) for t, v in x.loudness if t <= hook_end]
        if len(pts) >= 2:
            t, v = np.array(pts).T
            ramp = float(np.polyfit(t, v, 1)[0])
        first = _energy_mean([v for t, v in x.loudness if t < 1.0])
        if first is not None and x.integrated_lufs is not None:
            level = first - x.integrated_lufs if x.integrated_lufs > _LUFS_FLOOR else None
    return ramp, level


def _weighted(raw: list[tuple[str, float, float, str]]) -> tuple[list[HookFactor], float | None]:
    """The hook's factors from (name, value, weight, detail), their weights renormalised
    over those present, and the score (their points' sum; None without any factor)."""
    total = sum(w for _, _, w, _ in raw)
    factors = [
        HookFactor(
            name=n,
            value=round(v, 3),
            weight=round(w / total, 3),
            points=round(v * w / total, 4),
            detail=d,
        )
        for n, v, w, d in raw
    ]
    score = round(sum(v * w for _, v, w, _ in raw) / total, 3) if factors else None
    return factors, score


def _covered(spans: Iterable[tuple[float, float]], a: float, b: float) -> float:
    """Seconds of [a, b) covered by the union of ``spans``."""
    clipped = sorted((max(s, a), min(e, b)) for s, e in spans if e > a and s < b)
    total, reach = 0.0, a
    for s, e in clipped:
        if e > reach:
            total += e - max(s, reach)
            reach = e
    return total


def _energy_mean(lufs: list[float]) -> float | None:
    if not lufs:
        return None
    return float(10.0 * np.log10(np.mean(10.0 ** (np.asarray(lufs) / 10.0))))


def _mean_over(curve: np.ndarray, a: float, b: float) -> float:
    lo, hi = int(np.floor(a)), max(int(np.ceil(b)), int(np.floor(a)) + 1)
    return float(curve[lo:hi].mean()) if lo < len(curve) else float(curve[-1])


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def _r(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(float(v), digits)


def _s(v: float | None, unit: str = "s") -> str:
    return "none" if v is None else f"{v:.2f} {unit}"
