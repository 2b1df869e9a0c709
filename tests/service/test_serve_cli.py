"""`tiktok-analyzer serve` as operators run it (embedded Triton, here with one model), with
`tiktok-analyzer analyze --server` as a caller, SIGTERM under load, and SIGKILL: the jobs
are still there after a restart, the one that was running failed with the reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from tiktok_analyzer.serving.launcher import default_model_repository, free_port, free_ports

pytestmark = pytest.mark.live

CLI = str(Path(sys.executable).parent / "tiktok-analyzer")


def _get(url: str, body: dict | None = None, timeout: float = 30):
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines()[1:]]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in rows if pp in frontier} - found
        found |= frontier
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory, root):
    """The service started by the CLI, with a model repository holding only cut_analysis."""
    repo = tmp_path_factory.mktemp("repo")
    real = default_model_repository()
    for name in ("cut_analysis",):
        (repo / name).symlink_to(real / name)
    grpc_port, http_port = free_ports(2)
    env = dict(os.environ, TIKTOK_ANALYZER_MODEL_REPOSITORY=str(repo))
    proc = subprocess.Popen(
        [
            CLI,
            "serve",
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
            "--allowed-root",
            str(root),
            "--drain",
            "20",
            "--state-dir",
            str(tmp_path_factory.mktemp("state")),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if _get(f"{url}/health", timeout=2)[0] == 200:
                break
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.2)
    yield proc, f"127.0.0.1:{grpc_port}", url
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "analyze", *args, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_analyze_through_the_server(served, cuts_clip, clip_factory, tmp_path, schema):
    _, target, _ = served
    out = tmp_path / "r.json"
    proc = _analyze(str(cuts_clip[0]), "--server", target, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    jsonschema.validate(report, schema)
    assert len(report["analyzers"]["cut_analysis"]["result"]["cuts"]) == len(cuts_clip[1]["cuts"])

    elsewhere, _ = clip_factory("cuts", width=360, height=640)  # outside the allowed root
    proc = _analyze(elsewhere, "--server", target)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "outside the allowed roots" in proc.stderr

    proc = _analyze(elsewhere, "--server", target, "--upload", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["video"]["path"] == Path(elsewhere).name


def _tritonserver_of(pid: int) -> int:
    (server,) = [
        p for p in _children(pid) if Path(f"/proc/{p}/exe").resolve().name == "tritonserver"
    ]
    return server


def test_a_killed_triton_is_replaced_and_the_service_analyzes_again(served, cuts_clip):
    proc, _, url = served
    old = _tritonserver_of(proc.pid)
    old_stubs = _children(old)
    assert old_stubs, "the embedded Triton runs its stub"
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    while True:
        status, body = _get(f"{url}/analyze", {"video_path": str(cuts_clip[0])}, timeout=60)
        if status == 200 and body["analyzers"]["cut_analysis"]["status"] == "ok":
            break
        assert status == 503, body  # refused at once while no server answers
        assert time.monotonic() - t0 < 30, "no complete report within 30 s of the kill"
        time.sleep(0.5)
    assert _tritonserver_of(proc.pid) != old
    assert not {p for p in old_stubs if _alive(p)}, "the dead server's stubs are still running"
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    assert 'tiktok_analyzer_triton_restarts_total{outcome="ok"} 1.0' in metrics


def test_sigterm_lets_the_analysis_in_flight_finish(served, cuts_clip):
    proc, _, url = served
    children = _children(proc.pid)
    assert children, "the embedded Triton should run under the service"
    answer: list = []
    thread = threading.Thread(
        target=lambda: answer.append(
            _get(f"{url}/analyze", {"video_path": str(cuts_clip[0])}, timeout=60)
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while _get(f"{url}/health")[1]["running"] == 0:
        assert time.monotonic() < deadline, "the analysis never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # the listener stays open through the drain: health says so, new analyses are refused
    status, health = _get(f"{url}/health", timeout=2)
    assert status == 503 and health["draining"] is True
    status, refusal = _get(f"{url}/analyses", {"video_path": str(cuts_clip[0])}, timeout=5)
    assert status == 503 and refusal["code"] == "UNAVAILABLE"
    thread.join(60)
    status, report = answer[0]
    assert status == 200 and report["analyzers"]["cut_analysis"]["status"] == "ok"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert not (_children(proc.pid) | {p for p in children if _alive(p)})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _serve(triton_url: str, root: Path, state: Path) -> tuple[subprocess.Popen, str]:
    http_port = free_port()
    proc = subprocess.Popen(
        [CLI, "serve", "--triton-url", triton_url, "--grpc-port", str(free_port())]
        + ["--http-port", str(http_port), "--allowed-root", str(root), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if _get(f"{url}/health", timeout=2)[0] == 200:
                return proc, url
        except OSError:
            pass
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.1)


def _until(url: str, states: set[str], within_s: float = 60) -> dict:
    deadline = time.monotonic() + within_s
    while (doc := _get(url)[1])["state"] not in states:
        assert time.monotonic() < deadline, doc
        time.sleep(0.02)
    return doc


def test_jobs_outlive_a_killed_service(triton, root, cuts_clip, tmp_path):
    body = {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis", "audio_analysis"]}
    proc, url = _serve(triton.grpc_url, root, tmp_path / "state")
    try:
        done = _get(f"{url}/analyses", body)[1]["job_id"]
        report = _until(f"{url}/analyses/{done}", {"done"})["report"]
        running = _get(f"{url}/analyses", body)[1]["job_id"]
        _until(f"{url}/analyses/{running}", {"running"})
    finally:
        proc.kill()  # no drain, no goodbye: as a crash or an OOM kill
        proc.wait()
    proc, url = _serve(triton.grpc_url, root, tmp_path / "state")
    try:
        assert _get(f"{url}/analyses/{done}")[1]["report"] == report
        lost = _get(f"{url}/analyses/{running}")[1]
        assert lost["state"] == "failed" and lost["error"] == {
            "code": "UNAVAILABLE",
            "message": "the service restarted while it ran",
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_killed_service_takes_its_triton_and_regions_along(tmp_path, root):
    """kill -9 of `serve` with an embedded Triton: no tritonserver, stub, shm region or
    work folder of it survives (the launcher's watchdog)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "cut_analysis").symlink_to(default_model_repository() / "cut_analysis")
    http_port = free_port()
    env = dict(os.environ, TIKTOK_ANALYZER_MODEL_REPOSITORY=str(repo))
    proc = subprocess.Popen(
        [CLI, "serve", "--grpc-port", str(free_port()), "--http-port", str(http_port)]
        + ["--allowed-root", str(root), "--state-dir", str(tmp_path / "state")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None
            try:
                if _get(f"http://127.0.0.1:{http_port}/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)
        server = _tritonserver_of(proc.pid)
        family = _children(proc.pid)
        regions = {
            p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(f"tta{proc.pid}x")
        }
        assert regions, "the embedded Triton's regions carry the service's pid"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {p for p in family if _alive(p)}:
        time.sleep(0.1)
    assert not {p for p in family if _alive(p)}, f"left running after the kill (server {server})"
    assert not [r for r in regions if Path("/dev/shm", r).exists()], "regions left behind"
