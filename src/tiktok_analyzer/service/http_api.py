"""The HTTP API: the old system's contract (``GET /health``, ``POST /analyze``) plus jobs
and metrics, on FastAPI served by uvicorn (OpenAPI at ``/openapi.json``, docs at ``/docs``).

| route | answer |
|---|---|
| GET /health | 200 when ready, else 503; JSON either way |
| POST /analyze {"video_path", "analyzers"?, "deadline_s"?} | 200 and the report JSON |
| POST /analyses (same body) | 202 {"job_id", ...}, Location: /analyses/ID |
| GET /analyses/ID | 200 {"job_id", "state", "progress", "report", "error"} |
| GET /analyzers | 200 [{"name", "frames", "audio", "depends_on", "state"}] |
| GET /metrics | Prometheus text |

Errors are JSON ``{"detail": "one-line reason", "code": "INVALID_ARGUMENT"}`` with the status
of :class:`.errors.Code`. A client that disconnects while ``POST /analyze`` runs cancels the
analysis.

HTTP parsing is llhttp's (httptools, pinned): it refuses a request with two Content-Length
headers, conflicting or not, and one with both Content-Length and Transfer-Encoding, which a
proxy in front might read differently (request smuggling). On top of it: bodies by
Content-Length only and at most ``max_body_bytes``, request heads of at most 16 KiB, and a
client that sends its head or body slower than ``read_timeout_s`` is dropped (uvicorn alone
waits forever for the rest of a started request head).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tiktok_analyzer import __version__
from tiktok_analyzer.service.errors import Code, ServiceFailure
from tiktok_analyzer.service.grpc_api import describe_frames
from tiktok_analyzer.service.jobs import Job, JobManager
from tiktok_analyzer.service.metrics import CONTENT_TYPE, Metrics

__all__ = ["HttpApi"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_MAX_HEAD_BYTES = 16 * 1024
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    411: "INVALID_ARGUMENT",
    413: "INVALID_ARGUMENT",
    431: "INVALID_ARGUMENT",
}


class AnalyzeBody(BaseModel):
    """The old API's request; unknown fields are ignored as it ignored them."""

    video_path: str
    analyzers: list[str] = Field(default_factory=list)
    deadline_s: float | None = None

    @field_validator("analyzers", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # "a,b" as the CLI's --analyzers takes it, or a JSON list; null means all
        if value is None:
            return []
        return [v for v in value.split(",")] if isinstance(value, str) else value


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {_JSON: {"schema": AnalyzeBody.model_json_schema()}},
    }
}


def _error_body(status: int, message: str, code: Code | None = None) -> bytes:
    name = code.grpc_name if code else _STATUS_CODES.get(status, "UNKNOWN")
    return json.dumps({"detail": message, "code": name}).encode()


def _error(status: int, message: str, code: Code | None = None, **headers: str) -> Response:
    return Response(_error_body(status, message, code), status, headers or None, _JSON)


def _refuse(status: int, message: str) -> Response:
    """An error after which the connection closes: the body was not read."""
    return _error(status, message, Connection="close")


