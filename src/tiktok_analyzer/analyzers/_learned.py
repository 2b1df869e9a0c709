"""What the learned analyzers share: weights resolved once at start, the torch device, seeded
synthetic models, and frames cut into batches.

A :class:`LearnedAnalyzer` resolves its weights (:mod:`.weights`) in its constructor, which
runs in Triton's ``initialize``, and hands them to :meth:`LearnedAnalyzer.load`. When real
weights are missing, or the runtime that loads them is not installed, it still loads and
answers every clip ``unavailable`` with the command that fixes it: the server and the other
analyzers never notice. It never falls back to synthetic weights on its own.

The device comes from the Triton instance: the adapter sets :data:`DEVICE_ENV` to
``cuda:<id>`` for a KIND_GPU instance and ``cpu`` for a KIND_CPU one (the launcher picks the
models' ``configs/gpu.pbtxt`` on a host with a GPU). Outside Triton (unit tests, benches),
torch's own view decides.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers.base import Analyzer, AnalyzerResult, Clip, Unavailable

__all__ = [
    "DEVICE_ENV",
    "LearnedAnalyzer",
    "check_frames",
    "chunks",
    "seeded",
    "torch_device",
]

log = logging.getLogger(__name__)

#: ``cpu`` or ``cuda:<id>``: the device of this Triton instance (set by the adapter).
DEVICE_ENV = "TIKTOK_ANALYZER_DEVICE"


def torch_device() -> str:
    """The torch device this process should run its model on."""
    env = os.environ.get(DEVICE_ENV, "").strip()
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def seeded(seed: int = 0) -> None:
    """Seed torch before building a synthetic model: every process that builds the same
    config gets the same random values, so two instances answer alike."""
    import torch

    torch.manual_seed(seed)


def check_frames(clip: Clip, analyzer: str, min_side: int, purpose: str) -> None:
    """ValueError (a failed clip) for frames a model cannot read: not uint8 RGB
    (N, H, W, 3), a short side under ``min_side`` px, or not one timestamp per frame.
    ``purpose`` completes "too small to ..."."""
    frames = clip.frames
    assert frames is not None
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if min(h, w) < min_side:
        raise ValueError(
            f"frames of {w}x{h} pixels are too small to {purpose} (the short side must be "
            f"at least {min_side} px)"
        )
    if clip.timestamps_s is None or len(clip.timestamps_s) != len(frames):
        raise ValueError(f"{analyzer} needs one timestamp per frame")


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size`` items: frames in model batches."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class LearnedAnalyzer(Analyzer):
    """An analyzer whose model comes from the weights layer.

    Subclasses implement :meth:`load` (build the model from :class:`weights.Weights`: real
    files in ``weights.path`` or a synthetic architecture in ``weights.config``) and
    :meth:`analyze` (or :meth:`analyze_batch` to batch frames across clips). They may
    override :meth:`model_choice` when the analyzer has several models in the manifest.
    ``self.device`` is the torch device; ``self.weights`` ends up ``real``,
    ``synthetic-tiny`` or ``synthetic-full`` (the report's ``model.weights``), or ``none``
    while unavailable.
    """

    gpu: ClassVar[bool] = True
    weights_model: ClassVar[str | None] = None

    def __init__(self, params: Any | None = None) -> None:
        super().__init__(params)
        self.weights = "none"
        self.device = "cpu"
        self._unavailable: str | None = None
        choice = self.model_choice()
        if choice:
            self.model_name = choice
        try:
            resolved = weights_layer.resolve(self.name, model=choice)
            self.model_name = resolved.model.name
            self.device = torch_device()
            self.load(resolved)
            self.weights = resolved.kind
        except (Unavailable, KeyError) as exc:
            self._unavailable = str(exc).strip("'\"")
        except ImportError as exc:
            self._unavailable = (
                f"{self.name} needs the Python module {exc.name or exc}, which is not "
                "installed: run the setup command in README.md"
            )
        if self._unavailable:
            # Loaded and answering, but each clip says what is missing and how to fix it.
            log.warning("%s: %s", self.name, self._unavailable)

    def model_choice(self) -> str | None:
        """The manifest model to load (None: the analyzer's only one)."""
        return self.weights_model

    @property
    def available(self) -> bool:
        return self._unavailable is None

    @abstractmethod
    def load(self, weights: weights_layer.Weights) -> None:
        """Build the model from real files or a synthetic config; raise Unavailable when
        something it needs is missing."""

    def analyze(self, clip: Clip) -> AnalyzerResult:
        """One clip through :meth:`analyze_batch`, for analyzers that batch several clips'
        frames or windows together and so implement that instead (a subclass overrides one
        of the two)."""
        if type(self).analyze_batch is LearnedAnalyzer.analyze_batch:
            raise NotImplementedError(
                f"{type(self).__name__} implements neither analyze nor analyze_batch"
            )
        (outcome,) = self.analyze_batch([clip])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def analyze_batch(self, clips: Sequence[Clip]) -> list[AnalyzerResult | Exception]:
        if self._unavailable is not None:
            return [Unavailable(self._unavailable) for _ in clips]
        return super().analyze_batch(clips)
