"""The format between the orchestrator and the Triton models, in one place.

Both sides speak it: :mod:`tiktok_analyzer.serving.generate` writes it into each model's
config.pbtxt, :mod:`tiktok_analyzer.serving.adapter` reads requests and writes answers in
it inside the Triton stub, :mod:`tiktok_analyzer.orchestrator.models` and
:mod:`tiktok_analyzer.orchestrator.pipeline` read the declarations and build the requests.
Nothing else spells a tensor name, a declaration key or a frame set's text form.

Tensors of a request (batch dimension 1 first; which ones a model has depends on what its
analyzer declares):
  META         BYTES  [1, 1]            JSON :class:`Meta`: the clip's facts and upstream results
  FRAMES       UINT8  [1, N, H, W, 3]   RGB frames of the analyzer's frame set
  TIMESTAMPS   FP64   [1, N]            seconds
  FRAME_INDEX  INT64  [1, N]            index of each frame in the decoded stream
  AUDIO        FP32   [1, S]            16 kHz mono
  RESULT       BYTES  [1, 1]            (output) JSON :class:`AnalyzerEntry`, the envelope

This module stays light (pydantic and the standard library, numpy through ``base``): the
orchestrator-only install imports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tiktok_analyzer.analyzers.base import ClipMeta, FrameSpec, UnavailableField

__all__ = [
    "AUDIO",
    "DECLARATION_KEYS",
    "FRAMES",
    "FRAME_INDEX",
    "FRAME_TENSORS",
    "META",
    "RESULT",
    "TIMESTAMPS",
    "AnalyzerEntry",
    "BadDeclaration",
    "Declaration",
    "Meta",
    "ModelInfo",
    "Status",
    "Tensor",
    "UnavailableField",
    "WITH_RESULT",
    "Weights",
    "describe_frames",
    "frames_from_params",
    "frames_key",
    "frames_to_params",
    "parse_config_params",
    "parse_envelope",
    "parse_meta",
    "tunables",
]


# --- tensors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """One tensor of the wire: its name, Triton datatype and per-request dims (no batch)."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    @property
    def config_type(self) -> str:
        # config.pbtxt calls Triton's BYTES datatype TYPE_STRING.
        return "TYPE_STRING" if self.dtype == "BYTES" else f"TYPE_{self.dtype}"


META = Tensor("META", "BYTES", (1,))
FRAMES = Tensor("FRAMES", "UINT8", (-1, -1, -1, 3))
TIMESTAMPS = Tensor("TIMESTAMPS", "FP64", (-1,))
FRAME_INDEX = Tensor("FRAME_INDEX", "INT64", (-1,))
AUDIO = Tensor("AUDIO", "FP32", (-1,))
RESULT = Tensor("RESULT", "BYTES", (1,))
#: What a model that declares a frame set receives, in this order.
FRAME_TENSORS = (FRAMES, TIMESTAMPS, FRAME_INDEX)


# --- declarations (config.pbtxt parameters) -----------------------------------------------

K_ANALYZER = "analyzer"
K_MODEL_NAME = "model_name"
K_DEPENDS_ON = "depends_on"
K_AUDIO = "input_audio"
K_FRAMES = "input_frames"
K_SHORT_SIDE = "input_short_side"
K_OPTIONAL = "input_optional"
#: Parameters that tell the orchestrator what to ship, not tunables of the analyzer: the
#: adapter strips them before building the analyzer's Params.
DECLARATION_KEYS = frozenset(
    {K_ANALYZER, K_MODEL_NAME, K_DEPENDS_ON, K_AUDIO, K_FRAMES, K_SHORT_SIDE, K_OPTIONAL}
)

