"""The HTTP API: the old system's contract (``GET /health``, ``POST /analyze``) plus jobs
and metrics, on asyncio streams (no web framework to pin).

| route | answer |
|---|---|
| GET /health | 200 when ready, else 503; JSON either way |
| POST /analyze {"video_path", "analyzers"?, "deadline_s"?} | 200 and the report JSON |
| POST /analyses (same body) | 202 {"job_id", ...}, Location: /analyses/ID |
| GET /analyses/ID | 200 {"job_id", "state", "progress", "report", "error"} |
| GET /analyzers | 200 [{"name", "frames", "audio", "depends_on", "state"}] |
| GET /metrics | Prometheus text |

Errors are JSON ``{"detail": "one-line reason", "code": "INVALID_ARGUMENT"}`` (``detail``
as FastAPI-style services answer) with the status of :class:`.errors.Code`. A client that
disconnects while ``POST /analyze`` runs cancels the analysis.

One request at a time per connection (keep-alive, no pipelining of analyses), bodies by
Content-Length only and at most ``max_body_bytes``; a client that sends its head or body
slower than ``read_timeout_s`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from tiktok_analyzer.service.errors import Code, ServiceFailure
from tiktok_analyzer.service.grpc_api import describe_frames
from tiktok_analyzer.service.jobs import Job, JobManager
from tiktok_analyzer.service.metrics import CONTENT_TYPE, Metrics

__all__ = ["HttpApi"]

log = logging.getLogger(__name__)

_JSON = "application/json"


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


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _Reply(Exception):
    """Answer now with this status and message, and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        self._expected = f"Bearer {token}".encode() if token else None
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes
        self._connections: set[asyncio.Task] = set()

    async def start(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> asyncio.Server:
        return await asyncio.start_server(
            self._connection, host, port, ssl=ssl_context, limit=16 * 1024, reuse_address=True
        )

    async def close_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # -- connection --------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await self._read(reader)
                except _Reply as reply:
                    await self._send(
                        writer,
                        reply.status,
                        _error_body(reply.status, reply.message),
                        _JSON,
                        keep_alive=False,
                    )
                    return
                if request is None:
                    return
                status, body, ctype, extra = await self._dispatch(request, reader)
                if status == Code.CANCELLED.http_status:
                    return  # the client left; nobody reads an answer
                await self._send(writer, status, body, ctype, request.keep_alive, extra)
                if not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one connection never takes the server down
            log.exception("HTTP connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> _Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout_s)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _Reply(400, "incomplete request head") from None
            return None  # the client closed an idle connection
        except asyncio.LimitOverrunError:
            raise _Reply(431, "request head too large") from None
        except TimeoutError:
            return None  # idle or stalled: drop it
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
        except ValueError:
            raise _Reply(400, "malformed request head") from None
        if "transfer-encoding" in headers:
            raise _Reply(411, "send the body with Content-Length, not chunked")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _Reply(400, "bad Content-Length") from None
        if length < 0 or length > self.max_body_bytes:
            raise _Reply(413, f"body over the limit of {self.max_body_bytes} bytes")
        try:
            body = (
                await asyncio.wait_for(reader.readexactly(length), self.read_timeout_s)
                if length
                else b""
            )
        except TimeoutError:
            raise _Reply(408, f"no complete body within {self.read_timeout_s:g} s") from None
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return _Request(
            method=method.upper(),
            path=target.split("?", 1)[0],
            headers=headers,
            body=body,
            keep_alive=keep_alive,
        )

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        ctype: str,
        keep_alive: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Client Closed Request"
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    # -- routes ------------------------------------------------------------------------------

    async def _dispatch(
        self, req: _Request, reader: asyncio.StreamReader
    ) -> tuple[int, bytes, str, dict[str, str] | None]:
        routes = {
            ("GET", "/health"): self._get_health,
            ("GET", "/metrics"): self._get_metrics,
            ("GET", "/analyzers"): self._get_analyzers,
            ("POST", "/analyze"): self._post_analyze,
            ("POST", "/analyses"): self._post_analyses,
        }
        handler = routes.get((req.method, req.path))
        if handler is None and req.method == "GET" and req.path.startswith("/analyses/"):
            handler = self._get_job
        try:
            if handler is None:
                known = {p for _, p in routes} | {"/analyses"}
                status = 405 if req.path in known or req.path.startswith("/analyses/") else 404
                return status, _error_body(status, f"no route {req.method} {req.path}"), _JSON, None
            if self._expected is not None and req.path != "/health":
                sent = req.headers.get("authorization", "").encode()
                if not hmac.compare_digest(sent, self._expected):
                    raise ServiceFailure(Code.UNAUTHENTICATED, "missing or wrong bearer token")
            return await handler(req, reader)
        except ServiceFailure as failure:
            extra = {"WWW-Authenticate": "Bearer"} if failure.code is Code.UNAUTHENTICATED else None
            status = failure.code.http_status
            return status, _error_body(status, failure.message, failure.code), _JSON, extra

    async def _get_health(self, req, reader):
        state = await self._health()
        return (200 if state["ready"] else 503), _json(state), _JSON, None

    async def _get_metrics(self, req, reader):
        return 200, self.metrics.exposition(), CONTENT_TYPE, None

    async def _get_analyzers(self, req, reader):
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
        return 200, _json(rows), _JSON, None

    def _body(self, req: _Request) -> AnalyzeBody:
        try:
            return AnalyzeBody.model_validate_json(req.body or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ServiceFailure(Code.BAD_INPUT, f"{where}: {first['msg']}") from None

    async def _post_analyze(self, req, reader):
        body = self._body(req)
        job = await self.jobs.submit_path(
            body.video_path, body.analyzers, body.deadline_s, unary=True
        )
        if not await self._wait_or_leave(job, reader):
            return Code.CANCELLED.http_status, b"", _JSON, None
        if job.error is not None:
            raise job.error
        return 200, job.outcome.report_json.encode(), _JSON, None

    async def _post_analyses(self, req, reader):
        body = self._body(req)
        job = await self.jobs.submit_path(
            body.video_path, body.analyzers, body.deadline_s, unary=False
        )
        location = f"/analyses/{job.id}"
        return (
            202,
            _json({"job_id": job.id, "state": job.state.value, "location": location}),
            _JSON,
            {"Location": location},
        )

    async def _get_job(self, req, reader):
        job = self.jobs.get(req.path.removeprefix("/analyses/"))
        doc = {
            "job_id": job.id,
            "state": job.state.value,
            "video": job.video,
            "analyzers": job.analyzers,
            "submitted_at": job.submitted_at,
            "progress": [dataclasses.asdict(e) for e in job.events],
            "error": (
                {"code": job.error.code.grpc_name, "message": job.error.message}
                if job.error
                else None
            ),
        }
        text = json.dumps(doc)
        # The report is already JSON text: splice it in rather than parse it again.
        text = (
            text[:-1] + ', "report": ' + (job.outcome.report_json if job.outcome else "null") + "}"
        )
        return 200, text.encode(), _JSON, None

    @staticmethod
    async def _wait_or_leave(job: Job, reader: asyncio.StreamReader) -> bool:
        """Wait for the job; if the client disconnects first, cancel it and say False."""
        waiter = asyncio.ensure_future(job.wait())
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=0.25)
                if done:
                    return True
                if reader.at_eof():
                    job.cancel()
                    return False
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            waiter.cancel()


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _error_body(status: int, message: str, code: Code | None = None) -> bytes:
    name = (
        code.grpc_name
        if code
        else {
            400: "INVALID_ARGUMENT",
            404: "NOT_FOUND",
            405: "UNIMPLEMENTED",
            408: "DEADLINE_EXCEEDED",
            411: "INVALID_ARGUMENT",
            413: "INVALID_ARGUMENT",
            431: "INVALID_ARGUMENT",
        }.get(status, "UNKNOWN")
    )
    return _json({"detail": message, "code": name})
