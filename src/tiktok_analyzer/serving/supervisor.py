"""Keeps an embedded tritonserver running under a long-lived owner (the service).

If the server dies (killed, crashed, out of memory), the supervisor cleans up what it left
(its stubs are in its process group; its shm regions carry its own prefix) and starts a new
one on the same ports, so the service's endpoint pool finds it again by itself. Restarts
back off (1, 2, 4 … 30 s) while the server keeps dying, and the backoff resets once a server
has stayed up for a minute. While no server answers, analyses end at once as UNAVAILABLE /
503: the endpoint pool sees the closed ports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tiktok_analyzer.serving.launcher import EmbeddedTriton, TritonStartError

__all__ = ["TritonSupervisor"]

log = logging.getLogger(__name__)


class TritonSupervisor:
    """Watches ``server`` every ``check_every_s`` and restarts it when it has died.

    ``on_restart(ok)`` is called after each restart attempt (for metrics)."""

    def __init__(
        self,
        server: EmbeddedTriton,
        *,
        check_every_s: float = 0.5,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        on_restart: Callable[[bool], None] | None = None,
    ) -> None:
        self.server = server
        self.check_every_s = check_every_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self.on_restart = on_restart
        self.restarts = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or return True early when asked to stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        backoff = 1.0
        up_since = time.monotonic()
        while not await self._sleep(self.check_every_s):
            if self.server.alive():
                if time.monotonic() - up_since > self.stable_after_s:
                    backoff = 1.0
                continue
            code = self.server.process.returncode if self.server.process else None
            log.error(
                "tritonserver exited (code %s); cleaning up and restarting it on %s",
                code,
                self.server.grpc_url,
            )
            ok = await self._restart()
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart(ok)
            if ok:
                log.warning("tritonserver is back on %s", self.server.grpc_url)
                up_since = time.monotonic()
            elif await self._sleep(backoff):
                return
            else:
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _restart(self) -> bool:
        try:
            await asyncio.to_thread(self.server.restart)
        except (TritonStartError, OSError) as exc:
            log.error("tritonserver did not come back: %s", str(exc).splitlines()[0])
            return False
        return True
