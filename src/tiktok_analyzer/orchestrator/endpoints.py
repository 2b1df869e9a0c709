"""Several Triton servers behind one orchestrator: which models each serves, whether it is
there, and where each analyzer's request goes.

A pool knows, per endpoint, whether the server answers and which models its repository
index says are READY. That knowledge is refreshed in the background once it is older than
``refresh_s``, at once when a request finds it wrong, and by every health check. A request
goes to the endpoint serving its model with the fewest requests of ours in flight for that
model (ties: the one sent the fewest of them, so equal servers take turns). When an endpoint fails a request
because it is gone or no longer serves the model, the request is sent again to another
endpoint that serves it, a bounded number of times; a request that failed on its own
merits (the analyzer's error, a deadline) is not.

A model whose backend process (the Python stub) died keeps READY in Triton's index but
fails every request ("Stub process ... is not healthy") and Triton 2.51 does not restart
it; a load request is a no-op for a model already loaded. So the pool unloads and loads it
again on that endpoint, in the background; a later request for that model there waits
for the reload instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = [
    "Endpoint",
    "EndpointPool",
    "Fault",
    "InferFailed",
    "classify",
    "parse_urls",
]

log = logging.getLogger(__name__)

#: A Triton that comes back is found within a second or two, not after gRPC's default
#: reconnect backoff of up to two minutes.
CHANNEL_ARGS = [
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_receive_message_length", 64 * 1024**2),
    ("grpc.max_send_message_length", 1024**3),
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def parse_urls(spec: str | Iterable[str]) -> list[str]:
    """``"host:port,host:port"`` (or a list of them) as a list, blanks and repeats dropped;
    ValueError for an entry that is not HOST:PORT."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"Triton endpoint {part!r} is not HOST:PORT")
        if part not in urls:
            urls.append(part)
    if not urls:
        raise ValueError("no Triton endpoint given")
    return urls


class Fault(Enum):
    """What a failed request says about where it went."""

    #: The server is gone or unreachable: try another, and look at this one again later.
    UNREACHABLE = "unreachable"
    #: The server does not serve this model (now): try another.
    MODEL_NOT_READY = "model_not_ready"
    #: The model's backend process died: try another; reload the model there.
    STUB_DIED = "stub_died"
    #: The server does not know our shared-memory region (it restarted): register again.
    SHM_LOST = "shm_lost"
    #: No answer within the deadline: final.
    TIMEOUT = "timeout"
    #: The model answered with an error of its own: final.
    REQUEST = "request"


def classify(exc: InferenceServerException) -> Fault:
    status = exc.status() or ""
    text = (exc.message() or "").lower()
    if status.endswith("UNAVAILABLE"):
        return Fault.UNREACHABLE
    if status.endswith("DEADLINE_EXCEEDED"):
        return Fault.TIMEOUT
    if "shared memory region" in text:
        return Fault.SHM_LOST
    if "unknown model" in text or "not ready" in text or "no available versions" in text:
        return Fault.MODEL_NOT_READY
    if "stub process" in text and "not healthy" in text:
        return Fault.STUB_DIED
    return Fault.REQUEST


def _text(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerException):
        text = exc.message() or str(exc)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]


class InferFailed(Exception):
    """An analyzer's request failed on every endpoint tried; the message says why."""


@dataclass(eq=False)
class Endpoint:
    url: str
    local: bool
    client: grpcclient.InferenceServerClient
    live: bool = False
    #: Models READY in the server's repository index at the last look.
    ready_models: frozenset[str] = frozenset()
    states: dict[str, str] = field(default_factory=dict)
    reason: str = "not checked yet"
    checked_at: float = -float("inf")
    #: model -> our requests in flight there, and sent there so far
    inflight: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    #: model -> its reload in progress on this endpoint
    reloading: dict[str, asyncio.Task] = field(default_factory=dict)
    _check: asyncio.Task | None = None

    def serves(self, model: str) -> bool:
        return self.live and model in self.ready_models and model not in self.reloading


