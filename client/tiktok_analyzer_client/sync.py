"""The blocking client.

>>> from tiktok_analyzer_client import Client
>>> with Client("127.0.0.1:50051") as client:
...     result = client.analyze("/data/clips/a.mp4", ["cut_analysis"])
...     result.report["analyzers"]["cut_analysis"]["result"]["cuts"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import grpc

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

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A connection to ``tiktok-analyzer serve`` (its gRPC port, HOST:PORT).

    ``timeout_s`` bounds every call (retries included) unless a call passes its own;
    ``retry`` says how UNAVAILABLE is retried; ``token`` is sent as a bearer token;
    ``tls`` or ``root_certificates`` make the channel use TLS.
    Errors are raised as the classes in :mod:`tiktok_analyzer_client.errors`.
    """

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
            grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
            if creds
            else grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        )
        self._stub = pb_grpc.TikTokAnalyzerStub(self._channel)
        self._metadata = metadata(token)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------------------

    def analyze(
        self,
        video_path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        timeout_s: float | None = None,
        deadline_s: float | None = None,
    ) -> AnalysisResult:
        """Analyze a clip the service can read; block until the report is complete."""
        request = analyze_request(video_path, analyzers, deadline_s)
        return AnalysisResult.from_pb(
            self._call(
                lambda t: self._stub.Analyze(request, timeout=t, metadata=self._metadata), timeout_s
            )
        )

    def upload_and_analyze(
        self,
        path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        timeout_s: float | None = None,
        deadline_s: float | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> AnalysisResult:
        """Stream a local file to the service and analyze it there."""
        header = upload_header(path, analyzers, deadline_s)

        def requests() -> Iterator[pb.UploadRequest]:
            yield header
            with open(path, "rb") as f:
                while chunk := f.read(chunk_bytes):
                    yield pb.UploadRequest(chunk=chunk)

        return AnalysisResult.from_pb(
            self._call(
                lambda t: self._stub.UploadAndAnalyze(
                    requests(), timeout=t, metadata=self._metadata
                ),
                timeout_s,
            )
        )

    def submit(
        self,
        video_path: str | os.PathLike,
        analyzers: Iterable[str] = (),
        *,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """Queue an analysis; returns its job id at once."""
        request = analyze_request(video_path, analyzers, deadline_s)
        return self._call(
            lambda t: self._stub.Submit(request, timeout=t, metadata=self._metadata), timeout_s
        ).job_id

    def get_job(self, job_id: str, *, timeout_s: float | None = None) -> JobInfo:
        request = pb.JobRequest(job_id=job_id)
        return JobInfo.from_pb(
            self._call(
                lambda t: self._stub.GetJob(request, timeout=t, metadata=self._metadata), timeout_s
            )
        )

    def watch(self, job_id: str, *, timeout_s: float | None = None) -> Iterator[JobEvent]:
        """Yield a job's events as they happen, the last one with the report; a failed job
        raises its typed error. A dropped stream is reopened (skipping events seen)."""
        deadline = self._deadline(timeout_s)
        seen = 0
        delays = self.retry.delays()
        while True:
            stream = self._stub.WatchJob(
                pb.JobRequest(job_id=job_id), timeout=remaining(deadline), metadata=self._metadata
            )
            try:
                for msg in stream:
                    if msg.seq <= seen:
                        continue
                    seen = msg.seq
                    event = JobEvent.from_pb(msg)
                    yield event
                    if event.kind == "result":
                        return
                return
            except grpc.RpcError as exc:
                self._pause_or_raise(exc, delays, deadline)
            finally:
                stream.cancel()

    def wait(self, job_id: str, *, timeout_s: float | None = None) -> AnalysisResult:
        """Block until a submitted job is done; its result, or its typed error."""
        for event in self.watch(job_id, timeout_s=timeout_s):
            if event.result is not None:
                return event.result
        raise InternalError(f"job {job_id}: the event stream ended without a result")

    def list_analyzers(self, *, timeout_s: float | None = None) -> list[AnalyzerInfo]:
        msg = self._call(
            lambda t: self._stub.ListAnalyzers(
                pb.ListAnalyzersRequest(), timeout=t, metadata=self._metadata
            ),
            timeout_s,
        )
        return [AnalyzerInfo.from_pb(a) for a in msg.analyzers]

    def health(self, *, timeout_s: float | None = 5.0) -> Health:
        return Health.from_pb(
            self._call(
                lambda t: self._stub.Health(pb.HealthRequest(), timeout=t, metadata=self._metadata),
                timeout_s,
            )
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _deadline(self, timeout_s: float | None) -> float | None:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return None if timeout is None else time.monotonic() + timeout

    def _call(self, attempt: Callable[[float | None], T], timeout_s: float | None) -> T:
        deadline = self._deadline(timeout_s)
        delays = self.retry.delays()
        while True:
            try:
                return attempt(remaining(deadline))
            except grpc.RpcError as exc:
                self._pause_or_raise(exc, delays, deadline)

    def _pause_or_raise(
        self, exc: grpc.RpcError, delays: Iterator[float], deadline: float | None
    ) -> None:
        """Sleep before the next attempt, or raise the typed error when none is left."""
        error = error_from_rpc(exc)
        if self.retry.retries(error.code):
            delay = next(delays, None)
            left = remaining(deadline)
            if delay is not None and (left is None or delay < left):
                time.sleep(delay)
                return
        raise error from None
