"""Is Triton there? Asked with a short timeout and remembered for a moment, so that
`/health` and every new analysis know within a second when the server is down, without
sending Triton a readiness call per request."""

from __future__ import annotations

import asyncio
import logging
import time

import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = ["TritonProbe"]

log = logging.getLogger(__name__)

# A Triton that comes back is found within a second or two, not after gRPC's default
# reconnect backoff of up to two minutes.
_CHANNEL_ARGS = [
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.initial_reconnect_backoff_ms", 200),
]


class TritonProbe:
    def __init__(self, url: str, *, timeout_s: float = 0.5, cache_s: float = 1.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._client: grpcclient.InferenceServerClient | None = None
        self._checked_at = -float("inf")
        self._last: tuple[bool, str] = (False, "not checked yet")
        self._pending: asyncio.Task | None = None

    def _get_client(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self.url, channel_args=_CHANNEL_ARGS)
        return self._client

    async def ready(self, fresh: bool = False) -> tuple[bool, str]:
        """(ready, reason when not). Concurrent callers share one readiness call."""
        if not fresh and time.monotonic() - self._checked_at < self.cache_s:
            return self._last
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._check())
        # shield: one caller giving up must not cancel the check the others await
        return await asyncio.shield(self._pending)

    async def _check(self) -> tuple[bool, str]:
        try:
            ok = await self._get_client().is_server_ready(client_timeout=self.timeout_s)
            result = (True, "") if ok else (False, f"Triton at {self.url} is not ready")
        except InferenceServerException as exc:
            text = " ".join((exc.message() or str(exc)).split())[:200]
            result = (False, f"Triton at {self.url} does not answer ({text})")
        finally:
            self._pending = None
        if result[0] != self._last[0]:
            log.log(
                logging.INFO if result[0] else logging.WARNING,
                "Triton %s",
                "ready" if result[0] else result[1],
            )
        self._last, self._checked_at = result, time.monotonic()
        return result

    async def model_states(self) -> dict[str, str] | None:
        """Model name -> state from Triton's repository index; None when it does not answer."""
        try:
            index = await self._get_client().get_model_repository_index(
                as_json=True, client_timeout=self.timeout_s * 4
            )
        except InferenceServerException:
            return None
        return {m["name"]: m.get("state", "UNLOADED") for m in index.get("models", [])}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
