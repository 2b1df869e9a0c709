"""Sound effects: timed sound events (whooshes, impacts, dings, applause, laughter, record
scratches, explosions ...) with their onset, end and confidence, and whether each lands on
a cut.

Where the events are is found by DSP, whatever the weights (:func:`find_events`), on the
10 ms level envelope of the clip's sound:

* **background**: the running median of the level over ``background_s`` either side. A
  voice or a music bed that fills most of that stretch is the background; an effect of a
  second or less is not;
* **candidates**: stretches whose level stands ``stand_out_db`` or more above the
  background. Each starts where its rise leaves the background (the first frame before it
  less than ``edge_db`` above), so a whoosh's onset is its first sound, not its loudest,
  and ends where the sound has decayed back to within ``edge_db`` of the background (at
  most ``max_event_s`` later). A stretch holding a second sharp rise (a new attack of
  ``split_rise_db`` within 50 ms) is split there;
* **beats do not flood the output**: when the clip has a steady pulse (librosa's beat
  tracker, accepted when the onset envelope repeats at the tracked period: pulse clarity
  ``min_pulse_clarity``), the beat grid (a line fitted through the tracked beats, extended
  over the clip, shifted onto the candidates' own attacks) is laid over the candidates: one
  whose onset lies within ``beat_tolerance_s`` of the grid is the music's own beat and is
  dropped, unless its peak is ``beat_margin_db`` louder than the on-beat candidates' median
  (an effect that happens to hit on the beat); ``beat_suppressed`` counts them;
* **nor does speech**: syllables stand out of the pauses between words (and espeak's
  voiced ones read as ``tonal``). A candidate amid speech (on one side of it at least,
  within ``background_s``, the windows overlapping it left out: at least 1.5 s of windows,
  two of them, and 60 % of that side's sounding windows are speech to audio_environment's
  speech cues, :func:`.environment.measure`) is a syllable unless its peak is
  ``speech_margin_db`` louder than that speech's 95th-percentile level;
  ``speech_suppressed`` counts them. One side is enough: the first and last words of an
  utterance have speech on one side only, and the cues miss about one window in four of
  espeak's speech over ducked music (fricatives, long vowels), so with both sides pooled
  the music beyond the utterance outvoted it (the demo sample's 2.14 and 7.59 s
  syllables came out as tonal events);
* each event gets a DSP ``shape``: ``tonal`` (its spectrum is a few lines: bells, dings,
  beeps), ``impulsive`` (it reaches its peak within 30 ms and is over within 150 ms:
  clicks, hits, shots), ``swept`` (noise whose spectral centroid moves by an octave or
  more: whooshes, risers), or ``other``.

What the events are comes from the AudioSet classifier (:mod:`._audioset`): each event's
audio (from 50 ms before its onset, at least 1 s, padded to AST's 10.24 s) is classified
and the label is the most probable class of :data:`SFX_CLASSES`, a committed list of
AudioSet's sound-effect-like classes; ``confidence`` is that class's probability. With
real weights an event whose best effect class stays under ``min_confidence`` is dropped
(speech or music that happened to stand out); synthetic weights keep every event (their
labels and confidences are random by nature). Without the classifier's weights the events
are still found and placed: the analyzer answers ``partial``, every event kept with
``label`` and ``confidence`` null (``Result.made_by_model``) and the command that fetches the
weights.

``on_cut``: the onset lies within ``cut_tolerance_s`` of a cut of cut_analysis
(``cuts[].time_s``); ``cut_offset_s`` is the signed distance to the nearest cut (onset
minus cut; None without cuts). ``on_cut_share``: the share of events on a cut.

Known limits: two effects less than ~50 ms apart are one event; an effect that stands
less than ``stand_out_db`` over the background (a soft whoosh under loud music) is
missed; amid continuous speech an effect must be ``speech_margin_db`` louder than the
voice's peaks (a click at the generator's default gain over -20 dBFS speech is not, nor
a ding at that gain: measured), and so must an effect within ~1 s of speech's start or end
(the speech on that side makes it amid speech: a ding 0.7 s after the demo sample's last
word is held back); a syllable next to another effect that fools the speech cues in most
windows on both sides may still come out as an event (with real weights it is dropped as
low-confidence, with synthetic ones it is kept). A pulse is assumed steady over the clip
(tempo changes shift the grid). Measured on synthetic sound only: the generator's
impulses, whooshes and dings over a pad (all found within 10 ms of their onsets), over a
110 BPM beat, espeak-ng speech, and the demo sample (espeak-ng speech over music ducked
12 dB: only its whoosh comes out, at 13.01 s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.ndimage

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._audioset import AudioSetTagger
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared
from tiktok_analyzer.analyzers._sound import (
    FPS,
    HOP,
    NFFT,
    dsp_params,
    mono_samples,
    onset_envelope,
    track_pulse,
    warm_up_sound,
)
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    Clip,
)
from tiktok_analyzer.analyzers.environment import DspParams as EnvParams
from tiktok_analyzer.analyzers.environment import measure
from tiktok_analyzer.analyzers.results.cuts import CutAnalysisResult
from tiktok_analyzer.analyzers.results.sfx import (  # noqa: F401 - re-exported
    Shape,
    SoundEffectsResult,
    SoundEvent,
)

__all__ = ["SFX_CLASSES", "DspEvent", "SoundEffects", "find_events"]

log = logging.getLogger(__name__)

#: AudioSet classes (display names) an event may be labelled with: effects that editors
#: lay over short videos, and the sounds that stand in for them.
SFX_CLASSES: tuple[str, ...] = (
    "Whoosh, swoosh, swish",
    "Sound effect",
    "Applause",
    "Cheering",
    "Laughter",
    "Giggle",
    "Belly laugh",
    "Snicker",
    "Baby laughter",
    "Ding",
    "Ding-dong",
    "Chime",
    "Bell",
    "Jingle bell",
    "Ping",
    "Beep, bleep",
    "Boing",
    "Zing",
    "Chirp tone",
    "Scratching (performance technique)",
    "Scratch",
    "Explosion",
    "Boom",
    "Bang",
    "Gunshot, gunfire",
    "Burst, pop",
    "Fireworks",
    "Slap, smack",
    "Whack, thwack",
    "Thump, thud",
    "Thunk",
    "Clang",
    "Smash, crash",
    "Breaking",
    "Shatter",
    "Whip",
    "Slam",
    "Knock",
    "Clicking",
    "Camera",
    "Cash register",
    "Drum roll",
    "Cymbal",
    "Gong",
    "Air horn, truck horn",
    "Vehicle horn, car horn, honking",
    "Siren",
    "Buzzer",
    "Alarm",
    "Telephone bell ringing",
    "Ringtone",
    "Doorbell",
    "Fart",
    "Burping, eructation",
    "Gasp",
    "Screaming",
    "Splash, splatter",
    "Thunder",
    "Crack",
    "Sonar",
)

# Levels are floored here (about a 16-bit recording's noise): what stands out above
# digital silence stands out by this much at most.
_LEVEL_FLOOR = -70.0
# Speech must go on this long on one side of a candidate for it to count as a syllable:
# more than one of audio_environment's 1 s windows (hop 0.5 s), since a single window that
# a nearby effect fooled into reading as speech is no speech going on.
_SPEECH_AROUND_S = 1.5


@dataclass(frozen=True)
class DspEvent:
    start_s: float
    end_s: float
    peak_s: float
    stand_out_db: float
    shape: Shape


@dataclass(frozen=True)
class DspParams:
    background_s: float = 2.0
    stand_out_db: float = 10.0
    edge_db: float = 3.0
    split_rise_db: float = 6.0
    max_event_s: float = 3.0
    min_event_s: float = 0.02
    min_gap_s: float = 0.05
    speech_margin_db: float = 6.0
    min_pulse_clarity: float = 0.35
    beat_tolerance_s: float = 0.07
    beat_margin_db: float = 6.0


def find_events(y: np.ndarray, p: DspParams) -> tuple[list[DspEvent], dict[str, int]]:
    """The clip's sound events by DSP, and how many candidates were dropped as the
    music's beats (``beat``) and as syllables of speech (``speech``)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    padded = np.pad(y, (0, max(0, NFFT - len(y))))
    power = np.abs(librosa.stft(padded, n_fft=NFFT, hop_length=HOP)) ** 2
    n = power.shape[1]
    rms = librosa.feature.rms(y=padded, frame_length=2 * HOP, hop_length=HOP)[0][:n]
    with np.errstate(divide="ignore"):
        # Floored: stand-out over digital silence would otherwise read 100 dB and more.
        level = np.maximum(20.0 * np.log10(rms), _LEVEL_FLOOR)
    size = 2 * round(p.background_s * FPS) + 1
    background = scipy.ndimage.median_filter(level, size=min(size, 2 * n + 1), mode="nearest")
    excess = level - background

    events = _candidates(level, excess, _onsets(level, excess, p), p)

    on_beat = _on_beat(power, [e[0] for e in events], p)
    removed = {"beat": 0, "speech": 0}
    if on_beat.any():
        # An effect that happens to hit on the beat is louder than the beats.
        typical = float(np.median([level[e[2]] for e, b in zip(events, on_beat, strict=True) if b]))
        keep = [
            not b or level[e[2]] >= typical + p.beat_margin_db
            for e, b in zip(events, on_beat, strict=True)
        ]
        removed["beat"] = int(len(keep) - sum(keep))
        events = [e for e, k in zip(events, keep, strict=True) if k]
    freqs = librosa.fft_frequencies(sr=AUDIO_RATE, n_fft=NFFT)
    shapes = [
        _shape(power[:, s:end], freqs, (peak - s) / FPS, (end - s) / FPS)
        for s, end, peak, _ in events
    ]
    if events:
        keep = _not_speech(y, level, events, p)
        removed["speech"] = int(len(keep) - sum(keep))
        events = [e for e, k in zip(events, keep, strict=True) if k]
        shapes = [x for x, k in zip(shapes, keep, strict=True) if k]
    out = [
        DspEvent(
            start_s=s / FPS,
            end_s=min(len(y) / AUDIO_RATE, end / FPS),
            peak_s=peak / FPS,
            stand_out_db=so,
            shape=shape,
        )
        for (s, end, peak, so), shape in zip(events, shapes, strict=True)
    ]
    return out, removed


