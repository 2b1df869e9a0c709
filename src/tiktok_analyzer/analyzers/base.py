"""The one interface every analyzer implements.

An analyzer declares what it needs from the clip (a frame set at a rate or a fixed count and
a size, the 16 kHz mono audio, earlier analyzers' results) and turns a :class:`Clip` holding
exactly that into a typed result. It knows nothing of Triton, gRPC or decoding: the
orchestrator decodes once and ships the frame sets, the Triton adapter
(:mod:`tiktok_analyzer.serving.adapter`) unpacks them into a :class:`Clip` and calls
:meth:`Analyzer.analyze_batch`.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AUDIO_RATE",
    "Analyzer",
    "AnalyzerResult",
    "Clip",
    "ClipMeta",
    "FrameSpec",
    "NotApplicable",
    "Partial",
    "Unavailable",
    "UnavailableField",
    "parse_params",
]

log = logging.getLogger(__name__)

#: Every analyzer that hears the clip gets it at this rate, mono float32 in [-1, 1].
AUDIO_RATE = 16_000


@dataclass(frozen=True)
class FrameSpec:
    """Which frames an analyzer wants, and how large.

    Exactly one of ``every_frame``, ``fps`` and ``count`` selects the frames:
    ``every_frame`` takes each decoded frame (cut detection needs frame accuracy), ``fps``
    samples at that rate (capped at the clip's own rate), ``count`` spreads that many frames
    uniformly over the clip. ``short_side`` is the frame's shorter side in pixels after
    resizing, aspect ratio kept (even sizes); 0 keeps the decoded size.
    """

    short_side: int
    every_frame: bool = False
    fps: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        chosen = sum([self.every_frame, self.fps is not None, self.count is not None])
        if chosen != 1:
            raise ValueError("FrameSpec needs exactly one of every_frame, fps, count")
        if self.short_side < 0:
            raise ValueError("short_side must be >= 0")


@dataclass(frozen=True)
class ClipMeta:
    """Facts about the source clip, from the probe."""

    duration_s: float
    fps: float
    width: int
    height: int
    has_video: bool = True
    has_audio: bool = True


R = TypeVar("R", bound="AnalyzerResult")


@dataclass
class Clip:
    """What one analyzer receives for one clip.

    ``frames`` is uint8 RGB, shape (N, H, W, 3); ``timestamps_s`` the presentation time of
    each frame in seconds from the start of the clip, shape (N,); ``frame_indices`` each
    frame's index in the decoded stream (for reporting ``frame``), shape (N,). ``audio`` is
    mono float32 at :data:`AUDIO_RATE`. ``upstream`` holds the ``result`` of each analyzer
    named in :attr:`Analyzer.depends_on` that finished ``ok`` (missing otherwise).
    """

    meta: ClipMeta
    frames: np.ndarray | None = None
    timestamps_s: np.ndarray | None = None
    frame_indices: np.ndarray | None = None
    audio: np.ndarray | None = None
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)

    def upstream_result(self, model: type[R]) -> R | None:
        """The result of the analyzer whose Result model is ``model`` (from
        ``analyzers.results``), validated; None when it did not finish ok. Typed access, so
        a renamed field fails here, loudly, rather than reading as a default."""
        from tiktok_analyzer.analyzers.results import analyzer_of

        raw = self.upstream.get(analyzer_of(model))
        return None if raw is None else model.model_validate(raw)


class AnalyzerResult(BaseModel):
    """Base of every analyzer's typed result: extra fields are welcome, the contract's are
    declared (docs/REPORT_CONTRACT.md).

    ``made_by_model`` names the fields that only the analyzer's model makes, when the rest
    is measured without it (``scene``; ``events[].label``: that field of each item). They
    are nullable; without the model the analyzer answers ``partial`` with them null (see
    ``_learned.py``), and the report's schema lists them per analyzer."""

    model_config = ConfigDict(extra="allow")
    made_by_model: ClassVar[tuple[str, ...]] = ()


class NotApplicable(Exception):
    """The analyzer does not apply to this clip (no audio track, no picture, too short):
    reported as status ``skipped`` with this message."""


class Unavailable(Exception):
    """The analyzer cannot run here (weights missing, not built yet): reported as status
    ``unavailable``; the message says what fixes it.

    ``reason`` says what is missing and ``fix`` what fixes it, apart, for a ``partial``
    answer's :class:`UnavailableField`; the message is ``"reason; fix"``."""

    def __init__(self, reason: str, fix: str = "") -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}; {fix}" if fix else reason)


