"""A clip's shm region is unregistered even when the first tries fail, and what still fails
is counted, never swallowed (a region left registered stays mapped inside tritonserver)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import numpy as np
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.orchestrator import pipeline
from tiktok_analyzer.orchestrator.region import SHM_DIR, Region


@dataclass
class _FlakyClient:
    fail_times: int
    calls: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    async def unregister_system_shared_memory(self, name, client_timeout=None):
        self.calls.append(client_timeout)
        self.names.append(name)
        if len(self.calls) <= self.fail_times:
            raise InferenceServerException("Deadline Exceeded")


@dataclass(eq=False)
class _Endpoint:
    client: _FlakyClient
    url: str = "127.0.0.1:1"


def _close(fail_times: int) -> tuple[_FlakyClient, int]:
    transport = pipeline._Transport({"audio": np.zeros(16, np.float32)}, use_shm=True)
    region = transport.region = Region.create()
    ep = _Endpoint(_FlakyClient(fail_times))
    transport.registered.add(ep)
    before = pipeline.SHM_UNREGISTER_FAILURES[0]
    asyncio.run(transport.close())
    assert not transport.registered
    assert ep.client.names == [region.name] * len(ep.client.calls)
    assert not os.path.exists(os.path.join(SHM_DIR, region.name))  # unlinked in any case
    return ep.client, pipeline.SHM_UNREGISTER_FAILURES[0] - before


def test_a_failed_unregister_is_tried_again_with_longer_timeouts():
    client, failures = _close(fail_times=2)
    assert client.calls == list(pipeline.UNREGISTER_TIMEOUTS_S)
    assert failures == 0


def test_an_unregister_that_keeps_failing_is_counted():
    client, failures = _close(fail_times=99)
    assert len(client.calls) == len(pipeline.UNREGISTER_TIMEOUTS_S)
    assert failures == 1
