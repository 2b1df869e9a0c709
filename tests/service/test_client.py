"""The client package without Triton: its generated code is current, it imports nothing of
the analyzer, it retries UNAVAILABLE with backoff, and it raises typed errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pytest
from tiktok_analyzer_client import (
    BadInputError,
    Client,
    NotFoundError,
    PathNotAllowedError,
    RetryPolicy,
    UnavailableError,
)
from tiktok_analyzer_client.errors import error_from_code

from tiktok_analyzer.serving.launcher import free_port

from .conftest import closed_port_url, start_service

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
NO_RETRY = RetryPolicy(attempts=1)


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_proto", CLIENT_DIR / "generate_proto.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current():
    gen = _generator()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = gen.generate(Path(tmp))
    for name, text in fresh.items():
        committed = (CLIENT_DIR / gen.PACKAGE_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run python client/generate_proto.py"


def test_client_imports_only_grpc_and_protobuf():
    """Other services install the client alone: importing it pulls in nothing heavy."""
    code = (
        "import sys, tiktok_analyzer_client\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tiktok_analyzer', 'numpy', 'tritonclient', 'av', 'cv2', 'torch', 'pydantic'})\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_client_pyproject_depends_only_on_grpc_and_protobuf():
    import tomllib

    project = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())["project"]
    assert project["name"] == "tiktok-analyzer-client"
    assert sorted(d.split(">")[0].split("=")[0] for d in project["dependencies"]) == [
        "grpcio",
        "protobuf",
    ]


ERROR_CASES = [
    ("INVALID_ARGUMENT", BadInputError),
    ("PERMISSION_DENIED", PathNotAllowedError),
    ("NOT_FOUND", NotFoundError),
    ("UNAVAILABLE", UnavailableError),
]


@pytest.mark.parametrize("code, cls", ERROR_CASES)
def test_codes_map_to_typed_errors(code, cls):
    err = error_from_code(grpc.StatusCode[code], "why")
    assert type(err) is cls and err.message == "why" and err.code is grpc.StatusCode[code]


def test_path_refusal_is_also_bad_input():
    assert issubclass(PathNotAllowedError, BadInputError)


def test_unavailable_is_retried_until_the_service_comes_up(tmp_path):
    """Nothing listens at first: without retry the call fails at once; with retry it
    succeeds once the service starts, 0.8 s later."""
    port = free_port()
    with Client(f"127.0.0.1:{port}", retry=NO_RETRY) as client:
        t0 = time.monotonic()
        with pytest.raises(UnavailableError):
            client.health()
        assert time.monotonic() - t0 < 1.0

    started: list = []

    def later():
        time.sleep(0.8)
        started.append(start_service(closed_port_url(), [tmp_path], grpc_port=port))

    thread = threading.Thread(target=later)
    thread.start()
    try:
        retry = RetryPolicy(attempts=8, initial_backoff_s=0.2, max_backoff_s=0.5)
        with Client(f"127.0.0.1:{port}", retry=retry) as client:
            t0 = time.monotonic()
            health = client.health(timeout_s=10)
            assert time.monotonic() - t0 >= 0.7
        assert health.ready is False and health.triton_ready is False  # Triton is down
    finally:
        thread.join()
        for svc in started:
            svc.stop()


def test_retry_gives_up_after_its_attempts(cuts_clip, root):
    """A service whose Triton is down answers UNAVAILABLE every time: the client tries
    `attempts` times, pausing between tries, then raises UnavailableError."""
    svc = start_service(closed_port_url(), [root])
    try:
        retry = RetryPolicy(attempts=3, initial_backoff_s=0.1, multiplier=2.0, jitter=0.0)
        with Client(svc.grpc_target, retry=retry) as client:
            t0 = time.monotonic()
            with pytest.raises(UnavailableError) as info:
                client.analyze(str(cuts_clip[0]), ["cut_analysis"])
            elapsed = time.monotonic() - t0
        assert "does not answer" in info.value.message
        assert elapsed >= 0.1 + 0.2
        counted = svc.service.metrics.analyses.labels(status="unavailable")._value.get()
        assert counted == 3
    finally:
        svc.stop()
