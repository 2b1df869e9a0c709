"""The service decodes in a worker process: a decoder that crashes costs that one request
(400 / INVALID_ARGUMENT, saying so) and the service answers the next one."""

from __future__ import annotations

import json
import time

import pytest
from tiktok_analyzer_client import BadInputError, Client, RetryPolicy

from tests import worker_hooks
from tiktok_analyzer.orchestrator import worker

from .test_service_live import http

pytestmark = pytest.mark.live


def test_a_decoder_crash_is_refused_and_the_service_goes_on(live_service, cuts_clip, monkeypatch):
    path = str(cuts_clip[0])
    body = {"video_path": path, "analyzers": ["cut_analysis"]}
    # the probe (its own child) passes; the child that decodes aborts
    monkeypatch.setattr(worker, "_probe_and_decode", worker_hooks.abort)
    t0 = time.monotonic()
    status, text = http(f"{live_service.http_url}/analyze", body)
    assert time.monotonic() - t0 < 2.0
    assert status == 400, text
    assert json.loads(text)["detail"] == f"{path}: the decoder crashed (SIGABRT)"
    with Client(live_service.grpc_target, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(BadInputError, match="the decoder crashed"):
            client.analyze(path, ["cut_analysis"])
        monkeypatch.undo()
        assert client.analyze(path, ["cut_analysis"]).status == "complete"
    assert http(f"{live_service.http_url}/analyze", body)[0] == 200
