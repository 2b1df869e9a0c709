"""The one adapter between Triton's Python backend and an analyzer.

Every ``model_repository/<model>/1/model.py`` is two lines over :func:`make_model`. The only code that
touches ``triton_python_backend_utils`` lives here: it builds the analyzer once in
``initialize`` from the model's ``parameters``, turns each request's tensors into a
:class:`Clip`, hands all requests of an ``execute`` call to ``analyze_batch`` at once, and
answers every request with its own response: a JSON envelope
``{"status", "error", "elapsed_s", "model", "result", "unavailable_fields"}``, or a TritonError for a malformed
request. Tracebacks go to Triton's log, never to the caller.

The tensors, the META JSON and the envelope are :mod:`tiktok_analyzer.wire`'s; which
tensors a model has depends on what its analyzer declares (:mod:`tiktok_analyzer.serving.generate`).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import tempfile
import time

# The launcher starts tritonserver with SIGCHLD ignored so that dead stubs are reaped
# (serving/launcher.py); the stub inherits that. Models get the default back, or a
# subprocess they ran would lose its exit status.
signal.signal(signal.SIGCHLD, signal.SIG_DFL)

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

from tiktok_analyzer import wire  # noqa: E402
from tiktok_analyzer.analyzers import load_class  # noqa: E402
from tiktok_analyzer.analyzers.base import (  # noqa: E402
    Clip,
    NotApplicable,
    Partial,
    Unavailable,
)

_MAX_ERROR_CHARS = 300


def _short(exc: BaseException) -> str:
    return _one_line(
        f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (NotApplicable, Unavailable))
        else str(exc)
    )


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _optional(request, name: str):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return tensor.as_numpy()


def request_to_clip(request) -> Clip:
    """Unpack one request into a Clip; raises ValueError for a malformed request."""
    raw = _optional(request, wire.META.name)
    if raw is None or raw.size != 1:
        raise ValueError(f"{wire.META.name} must be one JSON string")
    meta = wire.parse_meta(raw.reshape(-1)[0])
    frames = _optional(request, wire.FRAMES.name)
    timestamps = _optional(request, wire.TIMESTAMPS.name)
    indices = _optional(request, wire.FRAME_INDEX.name)
    audio = _optional(request, wire.AUDIO.name)
    if frames is not None:
        frames = frames[0]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"{wire.FRAMES.name} must be [1, N, H, W, 3], got {list(frames.shape)}"
            )
        if timestamps is None or timestamps[0].shape[0] != frames.shape[0]:
            raise ValueError(f"{wire.TIMESTAMPS.name} must give one time per frame")
        timestamps = timestamps[0]
        indices = indices[0] if indices is not None else np.arange(frames.shape[0])
    if audio is not None:
        audio = audio[0]
    return Clip(
        meta=meta.meta,
        frames=frames,
        timestamps_s=timestamps,
        frame_indices=indices,
        audio=audio,
        upstream=meta.upstream,
    )


def _envelope(analyzer, outcome, elapsed_s: float) -> wire.AnalyzerEntry:
    model = {"name": analyzer.model_name, "weights": analyzer.weights}
    elapsed_s = round(elapsed_s, 4)
    if isinstance(outcome, NotApplicable):
        status = "skipped"
    elif isinstance(outcome, Unavailable):
        status = "unavailable"
    elif isinstance(outcome, BaseException):
        status = "failed"
    elif isinstance(outcome, Partial):
        # Measured without the model: the result as far as it goes, the rest listed.
        missing = outcome.unavailable
        fields = ", ".join(m.field for m in missing)
        fixes = " / ".join(dict.fromkeys(f"{m.reason}; {m.fix}" for m in missing))
        error = f"without its model, {fields} unavailable: {fixes}"
        if len(" ".join(error.split())) > _MAX_ERROR_CHARS:
            # Many fields (speech_emotion's): count them, so that the fix still fits.
            error = (
                f"without its model, {len(missing)} fields unavailable (unavailable_fields "
                f"names them): {fixes}"
            )
        return wire.AnalyzerEntry(
            status="partial",
            error=_one_line(error),
            elapsed_s=elapsed_s,
            model=model,
            result=outcome.result.model_dump(mode="json"),
            unavailable_fields=missing,
        )
    else:
        return wire.AnalyzerEntry(
            status="ok", elapsed_s=elapsed_s, model=model, result=outcome.model_dump(mode="json")
        )
    return wire.AnalyzerEntry(
        status=status, error=_short(outcome), elapsed_s=elapsed_s, model=model
    )


def _unfit(exc: BaseException, elapsed_s: float) -> wire.AnalyzerEntry:
    return wire.AnalyzerEntry(
        status="failed",
        error=_short(exc),
        elapsed_s=round(elapsed_s, 4),
        model=wire.ModelInfo(name="n/a", weights="none"),
    )


def _own_numba_cache(instance: str) -> None:
    """Give this model instance its own numba cache: librosa compiles the same functions in
    several stubs at start, and concurrent writers of one cache are not safe. With one
    cache per model, the two GPU instances of audio_environment or sound_effects died in
    initialize on the H100 (SIGSEGV in numba's gufunc call while librosa's beat tracker
    compiled), in two runs of three."""
    os.environ.setdefault(
        "NUMBA_CACHE_DIR",
        os.path.join(tempfile.gettempdir(), f"tiktok-analyzer-numba-{os.getuid()}", instance),
    )


#: NVIDIA MPS reads a client's priority from this when the process first uses CUDA: 0 is
#: normal, 1 below normal. Without an MPS daemon it is ignored.
MPS_PRIORITY_ENV = "CUDA_MPS_CLIENT_PRIORITY"


def _mps_priority(cls, device: str) -> None:
    """On a GPU, the analyzer on the critical path (``gpu_critical``) keeps MPS's normal
    priority and every other model runs below it, so that when the models' kernels share
    the GPU at once (MPS) the critical one's wait least. Set before the model touches CUDA;
    a value the server was started with wins."""
    if device.startswith("cuda"):
        os.environ.setdefault(MPS_PRIORITY_ENV, "0" if cls.gpu_critical else "1")


def _device(args: dict) -> str:
    """The device of this model instance: the learned analyzers put their model there
    (_learned.py)."""
    if args.get("model_instance_kind") in ("GPU", "KIND_GPU"):
        return f"cuda:{args.get('model_instance_device_id', 0)}"
    return "cpu"


class _TritonLog(logging.Handler):
    """The project's log records, from INFO up, into Triton's log beside the server's own
    lines. In a stub nothing else handles them: INFO was dropped (video_llava's quantizing
    and per-batch warm-up times, the decoder's "cache grows, compiles again") and a warning
    reached only the stub's stderr, without Triton's timestamp."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                pb_utils.Logger.log_error(text)
            elif record.levelno >= logging.WARNING:
                pb_utils.Logger.log_warn(text)
            else:
                pb_utils.Logger.log_info(text)
        except Exception:  # noqa: BLE001 - logging never fails the model
            self.handleError(record)


def _log_to_triton() -> None:
    """Once a stub: the ``tiktok_analyzer`` loggers' records go to Triton's log."""
    root = logging.getLogger("tiktok_analyzer")
    if not any(isinstance(h, _TritonLog) for h in root.handlers):
        handler = _TritonLog()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def make_model(analyzer_name: str):
    """Build the TritonPythonModel class for one analyzer."""

    class TritonPythonModel:
        def initialize(self, args):
            self.logger = pb_utils.Logger
            _log_to_triton()
            config = json.loads(args["model_config"])
            raw = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
            raw = wire.tunables(raw)
            # A native crash (a stub reported "not healthy") leaves its stack in Triton's log.
            faulthandler.enable()
            _own_numba_cache(str(args.get("model_instance_name") or analyzer_name))
            cls = load_class(analyzer_name)
            device = _device(args)
            _mps_priority(cls, device)
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
                    try:
                        body = _envelope(self.analyzer, outcome, per_clip).encode()
                    except ValueError as exc:  # the answer does not fit the envelope
                        self.logger.log_error(f"{analyzer_name}: bad envelope: {exc!r}")
                        body = _unfit(exc, per_clip).encode()
                    out = pb_utils.Tensor(wire.RESULT.name, np.array([[body]], dtype=np.object_))
                    responses[slot] = pb_utils.InferenceResponse(output_tensors=[out])
            return responses

        def finalize(self):
            self.analyzer = None

    TritonPythonModel.__name__ = f"TritonPythonModel_{analyzer_name}"
    return TritonPythonModel
