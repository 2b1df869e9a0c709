"""The service against a real embedded Triton: gRPC and HTTP, jobs and their progress,
uploads, hostile input, deadlines and cancellation, metrics."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tiktok_analyzer_client import (
    AsyncClient,
    BadInputError,
    Client,
    DeadlineError,
    NotFoundError,
    OverloadedError,
    PathNotAllowedError,
    RetryPolicy,
)
from tiktok_analyzer_client.pb import tiktok_analyzer_pb2 as pb
from tiktok_analyzer_client.pb import tiktok_analyzer_pb2_grpc as pb_grpc

from tests.hostile_media import claim_duration, claim_size, tiny_h264
from tiktok_analyzer.service import Code, JobSettings

from .conftest import MODELS, start_service

pytestmark = pytest.mark.live

NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def client(live_service):
    with Client(live_service.grpc_target, retry=NO_RETRY, timeout_s=60) as c:
        yield c


def http(url: str, body: dict | bytes | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a POST when ``body`` is given; errors included."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from a Prometheus text endpoint."""
    _, text = http(url)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def cut_count(report: dict) -> int:
    return len(report["analyzers"]["cut_analysis"]["result"]["cuts"])


# -- the happy paths ---------------------------------------------------------------------------


def test_analyze_returns_a_valid_report_matching_truth(client, cuts_clip, schema):
    path, truth = cuts_clip
    result = client.analyze(str(path), MODELS)
    jsonschema.validate(result.report, schema)
    assert result.status == "complete" and result.failed == []
    assert result.analyzer_status == {"cut_analysis": "ok", "audio_analysis": "ok"}
    assert cut_count(result.report) == len(truth["cuts"])
    found = [c["frame"] for c in result.report["analyzers"]["cut_analysis"]["result"]["cuts"]]
    assert all(abs(f - t["frame"]) <= 2 for f, t in zip(found, truth["cuts"], strict=True))
    assert result.report["video"]["path"] == str(path)
    assert 0 < result.realtime_factor < 1


def test_watch_streams_each_analyzer_then_the_report(client, cuts_clip, schema):
    job_id = client.submit(str(cuts_clip[0]), MODELS)
    events = list(client.watch(job_id))
    *steps, last = events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sorted((e.analyzer, e.kind) for e in steps) == sorted(
        (name, kind) for name in MODELS for kind in ("start", "done")
    )
    for name in MODELS:
        start = next(i for i, e in enumerate(steps) if (e.analyzer, e.kind) == (name, "start"))
        done = next(i for i, e in enumerate(steps) if (e.analyzer, e.kind) == (name, "done"))
        assert start < done and steps[done].status == "ok" and steps[done].elapsed_s > 0
    assert last.kind == "result" and last.state == "done"
    jsonschema.validate(last.result.report, schema)
    # the job stays readable, with the same progress and result
    job = client.get_job(job_id)
    assert job.state == "done" and len(job.progress) == len(steps)
    assert job.result.report == last.result.report


def test_upload_analyzes_and_leaves_no_temporary_file(client, live_service, clip_factory, schema):
    """The clip lies outside the allowed root: only an upload can reach the service."""
    path, truth = clip_factory("cuts", width=360, height=640)
    with pytest.raises(PathNotAllowedError):
        client.analyze(path, ["cut_analysis"])
    result = client.upload_and_analyze(path, ["cut_analysis"], chunk_bytes=64 * 1024)
    jsonschema.validate(result.report, schema)
    assert cut_count(result.report) == len(truth["cuts"])
    assert result.report["video"]["path"] == Path(path).name  # never the server's temp path
    assert list(Path(live_service.service.upload_dir).iterdir()) == []


