"""A stand-in for Triton's ``triton_python_backend_utils``: just enough of its surface for the
shared adapter, so each model.py can be driven without a server (the unit tier of
tensorrtllm_backend's tests does the same)."""

from __future__ import annotations

import types

import numpy as np


class TritonError:
    (
        UNKNOWN,
        INTERNAL,
        NOT_FOUND,
        INVALID_ARG,
        UNAVAILABLE,
        UNSUPPORTED,
        ALREADY_EXISTS,
        CANCELLED,
    ) = range(8)

    def __init__(self, message: str, code: int = 0) -> None:
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceRequest:
    def __init__(self, tensors: dict[str, np.ndarray], cancelled: bool = False) -> None:
        self.tensors = {k: Tensor(k, v) for k, v in tensors.items()}
        self.cancelled = cancelled

    def is_cancelled(self) -> bool:
        return self.cancelled


class InferenceResponse:
    def __init__(self, output_tensors=None, error: TritonError | None = None) -> None:
        self.output_tensors = output_tensors or []
        self.error = error

    def has_error(self) -> bool:
        return self.error is not None


class Logger:
    lines: list[str] = []

    @classmethod
    def log_info(cls, msg: str) -> None:
        cls.lines.append(f"I {msg}")

    @classmethod
    def log_warn(cls, msg: str) -> None:
        cls.lines.append(f"W {msg}")

    @classmethod
    def log_error(cls, msg: str) -> None:
        cls.lines.append(f"E {msg}")


def get_input_tensor_by_name(request: InferenceRequest, name: str):
    return request.tensors.get(name)


def as_module() -> types.ModuleType:
    mod = types.ModuleType("triton_python_backend_utils")
    for obj in (
        TritonError,
        Tensor,
        InferenceRequest,
        InferenceResponse,
        Logger,
        get_input_tensor_by_name,
    ):
        setattr(mod, obj.__name__, obj)
    return mod
