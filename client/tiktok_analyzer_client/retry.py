"""Retry with exponential backoff, for the codes that mean "not now" rather than "no"."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` calls at most; between them, ``initial_backoff_s`` growing by
    ``multiplier`` up to ``max_backoff_s``, each scaled by a random factor in
    [1 - jitter, 1 + jitter] so that many clients do not come back in step.

    Only UNAVAILABLE is retried by default: the service (or Triton) is down or restarting,
    and the request never started. Add RESOURCE_EXHAUSTED to wait out a full queue.
    """

    attempts: int = 4
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    multiplier: float = 2.0
    jitter: float = 0.2
    codes: frozenset[grpc.StatusCode] = field(
        default_factory=lambda: frozenset({grpc.StatusCode.UNAVAILABLE})
    )

    def delays(self) -> Iterator[float]:
        """The pause before each retry (``attempts - 1`` of them)."""
        backoff = self.initial_backoff_s
        for _ in range(self.attempts - 1):
            yield backoff * random.uniform(1 - self.jitter, 1 + self.jitter)
            backoff = min(backoff * self.multiplier, self.max_backoff_s)

    def retries(self, code: grpc.StatusCode) -> bool:
        return code in self.codes


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a time.monotonic() deadline (None: no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
