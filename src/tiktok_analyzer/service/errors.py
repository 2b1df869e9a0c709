"""How the service says no: one code per kind of failure, mapped once to gRPC and HTTP."""

from __future__ import annotations

from enum import Enum

__all__ = ["Code", "ServiceFailure"]


class Code(Enum):
    """(gRPC status code name, HTTP status, the `status` label of the analyses counter)."""

    BAD_INPUT = ("INVALID_ARGUMENT", 400, "bad_input")
    PATH_NOT_ALLOWED = ("PERMISSION_DENIED", 403, "path_refused")
    UNAUTHENTICATED = ("UNAUTHENTICATED", 401, "unauthenticated")
    NOT_FOUND = ("NOT_FOUND", 404, "not_found")
    OVERLOADED = ("RESOURCE_EXHAUSTED", 429, "rejected")
    UNAVAILABLE = ("UNAVAILABLE", 503, "unavailable")
    DEADLINE = ("DEADLINE_EXCEEDED", 504, "deadline_exceeded")
    # 499: nginx's "client closed request"; nobody is left to read it.
    CANCELLED = ("CANCELLED", 499, "cancelled")
    INTERNAL = ("INTERNAL", 500, "error")

    @property
    def grpc_name(self) -> str:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]

    @property
    def label(self) -> str:
        return self.value[2]


class ServiceFailure(Exception):
    """A request the service answers with an error: a code and a one-line message."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = " ".join(message.split())[:500]
