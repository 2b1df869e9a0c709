"""Triton restarting under a running service: health turns not-ready, analyses are
refused with 503 / UNAVAILABLE at once, and when a server is back on the same address the
service finds it by itself and analyzes again."""

from __future__ import annotations

import time

import pytest

from tiktok_analyzer.serving.launcher import EmbeddedTriton, free_ports

from .conftest import start_service
from .test_service_live import http

pytestmark = pytest.mark.live


def _wait_for(url: str, status: int, within_s: float) -> float:
    """Seconds until GET ``url`` answers ``status``."""
    t0 = time.monotonic()
    while http(url, timeout=5)[0] != status:
        assert time.monotonic() - t0 < within_s, f"{url} did not answer {status}"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_the_service_follows_triton_down_and_back(root, cuts_clip):
    ports = dict(zip(("grpc_port", "http_port", "metrics_port"), free_ports(3), strict=True))
    body = {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]}
    first = EmbeddedTriton(models=["cut_analysis"], **ports)
    first.start()
    svc = start_service(first.grpc_url, [root])
    second = None
    try:
        assert http(f"{svc.http_url}/analyze", body)[0] == 200

        first.stop()
        # the service's view of Triton is at most a second old
        assert _wait_for(f"{svc.http_url}/health", 503, within_s=2.0) < 1.5
        t0 = time.monotonic()
        status, text = http(f"{svc.http_url}/analyze", body)
        assert status == 503 and b"UNAVAILABLE" in text
        assert time.monotonic() - t0 < 1.0

        second = EmbeddedTriton(models=["cut_analysis"], **ports)
        second.start()
        assert _wait_for(f"{svc.http_url}/health", 200, within_s=5.0) < 3.0
        status, text = http(f"{svc.http_url}/analyze", body)
        assert status == 200, text
    finally:
        svc.stop()
        first.stop()
        if second is not None:
            second.stop()
