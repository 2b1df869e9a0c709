"""The orchestrator's Prometheus metrics, in a registry of its own (two services in one
process, as in the tests, never share counters). Triton keeps its own endpoint."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tiktok_analyzer.orchestrator.report import AnalyzerEntry

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The *_created series (one gauge per counter and histogram) double the output for nothing
# Prometheus uses here.
disable_created_metrics()

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
# Wall time over clip duration: under 1 is faster than realtime; the old system ran 3.15.
_RTF = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class _ShmUnregisterFailures:
    """Clip regions this process could not unregister at a Triton (each stays mapped
    inside that server): the orchestrator's own count, read at scrape time."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        from tiktok_analyzer.orchestrator.pipeline import SHM_UNREGISTER_FAILURES

        yield CounterMetricFamily(
            "tiktok_analyzer_shm_unregister_failures",
            "Shared-memory regions left registered at a Triton after every retry failed",
            value=SHM_UNREGISTER_FAILURES[0],
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.analyses = Counter(
            "tiktok_analyzer_analyses",
            "Analyses by outcome: complete, partial (some analyzer "
            "failed), or the refusal or failure that ended them",
            ["status"],
            registry=r,
        )
        self.analysis_seconds = Histogram(
            "tiktok_analyzer_analysis_seconds",
            "Wall time of finished analyses, queueing included",
            buckets=_SECONDS,
            registry=r,
        )
        self.realtime_factor = Histogram(
            "tiktok_analyzer_realtime_factor",
            "Analysis wall time over clip duration",
            buckets=_RTF,
            registry=r,
        )
        self.analyzer_seconds = Histogram(
            "tiktok_analyzer_analyzer_seconds",
            "Seconds per analyzer request, by analyzer",
            ["analyzer"],
            buckets=_SECONDS,
            registry=r,
        )
        self.analyzer_failures = Counter(
            "tiktok_analyzer_analyzer_failures",
            "Analyzer requests that ended 'failed'",
            ["analyzer"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "tiktok_analyzer_queue_depth", "Analyses waiting for a slot", registry=r
        )
        self.inflight = Gauge("tiktok_analyzer_inflight_jobs", "Analyses running now", registry=r)
        self.triton_restarts = Counter(
            "tiktok_analyzer_triton_restarts",
            "Restarts of the embedded tritonserver after it died, by outcome",
            ["outcome"],
            registry=r,
        )
        r.register(_ShmUnregisterFailures())
        self.triton_ready = Gauge(
            "tiktok_analyzer_triton_ready",
            "1 when the last readiness check found Triton ready",
            registry=r,
        )
        self.upload_bytes = Counter(
            "tiktok_analyzer_upload_bytes", "Bytes received by UploadAndAnalyze", registry=r
        )

    def watch(self, queued: Callable[[], float], running: Callable[[], float]) -> None:
        """Read the gauges from the job manager at scrape time."""
        self.queue_depth.set_function(queued)
        self.inflight.set_function(running)

    def outcome(self, label: str) -> None:
        self.analyses.labels(status=label).inc()

    def finished(self, label: str, wall_s: float, realtime_factor: float | None) -> None:
        self.outcome(label)
        self.analysis_seconds.observe(wall_s)
        if realtime_factor:
            self.realtime_factor.observe(realtime_factor)

    def analyzer_done(self, name: str, entry: AnalyzerEntry | None) -> None:
        if entry is None:
            return
        self.analyzer_seconds.labels(analyzer=name).observe(entry.elapsed_s)
        if entry.status == "failed":
            self.analyzer_failures.labels(analyzer=name).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