def test_http_api(live_service, cuts_clip, schema):
    url = live_service.http_url
    status, body = http(f"{url}/health")
    assert status == 200 and json.loads(body)["ready"] is True

    status, body = http(
        f"{url}/analyze", {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]}
    )
    assert status == 200, body
    report = json.loads(body)
    jsonschema.validate(report, schema)
    assert cut_count(report) == len(cuts_clip[1]["cuts"])

    status, body = http(
        f"{url}/analyses", {"video_path": str(cuts_clip[0]), "analyzers": "audio_analysis"}
    )
    assert status == 202
    job_id = json.loads(body)["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = http(f"{url}/analyses/{job_id}")
        doc = json.loads(body)
        if doc["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert status == 200 and doc["state"] == "done", doc
    assert [(e["analyzer"], e["kind"]) for e in doc["progress"]] == [
        ("audio_analysis", "start"),
        ("audio_analysis", "done"),
    ]
    jsonschema.validate(doc["report"], schema)

    status, body = http(f"{url}/analyses/{'0' * 32}")
    assert status == 404 and json.loads(body)["code"] == "NOT_FOUND"
    status, body = http(f"{url}/analyzers")
    states = {a["name"]: a["state"] for a in json.loads(body)}
    assert states["cut_analysis"] == "READY" and states["video_llava"] == "UNLOADED"


def test_metrics_moved_after_a_run(live_service, client, cuts_clip, triton):
    before = metrics(f"{live_service.http_url}/metrics")
    triton_before = metrics(triton.metrics_url)
    client.analyze(str(cuts_clip[0]), MODELS)
    with pytest.raises(BadInputError):
        client.analyze(str(cuts_clip[0]), ["no_such_analyzer"])
    after = metrics(f"{live_service.http_url}/metrics")

    def moved(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("tiktok_analyzer_analyses_total", status="complete") == 1
    assert moved("tiktok_analyzer_analyses_total", status="bad_input") == 1
    for name in MODELS:
        assert moved("tiktok_analyzer_analyzer_seconds_count", analyzer=name) == 1
    assert moved("tiktok_analyzer_realtime_factor_count") == 1
    assert moved("tiktok_analyzer_analysis_seconds_count") == 1
    assert after[("tiktok_analyzer_queue_depth", ())] == 0
    assert after[("tiktok_analyzer_inflight_jobs", ())] == 0
    assert after[("tiktok_analyzer_triton_ready", ())] == 1
    # Triton's own endpoint keeps working beside ours
    triton_after = metrics(triton.metrics_url)
    key = ("nv_inference_request_success_total", (("model", "cut_analysis"), ("version", "1")))
    assert triton_after[key] - triton_before.get(key, 0) == 1


# -- hostile input -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(root, cuts_clip, tmp_path_factory):
    """name -> path, each a way to ask for something the service must refuse."""
    outside = tmp_path_factory.mktemp("outside")
    secret = outside / "secret.mp4"
    shutil.copy(cuts_clip[0], secret)
    box = root / "hostile"
    box.mkdir(exist_ok=True)
    (box / "escape.mp4").symlink_to(secret)
    (box / "etc").symlink_to("/etc")
    (box / "zero.mp4").write_bytes(b"")
    (box / "text.mp4").write_text("this is not a video\n" * 50)
    (box / "truncated.mp4").write_bytes(cuts_clip[0].read_bytes()[:4096])
    # a playlist would make the demuxer open other files
    (box / "playlist.mp4").write_text(f"#EXTM3U\n#EXTINF:10,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    (box / "folder.mp4").mkdir()
    tiny = tiny_h264(outside / "tiny.mp4")
    claim_size(tiny, box / "huge_claim.mp4", 30000, 30000)
    claim_size(tiny, box / "big_claim.mp4", 16000, 16000)
    claim_duration(tiny, box / "ten_hours.mp4", 10 * 3600)
    import os

    os.mkfifo(box / "fifo.mp4")
    return {
        "traversal": str(root / ".." / outside.name / "secret.mp4"),
        "traversal to /etc/passwd": str(box) + "/../../../../../../../../etc/passwd",
        "symlink escape": str(box / "escape.mp4"),
        "symlinked folder": str(box / "etc" / "passwd"),
        "outside the root": str(secret),
        "/dev/zero": "/dev/zero",
        "/proc/self/environ": "/proc/self/environ",
        "FIFO": str(box / "fifo.mp4"),
        "directory": str(box / "folder.mp4"),
        "zero bytes": str(box / "zero.mp4"),
        "renamed text": str(box / "text.mp4"),
        "truncated mp4": str(box / "truncated.mp4"),
        "HLS playlist": str(box / "playlist.mp4"),
        "header claiming 30000x30000": str(box / "huge_claim.mp4"),
        "header claiming 16000x16000": str(box / "big_claim.mp4"),
        "10-hour duration claim": str(box / "ten_hours.mp4"),
        "missing": str(box / "missing.mp4"),
    }


REFUSED = Code.PATH_NOT_ALLOWED
BAD = Code.BAD_INPUT
HOSTILE = [
    ("traversal", REFUSED),
    ("traversal to /etc/passwd", REFUSED),
    ("symlink escape", REFUSED),
    ("symlinked folder", REFUSED),
    ("outside the root", REFUSED),
    ("/dev/zero", REFUSED),
    ("/proc/self/environ", REFUSED),
    ("FIFO", BAD),
    ("directory", BAD),
    ("zero bytes", BAD),
    ("renamed text", BAD),
    ("truncated mp4", BAD),
    ("HLS playlist", BAD),
    ("header claiming 30000x30000", BAD),
    ("header claiming 16000x16000", BAD),
    ("10-hour duration claim", BAD),
    ("missing", BAD),
]


@pytest.mark.parametrize("name, code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_paths_are_refused_fast(live_service, client, hostile, name, code):
    path = hostile[name]
    t0 = time.monotonic()
    with pytest.raises(BadInputError) as info:
        client.analyze(path, ["cut_analysis"])
    assert time.monotonic() - t0 < 2.0
    assert info.value.code.name == code.grpc_name, info.value.message
    assert "\n" not in info.value.message and "Traceback" not in info.value.message

    t0 = time.monotonic()
    status, body = http(
        f"{live_service.http_url}/analyze", {"video_path": path, "analyzers": ["cut_analysis"]}
    )
    assert time.monotonic() - t0 < 2.0
    assert status == code.http_status, body
    assert json.loads(body)["detail"] == info.value.message


def test_the_service_answers_the_next_good_request(live_service, client, cuts_clip, hostile):
    """After the whole hostile table (which ran before this test)."""
    assert client.analyze(str(cuts_clip[0]), ["cut_analysis"]).status == "complete"
    status, _ = http(
        f"{live_service.http_url}/analyze",
        {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]},
    )
    assert status == 200


BAD_BODIES = [
    ("not JSON", b"{video_path:", 400),
    ("no video_path", {"analyzers": ["cut_analysis"]}, 400),
    ("analyzers not a list", {"video_path": "/x.mp4", "analyzers": 5}, 400),
    ("unknown analyzer", {"video_path": "/x.mp4", "analyzers": ["nope"]}, 400),
    ("body too large", b"{" + b" " * 70_000 + b"}", 413),
]


@pytest.mark.parametrize("name, body, status", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_http_bodies(live_service, name, body, status):
    got, text = http(f"{live_service.http_url}/analyze", body)
    assert got == status, text
    assert json.loads(text)["detail"]


def test_stalled_http_client_is_dropped(live_service):
    """Half a request head, then silence: the connection is closed after the read
    timeout and the service keeps answering others meanwhile."""
    live_service.service._http_api.read_timeout_s = 0.5
    try:
        with socket.create_connection(("127.0.0.1", live_service.service.http_port)) as sock:
            sock.sendall(b"POST /analyze HTTP/1.1\r\nContent-Len")
            assert http(f"{live_service.http_url}/health")[0] == 200
            sock.settimeout(3)
            t0 = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the service
            assert time.monotonic() - t0 < 2
    finally:
        live_service.service._http_api.read_timeout_s = 10.0


# -- uploads that go wrong ---------------------------------------------------------------------


def _upload(target: str, messages, timeout: float = 10):
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.TikTokAnalyzerStub(channel).UploadAndAnalyze(iter(messages), timeout=timeout)


def _stalling(path: Path):
    yield pb.UploadRequest(header=pb.UploadHeader(filename=path.name))
    yield pb.UploadRequest(chunk=path.read_bytes()[:1000])
    time.sleep(3)


UPLOAD_CASES = [
    (
        "over the size limit",
        lambda p: [
            pb.UploadRequest(header=pb.UploadHeader(filename="a.mp4")),
            pb.UploadRequest(chunk=b"x" * 300_000),
        ],
        "INVALID_ARGUMENT",
    ),
    (
        "declared over the limit",
        lambda p: [pb.UploadRequest(header=pb.UploadHeader(filename="a.mp4", size_bytes=10**9))],
        "INVALID_ARGUMENT",
    ),
    ("no header", lambda p: [pb.UploadRequest(chunk=b"abc")], "INVALID_ARGUMENT"),
    (
        "empty",
        lambda p: [pb.UploadRequest(header=pb.UploadHeader(filename="a.mp4"))],
        "INVALID_ARGUMENT",
    ),
    (
        "renamed text",
        lambda p: [
            pb.UploadRequest(header=pb.UploadHeader(filename="a.mp4")),
            pb.UploadRequest(chunk=b"not a video\n" * 100),
        ],
        "INVALID_ARGUMENT",
    ),
    ("a client that stalls", _stalling, "DEADLINE_EXCEEDED"),
]


@pytest.fixture(scope="module")
def strict_service(triton, root):
    """Small limits, to hit them with small files: uploads up to 200 kB, 0.5 s idle."""
    svc = start_service(triton.grpc_url, [root], max_upload_bytes=200_000, upload_idle_s=0.5)
    yield svc
    svc.stop()


@pytest.mark.parametrize("name, messages, code", UPLOAD_CASES, ids=[u[0] for u in UPLOAD_CASES])
def test_bad_uploads(strict_service, cuts_clip, name, messages, code):
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        _upload(strict_service.grpc_target, messages(cuts_clip[0]))
    assert time.monotonic() - t0 < 2.0
    assert info.value.code().name == code, info.value.details()
    assert list(Path(strict_service.service.upload_dir).iterdir()) == []


# -- deadlines, cancellation, overload ---------------------------------------------------------


def _last_job(svc):
    return list(svc.service.jobs._jobs.values())[-1]


def _analysing(svc) -> bool:
    """An analysis is past its probe (``running`` counts probes too)."""
    return any(j.state == "running" for j in list(svc.service.jobs._jobs.values()))


def _wait_idle(svc, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while svc.service.jobs.running or svc.service.jobs.queued:
        assert time.monotonic() < deadline, "the analysis was not cancelled"
        time.sleep(0.02)


def test_deadline_ends_the_analysis(live_service, client, cuts_clip):
    t0 = time.monotonic()
    with pytest.raises(DeadlineError):
        client.analyze(str(cuts_clip[0]), MODELS, deadline_s=0.05)
    assert time.monotonic() - t0 < 2.0
    job = _last_job(live_service)
    assert job.error.code is Code.DEADLINE
    _wait_idle(live_service)


def test_the_call_deadline_bounds_the_analysis(live_service, client, cuts_clip):
    """The gRPC deadline passes mid-analysis: the job ends with it (its own deadline is
    the call's), rather than running on for nobody."""
    before = set(live_service.service.jobs._jobs)
    with pytest.raises(DeadlineError):
        client.analyze(str(cuts_clip[0]), MODELS, timeout_s=0.3)
    _wait_idle(live_service)
    for job_id in set(live_service.service.jobs._jobs) - before:
        job = live_service.service.jobs.get(job_id)
        assert job.error.code in (Code.CANCELLED, Code.DEADLINE)


def test_an_http_client_that_leaves_cancels_the_analysis(live_service, cuts_clip):
    body = json.dumps({"video_path": str(cuts_clip[0]), "analyzers": MODELS}).encode()
    with socket.create_connection(("127.0.0.1", live_service.service.http_port)) as sock:
        sock.sendall(
            b"POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        deadline = time.monotonic() + 5
        while not _analysing(live_service):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    _wait_idle(live_service)
    assert _last_job(live_service).error.code is Code.CANCELLED


def test_a_full_queue_refuses_at_once(triton, root, cuts_clip):
    svc = start_service(triton.grpc_url, [root], jobs=JobSettings(max_concurrent=1, max_queue=0))
    try:
        with Client(svc.grpc_target, retry=NO_RETRY) as client:
            first = client.submit(str(cuts_clip[0]), MODELS)
            t0 = time.monotonic()
            with pytest.raises(OverloadedError):
                client.submit(str(cuts_clip[0]), MODELS)
            assert time.monotonic() - t0 < 1.0
            status, body = http(f"{svc.http_url}/analyze", {"video_path": str(cuts_clip[0])})
            assert status == 429, body
            assert client.wait(first).status == "complete"
            with pytest.raises(NotFoundError):
                client.get_job("f" * 32)
    finally:
        svc.stop()


def test_unary_length_limit_points_to_submit(triton, root, cuts_clip):
    svc = start_service(triton.grpc_url, [root], jobs=JobSettings(unary_max_duration_s=5))
    try:
        with Client(svc.grpc_target, retry=NO_RETRY) as client:
            with pytest.raises(BadInputError, match="use Submit"):
                client.analyze(str(cuts_clip[0]), ["cut_analysis"])
            job = client.submit(str(cuts_clip[0]), ["cut_analysis"])
            assert client.wait(job).status == "complete"
    finally:
        svc.stop()


def test_list_analyzers_and_health(client):
    infos = {a.name: a for a in client.list_analyzers()}
    assert infos["cut_analysis"].state == "READY"
    assert infos["audio_analysis"].audio and not infos["audio_analysis"].frames
    assert re.fullmatch(r"every frame @ \d+px", infos["cut_analysis"].frames)
    assert "cut_analysis" in infos["scene_segmentation"].depends_on
    health = client.health()
    assert health.ready and health.triton_ready and not health.draining


def test_async_client(live_service, cuts_clip, clip_factory):
    """The asyncio client: the same calls, and cancelling its task cancels the analysis."""
    path = str(cuts_clip[0])
    elsewhere, _ = clip_factory("cuts", width=360, height=640)

    async def main():
        async with AsyncClient(live_service.grpc_target, retry=NO_RETRY) as client:
            result = await client.analyze(path, ["cut_analysis"])
            assert cut_count(result.report) == len(cuts_clip[1]["cuts"])
            job_id = await client.submit(path, ["audio_analysis"])
            kinds = [e.kind async for e in client.watch(job_id)]
            assert kinds == ["start", "done", "result"]
            assert (await client.get_job(job_id)).state == "done"
            with pytest.raises(PathNotAllowedError):
                await client.analyze(elsewhere)
            uploaded = await client.upload_and_analyze(elsewhere, ["cut_analysis"])
            assert uploaded.report["analyzers"]["cut_analysis"]["status"] == "ok"

            task = asyncio.create_task(client.analyze(path, MODELS))
            while not _analysing(live_service):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    _wait_idle(live_service)
    assert _last_job(live_service).error.code is Code.CANCELLED