def _onsets(level: np.ndarray, excess: np.ndarray, p: DspParams) -> list[int]:
    """Frames where a candidate starts: each loud stretch's onset (walked back while the
    level stands ``edge_db`` out), and new attacks inside it."""
    n = len(level)
    loud = excess >= p.stand_out_db
    edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))
    # A new attack inside a loud stretch starts a new event: the level jumps split_rise_db
    # within 5 frames over its minimum of the 5 frames before.
    rise = np.zeros(n)
    if n > 10:
        before = scipy.ndimage.minimum_filter1d(level, 5, origin=2, mode="nearest")
        after = scipy.ndimage.maximum_filter1d(level, 5, origin=-2, mode="nearest")
        rise = after - before
    starts: list[int] = []
    for a, b in runs:
        onset = int(a)
        while onset > 0 and excess[onset - 1] >= p.edge_db:
            onset -= 1
        starts.append(onset)
        t = int(a) + 5
        while t < b:
            if (
                rise[t] >= p.split_rise_db
                and excess[t - 1] < excess[t]
                and level[t] >= level[max(0, t - 5) : t].max() + p.split_rise_db / 2
            ):
                starts.append(t)
                t += 5
            t += 1
    return sorted(set(starts))


def _candidates(
    level: np.ndarray, excess: np.ndarray, starts: list[int], p: DspParams
) -> list[tuple[int, int, int, float]]:
    """(start, end, peak, stand-out) of each onset that makes an event: it ends where the
    level falls back under ``edge_db`` after its peak, at the next onset or ``max_event_s``
    on; too short or too faint ones are dropped."""
    n = len(level)
    max_len = round(p.max_event_s * FPS)
    min_gap = max(1, round(p.min_gap_s * FPS))
    events: list[tuple[int, int, int, float]] = []
    for k, s in enumerate(starts):
        if events and s - events[-1][0] < min_gap:
            continue
        limit = min(n, s + max_len, starts[k + 1] if k + 1 < len(starts) else n)
        seg = excess[s:limit]
        peak = s + int(np.argmax(seg))
        after_peak = np.flatnonzero(excess[peak:limit] < p.edge_db)
        end = peak + int(after_peak[0]) if len(after_peak) else limit
        if (end - s) / FPS < p.min_event_s or excess[peak] < p.stand_out_db:
            continue
        events.append((s, end, peak, float(excess[peak])))
    return events


