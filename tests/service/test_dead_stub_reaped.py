"""A Python stub that dies (killed here, as the outside tester did) leaves no zombie:
tritonserver never reaped it, so it stayed until the service stopped. Live: one model."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.procs import children
from tiktok_analyzer.serving.launcher import EmbeddedTriton

pytestmark = pytest.mark.live


def test_a_killed_stub_is_reaped():
    import tritonclient.grpc as grpcclient

    with EmbeddedTriton(models=["cut_analysis"]) as server:
        server_pid = server.process.pid
        stubs = children(server_pid)
        assert len(stubs) == 1, stubs
        stub = next(iter(stubs))
        os.kill(stub, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while stub in children(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stub not in children(server_pid), "the dead stub is still a zombie"
        # and the model comes back when reloaded, as the service's endpoint pool does
        client = grpcclient.InferenceServerClient(server.grpc_url)
        client.load_model("cut_analysis")
        assert client.is_model_ready("cut_analysis")
        assert all(state != "Z" for state in children(server_pid).values())
