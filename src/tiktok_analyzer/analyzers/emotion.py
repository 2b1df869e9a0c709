"""Speech emotion: how the voice sounds (neutral, happy, angry, sad), window by window, the
emotion that dominates, and the arc of valence and arousal over the clip.

Model: a Wav2Vec2 sequence classifier (transformers ``Wav2Vec2ForSequenceClassification``);
in production SUPERB's emotion-recognition model, wav2vec2-base trained on IEMOCAP's four
balanced classes (``wav2vec2-base-superb-er`` in the weights manifest). It hears the sound
of the voice, not the words: the same sentence said angrily and calmly differ.

Per clip:

1. Voiced spans: the ``voiced`` spans of speech_transcription (Silero VAD) when it ran,
   read through its Result model; otherwise Silero VAD here (it ships inside
   faster-whisper), with tighter padding than the transcriber's. A clip without speech
   gives a valid result with no segments and ``dominant: null``.
2. Windows: each span is cut into equal windows of at most ``max_segment_s`` (the model
   was trained on single utterances of a few seconds; one score for a minute of speech
   would hide the arc). Spans shorter than ``min_segment_s`` are left out.
3. Classification: windows of every clip in the batch, sorted by length (little padding),
   go through the model ``batch_size`` at a time; each is normalised on its own samples
   (zero mean, unit variance, as the model was trained) and padded with an attention mask,
   so padding changes neither the encoder's attention nor the mean pooling. wav2vec2-base
   normalises its first convolution over time (group norm), where padding still weighs a
   little: the sorting keeps that small.
4. Summary: ``dominant`` is the label of highest probability mass over the speech, each
   window weighted by its duration (``distribution``). Valence and arousal of a window
   are its probabilities averaged over the labels' places on Russell's circumplex
   (:data:`CIRCUMPLEX`): conventional coordinates, rounded, not measured; they make the
   arc readable and comparable across label sets, nothing more.

Without the model's weights (partial): steps 1 and 2 stand, so the windows are reported
with their times and ``speech_s``, each window's emotion, scores, valence and arousal, the
arc's values, ``dominant``, ``distribution`` and ``labels`` null (``Result.made_by_model``)
with the command that fetches the weights.

Known limits: IEMOCAP is acted English dialogue recorded in a studio; music under the
voice, other languages, singing and synthetic voices lie outside it, and the model is
overconfident there. Four classes only: no fear, surprise or disgust.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, seeded
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    Clip,
    NotApplicable,
    Unavailable,
)
from tiktok_analyzer.analyzers.results.emotion import (  # noqa: F401 - re-exported
    ArcPoint,
    EmotionSegment,
    SpeechEmotionResult,
)
from tiktok_analyzer.analyzers.results.speech import SpeechTranscriptionResult

__all__ = ["CIRCUMPLEX", "ArcPoint", "EmotionSegment", "SpeechEmotion", "windows"]

log = logging.getLogger(__name__)

#: (valence, arousal) in -1..1 of emotion labels, by the names emotion models use
#: (IEMOCAP's three-letter codes, RAVDESS's and others' words). Conventional placements on
#: Russell's circumplex of affect (1980), rounded to a tenth; a label missing here counts
#: as neutral (0, 0) and is named in the log when the model loads.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neu": (0.0, 0.0),
    "neutral": (0.0, 0.0),
    "hap": (0.8, 0.5),
    "happy": (0.8, 0.5),
    "happiness": (0.8, 0.5),
    "joy": (0.8, 0.5),
    "exc": (0.7, 0.8),
    "excited": (0.7, 0.8),
    "ang": (-0.6, 0.8),
    "angry": (-0.6, 0.8),
    "anger": (-0.6, 0.8),
    "sad": (-0.7, -0.4),
    "sadness": (-0.7, -0.4),
    "calm": (0.4, -0.6),
    "fear": (-0.6, 0.6),
    "fearful": (-0.6, 0.6),
    "disgust": (-0.7, 0.3),
    "disgusted": (-0.7, 0.3),
    "surprise": (0.3, 0.8),
    "surprised": (0.3, 0.8),
    "fru": (-0.5, 0.4),
    "frustrated": (-0.5, 0.4),
    "bored": (-0.3, -0.7),
    "boredom": (-0.3, -0.7),
}

# wav2vec2's feature encoder needs 400 samples (25 ms) for one frame.
_MIN_SAMPLES = 400


@dataclass
class _Plan:
    """One clip's windows, before the model has heard them."""

    audio: np.ndarray
    windows: list[tuple[float, float]]
    source: Literal["speech_transcription", "vad"]


