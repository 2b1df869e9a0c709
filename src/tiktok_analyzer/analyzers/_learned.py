"""What the learned analyzers share: weights resolved once at start, the torch device, seeded
synthetic models, and one batch path across clips.

A :class:`LearnedAnalyzer` resolves its weights (:mod:`.weights`) in its constructor, which
runs in Triton's ``initialize``, and hands them to :meth:`LearnedAnalyzer.load`. When real
weights are missing, or the runtime that loads them is not installed, it still loads and
answers every clip ``unavailable`` with the command that fixes it: the server and the other
analyzers never notice. It never falls back to synthetic weights on its own. An analyzer
that measures part of its result without the model (DSP, classical vision) names the
model-made fields in its Result's ``made_by_model`` and implements
:meth:`LearnedAnalyzer.measure_only`: without weights it then answers ``partial``, the
measured fields filled and the model-made ones null, each listed with the fix.

The device is a constructor argument: the adapter passes ``cuda:<id>`` for a KIND_GPU
instance and ``cpu`` for a KIND_CPU one (the launcher picks the models' ``configs/gpu.pbtxt``
on a host with a GPU). Left out (unit tests, benches), torch's own view decides.

Triton's dynamic batcher hands several clips at once. :meth:`LearnedAnalyzer.analyze_batch`
checks each clip, asks :meth:`~LearnedAnalyzer.prepare` for its model inputs, runs the inputs
of all clips through :meth:`~LearnedAnalyzer.infer` in shared batches, and gives each clip
its own outputs back in :meth:`~LearnedAnalyzer.finish`. A clip that fails, or whose model
batch fails, fails alone (or with the clips of that batch): never its neighbours.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers.base import (
    AUDIO_RATE,
    Analyzer,
    AnalyzerResult,
    Clip,
    ClipMeta,
    FrameSpec,
    NotApplicable,
    Partial,
    Unavailable,
    UnavailableField,
    parse_params,
)

__all__ = [
    "LearnedAnalyzer",
    "Prepared",
    "check_frames",
    "chunks",
    "default_device",
    "seeded",
    "warm_up_clip",
]

log = logging.getLogger(__name__)

#: The fix of missing weights when the weights layer named none.
_FIX_WEIGHTS = "run `tiktok-analyzer weights pull {}`"

#: Outcomes that describe the clip, not a fault of the analyzer: no stack trace in the log.
_CLIP_OUTCOMES = (NotApplicable, Unavailable, ValueError)


def default_device() -> str:
    """The torch device when nobody chose one: the GPU when torch sees one."""
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


@dataclass
class Prepared:
    """One clip between :meth:`LearnedAnalyzer.prepare` and :meth:`LearnedAnalyzer.finish`:
    the model inputs it contributes to the shared batches (frames, crops, audio windows), and
    whatever else ``finish`` needs (tracks, DSP measures)."""

    inputs: Sequence[Any] = field(default_factory=list)
    state: Any = None


class LearnedAnalyzer(Analyzer):
    """An analyzer whose model comes from the weights layer.

    Subclasses implement :meth:`load` (build the model from :class:`weights.Weights`: real
    files in ``weights.path`` or a synthetic architecture in ``weights.config``) and the
    batch path: :meth:`prepare` (one clip -> its model inputs), :meth:`infer` (one model
    call over a batch of inputs, from any clips) and :meth:`finish` (one clip's outputs ->
    its result). :meth:`batch_group` keeps inputs that cannot share a model call apart,
    :meth:`batch_order` sorts them so that alike inputs share one. An analyzer whose model
    runs per clip and gains nothing from batching (one frame at a time through MediaPipe,
    say) implements :meth:`analyze` instead.

    ``self.device`` is the torch device (the ``device`` argument, else torch's own view);
    ``self.weights`` ends up ``real``, ``synthetic-tiny`` or ``synthetic-full`` (the
    report's ``model.weights``), or ``none`` while unavailable. Subclasses may override
    :meth:`model_choice` when the analyzer has several models in the manifest.
    """

    gpu: ClassVar[bool] = True
    weights_model: ClassVar[str | None] = None

    def __init__(self, params: Any | None = None, device: str | None = None) -> None:
        super().__init__(params)
        self.weights = "none"
        self._unavailable: str | None = None
        self._missing = UnavailableField(field="-", reason="", fix="")
        try:
            self.device = device or default_device()
        except ImportError:
            self.device = "cpu"  # no torch: load() says what to install
        choice = self.model_choice()
        if choice:
            self.model_name = choice
        try:
            resolved = weights_layer.resolve(self.name, model=choice)
            self.model_name = resolved.model.name
            self.load(resolved)
            self.weights = resolved.kind
        except Unavailable as exc:
            self._unavailable = str(exc)
            self._missing = UnavailableField(
                field="-", reason=exc.reason, fix=exc.fix or _FIX_WEIGHTS.format(self.name)
            )
        except KeyError as exc:
            self._unavailable = str(exc).strip("'\"")
            self._missing = UnavailableField(
                field="-", reason=self._unavailable, fix="see `tiktok-analyzer weights list`"
            )
        except ImportError as exc:
            self._unavailable = (
                f"{self.name} needs the Python module {exc.name or exc}, which is not "
                "installed: run the setup command in README.md"
            )
            self._missing = UnavailableField(
                field="-",
                reason=f"the Python module {exc.name or exc} is not installed",
                fix="run the setup command in README.md",
            )
        if self._unavailable is None and str(self.device).startswith("cuda"):
            self.warm_up_first_call()
        if self._unavailable:
            # Loaded and answering, but each clip says what is missing and how to fix it.
            log.warning("%s: %s", self.name, self._unavailable)
            if self.made_by_model:
                # What stands without the model is still measured: pay its start-up here.
                # A warm-up that breaks must not stop the model loading: each clip's
                # measure_only then says what broke.
                try:
                    self.warm_up_measures()
                except Exception:  # noqa: BLE001 - logged; the clips report it
                    log.exception("%s: warming up the measures without the model", self.name)

    @classmethod
    def from_strings(cls, raw: Mapping[str, str], device: str | None = None) -> Analyzer:
        return cls(parse_params(cls.Params, raw), device=device)

    def model_choice(self) -> str | None:
        """The manifest model to load (None: the analyzer's only one)."""
        return self.weights_model

    @property
    def available(self) -> bool:
        return self._unavailable is None

    @property
    def made_by_model(self) -> tuple[str, ...]:
        """The Result's fields that only the model makes (``Result.made_by_model``). An
        analyzer whose Result names them implements :meth:`measure_only`; without its
        weights it then answers ``partial`` (those fields null, the rest measured) instead
        of ``unavailable``. Empty: nothing of the result stands without the model."""
        return self.Result.made_by_model

    def measure_only(self, clip: Clip) -> AnalyzerResult:
        """One checked clip's result without the model: every field of
        :attr:`made_by_model` None, the rest measured as with the model. Implemented by the
        analyzers that name :attr:`made_by_model`."""
        raise NotImplementedError(
            f"{type(self).__name__} names made_by_model fields but no measure_only"
        )

    def warm_up_first_call(self) -> None:
        """One made-up clip through the whole batch path, once at load on a GPU: a model's
        first call pays CUDA's lazy kernel loading and cuDNN's choice of kernels. Each GPU
        instance loads its own, and a clip Triton sent to a second instance nobody had
        called yet took 3.3 s in object_detection instead of 0.4 (the H100, 2026-12-07).
        It warms what the made-up clip reaches: a model behind a gate it does not pass
        (Whisper behind voice activity, a second stage behind detections) still starts on
        the first real clip. What the clip gives is dropped; a failure is logged, never
        raised."""
        clip = warm_up_clip(self.frames, self.audio, self.warm_up_seconds())
        start = time.perf_counter()
        try:
            out = self.analyze_batch([clip])
        except Exception:  # noqa: BLE001 - a warm-up never stops the model loading
            log.exception("%s: the first-call warm-up failed", self.name)
            return
        outcome = type(out[0]).__name__ if out else "nothing"
        log.info(
            "%s: first call warmed up in %.1f s (%s)",
            self.name,
            time.perf_counter() - start,
            outcome,
        )

    def warm_up_seconds(self) -> float:
        """The made-up clip's length: 2 s, or long enough that its frames fill one batch of
        the analyzer's ``batch_size`` and start another. A frame batch of a size the
        instance had not run cost its first clip the kernels' loading again:
        background_segmentation's second instance, warmed with 2 frames, took 2.7 s on its
        first 30-frame clip, 0.3 s on the next (the H100, tenth session)."""
        batch = int(getattr(self.params, "batch_size", 0) or 0)
        spec = self.frames
        if batch <= 1 or spec is None or spec.fps is None:
            return 2.0
        return max(2.0, (batch + 1) / min(float(spec.fps), 30.0))

    def warm_up_measures(self) -> None:
        """Start-up work of :meth:`measure_only` (JIT compiling), run once in the
        constructor when the model is missing; :meth:`load` does it otherwise."""

    def unavailable_fields(self) -> list[UnavailableField]:
        """The model-made fields, each with why it is missing and the fix."""
        return [self._missing.model_copy(update={"field": f}) for f in self.made_by_model]

    def _measured(self, clips: Sequence[Clip]) -> list[AnalyzerResult | Partial | Exception]:
        """Without the model: each clip's :meth:`measure_only` as a :class:`Partial`."""
        out: list[AnalyzerResult | Partial | Exception] = []
        for clip in clips:
            try:
                self.check(clip)
                out.append(Partial(self.measure_only(clip), self.unavailable_fields()))
            except Exception as exc:  # noqa: BLE001 - returned per clip by design
                out.append(self._kept(exc))
        return out

    @abstractmethod
    def load(self, weights: weights_layer.Weights) -> None:
        """Build the model from real files or a synthetic config; raise Unavailable when
        something it needs is missing."""

    # --- the batch path ---------------------------------------------------------------------

    def prepare(self, clip: Clip) -> Prepared:
        """One checked clip -> its model inputs and what :meth:`finish` needs besides the
        outputs. Raise for a clip that cannot be analyzed (ValueError: bad input)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither analyze nor prepare")

    def infer(self, inputs: list[Any]) -> Sequence[Any]:
        """One model call: one output per input, in order. ``inputs`` come from any clips,
        share one :meth:`batch_group` and number at most :attr:`batch_size`."""
        raise NotImplementedError(f"{type(self).__name__} implements no infer")

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[Any]) -> AnalyzerResult:
        """One clip's result from its :meth:`prepare` and the outputs of its inputs."""
        raise NotImplementedError(f"{type(self).__name__} implements no finish")

    def batch_group(self, item: Any) -> Hashable:
        """Inputs of different groups never share a model call (another tensor shape)."""
        return None

    def batch_order(self, item: Any) -> Any:
        """Sort key within a group, so that alike inputs (lengths) share a call."""
        return 0

    @property
    def batch_size(self) -> int:
        """Most inputs in one :meth:`infer` call; 0 hands them all at once."""
        return int(getattr(self.params, "batch_size", 0) or 0)

    def analyze(self, clip: Clip) -> AnalyzerResult | Partial:  # type: ignore[override]
        """One clip through :meth:`analyze_batch`: a :class:`Partial` without the model
        when the analyzer names :attr:`made_by_model`."""
        (outcome,) = self.analyze_batch([clip])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def analyze_batch(self, clips: Sequence[Clip]) -> list[AnalyzerResult | Partial | Exception]:
        if self._unavailable is not None:
            if self.made_by_model:
                return self._measured(clips)
            return [Unavailable(self._unavailable) for _ in clips]
        if type(self).analyze is not LearnedAnalyzer.analyze:
            return super().analyze_batch(clips)  # a per-clip analyzer: one at a time
        out: list[AnalyzerResult | Exception | None] = [None] * len(clips)
        prepared: dict[int, Prepared] = {}
        for i, clip in enumerate(clips):
            try:
                self.check(clip)
                prepared[i] = self.prepare(clip)
            except Exception as exc:  # noqa: BLE001 - returned per clip by design
                out[i] = self._kept(exc)
        outputs, failed = self._infer_all(prepared)
        for i, prep in prepared.items():
            if i in failed:
                out[i] = failed[i]
                continue
            try:
                out[i] = self.finish(clips[i], prep, outputs[i])
            except Exception as exc:  # noqa: BLE001 - returned per clip by design
                out[i] = self._kept(exc)
        return out  # type: ignore[return-value]

    def _infer_all(
        self, prepared: dict[int, Prepared]
    ) -> tuple[dict[int, list[Any]], dict[int, Exception]]:
        """Every clip's inputs through :meth:`infer` in shared batches; each clip's outputs
        in its own list. A failing batch fails the clips it held (their later batches are
        skipped), not the others."""
        outputs = {i: [None] * len(prep.inputs) for i, prep in prepared.items()}
        groups: dict[Hashable, list[tuple[int, int, Any]]] = {}
        for i, prep in prepared.items():
            for k, item in enumerate(prep.inputs):
                groups.setdefault(self.batch_group(item), []).append((i, k, item))
        failed: dict[int, Exception] = {}
        for items in groups.values():
            items.sort(key=lambda it: self.batch_order(it[2]))  # stable: clip order otherwise
            for part in chunks(len(items), self.batch_size or len(items)):
                batch = [it for it in items[part] if it[0] not in failed]
                if not batch:
                    continue
                try:
                    found = self.infer([item for _, _, item in batch])
                    if len(found) != len(batch):
                        raise RuntimeError(
                            f"{self.name}: the model gave {len(found)} outputs for "
                            f"{len(batch)} inputs"
                        )
                except Exception as exc:  # noqa: BLE001 - charged to the clips of this batch
                    log.exception("%s: a batch of %d inputs failed", self.name, len(batch))
                    for i, _, _ in batch:
                        failed.setdefault(i, exc)
                    continue
                for (i, k, _), output in zip(batch, found, strict=True):
                    outputs[i][k] = output
        return outputs, failed

    def _kept(self, exc: Exception) -> Exception:
        """An exception returned for its clip; the log keeps the trace of real faults."""
        if not isinstance(exc, _CLIP_OUTCOMES):
            log.exception("%s failed", self.name, exc_info=exc)
        return exc


def warm_up_clip(spec: FrameSpec | None, audio: bool, seconds: float = 2.0) -> Clip:
    """A short made-up vertical clip (1080x1920 at 30 fps) in the shapes the orchestrator
    would send for ``spec`` and ``audio``: smooth shaded frames with a bright box, and a
    tone with some noise."""
    fps, width, height = 30.0, 1080, 1920
    frames = timestamps = indices = None
    if spec is not None:
        if spec.every_frame:
            n = int(seconds * fps)
        elif spec.count is not None:
            n = int(spec.count)
        else:
            n = max(1, int(round(seconds * min(float(spec.fps or fps), fps))))
        side = spec.short_side or width
        w, h = side - side % 2, int(round(side * height / width / 2)) * 2
        ramp = np.linspace(40, 200, h, dtype=np.float32)[:, None, None]
        picture = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8).copy()
        picture[h // 3 : h // 2, w // 4 : 3 * w // 4] = 235
        frames = np.repeat(picture[None], n, axis=0)
        timestamps = np.linspace(0.0, seconds, n, endpoint=False)
        indices = np.round(timestamps * fps).astype(np.int64)
    sound = None
    if audio:
        t = np.arange(int(seconds * AUDIO_RATE), dtype=np.float32) / AUDIO_RATE
        noise = np.random.default_rng(0).normal(0.0, 0.01, t.shape).astype(np.float32)
        sound = (0.2 * np.sin(2 * np.pi * 220.0 * t) + noise).astype(np.float32)
    meta = ClipMeta(
        duration_s=seconds,
        fps=fps,
        width=width,
        height=height,
        has_video=frames is not None,
        has_audio=sound is not None,
    )
    return Clip(
        meta=meta, frames=frames, timestamps_s=timestamps, frame_indices=indices, audio=sound
    )
