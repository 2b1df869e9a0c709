"""Raw requests to one model of a live server, bypassing the orchestrator: for the tests of
what a model does with odd tensors (no frames, 16x16 frames, very large frames) and of
several requests batched together where one is bad.

    env = infer(triton, "text_overlay", frames=np.zeros((4, 16, 16, 3), np.uint8))
    env["status"]  # "ok" | "skipped" | "failed" | "unavailable"
"""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from tiktok_analyzer.serving.launcher import EmbeddedTriton

__all__ = ["infer", "infer_many", "meta_for"]


def meta_for(
    frames: np.ndarray | None,
    audio: np.ndarray | None,
    fps: float = 10.0,
    upstream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A META body consistent with the tensors (ClipMeta fields)."""
    n = 0 if frames is None else len(frames)
    duration = max(n / fps, 0.0 if audio is None else len(audio) / 16_000, 0.1)
    h, w = (0, 0) if frames is None or frames.ndim != 4 else frames.shape[1:3]
    return {
        "meta": {
            "duration_s": duration,
            "fps": fps if n else 0.0,
            "width": int(w),
            "height": int(h),
            "has_video": frames is not None,
            "has_audio": audio is not None,
        },
        "upstream": upstream or {},
    }


def _inputs(
    frames: np.ndarray | None,
    audio: np.ndarray | None,
    meta: dict[str, Any] | None,
    fps: float,
    upstream: dict[str, Any] | None,
) -> list[grpcclient.InferInput]:
    body = meta if meta is not None else meta_for(frames, audio, fps, upstream)
    meta_arr = np.array([[json.dumps(body).encode()]], dtype=np.object_)
    inputs = [grpcclient.InferInput("META", [1, 1], "BYTES")]
    inputs[0].set_data_from_numpy(meta_arr)
    if frames is not None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)[None]
        stamps = (np.arange(frames.shape[1], dtype=np.float64) / fps)[None]
        index = np.arange(frames.shape[1], dtype=np.int64)[None]
        for name, arr, dtype in (
            ("FRAMES", frames, "UINT8"),
            ("TIMESTAMPS", stamps, "FP64"),
            ("FRAME_INDEX", index, "INT64"),
        ):
            tensor = grpcclient.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)
    if audio is not None:
        arr = np.ascontiguousarray(audio, dtype=np.float32)[None]
        tensor = grpcclient.InferInput("AUDIO", list(arr.shape), "FP32")
        tensor.set_data_from_numpy(arr)
        inputs.append(tensor)
    return inputs


def infer(
    triton: EmbeddedTriton,
    model: str,
    frames: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    *,
    meta: dict[str, Any] | None = None,
    fps: float = 10.0,
    upstream: dict[str, Any] | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Send one request to ``model``; return its envelope (status, error, model, result).
    A request the model rejects as malformed raises tritonclient's InferenceServerException."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    try:
        out = client.infer(
            model,
            _inputs(frames, audio, meta, fps, upstream),
            outputs=[grpcclient.InferRequestedOutput("RESULT")],
            client_timeout=timeout_s,
        )
    finally:
        client.close()
    raw = out.as_numpy("RESULT").reshape(-1)[0]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def infer_many(
    triton: EmbeddedTriton, model: str, requests: list[dict[str, Any]]
) -> list[dict[str, Any] | Exception]:
    """Send several requests at once (Triton's dynamic batcher may join them into one
    ``execute``); each item holds :func:`infer`'s keyword arguments. Returns each envelope,
    or the exception its request raised, in order."""

    def one(kwargs: dict[str, Any]) -> dict[str, Any] | Exception:
        try:
            return infer(triton, model, **kwargs)
        except Exception as exc:  # noqa: BLE001 - returned per request
            return exc

    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))
