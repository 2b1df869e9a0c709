"""Audio: loudness, tempo and beats, onset density, silences, and a music/speech split.

Everything works on the clip's 16 kHz mono sound from one short-time spectrum (1024-point
frames every 256 samples, 16 ms) and its 64-band mel projection:

* loudness follows ITU-R BS.1770-4: K-weighting (its two biquads derived for 16 kHz the
  way libebur128 derives them for any rate), 400 ms blocks every 100 ms, an absolute gate at
  -70 LUFS and a relative gate 10 LU below; the curve is the same measure over 0.5 s blocks
  and the dynamic range is EBU Tech 3342's loudness range (3 s windows, 10th to 95th
  percentile);
* tempo and beats come from librosa's dynamic-programming beat tracker on a band-averaged
  spectral flux; octave ties go to the tempo nearer ``start_bpm`` (librosa's prior). The
  tracker's tempo is quantised by the frame hop (at 120 BPM the neighbouring lags are 117
  and 121 BPM), so the reported tempo is refitted to the tracked beats, and beats are
  cleaned where the tracker is weakest (the clip's edges and its silences). A clip whose
  onsets do not repeat (speech, noise, a held tone) has no beat: tempo 0.0, no beats.
  Known limit: eighth-note hi-hats as loud as the kick can pull the tracker to the
  subdivision (70 BPM read as 140) or to a 2/3 relation (170 read as 113);
* silences are runs of frames below ``silence_dbfs`` lasting ``min_silence_s`` or longer;
* music and speech shares come from a heuristic per-second classifier (see
  :func:`classify_windows`), not a trained model.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import scipy.signal

from tiktok_analyzer.analyzers._sound import modulation_depth, pulse_clarity
from tiktok_analyzer.analyzers.base import AUDIO_RATE, Analyzer, Clip, ClipMeta
from tiktok_analyzer.analyzers.results.audio import (  # noqa: F401 - re-exported
    DBFS_FLOOR,
    LUFS_FLOOR,
    AudioAnalysisResult,
    LoudnessPoint,
    Silence,
    WindowClass,
    WindowLabel,
)

__all__ = [
    "AudioAnalysis",
    "LoudnessPoint",
    "Silence",
    "classify_windows",
    "integrated_loudness",
    "k_weighting_sos",
]

# BS.1770: loudness = -0.691 + 10 log10(mean square of the K-weighted signal).
_LUFS_OFFSET = -0.691

# Band edges for the onset envelope: kick, low-mid (snare body, bass notes), presence, air.
_ONSET_BANDS_HZ = (0.0, 200.0, 1000.0, 4000.0, AUDIO_RATE / 2 + 1)


def k_weighting_sos(sr: int) -> np.ndarray:
    """BS.1770's K-weighting (high-shelf 'head' filter then RLB high-pass) as second-order
    sections for sample rate ``sr``. The standard lists coefficients for 48 kHz only; these
    come from the analogue prototypes behind them (libebur128's derivation), so at 48 kHz
    they reproduce the standard's to ~1e-8."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / sr)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    ]
    shelf_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    hp_b = [1.0, -2.0, 1.0]
    hp_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf_b + shelf_a, hp_b + hp_a])


def _block_power(power_cumsum: np.ndarray, sr: int, block_s: float, step_s: float) -> np.ndarray:
    """Mean of the squared signal over blocks of ``block_s`` every ``step_s`` (one block of
    the whole clip when it is shorter than a block), from its cumulative sum."""
    n = len(power_cumsum) - 1
    size = round(block_s * sr)
    if n <= size:
        return np.array([power_cumsum[-1] / max(n, 1)])
    starts = np.arange(0, n - size + 1, round(step_s * sr))
    return (power_cumsum[starts + size] - power_cumsum[starts]) / size


