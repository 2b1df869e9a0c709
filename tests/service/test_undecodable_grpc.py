"""A request that is no valid protobuf message is the caller's fault: INVALID_ARGUMENT,
not UNKNOWN, on every kind of method (Triton down: nothing here reaches an analysis)."""

from __future__ import annotations

import grpc
import pytest

from .conftest import closed_port_url, start_service

SERVICE = "/tiktok_analyzer.v1.TikTokAnalyzer/"
#: A field tag of wire type 7, which protobuf does not have.
GARBAGE = b"\x0f\xff\xff\xff\xff"


@pytest.fixture(scope="module")
def target(root):
    svc = start_service(closed_port_url(), [root])
    yield svc.grpc_target
    svc.stop()


def _raw(x: bytes) -> bytes:
    return x


@pytest.mark.parametrize("method", ["Analyze", "Submit", "GetJob", "Health", "ListAnalyzers"])
def test_unary(target, method):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(SERVICE + method, _raw, _raw)
        with pytest.raises(grpc.RpcError) as info:
            call(GARBAGE, timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in info.value.details()


def test_server_streaming(target):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_stream(SERVICE + "WatchJob", _raw, _raw)
        with pytest.raises(grpc.RpcError) as info:
            list(call(GARBAGE, timeout=5))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_client_streaming(target):
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_unary(SERVICE + "UploadAndAnalyze", _raw, _raw)
        with pytest.raises(grpc.RpcError) as info:
            call(iter([GARBAGE]), timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in info.value.details()


def test_valid_requests_still_work(target):
    from tiktok_analyzer_client import Client

    with Client(target) as client:
        assert client.health().ready is False
