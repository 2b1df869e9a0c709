"""`tiktok-analyzer serve --triton-url A,B`: the service takes a list of Triton endpoints
(here none answers: it serves, says not ready and names each), and a malformed list is a
usage error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tiktok_analyzer.serving.launcher import free_ports

CLI = str(Path(sys.executable).parent / "tiktok-analyzer")


def _health(url: str) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None  # not listening yet


def test_serve_takes_a_list_of_endpoints(tmp_path):
    a, b, grpc_port, http_port = free_ports(4)
    urls = [f"127.0.0.1:{a}", f"127.0.0.1:{b}"]
    proc = subprocess.Popen(
        [
            CLI,
            "serve",
            "--triton-url",
            ",".join(urls),
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
            "--allowed-root",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (answer := _health(f"http://127.0.0.1:{http_port}")) is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        status, body = answer
        assert status == 503 and body["triton_url"] == ",".join(urls)
        assert all(f"Triton at {u} does not answer" in body["reason"] for u in urls), body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_serve_refuses_a_malformed_list():
    proc = subprocess.run(
        [CLI, "serve", "--triton-url", "127.0.0.1:8001,nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --triton-url: Triton endpoint 'nonsense' is not HOST:PORT"


def test_serve_refuses_a_state_dir_in_use(tmp_path):
    """Two services on one SQLite folder would fail each other's running jobs at start."""
    from tiktok_analyzer.service.jobstore import SqliteStore

    held = SqliteStore(tmp_path)
    ports = free_ports(3)
    try:
        proc = subprocess.run(
            [CLI, "serve", "--triton-url", f"127.0.0.1:{ports[0]}", "--state-dir", str(tmp_path)]
            + ["--grpc-port", str(ports[1]), "--http-port", str(ports[2])],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        held.close()
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: another service uses the state directory")
    assert "\n" not in proc.stderr.strip()


def test_serve_refuses_a_job_store_it_cannot_use(tmp_path):
    proc = subprocess.run(
        [CLI, "serve", "--triton-url", "127.0.0.1:8001", "--job-store", "mysql://u:pw@db/x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: --job-store: 'mysql://u:***@db/x' is not a postgresql:// URL"
    )