# No docstring: pydantic would put it into client/report.schema.json.
class UnavailableField(BaseModel):
    field: str = Field(
        description="a result field that only the model makes, null in this result: a name "
        "('scene'), or a field of each item of a list ('events[].label')"
    )
    reason: str = Field(description="why it could not be made here (the model's weights missing)")
    fix: str = Field(description="what makes it available (the command to run)")


@dataclass
class Partial:
    """An answer without its model: the ``result`` holds what was measured, and each field
    in ``unavailable`` (made only by the model) is null. Reported as status ``partial``
    with the fields listed in the entry's ``unavailable_fields``.

    The fields are checked against the result here: one that is not null is a fault of
    the analyzer (ValueError), never a silently filled-in value."""

    result: AnalyzerResult
    unavailable: list[UnavailableField]

    def __post_init__(self) -> None:
        if not self.unavailable:
            raise ValueError("a partial result names at least one unavailable field")
        dumped = self.result.model_dump(mode="json")
        for item in self.unavailable:
            filled = [v for v in _values_at(dumped, item.field) if v is not None]
            if filled:
                raise ValueError(
                    f"{type(self.result).__name__}.{item.field} is listed unavailable but holds "
                    f"{filled[0]!r}"
                )


def _values_at(data: Any, path: str) -> list[Any]:
    """Every value at ``path`` in a dumped result: ``a``, ``a.b``, ``a[].b`` (each item of
    the list ``a``). A missing key reads as None; a field name that no model declares is
    caught by the tests (``tests/unit/test_partial.py``), not here."""
    values = [data]
    for part in path.split("."):
        is_list = part.endswith("[]")
        key = part[:-2] if is_list else part
        nxt: list[Any] = []
        for v in values:
            got = v.get(key) if isinstance(v, Mapping) else None
            if is_list:
                nxt.extend(got or [])
            else:
                nxt.append(got)
        values = nxt
    return values


