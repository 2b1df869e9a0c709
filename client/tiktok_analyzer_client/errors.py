"""Typed errors: one class per way a call can fail, so callers catch what they can act on.

The service's gRPC status code decides the class; the message is the service's one-line
reason (for bad input, the same line `tiktok-analyzer analyze` prints).
"""

from __future__ import annotations

import grpc

__all__ = [
    "AnalysisCancelledError",
    "AuthenticationError",
    "BadInputError",
    "DeadlineError",
    "InternalError",
    "NotFoundError",
    "OverloadedError",
    "PathNotAllowedError",
    "ServiceError",
    "UnavailableError",
    "error_from_code",
    "error_from_rpc",
]


class ServiceError(Exception):
    """Any failure of a call to the analyzer service."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class BadInputError(ServiceError):
    """Nothing to analyze: missing, unreadable, not a video, over the limits, unknown
    analyzer. Retrying the same request gives the same answer."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class PathNotAllowedError(BadInputError):
    """The video_path is outside the service's allowed roots (or escapes them)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NotFoundError(ServiceError):
    """No such job (unknown, or finished long enough ago to be forgotten)."""

    code = grpc.StatusCode.NOT_FOUND


class OverloadedError(ServiceError):
    """The service's queue is full: try later, or elsewhere."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(ServiceError):
    """The service, or the Triton server behind it, does not answer (or is shutting down).
    Retried with backoff by default."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineError(ServiceError):
    """The deadline passed before the report was complete."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class AnalysisCancelledError(ServiceError):
    code = grpc.StatusCode.CANCELLED


class AuthenticationError(ServiceError):
    """The service wants a bearer token, and this one is missing or wrong."""

    code = grpc.StatusCode.UNAUTHENTICATED


class InternalError(ServiceError):
    """A failure on the service's side that the caller cannot fix."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        BadInputError,
        PathNotAllowedError,
        NotFoundError,
        OverloadedError,
        UnavailableError,
        DeadlineError,
        AnalysisCancelledError,
        AuthenticationError,
    )
}


def error_from_code(code: grpc.StatusCode, message: str) -> ServiceError:
    cls = _BY_CODE.get(code, InternalError)
    return cls(message, code)


def error_from_rpc(exc: grpc.RpcError) -> ServiceError:
    """The typed error for a failed call (grpc.RpcError or grpc.aio.AioRpcError)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return error_from_code(code or grpc.StatusCode.UNKNOWN, details or code.name)