def windows(
    spans: Sequence[tuple[float, float]], max_s: float, min_s: float, duration_s: float
) -> list[tuple[float, float]]:
    """Cut voiced spans into windows: overlapping spans merged, each clipped to the audio,
    those shorter than ``min_s`` dropped, the rest split into the fewest equal windows of
    at most ``max_s`` (a 13 s span gives three of 4.33 s, not 6 + 6 + 1)."""
    merged: list[list[float]] = []
    for s, e in sorted((max(0.0, float(s)), min(duration_s, float(e))) for s, e in spans):
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out = []
    for s, e in merged:
        length = e - s
        if length < min_s:
            continue
        n = max(1, math.ceil(length / max_s - 1e-9))
        step = length / n
        out += [(s + k * step, s + (k + 1) * step) for k in range(n)]
    return out


class SpeechEmotion(LearnedAnalyzer):
    """The emotion in the voice over time."""

    name = "speech_emotion"
    frames = None
    audio = True
    depends_on = ("speech_transcription",)
    model_name = "wav2vec2-base-superb-er"

    @dataclass
    class Params:
        # Windows per forward pass.
        batch_size: int = 8
        # Longer voiced spans are cut into equal windows no longer than this.
        max_segment_s: float = 6.0
        # Voiced spans shorter than this are not classified (a click, a breath).
        min_segment_s: float = 0.25
        # Audio shorter than this cannot hold speech: the clip is skipped.
        min_audio_s: float = 0.1
        # Read the voiced spans from speech_transcription when it ran.
        use_upstream: bool = True
        # Silero VAD when there is no transcription. The padding is tighter than the
        # transcriber's (300 ms): silence at a window's edges dilutes its emotion.
        vad_threshold: float = 0.5
        vad_min_silence_ms: int = 500
        vad_pad_ms: int = 100

    Result = SpeechEmotionResult

    # -- loading -------------------------------------------------------------------------

    def load(self, weights: weights_layer.Weights) -> None:
        import torch
        from faster_whisper.vad import get_vad_model
        from transformers import (
            Wav2Vec2Config,
            Wav2Vec2FeatureExtractor,
            Wav2Vec2ForSequenceClassification,
        )

        if weights.kind == "real":
            assert weights.path is not None
            model = Wav2Vec2ForSequenceClassification.from_pretrained(
                str(weights.path), local_files_only=True
            )
            extractor = Wav2Vec2FeatureExtractor.from_pretrained(
                str(weights.path), local_files_only=True
            )
        else:
            config = dict(weights.config or {})
            config["id2label"] = {int(k): v for k, v in config.get("id2label", {}).items()}
            config["label2id"] = {v: k for k, v in config["id2label"].items()}
            seeded(0)
            model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**config))
            # What the real model's preprocessor_config.json holds: 16 kHz mono, each
            # utterance normalised to zero mean and unit variance, zero padding.
            extractor = Wav2Vec2FeatureExtractor(
                feature_size=1,
                sampling_rate=AUDIO_RATE,
                padding_value=0.0,
                do_normalize=True,
                return_attention_mask=True,
            )
        if extractor.sampling_rate != AUDIO_RATE:
            raise Unavailable(
                f"{weights.model.key} expects {extractor.sampling_rate} Hz audio; the clip "
                f"audio is {AUDIO_RATE} Hz"
            )
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.extractor = extractor
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(self.model.config.num_labels)]
        unknown = [lab for lab in self.labels if lab.lower() not in CIRCUMPLEX]
        if unknown:
            log.warning("%s: no circumplex place for %s: counted as neutral", self.name, unknown)
        self._va = np.array(
            [CIRCUMPLEX.get(lab.lower(), (0.0, 0.0)) for lab in self.labels], np.float64
        )
        # Silero's ONNX session now (Triton's initialize), not on the first clip.
        get_vad_model()

    def warm_up_measures(self) -> None:
        from faster_whisper.vad import get_vad_model

        get_vad_model()

    # -- per clip --------------------------------------------------------------------------

    def measure_only(self, clip: Clip) -> Result:
        """No wav2vec2: the voiced windows and their times, unlabelled."""
        return self._result(self._plan(clip), None)

    def prepare(self, clip: Clip) -> Prepared:
        plan = self._plan(clip)
        pieces = [
            plan.audio[round(a * AUDIO_RATE) : round(b * AUDIO_RATE)] for a, b in plan.windows
        ]
        return Prepared(inputs=pieces, state=plan)

    def batch_order(self, item: np.ndarray) -> int:
        # Windows of like length share a batch: less padding, which the model would hear.
        return len(item)

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self._classify(inputs)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[np.ndarray]) -> Result:
        return self._result(prepared.state, outputs)

    def _plan(self, clip: Clip) -> _Plan:
        audio = np.asarray(clip.audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be mono samples (1-D), got shape {list(audio.shape)}")
        duration = len(audio) / AUDIO_RATE
        if duration < max(self.params.min_audio_s, _MIN_SAMPLES / AUDIO_RATE):
            raise NotApplicable(
                f"the audio lasts {duration:.4f} s, too short to hold speech "
                f"(at least {self.params.min_audio_s:g} s)"
            )
        if not np.isfinite(audio).all():
            raise ValueError("the audio holds NaN or infinite samples")
        audio = np.ascontiguousarray(audio)
        spans = self._upstream_spans(clip) if self.params.use_upstream else None
        source: Literal["speech_transcription", "vad"] = "speech_transcription"
        if spans is None:
            spans, source = self._vad(audio), "vad"
        p = self.params
        cut = windows(
            spans, p.max_segment_s, max(p.min_segment_s, _MIN_SAMPLES / AUDIO_RATE), duration
        )
        return _Plan(audio, cut, source)

    @staticmethod
    def _upstream_spans(clip: Clip) -> list[tuple[float, float]] | None:
        """speech_transcription's voiced spans, None when it did not run."""
        transcript = clip.upstream_result(SpeechTranscriptionResult)
        if transcript is None:
            return None
        return [(v.start_s, v.end_s) for v in transcript.voiced]

    def _vad(self, audio: np.ndarray) -> list[tuple[float, float]]:
        try:
            from faster_whisper.vad import VadOptions, get_speech_timestamps
        except ImportError as exc:  # only without the model: load() imports it first
            raise Unavailable(
                f"the voice activity detector needs the Python module {exc.name or exc}, "
                "which is not installed",
                "run the setup command in README.md",
            ) from exc

        p = self.params
        options = VadOptions(
            threshold=p.vad_threshold,
            min_silence_duration_ms=p.vad_min_silence_ms,
            speech_pad_ms=p.vad_pad_ms,
        )
        found = get_speech_timestamps(audio, options)
        return [(c["start"] / AUDIO_RATE, c["end"] / AUDIO_RATE) for c in found]

    def _classify(self, pieces: list[np.ndarray]) -> np.ndarray:
        """Label probabilities (n, labels) of each window, in one forward pass."""
        import torch

        inputs = self.extractor(
            pieces,
            sampling_rate=AUDIO_RATE,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        values = inputs["input_values"].to(self.device, self.dtype)
        mask = inputs["attention_mask"].to(self.device)
        with torch.inference_mode():
            logits = self.model(values, attention_mask=mask).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)

    def _result(self, plan: _Plan, probs: list[np.ndarray] | None) -> Result:
        """The result from the windows and each window's label probabilities (None without
        the model: the windows and their times, every model-made field null)."""
        if probs is None:
            return self.Result(
                segments=[
                    EmotionSegment(
                        start_s=round(a, 3),
                        end_s=round(b, 3),
                        emotion=None,
                        confidence=None,
                        scores=None,
                        valence=None,
                        arousal=None,
                    )
                    for a, b in plan.windows
                ],
                dominant=None,
                distribution=None,
                valence=None,
                arousal=None,
                arc=[
                    ArcPoint(time_s=round((a + b) / 2, 3), valence=None, arousal=None, emotion=None)
                    for a, b in plan.windows
                ],
                speech_s=round(sum(b - a for a, b in plan.windows), 3),
                source=plan.source,
                labels=None,
            )
        segments, arc = [], []
        for (a, b), p in zip(plan.windows, probs, strict=True):
            p = p / p.sum()
            top = int(np.argmax(p))
            valence, arousal = (float(x) for x in p @ self._va)
            segments.append(
                EmotionSegment(
                    start_s=round(a, 3),
                    end_s=round(b, 3),
                    emotion=self.labels[top],
                    confidence=round(float(p[top]), 4),
                    scores={lab: round(float(x), 4) for lab, x in zip(self.labels, p, strict=True)},
                    valence=round(valence, 4),
                    arousal=round(arousal, 4),
                )
            )
            arc.append(
                ArcPoint(
                    time_s=round((a + b) / 2, 3),
                    valence=round(valence, 4),
                    arousal=round(arousal, 4),
                    emotion=self.labels[top],
                )
            )
        speech_s = sum(b - a for a, b in plan.windows)
        dominant = None
        distribution: dict[str, float] = {}
        valence = arousal = None
        if probs:
            weights = np.array([b - a for a, b in plan.windows])
            mean = (weights[:, None] * np.stack(probs)).sum(axis=0) / weights.sum()
            mean /= mean.sum()
            dominant = self.labels[int(np.argmax(mean))]
            distribution = {
                lab: round(float(x), 4) for lab, x in zip(self.labels, mean, strict=True)
            }
            valence, arousal = (round(float(x), 4) for x in mean @ self._va)
        return self.Result(
            segments=segments,
            dominant=dominant,
            distribution=distribution,
            valence=valence,
            arousal=arousal,
            arc=arc,
            speech_s=round(speech_s, 3),
            source=plan.source,
            labels=list(self.labels),
        )
