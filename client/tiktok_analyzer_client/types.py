"""What the clients return: plain dataclasses built from the service's messages."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import grpc

from .errors import ServiceError, error_from_code
from .pb import tiktok_analyzer_pb2 as pb

__all__ = ["AnalysisResult", "AnalyzerInfo", "Health", "JobEvent", "JobInfo"]

_JOB_STATES = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_DONE: "done",
    pb.JOB_STATE_FAILED: "failed",
}
_EVENT_KINDS = {pb.AnalyzerEvent.KIND_START: "start", pb.AnalyzerEvent.KIND_DONE: "done"}


@dataclass(frozen=True)
class AnalysisResult:
    """A finished analysis: the report (docs/REPORT_CONTRACT.md) and its headline figures."""

    job_id: str
    report: dict[str, Any]
    #: "complete", or "partial" when some analyzer failed (see ``failed``).
    status: str
    failed: list[str]
    analyzer_status: dict[str, str]
    wall_s: float
    realtime_factor: float

    @classmethod
    def from_pb(cls, msg: pb.AnalyzeResponse) -> AnalysisResult:
        return cls(
            job_id=msg.job_id,
            report=json.loads(msg.report_json),
            status="partial" if msg.status == pb.REPORT_STATUS_PARTIAL else "complete",
            failed=list(msg.failed),
            analyzer_status=dict(msg.analyzer_status),
            wall_s=msg.wall_s,
            realtime_factor=msg.realtime_factor,
        )


def _job_error(msg: pb.JobError) -> ServiceError:
    code = grpc.StatusCode.__members__.get(msg.code, grpc.StatusCode.UNKNOWN)
    return error_from_code(code, msg.message)


@dataclass(frozen=True)
class JobEvent:
    """One step of a job. ``kind`` is "start" or "done" (an analyzer), or "result" (the
    last event; ``result`` holds the report)."""

    seq: int
    job_id: str
    state: str
    kind: str
    analyzer: str = ""
    status: str = ""
    elapsed_s: float = 0.0
    error: str = ""
    result: AnalysisResult | None = None

    @classmethod
    def from_pb(cls, msg: pb.JobEvent) -> JobEvent:
        """The event; a job's failure (its last event) is raised as its typed error."""
        which = msg.WhichOneof("event")
        common = dict(seq=msg.seq, job_id=msg.job_id, state=_JOB_STATES.get(msg.state, "unknown"))
        if which == "error":
            raise _job_error(msg.error)
        if which == "result":
            return cls(kind="result", result=AnalysisResult.from_pb(msg.result), **common)
        a = msg.analyzer
        return cls(
            kind=_EVENT_KINDS.get(a.kind, "unknown"),
            analyzer=a.analyzer,
            status=a.status,
            elapsed_s=a.elapsed_s,
            error=a.error,
            **common,
        )


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str
    video: str
    analyzers: list[str]
    submitted_at: float
    progress: list[JobEvent] = field(default_factory=list)
    result: AnalysisResult | None = None
    error: ServiceError | None = None

    @classmethod
    def from_pb(cls, msg: pb.Job) -> JobInfo:
        progress = [
            JobEvent(
                seq=i + 1,
                job_id=msg.job_id,
                state="running",
                kind=_EVENT_KINDS.get(a.kind, "unknown"),
                analyzer=a.analyzer,
                status=a.status,
                elapsed_s=a.elapsed_s,
                error=a.error,
            )
            for i, a in enumerate(msg.progress)
        ]
        return cls(
            job_id=msg.job_id,
            state=_JOB_STATES.get(msg.state, "unknown"),
            video=msg.video,
            analyzers=list(msg.analyzers),
            submitted_at=msg.submitted_at,
            progress=progress,
            result=AnalysisResult.from_pb(msg.result) if msg.HasField("result") else None,
            error=_job_error(msg.error) if msg.HasField("error") else None,
        )


@dataclass(frozen=True)
class AnalyzerInfo:
    name: str
    frames: str
    audio: bool
    depends_on: list[str]
    state: str

    @classmethod
    def from_pb(cls, msg: pb.AnalyzerInfo) -> AnalyzerInfo:
        return cls(
            name=msg.name,
            frames=msg.frames,
            audio=msg.audio,
            depends_on=list(msg.depends_on),
            state=msg.state,
        )


@dataclass(frozen=True)
class Health:
    ready: bool
    triton_ready: bool
    draining: bool
    triton_url: str
    running: int
    queued: int
    version: str
    reason: str

    @classmethod
    def from_pb(cls, msg: pb.HealthResponse) -> Health:
        return cls(
            ready=msg.ready,
            triton_ready=msg.triton_ready,
            draining=msg.draining,
            triton_url=msg.triton_url,
            running=msg.running,
            queued=msg.queued,
            version=msg.version,
            reason=msg.reason,
        )


def analyze_request(video_path: str | os.PathLike, analyzers, deadline_s) -> pb.AnalyzeRequest:
    return pb.AnalyzeRequest(
        video_path=os.fspath(video_path),
        analyzers=list(analyzers or ()),
        deadline_s=deadline_s or 0.0,
    )


def upload_header(path: str | os.PathLike, analyzers, deadline_s) -> pb.UploadRequest:
    return pb.UploadRequest(
        header=pb.UploadHeader(
            filename=os.path.basename(os.fspath(path)),
            analyzers=list(analyzers or ()),
            deadline_s=deadline_s or 0.0,
            size_bytes=os.path.getsize(path),
        )
    )
