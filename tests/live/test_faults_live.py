"""Faults inside Triton: a model whose backend process is killed, and a model that hangs.
Either costs only its own analyzer's entry; the others complete, and a killed model is
reloaded so that the next analysis is whole again."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
from tiktok_analyzer.serving.launcher import EmbeddedTriton

from .fault_repo import make_repository

pytestmark = pytest.mark.live

REAL = ["cut_analysis", "audio_analysis"]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A server with two real models and hang_test (sleeps up to 30 s per request)."""
    root = tmp_path_factory.mktemp("faults")
    repo = make_repository(root, REAL, hang_s=30)
    server = EmbeddedTriton(models=[*REAL, "hang_test"], model_repository=repo)
    server.start()
    try:
        yield server, repo, root / "hang_cancelled.txt"
    finally:
        # A model instance whose stub died never finishes unloading in Triton 2.51, so a
        # graceful stop would wait out Triton's whole exit timeout (10 s) for nothing.
        server.stop(timeout_s=2.0)


@pytest.fixture(scope="module")
def clip(clip_factory) -> str:
    return clip_factory("cuts", width=360, height=640)[0]


def stubs(server: EmbeddedTriton, model: str) -> list[int]:
    """Pids of ``model``'s backend processes: children of the server whose command line
    names the model's model.py."""
    ps = ["ps", "-ww", "-eo", "pid,ppid,args"]
    out = subprocess.run(ps, capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    return [
        int(pid)
        for pid, ppid, args in rows
        if int(ppid) == server.process.pid and f"/{model}/1/model.py" in args
    ]


def run(server, repo, clip: str, names: list[str], timeout_s: float = 30.0):
    """One analysis as the CLI makes it (its own pool of one endpoint)."""
    options = AnalysisOptions(
        triton_url=server.grpc_url,
        analyzers=names,
        declarations=read_declarations(repo),
        timeout_s=timeout_s,
    )
    t0 = time.monotonic()
    report = analyze_clip(clip, options)
    return report, time.monotonic() - t0


def test_a_hanging_analyzer_is_cut_off_at_its_deadline(faulty, clip):
    server, repo, marker = faulty
    report, wall = run(server, repo, clip, [*REAL, "hang_test"], timeout_s=2.0)
    hang = report.analyzers["hang_test"]
    assert hang.status == "failed" and hang.error == "no answer within 2 s"
    assert 1.9 < hang.elapsed_s < 3.0 and wall < 6.0
    assert report.failed() == ["hang_test"]
    # the request was cancelled at Triton, not left running: the model saw it
    deadline = time.monotonic() + 3
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text().startswith("cancelled")


def test_a_killed_model_fails_fast_and_is_reloaded(faulty, clip):
    server, repo, _ = faulty
    (old,) = stubs(server, "cut_analysis")
    os.kill(old, signal.SIGKILL)
    report, _ = run(server, repo, clip, REAL)
    entry = report.analyzers["cut_analysis"]
    assert report.failed() == ["cut_analysis"]
    assert "process died" in entry.error and "is being reloaded" in entry.error, entry.error
    assert entry.elapsed_s < 3.0  # Triton notices a dead stub within about a second
    assert report.analyzers["audio_analysis"].status == "ok"

    # reloaded: a new process, and the next analysis of the same clip is whole
    assert stubs(server, "cut_analysis") not in ([], [old])
    report, _ = run(server, repo, clip, REAL)
    assert report.failed() == []


def test_a_model_killed_mid_request_fails_fast(faulty, clip):
    """hang_test would hold the request for 30 s; its process dies one second in."""
    server, repo, _ = faulty
    (old,) = stubs(server, "hang_test")
    threading.Timer(1.0, os.kill, (old, signal.SIGKILL)).start()
    report, wall = run(server, repo, clip, [*REAL, "hang_test"], timeout_s=20.0)
    entry = report.analyzers["hang_test"]
    assert report.failed() == ["hang_test"]
    assert "process died" in entry.error and entry.elapsed_s < 4.0, entry
    assert stubs(server, "hang_test") not in ([], [old])
    assert server.model_states()["hang_test"][0] == "READY"