def parse_params(cls: type, raw: Mapping[str, str]) -> Any:
    """Build the dataclass ``cls`` from string parameters (Triton's config.pbtxt
    ``parameters``), converting each to its field's type. Booleans are parsed explicitly:
    ``bool("false")`` is True. Unknown keys raise, so a typo in a config fails loudly."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - fields
    if unknown:
        raise ValueError(f"unknown parameter(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, text in raw.items():
        kind = hints[name]
        if kind is bool:
            low = str(text).strip().lower()
            if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(f"parameter {name}: {text!r} is not a boolean")
            values[name] = low in {"1", "true", "yes", "on"}
        elif kind in (int, float, str):
            values[name] = kind(text)
        else:
            raise TypeError(f"parameter {name}: unsupported type {kind}")
    return cls(**values)


class Analyzer(ABC):
    """One unit of analysis. Subclasses set the class attributes and implement
    :meth:`analyze`; they are constructed once (in Triton's ``initialize``) with their
    typed :class:`Params`.

    Class attributes:
        name: the analyzer's name in the API and the report (docs/REPORT_CONTRACT.md).
        frames: the frame set it needs, or None for none.
        audio: whether it needs the clip's audio.
        depends_on: analyzers whose results it reads (stage DAG); it runs after them.
        inputs_optional: frames and audio may be missing (a clip without them).
        Params: a dataclass of tunables, filled from config.pbtxt ``parameters``.
        Result: the pydantic model of its result.
        model_name / weights: what the report's ``model`` field says.
        gpu: the model gains from a GPU: ``tiktok_analyzer.serving.generate`` writes it a
            ``configs/gpu.pbtxt`` with a KIND_GPU instance, which the launcher picks on a
            host with a GPU (learned analyzers; see ``_learned.py``).
        gpu_instances / preferred_batch / gpu_note: that configuration's KIND_GPU
            instance count, Triton's preferred batch sizes (empty: any up to the maximum)
            and why, written into it as a comment.
        gpu_critical: the model sets the wall time of one clip (its chain of stages is the
            longest): on a GPU shared through NVIDIA's MPS its kernels go first
            (``serving/adapter.py``); without MPS this changes nothing.
        gpu_host_instances: for an analyzer without ``gpu``, its KIND_CPU instance count
            on a host with a GPU (that host's cores run clips side by side); above 1 it gets
            a ``configs/gpu.pbtxt`` too, taking one clip per request.
    """

    name: ClassVar[str]
    frames: ClassVar[FrameSpec | None] = None
    audio: ClassVar[bool] = False
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: True when the analyzer still has work without its frames or audio (it overrides
    #: :meth:`check`): the orchestrator then sends what the clip has instead of skipping it.
    inputs_optional: ClassVar[bool] = False
    Result: ClassVar[type[AnalyzerResult]] = AnalyzerResult
    model_name: ClassVar[str] = "classical"
    weights: ClassVar[str] = "none"
    gpu: ClassVar[bool] = False
    # Without measurements on the GPU yet: two instances of a small model let one's CPU
    # work (resizing, post-processing) overlap the other's GPU work; the big models
    # override this with one.
    gpu_instances: ClassVar[int] = 2
    preferred_batch: ClassVar[tuple[int, ...]] = ()
    gpu_note: ClassVar[str] = (
        "a small model: two instances overlap one's CPU work with the other's GPU work"
    )
    gpu_critical: ClassVar[bool] = False
    #: A CPU analyzer's KIND_CPU instances on a host with a GPU (its ``configs/gpu.pbtxt``),
    #: each taking one clip at a time. One instance runs a batch's clips one after another:
    #: at eight clips in flight on the H100 host (16 cores) eye_tracking's one instance
    #: held the last clip for 15 s (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances: ClassVar[int] = 1

    @dataclass
    class Params:
        pass

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_strings(cls, raw: Mapping[str, str], device: str | None = None) -> Analyzer:
        """The analyzer with its parameters from config.pbtxt. ``device`` is the Triton
        instance's torch device (``cpu``, ``cuda:<id>``): only analyzers with a model take
        it (``_learned.py``); the others run on the CPU wherever they are."""
        return cls(parse_params(cls.Params, raw))

    def check(self, clip: Clip) -> None:
        """Raise :class:`NotApplicable` when the clip lacks what this analyzer needs."""
        if self.frames is not None and (clip.frames is None or len(clip.frames) == 0):
            raise NotApplicable("the clip has no picture")
        if self.audio and (clip.audio is None or clip.audio.size == 0):
            raise NotApplicable("the clip has no audio track")

    @abstractmethod
    def analyze(self, clip: Clip) -> AnalyzerResult:
        """Analyze one clip. Raise NotApplicable / Unavailable for those outcomes; any other
        exception is a failure of this analyzer on this clip."""

    def analyze_batch(self, clips: Sequence[Clip]) -> list[AnalyzerResult | Partial | Exception]:
        """Analyze several clips handed over together (Triton's dynamic batcher). The default
        runs them one by one; learned analyzers override it to batch frames across clips,
        and answer a :class:`Partial` per clip when their model is missing but part of the
        result is measured without it. An exception for one clip is returned in its place,
        never raised, so it cannot sink its neighbours."""
        out: list[AnalyzerResult | Partial | Exception] = []
        for clip in clips:
            try:
                self.check(clip)
                out.append(self.analyze(clip))
            except Exception as exc:  # noqa: BLE001 - returned per clip by design
                if not isinstance(exc, (NotApplicable, Unavailable)):
                    log.exception("%s failed", self.name)
                out.append(exc)
        return out
