"""kill -9 of a supervised tritonserver: the old stubs are gone, a new server answers on
the same address, and a complete report comes back within 30 s."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import (
    AnalysisOptions,
    TritonUnavailable,
    analyze_clip_async,
)
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository
from tiktok_analyzer.serving.supervisor import TritonSupervisor

from ..conftest import process_group

pytestmark = pytest.mark.live


def test_a_killed_server_is_replaced_and_analyses_complete_again(clip_factory):
    path, _ = clip_factory("cuts", width=360, height=640)
    server = EmbeddedTriton(models=["cut_analysis"])
    server.start()
    options = AnalysisOptions(
        triton_url=server.grpc_url,
        analyzers=["cut_analysis"],
        declarations=read_declarations(default_model_repository()),
        timeout_s=60,
    )
    restarts: list[bool] = []

    async def scenario() -> float:
        supervisor = TritonSupervisor(server, on_restart=restarts.append)
        task = asyncio.create_task(supervisor.run())
        try:
            first = await analyze_clip_async(str(path), options)
            assert first.analyzers["cut_analysis"].status == "ok"
            old = server.process.pid
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                try:
                    report = await analyze_clip_async(str(path), options)
                except TritonUnavailable:  # refused at once while no server answers
                    await asyncio.sleep(0.5)
                    continue
                if report.analyzers["cut_analysis"].status == "ok":
                    assert server.process.pid != old
                    assert not process_group(old), "the dead server's stubs are still running"
                    return time.monotonic() - t0
                await asyncio.sleep(0.5)
            raise AssertionError(f"no complete report within 30 s; restarts: {restarts}")
        finally:
            supervisor.stop()
            await task

    try:
        took = asyncio.run(scenario())
    finally:
        server.stop()
    assert restarts == [True]
    assert took < 30