def _not_speech(
    y: np.ndarray, level: np.ndarray, events: list[tuple[int, int, int, float]], p: DspParams
) -> list[bool]:
    """False for the candidates that are speech's own syllables: speech goes on on one
    side of them at least (within ``background_s``, not counting the windows that overlap
    the candidate, at least ``_SPEECH_AROUND_S`` of windows and 60 % of that side's
    sounding ones are speech to the cues of audio_environment's classifier,
    :func:`.environment.measure`: a lone sound the cues take for a word is no syllable
    among others), and their peak is not ``speech_margin_db`` louder than that speech (the
    95th percentile of its level, over its windows on both sides)."""
    m = measure(y, EnvParams(), pulse=False)
    starts = m.starts_s * FPS
    stops = starts + m.window_s * FPS
    reach = round(p.background_s * FPS)
    guard = round(0.05 * FPS)
    around = round(_SPEECH_AROUND_S * FPS)

    def spoken_frames(windows: np.ndarray, s: int, end: int) -> np.ndarray:
        frames = np.zeros(len(level), bool)
        for a, b in zip(starts[windows], stops[windows], strict=True):
            frames[int(a) : int(b)] = True
        frames[max(0, s - guard) : end + guard] = False
        return frames

    keep = []
    for s, end, peak, _ in events:
        before = (stops <= s - guard) & (stops > s - reach) & m.sounding
        after = (starts >= end + guard) & (starts < end + reach) & m.sounding
        # Speech goes on on one side of it at least: there, at least _SPEECH_AROUND_S of
        # windows and most of the sounding ones are speech (other effects nearby can fool
        # the cues in a window or two, not in most). One side is enough: the first and
        # last words of an utterance have speech on one side only, and pooled with the
        # other side the pause or the music beyond the utterance outvotes it.
        amid = [
            side.any()
            and spoken_frames(side & m.speech, s, end).sum() >= around
            and (side & m.speech).sum() >= 0.6 * side.sum()
            for side in (before, after)
        ]
        if not any(amid):
            keep.append(True)
            continue
        # The voice's level: its windows on both sides.
        frames = spoken_frames((before | after) & m.speech, s, end)
        keep.append(bool(level[peak] >= np.percentile(level[frames], 95) + p.speech_margin_db))
    return keep


