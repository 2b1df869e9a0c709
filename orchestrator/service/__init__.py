"""The orchestrator as a service: gRPC (client/tiktok_analyzer.proto), the old system's
HTTP API, Prometheus metrics, allowed-root path checks; ``tiktok-analyzer serve``."""

from .app import Service, ServiceConfig, serve
from .errors import Code, ServiceFailure
from .jobs import JobSettings
from .paths import PathPolicy

__all__ = [
    "Code",
    "JobSettings",
    "PathPolicy",
    "Service",
    "ServiceConfig",
    "ServiceFailure",
    "serve",
]
