"""Probes under admission control: they count in running/queued, run in their own bounded
slots, and a flood of slow probes gets RESOURCE_EXHAUSTED / 429 at once instead of
stalling the service. Triton is down here: every request ends at or before its probe."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from tiktok_analyzer_client import Client, OverloadedError, RetryPolicy

from tests.service import probe_hooks
from tiktok_analyzer.orchestrator import worker
from tiktok_analyzer.service import JobSettings

from .conftest import closed_port_url, start_service

NO_RETRY = RetryPolicy(attempts=1)
RUNNING, QUEUED = 2, 6  # more slow probes than the event loop's default threads on 2 cores


@pytest.fixture
def service(root, cuts_clip, monkeypatch):
    monkeypatch.setattr(worker, "probe", probe_hooks.slow_probe)
    svc = start_service(
        closed_port_url(), [root], jobs=JobSettings(max_concurrent=RUNNING, max_queue=QUEUED)
    )
    yield svc
    svc.stop()


def _answer(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _post(url: str, body: dict) -> int:
    return _answer(url, body)[0]


def test_a_flood_of_slow_probes_is_counted_and_refused(service, cuts_clip):
    body = {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]}
    statuses: list[int] = []
    flood = [
        threading.Thread(target=lambda: statuses.append(_post(f"{service.http_url}/analyze", body)))
        for _ in range(RUNNING + QUEUED)
    ]
    for t in flood:
        t.start()
    jobs = service.service.jobs
    deadline = time.monotonic() + 5
    while (jobs.running, jobs.queued) != (RUNNING, QUEUED) and time.monotonic() < deadline:
        time.sleep(0.02)
    # every probe counted: the slots busy, the rest waiting in the queue
    assert (jobs.running, jobs.queued) == (RUNNING, QUEUED)
    with Client(service.grpc_target, retry=NO_RETRY) as client:
        health = client.health()
        assert (health.running, health.queued) == (RUNNING, QUEUED)
        t0 = time.monotonic()
        with pytest.raises(OverloadedError):
            client.analyze(str(cuts_clip[0]), ["cut_analysis"])
        assert time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    assert _post(f"{service.http_url}/analyze", body) == 429
    assert time.monotonic() - t0 < 1.0
    # the waits for slow children hold none of the loop's default threads
    t0 = time.monotonic()
    service.call(asyncio.to_thread(time.sleep, 0))
    assert time.monotonic() - t0 < 0.5
    for t in flood:
        t.join(30)
    # each probe passed, then Triton (down) refused the analysis
    assert statuses == [503] * (RUNNING + QUEUED)
    assert (jobs.running, jobs.queued) == (0, 0)


def test_a_drain_lets_an_admitted_probe_go_on(service, cuts_clip):
    """A probe admitted before the drain is work in flight: the drain waits for it, and its
    request ends as any other (here 503 from Triton, which is down), not as 'shutting down'."""
    body = {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]}
    answers: list = []
    caller = threading.Thread(
        target=lambda: answers.append(_answer(f"{service.http_url}/analyze", body))
    )
    caller.start()
    jobs = service.service.jobs
    deadline = time.monotonic() + 5
    while not jobs.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jobs.running == 1
    t0 = time.monotonic()
    service.call(jobs.drain(30))
    assert time.monotonic() - t0 > 0.5  # it waited for the probe
    caller.join(10)
    status, answer = answers[0]
    assert status == 503 and "shutting down" not in answer["detail"], answer
    assert _post(f"{service.http_url}/analyze", body) == 503  # new work is refused