def _on_beat(power: np.ndarray, starts: list[int], p: DspParams) -> np.ndarray:
    """Which onsets (frames) fall on the tracked beats of a steady pulse."""
    out = np.zeros(len(starts), bool)
    n = power.shape[1]
    if not starts or n < round(2 * FPS):
        return out
    mel = librosa.feature.melspectrogram(S=power, sr=AUDIO_RATE, n_mels=64)
    tempo, beats, clarity = track_pulse(onset_envelope(mel))
    if tempo <= 0 or len(beats) < 4 or clarity < p.min_pulse_clarity:
        return out
    # The grid: a line through the tracked beats against their beat numbers (the
    # tracker's own tempo is a whole lag in frames, and drifts off over a long clip),
    # extended over the whole clip.
    beats = np.asarray(beats, dtype=np.float64)
    period = 60.0 / tempo * FPS
    numbers = np.concatenate([[0.0], np.cumsum(np.maximum(1, np.round(np.diff(beats) / period)))])
    period, phase = np.polyfit(numbers, beats, 1)
    x = np.asarray(starts, dtype=np.float64)
    dist = x - (phase + np.round((x - phase) / period) * period)
    # The tracker's beats may sit a constant few frames off the attacks (measured 60 ms
    # late on a synthetic kick): the candidates near the grid say by how much.
    near = dist[np.abs(dist) < period / 4]
    offset = float(np.median(near)) if len(near) >= 3 else 0.0
    return np.abs(dist - offset) <= p.beat_tolerance_s * FPS