def _to_lufs(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(_LUFS_OFFSET + 10.0 * np.log10(power), LUFS_FLOOR)


def integrated_loudness(power_cumsum: np.ndarray, sr: int) -> float:
    """BS.1770-4 gated loudness from the cumulative sum of the K-weighted squared signal:
    400 ms blocks overlapping by 75 %, gated at -70 LUFS absolute and 10 LU below the mean of
    the blocks that pass it. :data:`LUFS_FLOOR` when nothing passes."""
    blocks = _block_power(power_cumsum, sr, 0.4, 0.1)
    loud = blocks[_to_lufs(blocks) > LUFS_FLOOR]
    if loud.size == 0:
        return LUFS_FLOOR
    relative_gate = _to_lufs(np.array([loud.mean()]))[0] - 10.0
    gated = loud[_to_lufs(loud) > relative_gate]
    return float(_to_lufs(np.array([gated.mean()]))[0])


def loudness_range(power_cumsum: np.ndarray, sr: int) -> float:
    """EBU Tech 3342 loudness range (LRA): 3 s windows every 100 ms, gated at -70 LUFS and
    20 LU below their mean, the spread between the 10th and 95th percentiles (LU = dB)."""
    blocks = _block_power(power_cumsum, sr, 3.0, 0.1)
    loud = blocks[_to_lufs(blocks) > LUFS_FLOOR]
    if loud.size < 2:
        return 0.0
    relative_gate = _to_lufs(np.array([loud.mean()]))[0] - 20.0
    levels = _to_lufs(loud)
    levels = levels[levels > relative_gate]
    return float(np.percentile(levels, 95) - np.percentile(levels, 10))


def find_silences(
    y: np.ndarray, sr: int, hop: int, threshold_dbfs: float, min_s: float
) -> list[tuple[float, float]]:
    """Runs of quiet frames, as (start_s, end_s). Frames are 2 hops long, not centred: a run
    of quiet frames a..b spans samples a*hop .. b*hop + 2*hop, so both ends land within a hop
    inside the true silence."""
    frame = 2 * hop
    if len(y) < frame:
        return []
    cumsum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    starts = np.arange(0, len(y) - frame + 1, hop)
    rms = np.sqrt((cumsum[starts + frame] - cumsum[starts]) / frame)
    with np.errstate(divide="ignore"):
        quiet = 20.0 * np.log10(rms) < threshold_dbfs
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    out = []
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
        start, end = a * hop / sr, min(len(y), b * hop + frame) / sr
        # A quiet run reaching the clip's end stays quiet to its last sample.
        if b == len(quiet) - 1:
            end = len(y) / sr
        if end - start >= min_s:
            out.append((start, end))
    return out


@dataclass(frozen=True)
class _Spectra:
    """The shared time-frequency view of the clip."""

    mel_power: np.ndarray  # (n_mels, frames)
    mel_hz: np.ndarray  # (n_mels,) band centres
    zcr: np.ndarray  # (frames,)
    frame_dbfs: np.ndarray  # (frames,) RMS level
    frame_rate: float


def classify_windows(
    spectra: _Spectra,
    silences: list[tuple[float, float]],
    duration_s: float,
    params: AudioAnalysis.Params,
    has_pulse: bool,
) -> list[WindowClass]:
    """Label the clip, window by window (~``params.window_s`` long): silence, speech, music
    or other.

    A heuristic in the spirit of Scheirer & Slaney (1997), not a trained classifier; its
    thresholds were set on synthetic sounds. Speech is told by three cues that must all hold:

    * voiced: harmonic (sustained-in-time) energy is a fair share of the 250-4000 Hz voice
      band, after librosa's median-filter harmonic/percussive separation (HPSS) on the mel
      spectrum; drums and clicks go to the percussive part, vowels and tones to the harmonic;
    * syllabic: that harmonic energy comes and goes at the syllable rate: the 2.5-8 Hz
      modulation depth of its amplitude envelope (std of the band-passed envelope relative
      to its mean). A held chord or pad barely moves, vowels start and stop every ~250 ms;
    * voiced/unvoiced alternation: the zero-crossing rate swings between vowels (low) and
      fricatives and plosives (high); its standard deviation over the window is large.

    A sounding window that is not speech is music when the clip has a beat (``has_pulse``)
    or the window is tonal (mostly harmonic energy in the voice band), and other otherwise
    (steady noise, room tone). The windows tile the stretches between ``silences``, which
    are labelled silence, so no window straddles a silence's edge (it would read as
    modulation and as a zero-crossing swing).

    Known limits: staccato melody at 3-8 notes per second over noisy percussion reads as
    speech (frame-to-frame spectral stability did not separate it from gliding vowels);
    rap and singing can fall either way; speech over a music bed reads as speech until the
    music is ~10 dB louder than the voice. Measured only on synthetic sound.
    """
    fps = spectra.frame_rate
    band = (spectra.mel_hz >= 250.0) & (spectra.mel_hz <= 4000.0)
    harmonic, percussive = librosa.decompose.hpss(spectra.mel_power, kernel_size=(13, 9))
    voice_h = harmonic[band].sum(axis=0)
    voice_p = percussive[band].sum(axis=0)
    n_frames = len(voice_h)
    out: list[WindowClass] = []
    for seg_start, seg_end in _sounding_spans(silences, duration_s):
        n = max(1, round((seg_end - seg_start) / params.window_s))
        bounds = np.linspace(seg_start, seg_end, n + 1)
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            lo, hi = int(start * fps), min(n_frames, int(np.ceil(end * fps)))
            h, p = voice_h[lo:hi], voice_p[lo:hi]
            voiced = float(h.sum() / max(h.sum() + p.sum(), 1e-20))
            label: WindowLabel = "music" if has_pulse or voiced >= params.min_tonal else "other"
            if spectra.frame_dbfs[lo:hi].max(initial=DBFS_FLOOR) < params.silence_dbfs:
                # Quiet throughout but shorter than a reported silence.
                label = "silence"
            # Under 4 frames (64 ms) there is no envelope to read.
            if hi - lo >= 4 and voiced >= params.min_voiced:
                syllabic = modulation_depth(np.sqrt(h), fps, 2.5, 8.0)
                zcr_spread = float(spectra.zcr[lo:hi].std())
                if syllabic >= params.min_syllabic and zcr_spread >= params.min_zcr_spread:
                    label = "speech"
            out.append(WindowClass(start_s=float(start), end_s=float(end), label=label))
    out += [WindowClass(start_s=s, end_s=e, label="silence") for s, e in silences]
    return sorted(out, key=lambda w: w.start_s)


def _sounding_spans(
    silences: list[tuple[float, float]], duration_s: float
) -> list[tuple[float, float]]:
    """The stretches between silences."""
    spans, t = [], 0.0
    for start, end in silences:
        if start > t:
            spans.append((t, start))
        t = max(t, end)
    if duration_s > t:
        spans.append((t, duration_s))
    return spans


class AudioAnalysis(Analyzer):
    """Loudness, tempo and beats, onsets, silences and a music/speech split of the sound."""

    name = "audio_analysis"
    frames = None
    audio = True

    @dataclass
    class Params:
        # 16 ms frames: beats to within a frame, and a 150 BPM beat lands near a whole lag
        # (at 32 ms librosa's tempogram read it as 75 BPM).
        hop_length: int = 256
        n_fft: int = 1024
        n_mels: int = 64
        # Centre of librosa's log-normal tempo prior: where octave ties go.
        start_bpm: float = 120.0
        # The centred flux peaks this long after an attack (measured 15-20 ms on synthetic
        # kicks, clicks and hi-hats at n_fft 1024 / hop 256); beats are moved back.
        beat_latency_s: float = 0.016
        # A beat is reported only when the onset envelope repeats at the tracked period:
        # its autocorrelation there (pulse clarity) measured 0.6-0.96 on kick patterns,
        # 0.05-0.21 on speech-like sound, 0 on noise.
        min_pulse_clarity: float = 0.35
        # Onset peaks must rise this far (dB of band-averaged flux) above their surroundings:
        # an absolute bar, so a steady tone or noise does not turn its ripples into onsets.
        onset_delta_db: float = 1.0
        silence_dbfs: float = -50.0
        min_silence_s: float = 0.3
        curve_step_s: float = 0.5
        # Music/speech classifier (see classify_windows).
        window_s: float = 1.0
        min_voiced: float = 0.3
        min_syllabic: float = 0.25
        min_zcr_spread: float = 0.05
        min_tonal: float = 0.65

    Result = AudioAnalysisResult

    def __init__(self, params: Params | None = None) -> None:
        super().__init__(params)
        # librosa's beat tracker and its helpers are numba-compiled on first use; pay that
        # here, in Triton's initialize, rather than on the first clip.
        t = np.arange(2 * AUDIO_RATE) / AUDIO_RATE
        warm = np.sin(2 * np.pi * 220 * t) * (0.1 + 0.3 * (t % 0.5 < 0.1))
        self.analyze(Clip(meta=ClipMeta(2.0, 0.0, 0, 0, has_video=False), audio=warm))

    def analyze(self, clip: Clip) -> Result:
        p = self.params
        sr = AUDIO_RATE
        y = np.ascontiguousarray(clip.audio, dtype=np.float32)
        duration = len(y) / sr

        k_weighted = scipy.signal.sosfilt(k_weighting_sos(sr), y.astype(np.float64))
        k_cumsum = np.concatenate([[0.0], np.cumsum(k_weighted**2)])
        curve_blocks = _block_power(k_cumsum, sr, p.curve_step_s, p.curve_step_s)
        # A clip shorter than one block is measured whole, and its point sits at its middle.
        centres = (np.arange(len(curve_blocks)) + 0.5) * p.curve_step_s
        if duration < p.curve_step_s:
            centres[:] = duration / 2
        curve = [
            LoudnessPoint(time_s=round(float(t), 3), lufs=round(float(v), 2))
            for t, v in zip(centres, _to_lufs(curve_blocks), strict=True)
        ]
        peak = float(np.abs(y).max())

        silences = find_silences(y, sr, p.hop_length, p.silence_dbfs, p.min_silence_s)
        spectra = self._spectra(y)
        onset_env = self._onset_envelope(spectra)
        onsets = librosa.onset.onset_detect(
            onset_envelope=onset_env,
            sr=sr,
            hop_length=p.hop_length,
            normalize=False,
            delta=p.onset_delta_db,
        )
        tempo, beats, clarity = self._beats(onset_env, len(onsets), silences)
        windows = classify_windows(spectra, silences, duration, p, has_pulse=tempo > 0)

        def share(label: str) -> float:
            return round(
                sum(w.end_s - w.start_s for w in windows if w.label == label) / duration, 3
            )

        return self.Result(
            tempo_bpm=round(tempo, 2),
            beats_s=[round(b, 3) for b in beats],
            loudness_lufs=round(integrated_loudness(k_cumsum, sr), 2),
            silences=[Silence(start_s=round(s, 3), end_s=round(e, 3)) for s, e in silences],
            music_share=share("music"),
            speech_share=share("speech"),
            other_share=share("other"),
            loudness_curve=curve,
            onset_density=round(len(onsets) / duration, 3),
            dynamic_range_db=round(loudness_range(k_cumsum, sr), 2),
            peak_dbfs=round(max(20.0 * np.log10(peak), DBFS_FLOOR) if peak > 0 else DBFS_FLOOR, 2),
            pulse_clarity=round(clarity, 3),
            windows=windows,
        )

    def _spectra(self, y: np.ndarray) -> _Spectra:
        p = self.params
        # A clip shorter than one FFT frame still gets one (librosa warns otherwise).
        y = np.pad(y, (0, max(0, p.n_fft - len(y))))
        power = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length)) ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=AUDIO_RATE, n_mels=p.n_mels)
        frame = 2 * p.hop_length
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=frame, hop_length=p.hop_length)
        rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=p.hop_length)
        with np.errstate(divide="ignore"):
            level = np.maximum(20.0 * np.log10(rms[0]), DBFS_FLOOR)
        n = mel.shape[1]
        return _Spectra(
            mel_power=mel,
            mel_hz=librosa.mel_frequencies(p.n_mels + 2, fmax=AUDIO_RATE / 2)[1:-1],
            zcr=zcr[0, :n],
            frame_dbfs=level[:n],
            frame_rate=AUDIO_RATE / p.hop_length,
        )

    def _onset_envelope(self, spectra: _Spectra) -> np.ndarray:
        """Spectral flux (dB increase per frame), averaged within each of a few octave-ish
        bands and then across the bands. Averaging over mel bins would weight 1-4 kHz (a
        third of the bins) far above the kick's <200 Hz (a few bins), so eighth-note hi-hats
        outvote the kick and the tracker can lock onto the off-beats; equal band weights
        keep the on-beats stronger."""
        p = self.params
        edges = np.searchsorted(spectra.mel_hz, _ONSET_BANDS_HZ)
        bands = librosa.onset.onset_strength_multi(
            # Floored 60 dB under the clip's peak: below that, a decaying tail's codec noise
            # jumps by tens of dB from frame to frame and would read as onsets.
            S=librosa.power_to_db(spectra.mel_power, ref=np.max, top_db=60.0),
            sr=AUDIO_RATE,
            hop_length=p.hop_length,
            n_fft=p.n_fft,
            channels=[int(e) for e in edges],
        )
        return bands.mean(axis=0)

    def _beats(
        self, env: np.ndarray, n_onsets: int, silences: list[tuple[float, float]]
    ) -> tuple[float, list[float], float]:
        """Tempo (BPM), beat times and pulse clarity; tempo 0.0 and no beats when there is
        no beat to track (too few onsets, or they do not repeat at the tracked period)."""
        p = self.params
        fps = AUDIO_RATE / p.hop_length
        # A beat needs a few onsets to stand on; the tracker would otherwise lay its grid
        # over the ripples of a steady tone.
        if n_onsets < 4:
            return 0.0, [], 0.0
        tempo, frames = librosa.beat.beat_track(
            onset_envelope=env,
            sr=AUDIO_RATE,
            hop_length=p.hop_length,
            start_bpm=p.start_bpm,
            trim=False,
        )
        tempo = float(np.atleast_1d(tempo)[0])
        if tempo <= 0 or len(frames) < 2:
            return 0.0, [], 0.0
        period = 60.0 / tempo * fps  # frames
        clarity = pulse_clarity(env, period)
        if clarity < p.min_pulse_clarity:
            return 0.0, [], clarity
        frames = _clean_beats(env, frames, period)
        times = np.maximum(0.0, frames / fps - p.beat_latency_s)
        times = times[[not any(s <= t < e for s, e in silences) for t in times]]
        if len(times) < 2:
            return 0.0, [], clarity
        return _fit_tempo(times, 60.0 / tempo), times.tolist(), clarity


