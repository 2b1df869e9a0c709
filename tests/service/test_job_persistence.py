"""Jobs in a real database, against the real embedded Triton: they outlive the service
(SQLite in a state folder, and PostgreSQL), a job that was running when its service died
is failed with the reason, the HTTP API answers during the drain, and replicas sharing one
PostgreSQL share one queue: a job submitted to one is run and answered by another, and no
job runs twice."""

from __future__ import annotations

import json
import threading
import time
import urllib.error

import pytest
from tiktok_analyzer_client import Client, RetryPolicy

from tiktok_analyzer.service import JobSettings
from tiktok_analyzer.service.jobstore import RESTARTED, JobRow, open_store
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from .conftest import start_service
from .test_service_live import http, metrics

pytestmark = pytest.mark.live

NO_RETRY = RetryPolicy(attempts=1)
ANALYZERS = ["cut_analysis"]


@pytest.fixture(scope="module")
def triton():
    """Only the one model these tests run: the shortest start on a busy host."""
    with EmbeddedTriton(models=ANALYZERS, ready_timeout_s=300) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> dict:
    """ServiceConfig fields naming one store, the same for every service of a test."""
    if request.param == "sqlite":
        return {"state_dir": str(tmp_path / "state")}
    return {"job_store": request.getfixturevalue("pg_url")}


def _complete(svc) -> float:
    key = ("tiktok_analyzer_analyses_total", (("status", "complete"),))
    return metrics(f"{svc.http_url}/metrics").get(key, 0)


def _crashed_job(store: dict, clip: str) -> str:
    """What a service killed mid-analysis leaves: a row running under an owner that is gone."""
    db = open_store(store.get("job_store"), store.get("state_dir"))
    row = JobRow(
        id="c" * 32,
        video=clip,
        path=clip,
        analyzers=ANALYZERS,
        deadline_s=600,
        submitted_at=time.time(),
        state="running",
        owner="a-replica-killed-with-sigkill",
    )
    db.insert(row)
    db.close()
    return row.id


def test_jobs_survive_restarts(triton, root, cuts_clip, store):
    clip = str(cuts_clip[0])
    # 1: a job runs to the end
    svc = start_service(triton.grpc_url, [root], **store)
    with Client(svc.grpc_target, retry=NO_RETRY) as client:
        done_id = client.submit(clip, ANALYZERS)
        report = client.wait(done_id, timeout_s=60).report
    svc.stop()

    # 2: restarted without slots, jobs are taken and stay queued; the finished one is there
    svc = start_service(triton.grpc_url, [root], jobs=JobSettings(max_concurrent=0), **store)
    with Client(svc.grpc_target, retry=NO_RETRY) as client:
        assert client.get_job(done_id).result.report == report
        queued = [client.submit(clip, ANALYZERS) for _ in range(2)]
        time.sleep(1.0)  # a few dispatcher rounds: none may take them
        assert [client.get_job(j).state for j in queued] == ["queued", "queued"]
    svc.stop()
    crashed = _crashed_job(store, clip)

    # 3: restarted with slots, everything is still there and the queued jobs run
    svc = start_service(triton.grpc_url, [root], **store)
    try:
        status, body = http(f"{svc.http_url}/analyses/{done_id}")
        assert status == 200 and json.loads(body)["report"] == report
        with Client(svc.grpc_target, retry=NO_RETRY) as client:
            for job_id in queued:
                result = client.wait(job_id, timeout_s=60)
                assert result.status == "complete", job_id
                cuts = result.report["analyzers"]["cut_analysis"]["result"]["cuts"]
                assert len(cuts) == len(cuts_clip[1]["cuts"])
            lost = client.get_job(crashed)
            assert lost.state == "failed" and lost.error.message == RESTARTED
            assert lost.error.code.name == "UNAVAILABLE"
        assert _complete(svc) == 2  # the queued two ran here, once each
    finally:
        svc.stop()


def test_http_answers_during_the_drain(triton, root, cuts_clip, tmp_path):
    store = {"state_dir": str(tmp_path / "state")}
    svc = start_service(triton.grpc_url, [root], **store)
    body = {"video_path": str(cuts_clip[0]), "analyzers": ANALYZERS}
    status, text = http(f"{svc.http_url}/analyses", body)
    assert status == 202
    job_id = json.loads(text)["job_id"]
    while not svc.service.jobs.running:
        time.sleep(0.01)
    stopper = threading.Thread(target=svc.stop, kwargs={"drain_s": 30})
    stopper.start()
    try:
        while not svc.service.jobs.draining:
            time.sleep(0.01)
        status, text = http(f"{svc.http_url}/health")
        assert status == 503 and json.loads(text)["draining"] is True
        assert http(f"{svc.http_url}/analyses", body)[0] == 503  # no new work
        # GET answers while the job runs; once it is done the drain may end and the server
        # close between two polls (a quick job on a quiet machine): the restarted service
        # below then says how it ended.
        doc: dict = {}
        while stopper.is_alive():
            try:
                doc = json.loads(http(f"{svc.http_url}/analyses/{job_id}")[1])
            except urllib.error.URLError:
                break
            if doc["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert doc.get("state") in (None, "running", "queued", "done"), doc.get("state")
        if doc.get("state") == "done":
            assert doc["report"]["analyzers"]["cut_analysis"]["result"]
    finally:
        stopper.join(60)
    again = start_service(triton.grpc_url, [root], **store)
    try:
        assert json.loads(http(f"{again.http_url}/analyses/{job_id}")[1])["state"] == "done"
    finally:
        again.stop()


def test_a_job_submitted_to_one_replica_is_run_and_answered_by_another(
    triton, root, cuts_clip, pg_url
):
    clip = str(cuts_clip[0])
    # "front" takes jobs but has no slot to run them: only "worker" can
    front = start_service(triton.grpc_url, [root], job_store=pg_url, jobs=JobSettings(0, 16))
    worker = start_service(triton.grpc_url, [root], job_store=pg_url)
    try:
        with Client(front.grpc_target, retry=NO_RETRY) as client:
            ids = [client.submit(clip, ANALYZERS) for _ in range(3)]
            results = [client.wait(j, timeout_s=60) for j in ids]  # front answers
        assert [r.status for r in results] == ["complete"] * 3
        status, body = http(f"{front.http_url}/analyses/{ids[0]}")
        assert status == 200 and json.loads(body)["state"] == "done"
        assert (_complete(front), _complete(worker)) == (0, 3)
    finally:
        front.stop()
        worker.stop()


def test_two_replicas_never_run_a_job_twice(triton, root, cuts_clip, pg_url):
    clip = str(cuts_clip[0])
    replicas = [start_service(triton.grpc_url, [root], job_store=pg_url) for _ in range(2)]
    try:
        clients = [Client(r.grpc_target, retry=NO_RETRY) for r in replicas]
        ids = [clients[n % 2].submit(clip, ANALYZERS) for n in range(6)]
        for n, job_id in enumerate(ids):  # each answered by the replica it was not sent to
            assert clients[(n + 1) % 2].wait(job_id, timeout_s=90).status == "complete"
            job = clients[n % 2].get_job(job_id)
            assert [(e.analyzer, e.kind) for e in job.progress] == [
                ("cut_analysis", "start"),
                ("cut_analysis", "done"),
            ]
        assert sum(_complete(r) for r in replicas) == 6
        for c in clients:
            c.close()
    finally:
        for r in replicas:
            r.stop()