def _shape(power: np.ndarray, freqs: np.ndarray, rise_s: float, length_s: float) -> Shape:
    """The DSP shape of an event from its spectrogram (bins x frames)."""
    if power.shape[1] == 0 or power.sum() <= 0:
        return "other"
    spectrum = power.mean(axis=1)
    band = (freqs >= 100.0) & (freqs <= 7000.0)
    s = np.maximum(spectrum[band], 1e-20)
    # Share of the energy in the 5 % strongest bins: a few partials hold most of a tone's.
    top = np.sort(s)[::-1][: max(1, len(s) // 20)].sum() / s.sum()
    if top >= 0.6:
        return "tonal"
    if rise_s <= 0.03 and length_s <= 0.15:
        return "impulsive"
    frames = power[band]
    weight = frames.sum(axis=0)
    ok = weight > 0.01 * weight.max()
    if ok.sum() >= 5:
        centroid = (freqs[band][:, None] * frames).sum(axis=0)[ok] / weight[ok]
        if np.log2(centroid.max() / max(centroid.min(), 1.0)) >= 1.0:
            return "swept"
    return "other"


class SoundEffects(LearnedAnalyzer):
    """Timed sound effects, what they are, and whether they land on cuts."""

    name = "sound_effects"
    frames = None
    audio = True
    depends_on = ("cut_analysis",)

    @dataclass
    class Params:
        batch_size: int = 8
        # Events classified per clip, the most salient first (a ten-minute clip may hold
        # hundreds of candidates).
        max_events: int = 100
        # The model hears each event from pre_roll_s before its onset, at least window_s.
        pre_roll_s: float = 0.05
        window_s: float = 1.0
        # Real weights only: events whose best effect class is less probable are dropped.
        min_confidence: float = 0.1
        cut_tolerance_s: float = 0.15
        # DSP event finder (see find_events / DspParams).
        background_s: float = 2.0
        stand_out_db: float = 10.0
        edge_db: float = 3.0
        split_rise_db: float = 6.0
        max_event_s: float = 3.0
        min_pulse_clarity: float = 0.35
        beat_tolerance_s: float = 0.07
        beat_margin_db: float = 6.0
        speech_margin_db: float = 6.0

    Result = SoundEffectsResult

    def load(self, weights: weights_layer.Weights) -> None:
        self.kind = weights.kind
        self.tagger = AudioSetTagger(weights, self.device, self.params.batch_size)
        self.sfx_idx = self.tagger.indices(SFX_CLASSES)
        self.warm_up_measures()

    def warm_up_measures(self) -> None:
        # librosa's beat tracker and HPSS are numba-compiled on first use: pay that here,
        # in Triton's initialize, not on the first clip.
        find_events(warm_up_sound(), self._dsp())

    def _dsp(self) -> DspParams:
        return dsp_params(DspParams, self.params)

    def _events(self, y: np.ndarray) -> tuple[list[DspEvent], dict[str, int]]:
        """The DSP's events, at most ``max_events`` (the most salient), in time order."""
        events, removed = find_events(y, self._dsp())
        if len(events) > self.params.max_events:
            salient = sorted(events, key=lambda e: -e.stand_out_db)[: self.params.max_events]
            events = sorted(salient, key=lambda e: e.start_s)
        return events, removed

    def measure_only(self, clip: Clip) -> Result:
        """No classifier: every DSP event, with its shape and cut placement, unlabelled."""
        y = mono_samples(clip)
        events, removed = self._events(y)
        return self._result(clip, len(y) / AUDIO_RATE, events, None, removed)

    def prepare(self, clip: Clip) -> Prepared:
        """Events found by the DSP now; the model hears each event's window, batched with
        the other clips' windows."""
        p = self.params
        y = mono_samples(clip)
        events, removed = self._events(y)
        windows = []
        for e in events:
            a = max(0, round((e.start_s - p.pre_roll_s) * AUDIO_RATE))
            length = max(p.window_s, e.end_s - e.start_s + p.pre_roll_s)
            b = min(len(y), a + min(round(length * AUDIO_RATE), self.tagger.window_samples))
            windows.append(y[a:b])
        return Prepared(inputs=windows, state=(len(y) / AUDIO_RATE, events, removed))

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.tagger.predict(inputs)[:, self.sfx_idx]

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[np.ndarray]) -> Result:
        duration, events, removed = prepared.state
        rows = np.stack(outputs) if outputs else np.zeros((0, len(self.sfx_idx)), np.float32)
        return self._result(clip, duration, events, rows, removed)

    def _result(
        self,
        clip: Clip,
        duration: float,
        events: list[DspEvent],
        rows: np.ndarray | None,
        removed: dict[str, int],
    ) -> Result:
        """The result from the DSP's events and the classifier's rows (one per event; None
        without the model: every event kept, unlabelled)."""
        p = self.params
        upstream_cuts = clip.upstream_result(CutAnalysisResult)
        cuts_known = upstream_cuts is not None
        cuts = np.array([c.time_s for c in upstream_cuts.cuts] if upstream_cuts else [])
        found: list[SoundEvent] = []
        for k, e in enumerate(events):
            label = confidence = None
            if rows is not None:
                best = int(np.argmax(rows[k]))
                prob = float(rows[k][best])
                if self.kind == "real" and prob < p.min_confidence:
                    continue
                label, confidence = SFX_CLASSES[best], round(prob, 4)
            offset = None
            if len(cuts):
                nearest = float(cuts[np.argmin(np.abs(cuts - e.start_s))])
                offset = e.start_s - nearest
            found.append(
                SoundEvent(
                    label=label,
                    start_s=round(e.start_s, 3),
                    end_s=round(e.end_s, 3),
                    confidence=confidence,
                    shape=e.shape,
                    stand_out_db=round(e.stand_out_db, 2),
                    on_cut=offset is not None and abs(offset) <= p.cut_tolerance_s,
                    cut_offset_s=None if offset is None else round(offset, 3),
                )
            )
        on_cut = sum(e.on_cut for e in found)
        return self.Result(
            events=found,
            on_cut_share=round(on_cut / len(found), 3) if found else 0.0,
            cuts_known=cuts_known,
            beat_suppressed=removed["beat"],
            speech_suppressed=removed["speech"],
            events_per_minute=round(len(found) / max(duration, 1e-9) * 60.0, 2),
        )
