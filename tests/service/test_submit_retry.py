"""Triton goes away under a running Submit job: the job runs once more when a server is
back and ends done; a unary call in the same situation ends at once as 503."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from tiktok_analyzer.serving.launcher import EmbeddedTriton, free_ports

from ..live.fault_repo import make_repository
from .conftest import start_service
from .test_service_live import http

pytestmark = pytest.mark.live

HANG_S = 3.0


def _json(url: str, body: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    status, raw = http(url, body, timeout=timeout)
    return status, json.loads(raw)


def _state(url: str, job: str) -> dict:
    return _json(f"{url}/analyses/{job}", timeout=5)[1]


def _until(url: str, job: str, states: set[str], within_s: float) -> dict:
    deadline = time.monotonic() + within_s
    while (doc := _state(url, job))["state"] not in states:
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    return doc


def test_a_submit_job_is_run_again_once_triton_is_back(tmp_path, root, cuts_clip):
    repo = make_repository(tmp_path, [], hang_s=HANG_S)
    clip = root / "retry.mp4"
    shutil.copy(cuts_clip[0], clip)
    ports = dict(zip(("grpc_port", "http_port", "metrics_port"), free_ports(3), strict=True))
    first = EmbeddedTriton(models=["hang_test"], model_repository=repo, **ports)
    first.start()
    svc = start_service(first.grpc_url, [root], model_repository=repo)
    second = None
    try:
        body = {"video_path": str(clip), "analyzers": ["hang_test"]}
        status, doc = _json(f"{svc.http_url}/analyses", body)
        assert status in (200, 202), doc
        job = doc["job_id"]
        _until(svc.http_url, job, {"running"}, within_s=30)
        time.sleep(0.5)  # inside hang_test's request now
        # The server dies under the job, and a new one comes up on the same ports a moment
        # later, as the service's supervisor would bring it.
        first.stop(timeout_s=2.0)
        second = EmbeddedTriton(models=["hang_test"], model_repository=repo, **ports)
        threading.Timer(1.0, second.start).start()
        done = _until(svc.http_url, job, {"done", "failed"}, within_s=90)
        assert done["state"] == "done", done
        entry = done["report"]["analyzers"]["hang_test"]
        assert entry["status"] == "ok", entry

        # A unary call while no server answers is refused at once, not retried.
        second.stop(timeout_s=2.0)
        t0 = time.monotonic()
        status, refusal = _json(f"{svc.http_url}/analyze", body, timeout=30)
        assert status == 503 and refusal["code"] == "UNAVAILABLE", refusal
        assert time.monotonic() - t0 < 10
    finally:
        svc.stop()
        first.stop(timeout_s=2.0)
        if second is not None:
            second.stop(timeout_s=2.0)