def _raw_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer, for the protocol layer, which answers before any app runs."""
    body = _error_body(status, message)
    reason = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\ncontent-type: {_JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts on the head and the body of each
    request, a cap on the head's size, and JSON for requests the parser refuses."""

    api: HttpApi  # set on the subclass made per server

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self._drop)

    def _arm(self, action: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.api.read_timeout_s, action)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _drop(self) -> None:
        # a head that never completes (or never starts): nobody to answer
        if not self.transport.is_closing():
            self.transport.close()

    def _body_timeout(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True  # the app stops reading; its answer goes nowhere
            self.cycle.message_event.set()
            self.transport.write(
                _raw_error(408, f"no complete body within {self.api.read_timeout_s:g} s")
            )
        self._drop()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # Counted before this read: what completes a head may carry body bytes too.
            if self._head_bytes > _MAX_HEAD_BYTES:
                self._refuse_head()
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > _MAX_HEAD_BYTES:
            self._refuse_head()
            return
        self._arm(self._body_timeout)
        super().on_headers_complete()

    def _refuse_head(self) -> None:
        self._disarm()
        self.transport.write(_raw_error(431, "request head too large"))
        self.transport.close()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is None or self.cycle.response_complete:
            self._in_head = True  # no pipelined request parsed: next comes a head
        if not self.transport.is_closing():
            self._arm(self._drop)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        self.transport.write(_raw_error(400, f"malformed request: {msg.rstrip('.')}"))
        self.transport.close()


class _Server(uvicorn.Server):
    """Signals stay with the service, which drains before the listener closes."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class HttpApi:
    def __init__(
        self,
        jobs: JobManager,
        metrics: Metrics,
        health: Callable[[], Awaitable[dict[str, Any]]],
        *,
        token: str | None = None,
        read_timeout_s: float = 10.0,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self._health = health
        self._token = token.encode() if token else None
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes
        self.app = self._build()
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None
    ) -> int:
        """Listen; the bound port (``port`` 0 picks a free one)."""
        protocol = type("Protocol", (_Protocol,), {"api": self})
        config = uvicorn.Config(
            self.app,
            http=protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise OSError(f"cannot serve HTTP on {host}:{port}")
            await asyncio.sleep(0.01)
        return sock.getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and the connections; requests still running get 2 s."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 10)

    # -- the application -----------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(
            title="tiktok-analyzer",
            version=__version__,
            description="Short-form video analysis. Errors: "
            '{"detail": "one-line reason", "code": "GRPC_STATUS_NAME"}.',
        )
        app.add_api_route("/health", self._get_health, methods=["GET"])
        app.add_api_route("/metrics", self._get_metrics, methods=["GET"])
        app.add_api_route("/analyzers", self._get_analyzers, methods=["GET"])
        app.add_api_route("/analyze", self._post_analyze, methods=["POST"], openapi_extra=_BODY_DOC)
        app.add_api_route(
            "/analyses", self._post_analyses, methods=["POST"], openapi_extra=_BODY_DOC
        )
        app.add_api_route("/analyses/{job_id:path}", self._get_job, methods=["GET"])

        async def no_route(request: Request, exc: StarletteHTTPException) -> Response:
            return _error(exc.status_code, f"no route {request.method} {request.url.path}")

        async def internal(request: Request, exc: Exception) -> Response:
            # uvicorn logs the traceback; the caller gets one line, as for any other error
            message = f"internal error: {type(exc).__name__}: {exc}"
            return _error(500, message, Code.INTERNAL, Connection="close")

        app.add_exception_handler(StarletteHTTPException, no_route)
        app.add_exception_handler(Exception, internal)
        app.add_middleware(_BodyLimits, api=self)
        return app

    def _auth(self, request: Request) -> None:
        if self._token is None:
            return
        # RFC 9110: the scheme is case-insensitive ("bearer" as well as "Bearer")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), self._token
        ):
            raise ServiceFailure(Code.UNAUTHENTICATED, "missing or wrong bearer token")

    async def _handle(self, request: Request, handler) -> Response:
        try:
            self._auth(request)
            return await handler(request)
        except ClientDisconnect:
            return Response(b"", Code.CANCELLED.http_status, media_type=_JSON)
        except ServiceFailure as failure:
            extra = {"WWW-Authenticate": "Bearer"} if failure.code is Code.UNAUTHENTICATED else {}
            return _error(failure.code.http_status, failure.message, failure.code, **extra)

    # -- routes ------------------------------------------------------------------------------

    async def _get_health(self, request: Request) -> Response:
        state = await self._health()
        return Response(json.dumps(state), 200 if state["ready"] else 503, media_type=_JSON)

    async def _get_metrics(self, request: Request) -> Response:
        async def metrics(_):
            return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

        return await self._handle(request, metrics)

    async def _get_analyzers(self, request: Request) -> Response:
        async def analyzers(_):
            states = await self.jobs.triton.model_states()
            rows = [
                {
                    "name": name,
                    "frames": describe_frames(decl),
                    "audio": decl.audio,
                    "depends_on": list(decl.depends_on),
                    "state": "UNKNOWN" if states is None else states.get(name, "UNLOADED"),
                }
                for name, decl in self.jobs.declarations.items()
            ]
            return Response(json.dumps(rows), media_type=_JSON)

        return await self._handle(request, analyzers)

    @staticmethod
    async def _body(request: Request) -> AnalyzeBody:
        try:
            return AnalyzeBody.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ServiceFailure(Code.BAD_INPUT, f"{where}: {first['msg']}") from None

    async def _post_analyze(self, request: Request) -> Response:
        async def analyze(_):
            body = await self._body(request)
            job = await self.jobs.submit_path(
                body.video_path, body.analyzers, body.deadline_s, unary=True
            )
            if not await _wait_or_leave(job, request):
                return Response(b"", Code.CANCELLED.http_status, media_type=_JSON)
            if job.error is not None:
                raise job.error
            return Response(job.outcome.report_json, media_type=_JSON)

        return await self._handle(request, analyze)

    async def _post_analyses(self, request: Request) -> Response:
        async def submit(_):
            body = await self._body(request)
            job = await self.jobs.submit_path(
                body.video_path, body.analyzers, body.deadline_s, unary=False
            )
            location = f"/analyses/{job.id}"
            doc = {"job_id": job.id, "state": job.state.value, "location": location}
            return Response(json.dumps(doc), 202, {"Location": location}, _JSON)

        return await self._handle(request, submit)

    async def _get_job(self, request: Request, job_id: str) -> Response:
        async def get(_):
            return Response(_job_json(self.jobs.get(job_id)), media_type=_JSON)

        return await self._handle(request, get)


def _job_json(job: Job) -> str:
    doc = {
        "job_id": job.id,
        "state": job.state.value,
        "video": job.video,
        "analyzers": job.analyzers,
        "submitted_at": job.submitted_at,
        "progress": [dataclasses.asdict(e) for e in job.events],
        "error": (
            {"code": job.error.code.grpc_name, "message": job.error.message} if job.error else None
        ),
    }
    text = json.dumps(doc)
    # The report is already JSON text: splice it in rather than parse it again.
    return text[:-1] + ', "report": ' + (job.outcome.report_json if job.outcome else "null") + "}"


async def _wait_or_leave(job: Job, request: Request) -> bool:
    """Wait for the job; if the client disconnects first, cancel it and say False."""
    waiter = asyncio.ensure_future(job.wait())
    # With the body read, the next message uvicorn has for us is the disconnect.
    gone = asyncio.ensure_future(request.receive())
    try:
        done, _ = await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return True
        job.cancel()
        return False
    except asyncio.CancelledError:
        job.cancel()
        raise
    finally:
        waiter.cancel()
        gone.cancel()


class _BodyLimits:
    """Bodies by Content-Length only (a chunked body has no size to refuse up front), and
    no larger than the API's limit: refused before a byte of the body is read."""

    def __init__(self, app, api: HttpApi) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope["headers"])
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, headers: list[tuple[bytes, bytes]]) -> Response | None:
        lengths = [v for n, v in headers if n == b"content-length"]
        if any(n == b"transfer-encoding" for n, _ in headers):
            return _refuse(411, "send the body with Content-Length, not chunked")
        if len(lengths) > 1:  # the parser refuses these already; a second parser may not
            return _refuse(400, "more than one Content-Length")
        try:
            length = int(lengths[0]) if lengths else 0
        except ValueError:
            return _refuse(400, "bad Content-Length")
        if length < 0 or length > self.api.max_body_bytes:
            return _refuse(413, f"body over the limit of {self.api.max_body_bytes} bytes")
        return None
