"""The endpoint pool without servers: parsing endpoint lists, telling faults apart, and
what a pool says when nothing answers."""

from __future__ import annotations

import asyncio

import pytest
from tritonclient.utils import InferenceServerException

from tiktok_analyzer.orchestrator.endpoints import (
    EndpointPool,
    Fault,
    InferFailed,
    classify,
    parse_urls,
)
from tiktok_analyzer.serving.launcher import free_ports

URLS = [
    ("127.0.0.1:8001", ["127.0.0.1:8001"]),
    (" a:1 , b:2,", ["a:1", "b:2"]),
    ("a:1,a:1,b:2", ["a:1", "b:2"]),
    (["a:1", "[::1]:8001"], ["a:1", "[::1]:8001"]),
]


@pytest.mark.parametrize("spec, expected", URLS)
def test_parse_urls(spec, expected):
    assert parse_urls(spec) == expected


@pytest.mark.parametrize("spec", ["", " , ", "host", "host:", ":80", "h:0", "h:70000", "h:x"])
def test_parse_urls_refuses(spec):
    with pytest.raises(ValueError):
        parse_urls(spec)


# (status, message as Triton 2.51 sends it) -> what the pool makes of it
FAULTS = [
    (
        "StatusCode.UNAVAILABLE",
        "failed to connect to all addresses; Connection refused",
        Fault.UNREACHABLE,
    ),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", Fault.TIMEOUT),
    (
        "StatusCode.NOT_FOUND",
        "Request for unknown model: 'cut_analysis' is not found",
        Fault.MODEL_NOT_READY,
    ),
    (
        "StatusCode.NOT_FOUND",
        "Request for unknown model: 'cut_analysis' has no available versions",
        Fault.MODEL_NOT_READY,
    ),
    ("StatusCode.NOT_FOUND", "Unable to find shared memory region: 'tta_1_abc'", Fault.SHM_LOST),
    ("StatusCode.INTERNAL", "Stub process 'cut_analysis_0_0' is not healthy.", Fault.STUB_DIED),
    ("StatusCode.INVALID_ARGUMENT", "cut_analysis: bad request: META is not valid", Fault.REQUEST),
    ("StatusCode.INTERNAL", "ValueError: something in the model", Fault.REQUEST),
]


@pytest.mark.parametrize("status, message, fault", FAULTS)
def test_classify(status, message, fault):
    assert classify(InferenceServerException(msg=message, status=status)) is fault


def test_a_pool_with_nothing_behind_it():
    urls = [f"127.0.0.1:{p}" for p in free_ports(2)]

    async def main():
        pool = EndpointPool(urls)
        try:
            ready, reason = await pool.ready()
            states = await pool.model_states()
            with pytest.raises(InferFailed) as failed:
                await pool.infer("cut_analysis", None, [], timeout_s=2.0)
            return ready, reason, states, str(failed.value)
        finally:
            await pool.close()

    ready, reason, states, failure = asyncio.run(main())
    assert not ready and states is None
    assert all(f"Triton at {u} does not answer" in reason for u in urls), reason
    assert failure.startswith("no Triton endpoint serves cut_analysis"), failure
