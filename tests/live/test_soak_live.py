"""A soak: 8 clients analyze without pause against one embedded tritonserver; its memory
must not grow (regions left registered stay mapped inside it: 12 MB each, seen as
70 -> 276 MB in 5 minutes), and no region may stay registered afterwards.

$SOAK_SECONDS sets the length: 600 s by default, what CI runs. Seen on the 2-core machine:
1137 analyses, the RSS floor 230 MB after the warm-up, 239 MB by the second minute and 240
MB at the end (a plateau); in a CI run, 1852 analyses, 193 MB until 290 s, then one step to
264 MB and flat to the end; in another, 185 -> 255 MB at 410 s (late fills, not leaks:
see the assertions)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import pytest
import tritonclient.grpc.aio as grpcclient

from tiktok_analyzer.orchestrator import pipeline
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip_async
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository

pytestmark = [pytest.mark.live, pytest.mark.slow]

SOAK_S = float(os.environ.get("SOAK_SECONDS", "600"))
CLIENTS = 8
#: The RSS floor is taken in this many parts of the run; it may rise between two only once.
PARTS = 8
#: A rise of the floor between two parts that counts as a step (a fill or a leak).
STEP_MB = 20.0
#: Growth allowed over the whole run: one fill of the shm pool and arenas (seen: 71.5 MB).
MAX_FILL_MB = 120.0
#: The backend's shm pools and allocator arenas fill in the first minute (seen: 194 -> 280 MB).
WARMUP_S = min(90.0, SOAK_S / 4)


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# The soak itself runs SOAK_S; the suite's per-test timeout (600 s) would cut it short.
@pytest.mark.timeout(SOAK_S + 300)
def test_tritonserver_memory_stays_flat_under_load(clip_factory):
    path, _ = clip_factory("cuts", width=360, height=640)
    models = ["cut_analysis", "audio_analysis"]
    with EmbeddedTriton(models=models) as server:
        options = AnalysisOptions(
            triton_url=server.grpc_url,
            analyzers=models,
            declarations=read_declarations(default_model_repository()),
            timeout_s=120,
        )
        failures_before = pipeline.SHM_UNREGISTER_FAILURES[0]
        series: list[float] = []
        done = [0]

        async def client(deadline: float) -> None:
            while time.monotonic() < deadline:
                report = await analyze_clip_async(str(path), options)
                assert not report.failed(), report.failed()
                done[0] += 1

        async def soak() -> list[dict]:
            t0 = time.monotonic()
            deadline = t0 + SOAK_S
            clients = [asyncio.create_task(client(deadline)) for _ in range(CLIENTS)]
            await asyncio.sleep(WARMUP_S)
            while time.monotonic() < deadline:
                series.append(round(_rss_mb(server.process.pid), 1))
                await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            await asyncio.gather(*clients)
            probe = grpcclient.InferenceServerClient(server.grpc_url)
            try:
                status = await probe.get_system_shared_memory_status(as_json=True)
            finally:
                await probe.close()
            return status.get("regions", [])

        left = asyncio.run(soak())
    # RSS swings by tens of MB with the requests in flight; a leak raises its floor, the
    # lowest reading of each eighth of the samples, again and again. The backend's shm pool
    # and the allocator's arenas fill once, in one step of about 70 MB, when a burst first
    # arrives: usually in the warm-up, but in CI at 290 s (2026-12-06) and at 410 s
    # (2026-12-07), flat after. So the floor may rise once, by at most one such fill; the
    # region leak this guards against grew the floor 206 MB in 5 minutes, about 44 MB in
    # every eighth of this run.
    eighth = max(1, len(series) // PARTS)
    floors = [min(series[i * eighth : (i + 1) * eighth]) for i in range(PARTS - 1)]
    floors.append(min(series[-eighth:]))
    rises = [round(b - a, 1) for a, b in itertools.pairwise(floors) if b - a >= STEP_MB]
    total = floors[-1] - floors[0]
    print(f"{done[0]} analyses in {SOAK_S:.0f} s; tritonserver RSS every 5 s (MB): {series}")
    print(f"floors by eighth (MB): {floors}; rises of {STEP_MB:.0f} MB or more: {rises}")
    assert done[0] >= CLIENTS, "the soak made too few analyses to say anything"
    assert left == [], f"regions still registered: {left}"
    assert pipeline.SHM_UNREGISTER_FAILURES[0] == failures_before
    assert len(rises) <= 1, f"tritonserver's memory rose again and again: {floors}"
    assert total < MAX_FILL_MB, f"tritonserver grew {total:.1f} MB under load: {floors}"
