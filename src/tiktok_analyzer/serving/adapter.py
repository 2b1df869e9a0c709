"""The one adapter between Triton's Python backend and an analyzer.

Every ``model_repository/<model>/1/model.py`` is two lines over :func:`make_model`. The only code that
touches ``triton_python_backend_utils`` lives here: it builds the analyzer once in
``initialize`` from the model's ``parameters``, turns each request's tensors into a
:class:`Clip`, hands all requests of an ``execute`` call to ``analyze_batch`` at once, and
answers every request with its own response: a JSON envelope
``{"status", "error", "elapsed_s", "model", "result"}``, or a TritonError for a malformed
request. Tracebacks go to Triton's log, never to the caller.

Tensors of a request (batch dimension 1 first; which ones a model has depends on what its
analyzer declares, see :mod:`tiktok_analyzer.serving.generate`):
  META         BYTES  [1, 1]            JSON {"meta": ClipMeta fields, "upstream": {...}}
  FRAMES       UINT8  [1, N, H, W, 3]   RGB frames of the analyzer's frame set
  TIMESTAMPS   FP64   [1, N]            seconds
  FRAME_INDEX  INT64  [1, N]            index of each frame in the decoded stream
  AUDIO        FP32   [1, S]            16 kHz mono
  RESULT       BYTES  [1, 1]            (output) JSON envelope
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import tempfile
import time

# docs/DESIGN.md, The two traps (1): the stub's embedded interpreter may start from the base
# interpreter's sys.path. The launcher names the venv's site-packages; put it first before
# importing anything from it.
_SITE = os.environ.get("TIKTOK_ANALYZER_SITE_PACKAGES")
if _SITE and _SITE not in sys.path[:1]:
    sys.path.insert(0, _SITE)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

if int(np.__version__.split(".")[0]) >= 2:  # docs/DESIGN.md, The two traps (2): outputs empty
    raise ImportError(
        f"numpy {np.__version__} is loaded in the Triton stub; the 2.51 stub needs numpy < 2. "
        "Start tritonserver with the project's .venv/bin first on PATH (tiktok-analyzer does)."
    )

from tiktok_analyzer.analyzers import load_class  # noqa: E402
from tiktok_analyzer.analyzers.base import (  # noqa: E402
    Clip,
    ClipMeta,
    NotApplicable,
    Unavailable,
)

_MAX_ERROR_CHARS = 300


def _short(exc: BaseException) -> str:
    text = (
        f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (NotApplicable, Unavailable))
        else str(exc)
    )
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _optional(request, name: str):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return tensor.as_numpy()


def request_to_clip(request) -> Clip:
    """Unpack one request into a Clip; raises ValueError for a malformed request."""
    raw = _optional(request, "META")
    if raw is None or raw.size != 1:
        raise ValueError("META must be one JSON string")
    try:
        meta = json.loads(raw.reshape(-1)[0])
        clip_meta = ClipMeta(**meta["meta"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"META is not valid: {exc}") from None
    frames = _optional(request, "FRAMES")
    timestamps = _optional(request, "TIMESTAMPS")
    indices = _optional(request, "FRAME_INDEX")
    audio = _optional(request, "AUDIO")
    if frames is not None:
        frames = frames[0]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"FRAMES must be [1, N, H, W, 3], got {list(frames.shape)}")
        if timestamps is None or timestamps[0].shape[0] != frames.shape[0]:
            raise ValueError("TIMESTAMPS must give one time per frame")
        timestamps = timestamps[0]
        indices = indices[0] if indices is not None else np.arange(frames.shape[0])
    if audio is not None:
        audio = audio[0]
    return Clip(
        meta=clip_meta,
        frames=frames,
        timestamps_s=timestamps,
        frame_indices=indices,
        audio=audio,
        upstream=meta.get("upstream") or {},
    )


def _envelope(analyzer, outcome, elapsed_s: float) -> dict:
    body = {
        "status": "ok",
        "error": None,
        "elapsed_s": round(elapsed_s, 4),
        "model": {"name": analyzer.model_name, "weights": analyzer.weights},
        "result": None,
    }
    if isinstance(outcome, NotApplicable):
        body.update(status="skipped", error=_short(outcome))
    elif isinstance(outcome, Unavailable):
        body.update(status="unavailable", error=_short(outcome))
    elif isinstance(outcome, BaseException):
        body.update(status="failed", error=_short(outcome))
    else:
        body["result"] = outcome.model_dump(mode="json")
    return body


def make_model(analyzer_name: str):
    """Build the TritonPythonModel class for one analyzer."""

    class TritonPythonModel:
        def initialize(self, args):
            self.logger = pb_utils.Logger
            config = json.loads(args["model_config"])
            raw = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
            # Declarations for the orchestrator (what to ship), not tunables of the analyzer.
            raw = {
                k: v
                for k, v in raw.items()
                if k not in {"analyzer", "depends_on"} and not k.startswith("input_")
            }
            # A native crash (a stub reported "not healthy") leaves its stack in Triton's log.
            faulthandler.enable()
            # Each model its own numba cache: librosa compiles the same functions in several
            # stubs at start, and concurrent writers of one cache are not safe (two stubs
            # died in initialize on the H100 while three compiled at once).
            os.environ.setdefault(
                "NUMBA_CACHE_DIR",
                os.path.join(
                    tempfile.gettempdir(), f"tiktok-analyzer-numba-{os.getuid()}", analyzer_name
                ),
            )
            # The learned analyzers put their model on this instance's device (_learned.py).
            if args.get("model_instance_kind") in ("GPU", "KIND_GPU"):
                device = f"cuda:{args.get('model_instance_device_id', 0)}"
            else:
                device = "cpu"
            cls = load_class(analyzer_name)
            # Heavy work happens once, here: weights, JIT warm-up, lookup tables.
            self.analyzer = cls.from_strings(raw, device=device)
            self.logger.log_info(
                f"{analyzer_name}: ready on {args.get('model_instance_kind', 'CPU')} "
                f"(instance {args.get('model_instance_name')})"
            )

        def execute(self, requests):
            responses = [None] * len(requests)
            clips, slots = [], []
            for i, request in enumerate(requests):
                if request.is_cancelled():
                    responses[i] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(
                            "request cancelled", pb_utils.TritonError.CANCELLED
                        )
                    )
                    continue
                try:
                    clips.append(request_to_clip(request))
                    slots.append(i)
                except ValueError as exc:
                    responses[i] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(
                            f"{analyzer_name}: bad request: {_short(exc)}",
                            pb_utils.TritonError.INVALID_ARG,
                        )
                    )
            if clips:
                start = time.perf_counter()
                try:
                    outcomes = self.analyzer.analyze_batch(clips)
                except Exception as exc:  # noqa: BLE001 - the batch failed as a whole
                    self.logger.log_error(f"{analyzer_name}: batch failed: {exc!r}")
                    outcomes = [exc] * len(clips)
                # The batch ran as one; each clip is charged its share of the time.
                per_clip = (time.perf_counter() - start) / len(clips)
                for slot, outcome in zip(slots, outcomes, strict=True):
                    body = json.dumps(_envelope(self.analyzer, outcome, per_clip))
                    out = pb_utils.Tensor("RESULT", np.array([[body]], dtype=np.object_))
                    responses[slot] = pb_utils.InferenceResponse(output_tensors=[out])
            return responses

        def finalize(self):
            self.analyzer = None

    TritonPythonModel.__name__ = f"TritonPythonModel_{analyzer_name}"
    return TritonPythonModel
