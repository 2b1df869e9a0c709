"""The gRPC API (client/tiktok_analyzer.proto) over the job manager."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import BinaryIO, TypeVar

import grpc
import grpc.aio
from tiktok_analyzer_client.pb import tiktok_analyzer_pb2 as pb
from tiktok_analyzer_client.pb import tiktok_analyzer_pb2_grpc as pb_grpc

from tiktok_analyzer import wire
from tiktok_analyzer.service.errors import Code, ServiceFailure
from tiktok_analyzer.service.jobs import Event, Job, JobManager, JobState

__all__ = ["AnalyzerServicer", "TokenInterceptor", "add_servicer", "describe_frames"]

log = logging.getLogger(__name__)

_STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.DONE: pb.JOB_STATE_DONE,
    JobState.FAILED: pb.JOB_STATE_FAILED,
}
_KINDS = {"start": pb.AnalyzerEvent.KIND_START, "done": pb.AnalyzerEvent.KIND_DONE}
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")

T = TypeVar("T")


def describe_frames(decl) -> str:
    """The frame set a model declares, for people (both APIs list it)."""
    return wire.describe_frames(decl.frames)


def _event(e: Event) -> pb.AnalyzerEvent:
    return pb.AnalyzerEvent(
        analyzer=e.analyzer,
        kind=_KINDS[e.kind],
        status=e.status,
        elapsed_s=e.elapsed_s,
        error=e.error,
    )


def response(job: Job) -> pb.AnalyzeResponse:
    out = job.outcome
    assert out is not None
    return pb.AnalyzeResponse(
        job_id=job.id,
        status=pb.REPORT_STATUS_PARTIAL if out.failed else pb.REPORT_STATUS_COMPLETE,
        report_json=out.report_json,
        wall_s=out.wall_s,
        realtime_factor=out.realtime_factor,
        analyzer_status=out.analyzer_status,
        failed=out.failed,
    )


def _job_error(failure: ServiceFailure) -> pb.JobError:
    return pb.JobError(code=failure.code.grpc_name, message=failure.message)


async def _abort(context: grpc.aio.ServicerContext, failure: ServiceFailure) -> None:
    await context.abort(getattr(grpc.StatusCode, failure.code.grpc_name), failure.message)


def _answers_failures(handler):
    """A unary-response handler whose ServiceFailure becomes the call's status."""

    @functools.wraps(handler)
    async def wrapper(self, request, context):
        try:
            return await handler(self, request, context)
        except ServiceFailure as failure:
            await _abort(context, failure)

    return wrapper


