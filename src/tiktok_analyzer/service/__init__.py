"""The orchestrator as a service: gRPC (client/tiktok_analyzer.proto), the old system's
HTTP API, Prometheus metrics, allowed-root path checks; ``tiktok-analyzer serve``."""

from tiktok_analyzer.service.app import Service, ServiceConfig, serve
from tiktok_analyzer.service.errors import Code, ServiceFailure
from tiktok_analyzer.service.jobs import JobSettings
from tiktok_analyzer.service.paths import PathPolicy

__all__ = [
    "Code",
    "JobSettings",
    "PathPolicy",
    "Service",
    "ServiceConfig",
    "ServiceFailure",
    "serve",
]