class EndpointPool:
    """Triton endpoints for one process: create inside the event loop that uses it (gRPC
    channels belong to a loop), end with :meth:`close`."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        check_timeout_s: float = 0.5,
        refresh_s: float = 1.0,
        attempts: int = 3,
        reload_timeout_s: float = 120.0,
    ) -> None:
        self.urls = parse_urls(urls)
        self.check_timeout_s = check_timeout_s
        self.refresh_s = refresh_s
        #: Endpoints one request is sent to at most (the first included).
        self.attempts = attempts
        self.reload_timeout_s = reload_timeout_s
        self.endpoints = [
            Endpoint(
                url=u,
                local=u.rpartition(":")[0] in LOOPBACK,
                client=grpcclient.InferenceServerClient(u, channel_args=CHANNEL_ARGS),
            )
            for u in self.urls
        ]
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    # -- what the endpoints are doing --------------------------------------------------------

    async def refresh(
        self, fresh: bool = False, endpoints: Iterable[Endpoint] | None = None
    ) -> None:
        """Look again at the endpoints whose state is older than ``refresh_s`` (all, when
        ``fresh``); concurrent callers share one look per endpoint."""
        now = time.monotonic()
        checks = [
            self._check(ep)
            for ep in (self.endpoints if endpoints is None else endpoints)
            if fresh or now - ep.checked_at >= self.refresh_s
        ]
        if checks:
            # shield: one caller giving up must not cancel the look the others await
            await asyncio.shield(asyncio.gather(*checks))

    def _check(self, ep: Endpoint) -> asyncio.Task:
        if ep._check is None or ep._check.done():
            ep._check = asyncio.ensure_future(self._look(ep))
        return ep._check

    async def _look(self, ep: Endpoint) -> None:
        timeout = self.check_timeout_s
        ready, index = await asyncio.gather(
            ep.client.is_server_ready(client_timeout=timeout),
            ep.client.get_model_repository_index(as_json=True, client_timeout=timeout * 2),
            return_exceptions=True,
        )
        was = ep.live
        if isinstance(ready, BaseException):
            ep.live, ep.reason = False, f"Triton at {ep.url} does not answer ({_text(ready)})"
        elif not ready:
            ep.live, ep.reason = False, f"Triton at {ep.url} is not ready"
        else:
            ep.live, ep.reason = True, ""
        if isinstance(index, dict):
            ep.states = {m["name"]: m.get("state", "UNLOADED") for m in index.get("models", [])}
            ep.ready_models = frozenset(m for m, s in ep.states.items() if s == "READY")
        elif not ep.live:
            ep.states, ep.ready_models = {}, frozenset()
        ep.checked_at = time.monotonic()
        if ep.live != was:
            log.log(
                logging.INFO if ep.live else logging.WARNING,
                "Triton %s",
                f"at {ep.url} ready" if ep.live else ep.reason,
            )

    def _mark_down(self, ep: Endpoint, reason: str) -> None:
        ep.live, ep.reason, ep.checked_at = False, reason, time.monotonic()

    def _refresh_soon(self) -> None:
        """Start looks at stale endpoints without waiting for them."""
        now = time.monotonic()
        for ep in self.endpoints:
            if now - ep.checked_at >= self.refresh_s:
                self._check(ep)

    async def ready(self, fresh: bool = False) -> tuple[bool, str]:
        """(at least one endpoint ready, why not when none is)."""
        await self.refresh(fresh)
        if any(ep.live for ep in self.endpoints):
            return True, ""
        return False, "; ".join(ep.reason for ep in self.endpoints)

    async def model_states(self) -> dict[str, str] | None:
        """Model name -> state, READY when any endpoint serves it; None when no endpoint
        answers."""
        await self.refresh()
        live = [ep for ep in self.endpoints if ep.live]
        if not live:
            return None
        merged: dict[str, str] = {}
        for ep in live:
            for model, state in ep.states.items():
                if merged.get(model) != "READY":
                    merged[model] = state
        return merged

    # -- requests ----------------------------------------------------------------------------

    async def _pick(self, model: str, tried: set[Endpoint], deadline: float) -> Endpoint | None:
        self._refresh_soon()
        candidates = [ep for ep in self.endpoints if ep not in tried and ep.serves(model)]
        if not candidates:
            # Nobody serves it as far as we know: wait for a reload of it, then look again.
            others = [ep for ep in self.endpoints if ep not in tried]
            reloads = [ep.reloading[model] for ep in others if model in ep.reloading]
            left = deadline - asyncio.get_running_loop().time()
            if reloads and left > 0:
                await asyncio.wait(reloads, timeout=left)
            await self.refresh(fresh=True, endpoints=others)
            candidates = [ep for ep in others if ep.serves(model)]
        return (
            min(candidates, key=lambda ep: (ep.inflight[model], ep.sent[model]))
            if candidates
            else None
        )

    async def infer(
        self,
        model: str,
        make_inputs: Callable[[Endpoint], Awaitable[list[grpcclient.InferInput]]],
        outputs: list[grpcclient.InferRequestedOutput],
        timeout_s: float,
        on_shm_lost: Callable[[Endpoint], None] | None = None,
    ) -> grpcclient.InferResult:
        """Send one request for ``model``, moving to another endpoint when one fails it.
        Raises TimeoutError when no answer came within ``timeout_s`` (the request is
        cancelled), :class:`InferFailed` otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        tried: set[Endpoint] = set()
        failures: list[str] = []
        shm_retried = False
        while len(tried) < self.attempts:
            ep = await self._pick(model, tried, deadline)
            if ep is None:
                break
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            ep.inflight[model] += 1
            ep.sent[model] += 1
            try:
                inputs = await make_inputs(ep)
                # client_timeout cancels the call at Triton too; wait_for is the backstop
                return await asyncio.wait_for(
                    ep.client.infer(model, inputs, outputs=outputs, client_timeout=left), left + 2.0
                )
            except InferenceServerException as exc:
                fault = classify(exc)
                if fault is Fault.TIMEOUT:
                    raise TimeoutError from None
                if fault is Fault.REQUEST:
                    raise InferFailed(_text(exc)) from None
                if fault is Fault.SHM_LOST and on_shm_lost is not None and not shm_retried:
                    shm_retried = True
                    on_shm_lost(ep)
                    continue  # same endpoint, registered again
                failures.append(self._note(ep, model, fault, exc))
                tried.add(ep)
            finally:
                ep.inflight[model] -= 1
        if not failures:
            known = "; ".join(
                f"{ep.url}: {ep.reason or ep.states.get(model, 'not in its repository')}"
                for ep in self.endpoints
            )
            raise InferFailed(f"no Triton endpoint serves {model} ({known})")
        raise InferFailed("; ".join(failures))

    def _note(self, ep: Endpoint, model: str, fault: Fault, exc: InferenceServerException) -> str:
        """Update what we know after ``fault``; the line the report shows for it."""
        text = _text(exc)
        if fault is Fault.UNREACHABLE:
            self._mark_down(ep, f"Triton at {ep.url} does not answer ({text})")
            self._check(ep)  # it may only have restarted
            return f"Triton at {ep.url} does not answer ({text})"
        if fault is Fault.STUB_DIED:
            self.reload(ep, model)
            return (
                f"the model's process died on {ep.url} ({text}); the model is being reloaded there"
            )
        ep.ready_models = ep.ready_models - {model}
        self._check(ep)
        return f"{ep.url} does not serve the model now ({text})"

    # -- repair ------------------------------------------------------------------------------

    def reload(self, ep: Endpoint, model: str) -> asyncio.Task:
        """Unload and load ``model`` on ``ep`` in the background (once at a time)."""
        task = ep.reloading.get(model)
        if task is None or task.done():
            task = asyncio.ensure_future(self._reload(ep, model))
            ep.reloading[model] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    async def _reload(self, ep: Endpoint, model: str) -> None:
        log.warning("reloading %s on %s: its backend process died", model, ep.url)
        try:
            # A load of a loaded model is a no-op in Triton; unloading first starts a new stub.
            await ep.client.unload_model(model, client_timeout=self.reload_timeout_s)
            await ep.client.load_model(model, client_timeout=self.reload_timeout_s)
            log.info("reloaded %s on %s", model, ep.url)
        except InferenceServerException as exc:
            log.error("reloading %s on %s failed: %s", model, ep.url, _text(exc))
        finally:
            ep.reloading.pop(model, None)
            await self.refresh(fresh=True, endpoints=[ep])

    async def wait_reloads(self, timeout_s: float) -> None:
        """Let reloads in progress finish (a short-lived pool, before it closes)."""
        pending = [t for ep in self.endpoints for t in ep.reloading.values()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ep in self.endpoints:
            if ep._check is not None:
                ep._check.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ep in self.endpoints:
            with contextlib.suppress(Exception):
                await ep.client.close()
