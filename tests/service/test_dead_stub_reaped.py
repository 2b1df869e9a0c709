"""A Python stub that dies (killed here, as the outside tester did) leaves no zombie:
tritonserver never reaped it, so it stayed until the service stopped. Live: one model."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tiktok_analyzer.serving.launcher import EmbeddedTriton

pytestmark = pytest.mark.live


def _children(pid: int) -> dict[int, str]:
    """pid -> state letter of each child of ``pid``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(entry)] = fields[0]
    return found


def test_a_killed_stub_is_reaped():
    import tritonclient.grpc as grpcclient

    with EmbeddedTriton(models=["cut_analysis"]) as server:
        server_pid = server.process.pid
        stubs = _children(server_pid)
        assert len(stubs) == 1, stubs
        stub = next(iter(stubs))
        os.kill(stub, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while stub in _children(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stub not in _children(server_pid), "the dead stub is still a zombie"
        # and the model comes back when reloaded, as the service's endpoint pool does
        client = grpcclient.InferenceServerClient(server.grpc_url)
        client.load_model("cut_analysis")
        assert client.is_model_ready("cut_analysis")
        assert all(state != "Z" for state in _children(server_pid).values())