def _clean_beats(env: np.ndarray, frames: np.ndarray, period: float) -> np.ndarray:
    """Fix the tracker where it is weakest. A beat with no onset under it (the DP may bridge
    the clip's end or a silence at a wrong phase) moves to a strong onset within a quarter
    period if there is one; then weak beats are trimmed from both ends of the clip."""
    n = len(env)

    def strength(f: int) -> float:
        return float(env[max(0, f - 1) : f + 2].max())

    frames = frames.astype(int).copy()
    s = np.array([strength(f) for f in frames])
    med = float(np.median(s))
    reach = max(1, int(period / 4))
    for j, f in enumerate(frames):
        if s[j] >= 0.5 * med:
            continue
        lo, hi = max(0, f - reach), min(n, f + reach + 1)
        best = lo + int(np.argmax(env[lo:hi]))
        if env[best] >= 0.5 * med:
            frames[j], s[j] = best, env[best]
    keep = s >= 0.3 * med
    if not keep.any():
        return frames[:0]
    first, last = np.flatnonzero(keep)[[0, -1]]
    frames = np.unique(frames[first : last + 1])
    # Two beats snapped onto one onset, or closer than half a period: keep the first.
    out = [frames[0]]
    for f in frames[1:]:
        if f - out[-1] >= period / 2:
            out.append(f)
    return np.array(out)


def _fit_tempo(times: np.ndarray, period_s: float) -> float:
    """Tempo from a least-squares line through the beats against their beat numbers.

    The tracker's tempo is a whole lag in frames, so it is off by up to half a frame per
    beat (~1 % at 120 BPM); the beats themselves sit on the onsets, and a line through them
    averages their one-frame jitter away. Beat numbers count skipped beats (a silence, a
    dropped beat) by rounding each gap to whole periods."""
    steps = np.maximum(1, np.round(np.diff(times) / period_s))
    numbers = np.concatenate([[0.0], np.cumsum(steps)])
    if numbers[-1] < 3:
        return 60.0 / period_s
    slope = np.polyfit(numbers, times, 1)[0]
    return float(60.0 / slope)
