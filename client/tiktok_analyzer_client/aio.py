"""The asyncio client: the same calls as :class:`tiktok_analyzer_client.Client`, awaitable.

>>> async with AsyncClient("127.0.0.1:50051") as client:
...     result = await client.analyze("/data/clips/a.mp4")
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

import grpc
import grpc.aio

from ._channel import CHANNEL_OPTIONS, CHUNK_BYTES, credentials, metadata
from .errors import InternalError, error_from_rpc
from .pb import tiktok_analyzer_pb2 as pb
from .pb import tiktok_analyzer_pb2_grpc as pb_grpc
from .retry import RetryPolicy, remaining
from .types import (
    AnalysisResult,
    AnalyzerInfo,
    Health,
    JobEvent,
    JobInfo,
    analyze_request,
    upload_header,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """See :class:`tiktok_analyzer_client.Client`; create it inside the running loop.
    Cancelling a call's task cancels the call, and the service then cancels the analysis."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float | None = 600.0,
        retry: RetryPolicy | None = None,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        creds = credentials(root_certificates, tls)
        self._channel = (
            grpc.aio.secure_channel(target, creds, options=CHANNEL_OPTIONS)
            if creds
            else grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        )
        self._stub = pb_grpc.TikTokAnalyzerStub(self._channel)
        self._metadata = metadata(token)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------------

    async def analyze(
        self,
        video_path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        timeout_s: float | None = None,
        deadline_s: float | None = None,
    ) -> AnalysisResult:
        request = analyze_request(video_path, analyzers, deadline_s)
        return AnalysisResult.from_pb(
            await self._call(
                lambda t: self._stub.Analyze(request, timeout=t, metadata=self._metadata), timeout_s
            )
        )

    async def upload_and_analyze(
        self,
        path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        timeout_s: float | None = None,
        deadline_s: float | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> AnalysisResult:
        header = upload_header(path, analyzers, deadline_s)

        async def requests() -> AsyncIterator[pb.UploadRequest]:
            yield header
            with open(path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, chunk_bytes):
                    yield pb.UploadRequest(chunk=chunk)

        return AnalysisResult.from_pb(
            await self._call(
                lambda t: self._stub.UploadAndAnalyze(
                    requests(), timeout=t, metadata=self._metadata
                ),
                timeout_s,
            )
        )

    async def submit(
        self,
        video_path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
    ) -> str:
        request = analyze_request(video_path, analyzers, deadline_s)
        msg = await self._call(
            lambda t: self._stub.Submit(request, timeout=t, metadata=self._metadata), timeout_s
        )
        return msg.job_id

    async def get_job(self, job_id: str, *, timeout_s: float | None = None) -> JobInfo:
        request = pb.JobRequest(job_id=job_id)
        return JobInfo.from_pb(
            await self._call(
                lambda t: self._stub.GetJob(request, timeout=t, metadata=self._metadata), timeout_s
            )
        )

    async def watch(
        self, job_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[JobEvent]:
        deadline = self._deadline(timeout_s)
        seen = 0
        delays = self.retry.delays()
        while True:
            call = self._stub.WatchJob(
                pb.JobRequest(job_id=job_id), timeout=remaining(deadline), metadata=self._metadata
            )
            try:
                async for msg in call:
                    if msg.seq <= seen:
                        continue
                    seen = msg.seq
                    event = JobEvent.from_pb(msg)
                    yield event
                    if event.kind == "result":
                        return
                return
            except grpc.aio.AioRpcError as exc:
                await self._pause_or_raise(exc, delays, deadline)
            finally:
                call.cancel()

    async def wait(self, job_id: str, *, timeout_s: float | None = None) -> AnalysisResult:
        async for event in self.watch(job_id, timeout_s=timeout_s):
            if event.result is not None:
                return event.result
        raise InternalError(f"job {job_id}: the event stream ended without a result")

    async def list_analyzers(self, *, timeout_s: float | None = None) -> list[AnalyzerInfo]:
        msg = await self._call(
            lambda t: self._stub.ListAnalyzers(
                pb.ListAnalyzersRequest(), timeout=t, metadata=self._metadata
            ),
            timeout_s,
        )
        return [AnalyzerInfo.from_pb(a) for a in msg.analyzers]

    async def health(self, *, timeout_s: float | None = 5.0) -> Health:
        return Health.from_pb(
            await self._call(
                lambda t: self._stub.Health(pb.HealthRequest(), timeout=t, metadata=self._metadata),
                timeout_s,
            )
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _deadline(self, timeout_s: float | None) -> float | None:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return None if timeout is None else time.monotonic() + timeout

    async def _call(
        self, attempt: Callable[[float | None], Awaitable[T]], timeout_s: float | None
    ) -> T:
        deadline = self._deadline(timeout_s)
        delays = self.retry.delays()
        while True:
            try:
                return await attempt(remaining(deadline))
            except grpc.aio.AioRpcError as exc:
                await self._pause_or_raise(exc, delays, deadline)

    async def _pause_or_raise(
        self, exc: grpc.RpcError, delays: Iterator[float], deadline: float | None
    ) -> None:
        error = error_from_rpc(exc)
        if self.retry.retries(error.code):
            delay = next(delays, None)
            left = remaining(deadline)
            if delay is not None and (left is None or delay < left):
                await asyncio.sleep(delay)
                return
        raise error from None
