"""Triton down (nothing listens at its address): the service stays up, says it is not
ready, and answers analyses 503 / UNAVAILABLE within a second; auth and TLS, which need
no Triton either."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from tiktok_analyzer_client import AuthenticationError, Client, RetryPolicy, UnavailableError

from .conftest import closed_port_url, start_service

NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def down_service(root):
    svc = start_service(closed_port_url(), [root])
    yield svc
    svc.stop()


def _status(url: str, body: dict | None = None, headers: dict | None = None, context=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_health_says_not_ready(down_service):
    t0 = time.monotonic()
    status, body = _status(f"{down_service.http_url}/health")
    assert time.monotonic() - t0 < 1.0
    assert status == 503 and body["ready"] is False and body["triton_ready"] is False
    assert "does not answer" in body["reason"]


def test_analyze_answers_503_within_a_second(down_service, cuts_clip):
    t0 = time.monotonic()
    status, body = _status(
        f"{down_service.http_url}/analyze",
        {"video_path": str(cuts_clip[0]), "analyzers": ["cut_analysis"]},
    )
    assert time.monotonic() - t0 < 1.0
    assert status == 503 and body["code"] == "UNAVAILABLE"

    with Client(down_service.grpc_target, retry=NO_RETRY) as client:
        t0 = time.monotonic()
        with pytest.raises(UnavailableError):
            client.analyze(str(cuts_clip[0]), ["cut_analysis"])
        assert time.monotonic() - t0 < 1.0
        assert client.health().ready is False


def test_bearer_token(root, tmp_path):
    svc = start_service(closed_port_url(), [root], token="s3cret")
    try:
        url = svc.http_url
        assert _status(f"{url}/health")[0] == 503  # health stays open (for probes)
        assert _status(f"{url}/analyzers")[0] == 401
        assert _status(f"{url}/analyzers", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert _status(f"{url}/analyzers", headers={"Authorization": "Bearer s3cret"})[0] == 200
        with Client(svc.grpc_target, retry=NO_RETRY) as client:
            assert client.health().ready is False
            with pytest.raises(AuthenticationError):
                client.list_analyzers()
            with pytest.raises(AuthenticationError):
                list(client.watch("0" * 32))
        with Client(svc.grpc_target, retry=NO_RETRY, token="s3cret") as client:
            assert len(client.list_analyzers()) >= 2
    finally:
        svc.stop()


def test_tls(root, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    svc = start_service(closed_port_url(), [root], tls_cert=str(cert), tls_key=str(key))
    try:
        import ssl

        context = ssl.create_default_context(cafile=str(cert))
        status, _ = _status(f"https://127.0.0.1:{svc.service.http_port}/health", context=context)
        assert status == 503
        with Client(svc.grpc_target, retry=NO_RETRY, root_certificates=cert.read_bytes()) as c:
            assert c.health().triton_ready is False
        with Client(svc.grpc_target, retry=NO_RETRY) as plain, pytest.raises(UnavailableError):
            plain.health(timeout_s=2)
    finally:
        svc.stop()
