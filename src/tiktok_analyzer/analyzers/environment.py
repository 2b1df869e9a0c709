"""Audio environment: where the clip sounds recorded (scene), how much of it is music,
speech and noise, how far the foreground stands above the background noise, and how
reverberant the space is.

Two sources, kept apart so each says what it can:

* **scene** comes from the AudioSet classifier (AST, :mod:`._audioset`): the clip is heard
  in windows of 10.24 s (at most ``max_windows``, spread over the clip), each class's
  probability is averaged over the windows, and each scene scores the highest averaged
  probability among its AudioSet classes (:data:`SCENES`, the mapping). With synthetic
  weights the scores are random by nature; the field is there, the values mean nothing.
* **music_share / speech_share / noise_share, snr_db, reverberation** are MEASURED by a
  DSP frame classifier (:func:`measure`), so they hold whatever the weights. With real
  weights the model may overrule the DSP where it is sure (:func:`_blend`);
  ``shares_source`` says which produced the shares (``dsp`` or ``dsp+model``). Without
  the classifier's weights the analyzer answers ``partial``: these measures as ever,
  ``scene`` and ``audioset_top`` null (``Result.made_by_model``), with the command that fetches the
  weights.

The DSP classifier labels overlapping 1 s windows every 0.5 s (speech and music can both
be present: a voice over a music bed):

* speech: harmonic energy (median-filter HPSS on a 64-band mel spectrum) is a fair share of
  the 250-4000 Hz voice band (voicing), it comes and goes at the syllable rate (2.5-8 Hz
  modulation depth of its envelope, the ~4 Hz syllabic rhythm) and the zero-crossing rate
  swings between vowels and consonants. The cues of audio_analysis's classifier
  (:func:`.audio.classify_windows`), measured here on 10 ms frames;
* music: a sustained bed that is tonal (the per-bin minimum of the smoothed spectrum over
  0.5 s holds ``min_bed_share`` of the window's energy and is peaky across frequency:
  notes, chords, pads) or a steady beat (the window holds a beat of librosa's tracker
  where the onset envelope repeats at the tracked period within 2 s either side: pulse
  clarity ``min_pulse_clarity``);
* noise: a sustained bed that is flat across frequency (spectral flatness of the bed: hiss,
  wind, traffic rumble, room tone), or sound that is neither speech nor music.

``snr_db`` compares the foreground (the speech and music windows' mean power; every
sounding window when there are none) with the broadband noise floor: per window, the
0.5 s per-bin minimum of the smoothed spectrum, reduced across frequency by a low
percentile over ~1 kHz of bins so that a held chord's partials (tonal lines) drop out and
a broadband floor stays; the clip's floor is the 10th percentile over its sounding windows
(pauses show the background best), raised by the estimator's bias measured on white noise
(6.9 dB). A clean recording with digital silence between words reads high (capped at
100 dB).

``reverberation`` estimates the decay time from free decays: after each level peak that
falls by 25 dB or more, a line fitted to the envelope from 5 dB to 25 dB under the peak
(T20, extended to 60 dB: ``rt60_s``). Sources that stop abruptly decay at the room's rate;
notes that die away slowly decay slower than the room, so the statistic is a low
percentile of the decays (the fastest ones are the room). Labels: ``dry`` under
``room_rt60_s``, ``hall`` from ``hall_rt60_s``, ``room`` between, ``unknown`` without a
usable decay. Known limit: a source whose every sound decays slowly (a kick drum's 70 ms
envelope reads ~0.5 s) caps what can be seen: the estimate is an upper bound of the room's.

Known limits: a music bed more than ~6 dB under a voice is not heard in the voice's
windows (a lower ``min_bed_share`` makes espeak-ng's held vowels read as music); speech in
a hall loses its syllabic modulation and reads as noise (RT60 1.2 s: 10 % speech); a beat's
pulse is judged over 2 s either side, so music's share spills ~0.5 s past its end.
Measured on synthetic sound only (espeak-ng speech, a chord pad, a synthetic kick, white
noise, exponential-decay noise reverbs): speech over white noise at 10 and 20 dB reads
within 4 dB, RT60 0.6 s and 1.5 s within 35 %.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import librosa
import numpy as np
import scipy.ndimage
import scipy.signal

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._audioset import (
    WINDOW_S,
    AudioSetTagger,
    spread_windows,
)
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared
from tiktok_analyzer.analyzers._sound import (
    DBFS_FLOOR,
    FPS,
    HOP,
    NFFT,
    dbfs,
    dsp_params,
    modulation_depth,
    mono_samples,
    onset_envelope,
    pulse_clarity,
    spectral_flatness,
    track_pulse,
    warm_up_sound,
)
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    Clip,
)
from tiktok_analyzer.analyzers.results.environment import (  # noqa: F401 - re-exported
    AudioEnvironmentResult,
    Reverberation,
    ReverbLabel,
    SceneScore,
    ShareWindow,
)

__all__ = ["SCENES", "AudioEnvironment", "Measures", "measure"]

log = logging.getLogger(__name__)

#: Each scene and the AudioSet classes (display names) that speak for it: the scene scores
#: the highest clip-level probability among them.
SCENES: dict[str, tuple[str, ...]] = {
    "indoor": (
        "Inside, small room",
        "Inside, large room or hall",
        "Inside, public space",
        "Reverberation",
        "Echo",
        "Television",
        "Radio",
        "Air conditioning",
        "Mechanical fan",
    ),
    "outdoor": (
        "Outside, urban or manmade",
        "Outside, rural or natural",
        "Wind",
        "Wind noise (microphone)",
        "Field recording",
        "Environmental noise",
    ),
    "studio": (
        "Narration, monologue",
        "Speech synthesizer",
        "Background music",
        "Soundtrack music",
        "Theme music",
        "Jingle (music)",
        "Electronic music",
        "Sound effect",
    ),
    "home": (
        "Door",
        "Dishes, pots, and pans",
        "Cutlery, silverware",
        "Microwave oven",
        "Blender",
        "Water tap, faucet",
        "Vacuum cleaner",
        "Domestic animals, pets",
        "Frying (food)",
        "Typing",
    ),
    "street": (
        "Traffic noise, roadway noise",
        "Car passing by",
        "Vehicle horn, car horn, honking",
        "Motor vehicle (road)",
        "Siren",
        "Emergency vehicle",
        "Bus",
        "Motorcycle",
        "Skateboard",
        "Bicycle",
    ),
    "nature": (
        "Outside, rural or natural",
        "Bird",
        "Bird vocalization, bird call, bird song",
        "Rustling leaves",
        "Stream",
        "Ocean",
        "Waves, surf",
        "Rain",
        "Thunderstorm",
        "Insect",
        "Cricket",
        "Wild animals",
    ),
    "crowd": (
        "Crowd",
        "Chatter",
        "Hubbub, speech noise, speech babble",
        "Cheering",
        "Applause",
        "Children playing",
        "Cacophony",
    ),
    "vehicle": (
        "Vehicle",
        "Car",
        "Engine",
        "Idling",
        "Accelerating, revving, vroom",
        "Train",
        "Subway, metro, underground",
        "Aircraft",
        "Aircraft engine",
        "Helicopter",
        "Boat, Water vehicle",
        "Truck",
    ),
}

# The model's view of the shares (real weights only, see _blend).
_MODEL_MUSIC = ("Music",)
_MODEL_SPEECH = ("Speech", "Narration, monologue", "Conversation")

_N_MELS = 64
# The floor estimate (a minimum over 0.5 s, then a low percentile across frequency) reads
# under the true level of a noise; measured 6.9 dB under on white noise, added back.
_FLOOR_BIAS_DB = 6.9


@dataclass
class Measures:
    """What the DSP frame classifier measured on one clip."""

    starts_s: np.ndarray  # (W,) window starts
    window_s: float
    hop_s: float
    sounding: np.ndarray  # (W,) bool
    speech: np.ndarray  # (W,) bool
    music: np.ndarray
    noise: np.ndarray
    flat_bed: np.ndarray  # (W,) bool: a sustained bed flat across frequency
    signal_dbfs: float
    noise_floor_dbfs: float
    rt60_s: float | None
    decays: int
    duration_s: float
    detail: dict[str, np.ndarray]  # per-window cues, for tuning and tests

    def share(self, mask: np.ndarray) -> float:
        """Share of the clip's time covered by the windows in ``mask`` (each window owns the
        hop-long stretch around its centre)."""
        if self.duration_s <= 0 or len(mask) == 0:
            return 0.0
        owned = _owned_spans(self.starts_s, self.window_s, self.hop_s, self.duration_s)
        return float(
            np.clip(
                sum(e - s for (s, e), m in zip(owned, mask, strict=True) if m) / self.duration_s,
                0.0,
                1.0,
            )
        )


def _owned_spans(
    starts: np.ndarray, window_s: float, hop_s: float, duration_s: float
) -> list[tuple[float, float]]:
    """The stretch of the clip each window speaks for: from midway to its neighbours."""
    centres = starts + window_s / 2
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [duration_s]])
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@dataclass(frozen=True)
class DspParams:
    """Thresholds of :func:`measure` (the analyzer's Params carry the same names)."""

    silence_dbfs: float = -50.0
    window_s: float = 1.0
    hop_s: float = 0.5
    min_voiced: float = 0.3
    min_syllabic: float = 0.25
    min_zcr_spread: float = 0.05
    min_bed_share: float = 0.25
    max_tonal_flatness: float = 0.2
    min_pulse_clarity: float = 0.35
    room_rt60_s: float = 0.3
    hall_rt60_s: float = 1.0
    decay_percentile: float = 20.0


@dataclass
class _Spectra:
    """The frame-level views of one clip that the window cues read (10 ms frames)."""

    power: np.ndarray  # (257, T) STFT power
    level: np.ndarray  # (T,) RMS level, dBFS
    zcr: np.ndarray  # (T,) zero-crossing rate
    voice_h: np.ndarray  # (T,) harmonic mel power in the voice band (250 Hz - 4 kHz)
    voice_p: np.ndarray  # (T,) percussive mel power in the voice band
    smooth: np.ndarray  # (bins, T) 80 Hz - 5 kHz power smoothed over 90 ms
    bed: np.ndarray  # (bins, T) the sustained bed: per-bin minimum of smooth over 0.5 s
    pulse: np.ndarray  # (T,) bool: a tracked beat of a steady pulse
    to_ms: float  # STFT power sum -> mean square of the signal


def _spectra(y: np.ndarray, p: DspParams, pulse: bool) -> _Spectra:
    padded = np.pad(y, (0, max(0, NFFT - len(y))))
    power = np.abs(librosa.stft(padded, n_fft=NFFT, hop_length=HOP)) ** 2  # (257, T)
    n_frames = power.shape[1]
    freqs = librosa.fft_frequencies(sr=AUDIO_RATE, n_fft=NFFT)
    mel = librosa.feature.melspectrogram(S=power, sr=AUDIO_RATE, n_mels=_N_MELS)
    mel_hz = librosa.mel_frequencies(_N_MELS + 2, fmax=AUDIO_RATE / 2)[1:-1]
    rms = librosa.feature.rms(y=padded, frame_length=2 * HOP, hop_length=HOP)[0][:n_frames]
    with np.errstate(divide="ignore"):
        level = np.maximum(20.0 * np.log10(rms), DBFS_FLOOR)
    zcr = librosa.feature.zero_crossing_rate(padded, frame_length=2 * HOP, hop_length=HOP)[0][
        :n_frames
    ]
    # STFT power -> mean square of the signal (the same frames): dBFS of spectral sums.
    to_ms = float(np.mean(rms**2)) / max(float(power.sum(axis=0).mean()), 1e-30)

    harmonic, percussive = librosa.decompose.hpss(mel, kernel_size=(17, 9))
    band = (mel_hz >= 250.0) & (mel_hz <= 4000.0)

    # The sustained bed: smoothed over 90 ms (partials a few bins apart beat), then the
    # per-bin minimum over 0.5 s.
    keep = (freqs >= 80.0) & (freqs <= 5000.0)
    smooth = scipy.ndimage.uniform_filter1d(power[keep], 9, axis=1)
    bed = scipy.ndimage.minimum_filter1d(smooth, round(0.5 * FPS), axis=1, mode="nearest")
    return _Spectra(
        power=power,
        level=level,
        zcr=zcr,
        voice_h=harmonic[band].sum(axis=0),
        voice_p=percussive[band].sum(axis=0),
        smooth=smooth,
        bed=bed,
        pulse=_pulse_frames(mel, p.min_pulse_clarity) if pulse else np.zeros(n_frames, bool),
        to_ms=to_ms,
    )


@dataclass
class _Windows:
    """The window classifier's verdicts and the measures the SNR needs, per window."""

    sounding: np.ndarray
    speech: np.ndarray
    music: np.ndarray
    flat_bed: np.ndarray
    power: np.ndarray  # mean STFT power
    floor: np.ndarray  # broadband floor of the bed
    detail: dict[str, np.ndarray]


def _classify_windows(s: _Spectra, starts: np.ndarray, p: DspParams) -> _Windows:
    w, n_frames = len(starts), s.power.shape[1]
    out = _Windows(
        *(np.zeros(w, bool) for _ in range(4)),
        power=np.zeros(w),
        floor=np.zeros(w),
        detail={
            k: np.zeros(w) for k in ("voiced", "syllabic", "zcr_spread", "bed_share", "flatness")
        },
    )
    for i, start in enumerate(starts):
        lo = int(start * FPS)
        hi = min(n_frames, max(lo + 1, int(np.ceil((start + p.window_s) * FPS))))
        if s.level[lo:hi].max(initial=DBFS_FLOOR) < p.silence_dbfs:
            continue
        out.sounding[i] = True
        total = float(s.smooth[:, lo:hi].sum())
        out.power[i] = float(s.power[:, lo:hi].sum(axis=0).mean())
        bed_spec = s.bed[:, lo:hi].mean(axis=1)
        # Broadband floor: tonal lines (partials of notes, hum) removed by a low percentile
        # across ~1 kHz of bins.
        out.floor[i] = float(
            scipy.ndimage.percentile_filter(bed_spec, 20, size=31, mode="nearest").sum()
        )
        bed_share = float(bed_spec.sum() * (hi - lo)) / max(total, 1e-30)
        flatness = spectral_flatness(bed_spec)
        h, q = s.voice_h[lo:hi], s.voice_p[lo:hi]
        voiced = float(h.sum() / max(h.sum() + q.sum(), 1e-30))
        syllabic = modulation_depth(np.sqrt(h), FPS, 2.5, 8.0) if hi - lo >= 8 else 0.0
        zcr_spread = float(s.zcr[lo:hi].std())
        for key, value in zip(
            out.detail, (voiced, syllabic, zcr_spread, bed_share, flatness), strict=True
        ):
            out.detail[key][i] = value
        out.speech[i] = (
            voiced >= p.min_voiced and syllabic >= p.min_syllabic and zcr_spread >= p.min_zcr_spread
        )
        has_bed = bed_share >= p.min_bed_share
        out.music[i] = (has_bed and flatness <= p.max_tonal_flatness) or s.pulse[lo:hi].any()
        out.flat_bed[i] = has_bed and flatness > p.max_tonal_flatness
    return out


def measure(y: np.ndarray, p: DspParams, pulse: bool = True) -> Measures:
    """Run the DSP frame classifier, the SNR and the decay-time estimate on 16 kHz audio.
    ``pulse`` False skips the beat tracker (music then comes from tonal beds alone)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    duration = len(y) / AUDIO_RATE
    s = _spectra(y, p, pulse)
    starts = _window_starts(duration, p.window_s, p.hop_s)
    win = _classify_windows(s, starts, p)
    sounding = win.sounding
    noise = sounding & (win.flat_bed | ~(win.speech | win.music))
    fg = sounding & (win.speech | win.music)
    fg = fg if fg.any() else sounding
    signal = float(win.power[fg].mean()) if fg.any() else 0.0
    # The quieter windows' floor: pauses between phrases show the background best.
    floor = float(np.percentile(win.floor[sounding], 10)) if sounding.any() else 0.0
    rt60, decays = _decay_time(s.level, p.decay_percentile)
    return Measures(
        starts_s=starts,
        window_s=p.window_s,
        hop_s=p.hop_s,
        sounding=sounding,
        speech=win.speech & sounding,
        music=win.music & sounding,
        noise=noise,
        flat_bed=win.flat_bed & sounding,
        signal_dbfs=dbfs(signal * s.to_ms),
        noise_floor_dbfs=dbfs(floor * s.to_ms * 10 ** (_FLOOR_BIAS_DB / 10))
        if floor > 0
        else DBFS_FLOOR,
        rt60_s=rt60,
        decays=decays,
        duration_s=duration,
        detail=win.detail,
    )


def _window_starts(duration: float, window_s: float, hop_s: float) -> np.ndarray:
    if duration <= window_s:
        return np.array([0.0])
    n = int(np.ceil((duration - window_s) / hop_s)) + 1
    return np.minimum(np.arange(n) * hop_s, duration - window_s)


def _pulse_frames(mel: np.ndarray, min_clarity: float) -> np.ndarray:
    """Frames (bool, one per STFT frame) holding a tracked beat of a steady pulse: beats of
    librosa's tracker when the onset envelope repeats at the tracked period."""
    n = mel.shape[1]
    out = np.zeros(n, bool)
    env = onset_envelope(mel)
    tempo, beats, clarity = track_pulse(env)
    if tempo <= 0 or clarity < min_clarity:
        return out
    # The tracker lays beats over the whole clip; a beat counts where the pulse is there:
    # the envelope repeats at the period within 2 s either side (speech after the music
    # stops has onsets, not a pulse).
    period = 60.0 / tempo * FPS
    reach = round(2.0 * FPS)
    for b in beats:
        lo, hi = max(0, b - reach), min(len(env), b + reach)
        if pulse_clarity(env[lo:hi], period) >= min_clarity:
            out[min(b, n - 1)] = True
    return out


def _decay_time(level: np.ndarray, percentile: float) -> tuple[float | None, int]:
    """RT60 (s) from the free decays of the 10 ms level envelope (dB), and how many."""
    if len(level) < 10:
        return None, 0
    env = scipy.ndimage.uniform_filter1d(level, 3, mode="nearest")
    peaks, _ = scipy.signal.find_peaks(env, prominence=10.0, distance=round(0.05 * FPS))
    times: list[float] = []
    limit = round(3.0 * FPS)
    for pk in peaks:
        top = env[pk]
        seg = env[pk : pk + limit]
        # Follow the decay while it keeps falling (a rise of 3 dB over its running
        # minimum ends it: the next sound).
        run_min = np.minimum.accumulate(seg)
        stop = np.flatnonzero(seg > run_min + 3.0)
        seg = seg[: stop[0]] if len(stop) else seg
        a = np.flatnonzero(seg <= top - 5.0)
        b = np.flatnonzero(seg <= top - 25.0)
        # Free decays only: one that levels off into a bed (music, noise) just under the
        # fitted range would bend the line; it must go on falling 5 dB past it.
        if len(a) == 0 or len(b) == 0 or seg.min() > top - 30.0:
            continue
        lo, hi = int(a[0]), int(b[0])
        if hi - lo < 2:
            times.append((hi - lo + 1) / FPS * 3.0)  # faster than the frames resolve
            continue
        t = np.arange(lo, hi + 1) / FPS
        slope = np.polyfit(t, seg[lo : hi + 1], 1)[0]
        if slope < 0:
            times.append(float(-60.0 / slope))
    if not times:
        return None, 0
    return float(np.percentile(times, percentile)), len(times)


def _reverb_label(rt60: float | None, p: DspParams) -> ReverbLabel:
    if rt60 is None:
        return "unknown"
    if rt60 < p.room_rt60_s:
        return "dry"
    return "hall" if rt60 >= p.hall_rt60_s else "room"


def _blend(
    m: Measures,
    starts_s: Sequence[float],
    probs: np.ndarray,
    music_i: np.ndarray,
    speech_i: np.ndarray,
) -> None:
    """Real weights only: where the model is sure over one of its 10.24 s windows, it
    overrules the DSP windows inside: probability below 0.1 clears the class, above 0.6
    sets it (in sounding windows). In place."""
    for start, row in zip(starts_s, probs, strict=True):
        inside = m.sounding & (m.starts_s >= start - 1e-6)
        inside &= m.starts_s + m.window_s <= start + WINDOW_S + 1e-6
        for mask, idx in ((m.music, music_i), (m.speech, speech_i)):
            prob = float(row[idx].max())
            if prob < 0.1:
                mask[inside] = False
            elif prob > 0.6:
                mask[inside] = True
    m.noise = m.sounding & (m.flat_bed | ~(m.speech | m.music))


class AudioEnvironment(LearnedAnalyzer):
    """Acoustic scene, music/speech/noise shares, SNR and reverberation of the sound."""

    name = "audio_environment"
    frames = None
    audio = True

    @dataclass
    class Params:
        batch_size: int = 8
        # At most this many 10.24 s windows go through the model (spread over the clip).
        max_windows: int = 24
        window_hop_s: float = 10.0
        # DSP frame classifier (see measure / DspParams).
        silence_dbfs: float = -50.0
        min_voiced: float = 0.3
        min_syllabic: float = 0.25
        min_zcr_spread: float = 0.05
        min_bed_share: float = 0.25
        max_tonal_flatness: float = 0.2
        min_pulse_clarity: float = 0.35
        room_rt60_s: float = 0.3
        hall_rt60_s: float = 1.0
        decay_percentile: float = 20.0
        # Real weights only: let the model overrule the DSP shares where it is sure.
        blend_model: bool = True

    Result = AudioEnvironmentResult

    def load(self, weights: weights_layer.Weights) -> None:
        self.kind = weights.kind
        self.tagger = AudioSetTagger(weights, self.device, self.params.batch_size)
        self.scene_idx = {k: self.tagger.indices(v) for k, v in SCENES.items()}
        self.music_idx = self.tagger.indices(_MODEL_MUSIC)
        self.speech_idx = self.tagger.indices(_MODEL_SPEECH)
        self.warm_up_measures()

    def warm_up_measures(self) -> None:
        # librosa's beat tracker and HPSS are numba-compiled on first use: pay that here,
        # in Triton's initialize, not on the first clip.
        measure(warm_up_sound(), self._dsp())

    def measure_only(self, clip: Clip) -> Result:
        """No classifier: the DSP's shares, SNR and reverberation; no scene."""
        return self._result(measure(mono_samples(clip), self._dsp()), [], None)

    def _dsp(self) -> DspParams:
        return dsp_params(DspParams, self.params)

    def prepare(self, clip: Clip) -> Prepared:
        """The DSP measures now; the model hears ``max_windows`` windows spread over the
        clip, batched with the other clips' windows."""
        y = mono_samples(clip)
        m = measure(y, self._dsp())
        p = self.params
        starts = spread_windows(len(y) / AUDIO_RATE, WINDOW_S, p.window_hop_s, p.max_windows)
        size = self.tagger.window_samples
        windows = [y[round(s * AUDIO_RATE) : round(s * AUDIO_RATE) + size] for s in starts]
        return Prepared(inputs=windows, state=(m, starts))

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.tagger.predict(inputs)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[np.ndarray]) -> Result:
        m, starts = prepared.state
        return self._result(m, starts, np.stack(outputs))

    def _result(self, m: Measures, starts: list[float], rows: np.ndarray | None) -> Result:
        """The result from the DSP measures and the classifier's rows (one per window;
        None without the model: no scene, no AudioSet classes, the DSP's own shares)."""
        p = self.params
        source: Literal["dsp", "dsp+model"] = "dsp"
        scene = top = None
        if rows is not None:
            if self.kind == "real" and p.blend_model:
                _blend(m, starts, rows, self.music_idx, self.speech_idx)
                source = "dsp+model"
            clip_probs = rows.mean(axis=0)
            scene = sorted(
                (
                    SceneScore(label=k, score=round(float(clip_probs[idx].max()), 4))
                    for k, idx in self.scene_idx.items()
                ),
                key=lambda s: -s.score,
            )
            top = [
                SceneScore(label=self.tagger.labels[j], score=round(float(clip_probs[j]), 4))
                for j in np.argsort(-clip_probs)[:5]
            ]
        snr = float(np.clip(m.signal_dbfs - m.noise_floor_dbfs, -100.0, 100.0))
        rt60 = m.rt60_s
        spans = _owned_spans(m.starts_s, m.window_s, m.hop_s, m.duration_s)
        return self.Result(
            scene=scene,
            music_share=round(m.share(m.music), 3),
            speech_share=round(m.share(m.speech), 3),
            noise_share=round(m.share(m.noise), 3),
            silence_share=round(m.share(~m.sounding), 3),
            shares_source=source,
            snr_db=round(snr, 2),
            signal_dbfs=round(m.signal_dbfs, 2),
            noise_floor_dbfs=round(m.noise_floor_dbfs, 2),
            reverberation=Reverberation(
                rt60_s=None if rt60 is None else round(rt60, 3),
                label=_reverb_label(rt60, self._dsp()),
                decays=m.decays,
            ),
            audioset_top=top,
            windows=[
                ShareWindow(
                    start_s=round(a, 3),
                    end_s=round(b, 3),
                    speech=bool(s),
                    music=bool(mu),
                    noise=bool(n),
                )
                for (a, b), s, mu, n in zip(spans, m.speech, m.music, m.noise, strict=True)
            ],
        )
