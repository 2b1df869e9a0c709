"""kill -9 of the process that started an embedded Triton: the server, its stubs, their
shared memory and the server's work folder all go with it (serving/watchdog.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ..conftest import process_group

pytestmark = pytest.mark.live

#: Starts a server, makes a shm region of its own as the orchestrator does, prints what a
#: cleanup must remove, then waits to be killed.
_OWNER = textwrap.dedent(
    """
    import json, os, sys, time
    import tritonclient.utils.shared_memory as shm
    from tiktok_analyzer.serving.launcher import EmbeddedTriton

    server = EmbeddedTriton(models=["cut_analysis"])
    server.start()
    region = f"tta_{os.getpid()}_ownertest"
    shm.create_shared_memory_region(region, "/" + region, 4096)
    print(json.dumps({"pid": server.process.pid, "prefix": server.shm_prefix,
                      "workdir": str(server.workdir), "region": region}), flush=True)
    time.sleep(600)
    """
)


def test_killing_the_owner_ends_server_stubs_and_regions(tmp_path):
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        facts = json.loads(owner.stdout.readline())
        group = process_group(facts["pid"])
        assert any("bin/tritonserver" in c for c in group.values()), group
        assert any("triton_python_backend_stub" in c for c in group.values()), group
        assert list(Path("/dev/shm").glob(facts["prefix"] + "*")), "the server's regions exist"
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process_group(facts["pid"]):
            time.sleep(0.1)
        assert not process_group(facts["pid"]), "server or stubs left running after the owner died"
        while time.monotonic() < deadline and Path(facts["workdir"]).exists():
            time.sleep(0.1)
        assert not list(Path("/dev/shm").glob(facts["prefix"] + "*")), "server regions left"
        assert not Path("/dev/shm", facts["region"]).exists(), "the owner's region left"
        assert not Path(facts["workdir"]).exists(), "the server's work folder left"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_clean_stop_leaves_the_watchdog_idle():
    """After stop() the watchdog has exited on its own, having killed nothing."""
    from tiktok_analyzer.serving.launcher import EmbeddedTriton

    server = EmbeddedTriton(models=["cut_analysis"])
    server.start()
    watchdog = server._watchdog
    assert watchdog is not None and watchdog.poll() is None
    server.stop()
    assert watchdog.wait(timeout=5) == 0