_PARAM = re.compile(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"')


class BadDeclaration(ValueError):
    """A model's declaration in its config.pbtxt cannot be read."""


def parameter_line(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}'


def parse_config_params(text: str) -> dict[str, str]:
    """The ``parameters`` of a config.pbtxt, as written by :func:`parameter_line`."""
    return dict(_PARAM.findall(text))


def tunables(params: dict[str, str]) -> dict[str, str]:
    """``params`` without the declaration keys: what the analyzer's Params are built from."""
    return {k: v for k, v in params.items() if k not in DECLARATION_KEYS}


def frames_to_params(spec: FrameSpec) -> dict[str, str]:
    if spec.every_frame:
        sel = "every_frame"
    elif spec.fps is not None:
        sel = f"fps={spec.fps:g}"
    else:
        sel = f"count={spec.count}"
    return {K_FRAMES: sel, K_SHORT_SIDE: str(spec.short_side)}


def frames_from_params(params: dict[str, str], where: str = "model") -> FrameSpec | None:
    """The frame set declared in ``params``, None when none; :class:`BadDeclaration` names
    ``where`` and the offending value when it cannot be read."""
    sel = params.get(K_FRAMES)
    if not sel:
        return None
    try:
        short = int(params.get(K_SHORT_SIDE, "0"))
        if sel == "every_frame":
            return FrameSpec(short_side=short, every_frame=True)
        if sel.startswith("fps="):
            return FrameSpec(short_side=short, fps=float(sel[4:]))
        if sel.startswith("count="):
            return FrameSpec(short_side=short, count=int(sel[6:]))
    except ValueError as exc:
        raise BadDeclaration(
            f"{where}: bad frame declaration {K_FRAMES}={sel!r} "
            f"{K_SHORT_SIDE}={params.get(K_SHORT_SIDE)!r}: {exc}"
        ) from None
    raise BadDeclaration(
        f"{where}: bad {K_FRAMES} {sel!r} (expected every_frame, fps=RATE or count=N)"
    )


def frames_key(spec: FrameSpec) -> str:
    """A short name for one frame set, unique per spec (the key of its decoded arrays)."""
    if spec.every_frame:
        sel = "every"
    elif spec.fps:
        sel = f"fps{spec.fps:g}"
    else:
        sel = f"n{spec.count}"
    return f"{sel}_{spec.short_side}"


def describe_frames(spec: FrameSpec | None) -> str:
    """The frame set for people: ``every frame @ 64px``, ``4 fps @ 224px``, ``8 frames @ 0px``."""
    if spec is None:
        return ""
    if spec.every_frame:
        rate = "every frame"
    elif spec.fps:
        rate = f"{spec.fps:g} fps"
    else:
        rate = f"{spec.count} frames"
    return f"{rate} @ {spec.short_side}px"


def _flag(params: dict[str, str], key: str, where: str) -> bool:
    value = params.get(key, "false")
    if value not in ("true", "false"):
        raise BadDeclaration(f"{where}: {key} must be true or false, got {value!r}")
    return value == "true"


@dataclass(frozen=True)
class Declaration:
    """What one model needs from a clip, and what the orchestrator may say about it without
    importing its analyzer (and the analyzer's heavy libraries)."""

    name: str
    frames: FrameSpec | None
    audio: bool
    depends_on: tuple[str, ...]
    #: Frames and audio may be missing: send what the clip has rather than skipping it.
    optional: bool = False
    #: The analyzer's model as the declaration knows it (a learned analyzer may load another
    #: at start; its report entry says which).
    model_name: str = ""

    def to_params(self) -> dict[str, str]:
        params = {
            K_ANALYZER: self.name,
            K_MODEL_NAME: self.model_name,
            K_AUDIO: str(self.audio).lower(),
            K_DEPENDS_ON: ",".join(self.depends_on),
        }
        if self.optional:
            params[K_OPTIONAL] = "true"
        if self.frames is not None:
            params.update(frames_to_params(self.frames))
        return params

    @classmethod
    def from_params(cls, name: str, params: dict[str, str]) -> Declaration:
        return cls(
            name=name,
            frames=frames_from_params(params, name),
            audio=_flag(params, K_AUDIO, name),
            depends_on=tuple(d for d in params.get(K_DEPENDS_ON, "").split(",") if d),
            optional=_flag(params, K_OPTIONAL, name),
            model_name=params.get(K_MODEL_NAME, ""),
        )


# --- META: the clip's facts and the upstream results --------------------------------------


class Meta(BaseModel):
    meta: ClipMeta
    #: The ``result`` of each analyzer named in ``depends_on`` that finished ``ok``.
    upstream: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def encode(self) -> bytes:
        # json.dumps, not model_dump_json: a NaN in an upstream result travels as before.
        return json.dumps(self.model_dump(mode="json")).encode()


def parse_meta(raw: bytes | str) -> Meta:
    """The META tensor's JSON; ValueError (one line) when it is not valid."""
    try:
        return Meta.model_validate(json.loads(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"META is not valid: {where}: {err['msg']}") from None
    except ValueError as exc:
        raise ValueError(f"META is not valid: {exc}") from None


# --- RESULT: the envelope around one analyzer's result ------------------------------------

#: ``partial``: it ran without its model; ``result`` holds what was measured and each field
#: only the model makes is null and listed in ``unavailable_fields`` (docs/REPORT_CONTRACT.md).
Status = Literal["ok", "partial", "failed", "skipped", "unavailable"]
#: The statuses whose entry carries a ``result`` (what a dependant receives upstream).
WITH_RESULT = ("ok", "partial")
Weights = Literal["real", "synthetic-tiny", "synthetic-full", "none"]


# No docstrings on these two: pydantic would put them into client/report.schema.json.
class ModelInfo(BaseModel):
    name: str
    weights: Weights


class AnalyzerEntry(BaseModel):
    status: Status
    error: str | None = None
    elapsed_s: float = Field(description="seconds inside the model, or until the failure")
    model: ModelInfo
    result: dict[str, Any] | None = None
    unavailable_fields: list[UnavailableField] = Field(
        default_factory=list,
        description="status partial: the result's fields that only the model makes, null in "
        "result, each with why and the fix; empty otherwise",
    )

    def encode(self) -> str:
        # json.dumps, not model_dump_json: a NaN in a result travels as it did before.
        return json.dumps(self.model_dump(mode="json"))


def parse_envelope(raw: bytes | str) -> AnalyzerEntry:
    """A model's RESULT: its report entry, validated."""
    return AnalyzerEntry.model_validate(json.loads(raw))