class AnalyzerServicer(pb_grpc.TikTokAnalyzerServicer):
    def __init__(
        self,
        jobs: JobManager,
        *,
        health: Callable[[], Awaitable[pb.HealthResponse]],
        upload_dir: str,
        max_upload_bytes: int,
        upload_idle_s: float,
    ) -> None:
        self.jobs = jobs
        self._health = health
        self.upload_dir = upload_dir
        self.max_upload_bytes = max_upload_bytes
        self.upload_idle_s = upload_idle_s

    @staticmethod
    async def _finish(job: Job) -> pb.AnalyzeResponse:
        """Wait for a job on behalf of a unary caller; the caller leaving cancels it."""
        try:
            await job.wait()
        except asyncio.CancelledError:
            job.cancel()
            raise
        if job.error is not None:
            raise job.error
        return response(job)

    @staticmethod
    def _deadline(requested: float, context: grpc.aio.ServicerContext) -> float | None:
        """The earlier of the request's deadline_s and the call's own gRPC deadline."""
        left = context.time_remaining()
        options = [d for d in (requested if requested > 0 else None, left) if d is not None]
        return min(options) if options else None

    @_answers_failures
    async def Analyze(self, request, context):
        job = await self.jobs.submit_path(
            request.video_path,
            request.analyzers,
            self._deadline(request.deadline_s, context),
            unary=True,
        )
        return await self._finish(job)

    @_answers_failures
    async def Submit(self, request, context):
        job = await self.jobs.submit_path(
            request.video_path, request.analyzers, request.deadline_s or None, unary=False
        )
        return pb.SubmitResponse(job_id=job.id)

    @_answers_failures
    async def GetJob(self, request, context):
        job = self.jobs.get(request.job_id)
        msg = pb.Job(
            job_id=job.id,
            state=_STATES[job.state],
            video=job.video,
            analyzers=job.analyzers,
            submitted_at=job.submitted_at,
            progress=[_event(e) for e in job.events],
        )
        if job.state == JobState.DONE:
            msg.result.CopyFrom(response(job))
        elif job.error is not None:
            msg.error.CopyFrom(_job_error(job.error))
        return msg

    async def WatchJob(self, request, context) -> AsyncIterator[pb.JobEvent]:
        try:
            job = self.jobs.get(request.job_id)
        except ServiceFailure as failure:
            await _abort(context, failure)
        try:
            async for e in job.follow():
                yield pb.JobEvent(
                    seq=e.seq, job_id=job.id, state=_STATES[job.state], analyzer=_event(e)
                )
        except ServiceFailure as failure:  # run by another replica, and expired meanwhile
            await _abort(context, failure)
        last = pb.JobEvent(seq=len(job.events) + 1, job_id=job.id, state=_STATES[job.state])
        if job.error is not None:
            last.error.CopyFrom(_job_error(job.error))
        else:
            last.result.CopyFrom(response(job))
        yield last

    @_answers_failures
    async def UploadAndAnalyze(self, request_iterator, context):
        messages = aiter(request_iterator)
        header = await self._counted(self._upload_header(messages))
        # Refuse what cannot run before taking the bytes.
        names = self.jobs.admit(header.analyzers)
        suffix = m.group(0) if (m := _SAFE_SUFFIX.search(header.filename)) else ".bin"
        fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=self.upload_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                await self._counted(self._receive(messages, f))
            name = os.path.basename(header.filename) or "upload"
            deadline = self._deadline(header.deadline_s, context)
            job = await self.jobs.submit_file(tmp, name, names, deadline, unary=True)
            return await self._finish(job)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    async def _counted(self, step: Awaitable[T]) -> T:
        """An upload step whose refusal counts in the analyses metric."""
        try:
            return await step
        except ServiceFailure as failure:
            self.jobs.metrics.outcome(failure.code.label)
            raise

    async def _next(self, messages: AsyncIterator[pb.UploadRequest]) -> pb.UploadRequest | None:
        try:
            return await asyncio.wait_for(anext(messages), self.upload_idle_s)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise ServiceFailure(
                Code.DEADLINE, f"the upload stalled: no data for {self.upload_idle_s:g} s"
            ) from None

    async def _upload_header(self, messages: AsyncIterator[pb.UploadRequest]) -> pb.UploadHeader:
        first = await self._next(messages)
        if first is None or first.WhichOneof("part") != "header":
            raise ServiceFailure(Code.BAD_INPUT, "the first upload message must be the header")
        header = first.header
        if header.size_bytes > self.max_upload_bytes:
            raise ServiceFailure(
                Code.BAD_INPUT,
                f"upload of {header.size_bytes} bytes is over the limit of {self.max_upload_bytes}",
            )
        return header

    async def _receive(self, messages: AsyncIterator[pb.UploadRequest], f: BinaryIO) -> None:
        total = 0
        while (msg := await self._next(messages)) is not None:
            if msg.WhichOneof("part") != "chunk":
                raise ServiceFailure(Code.BAD_INPUT, "only the first upload message is a header")
            total += len(msg.chunk)
            if total > self.max_upload_bytes:
                raise ServiceFailure(
                    Code.BAD_INPUT, f"upload over the limit of {self.max_upload_bytes} bytes"
                )
            f.write(msg.chunk)
        self.jobs.metrics.upload_bytes.inc(total)
        if total == 0:
            raise ServiceFailure(Code.BAD_INPUT, "empty upload (0 bytes)")

    async def ListAnalyzers(self, request, context):
        states = await self.jobs.triton.model_states()
        return pb.ListAnalyzersResponse(
            analyzers=[
                pb.AnalyzerInfo(
                    name=name,
                    frames=describe_frames(decl),
                    audio=decl.audio,
                    depends_on=list(decl.depends_on),
                    state="UNKNOWN" if states is None else states.get(name, "UNLOADED"),
                )
                for name, decl in self.jobs.declarations.items()
            ]
        )

    async def Health(self, request, context):
        return await self._health()


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Bearer-token auth: every method but Health wants ``authorization: Bearer TOKEN``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.endswith("/Health"):
            return await continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(sent.encode(), self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def deny(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    async def deny_stream(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    kw = dict(
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **kw)
    return grpc.stream_stream_rpc_method_handler(deny_stream, **kw)


def add_servicer(server: grpc.aio.Server, servicer: AnalyzerServicer) -> None:
    pb_grpc.add_TikTokAnalyzerServicer_to_server(servicer, _ParsingServer(server))


#: What a request that is no valid protobuf message parses to (see _parsing).
_UNDECODABLE = object()
_UNDECODABLE_MESSAGE = "the request is not a valid protobuf message of this method"


class _ParsingServer:
    """The server as the generated code sees it: the handlers it adds parse requests
    without failing the call. A parser that raises makes gRPC answer UNKNOWN; a request
    that does not parse is the caller's fault, INVALID_ARGUMENT."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(_ParsingHandler(h) for h in handlers))

    def __getattr__(self, name: str):
        return getattr(self._server, name)


class _ParsingHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        return None if handler is None else _parsing(handler)


def _parsing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse = handler.request_deserializer

    def deserialize(data: bytes):
        try:
            return parse(data)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError, or worse: not a message
            return _UNDECODABLE

    async def refuse(context) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _UNDECODABLE_MESSAGE)

    kw = dict(request_deserializer=deserialize, response_serializer=handler.response_serializer)
    if handler.unary_unary:

        async def unary_unary(request, context):
            if request is _UNDECODABLE:
                await refuse(context)
            return await handler.unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)
    if handler.unary_stream:

        async def unary_stream(request, context):
            if request is _UNDECODABLE:
                await refuse(context)
            async for response in handler.unary_stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)

    async def checked(requests):
        async for request in requests:
            if request is _UNDECODABLE:  # the handler answers it as any bad input
                raise ServiceFailure(Code.BAD_INPUT, _UNDECODABLE_MESSAGE)
            yield request

    if handler.stream_unary:

        async def stream_unary(requests, context):
            return await handler.stream_unary(checked(requests), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kw)

    async def stream_stream(requests, context):
        async for response in handler.stream_stream(checked(requests), context):
            yield response

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kw)
