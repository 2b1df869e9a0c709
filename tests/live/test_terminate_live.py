"""SIGTERM to `tiktok-analyzer analyze` cleans up as Ctrl-C does: the Triton it started
stops and the clip's shared memory leaves /dev/shm. Left to SIGTERM's default action the
command died at once and left its frame region (270 MB for a 30 s 1080x1920 clip)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.procs import children
from tiktok_analyzer.orchestrator.region import SHM_DIR

from .conftest import CLI

pytestmark = pytest.mark.live

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "sample.mp4"


def _regions(pid: int) -> set[str]:
    """``pid``'s regions: its clips' (``tta_<pid>_``) and its Triton's (``tta<pid>x``);
    other tests running beside this one make their own."""
    return {n for n in os.listdir(SHM_DIR) if n.startswith((f"tta_{pid}_", f"tta{pid}x"))}


def test_sigterm_during_the_decode_stops_triton_and_unlinks_the_region(tmp_path):
    proc = subprocess.Popen(
        [*CLI, "analyze", str(SAMPLE), "--analyzers", "cut_analysis", "--out", str(tmp_path / "r")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    # The frame region (tta_<pid>_...) appears once Triton is up and the decode has begun.
    deadline = time.monotonic() + 240
    seen: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        seen = {n for n in _regions(proc.pid) if n.startswith("tta_")}
        if seen:
            break
        time.sleep(0.01)
    assert seen, f"no frame region before the command ended (rc {proc.poll()})"
    servers = [
        p for p in children(proc.pid) if "tritonserver" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert servers, "the command's own Triton is not its child"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
    assert not _regions(proc.pid), "shared memory left behind"
    for pid in servers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
