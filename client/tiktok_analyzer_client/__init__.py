"""Client for the tiktok-analyzer orchestrator service (gRPC), for services that share the
analysis but none of its dependencies: grpcio and protobuf only.

>>> from tiktok_analyzer_client import Client, BadInputError
>>> with Client("analyzer.internal:50051", token="...") as client:
...     result = client.analyze("/shared/clips/a.mp4", ["cut_analysis", "audio_analysis"])
...     result.report["analyzers"]["audio_analysis"]["result"]["tempo_bpm"]
"""

from .aio import AsyncClient
from .errors import (
    AnalysisCancelledError,
    AuthenticationError,
    BadInputError,
    DeadlineError,
    InternalError,
    NotFoundError,
    OverloadedError,
    PathNotAllowedError,
    ServiceError,
    UnavailableError,
)
from .retry import RetryPolicy
from .sync import Client
from .types import AnalysisResult, AnalyzerInfo, Health, JobEvent, JobInfo

__version__ = "0.1.0"

__all__ = [
    "AnalysisCancelledError",
    "AnalysisResult",
    "AnalyzerInfo",
    "AsyncClient",
    "AuthenticationError",
    "BadInputError",
    "Client",
    "DeadlineError",
    "Health",
    "InternalError",
    "JobEvent",
    "JobInfo",
    "NotFoundError",
    "OverloadedError",
    "PathNotAllowedError",
    "RetryPolicy",
    "ServiceError",
    "UnavailableError",
]
