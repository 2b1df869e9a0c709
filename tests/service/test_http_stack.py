"""The HTTP stack under hostile clients, through a raw socket where a well-behaved client
library would not send such requests: smuggling-shaped heads, oversized heads and bodies,
stalled clients, the bearer scheme in any case. No Triton needed: the routes that refuse
do so before one is asked."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tiktok_analyzer.service import JobSettings

from .conftest import closed_port_url, start_service


@pytest.fixture(scope="module")
def svc(root):
    service = start_service(closed_port_url(), [root], token="s3cret")
    yield service
    service.stop()


def _raw(svc, request: bytes, timeout: float = 5) -> tuple[int, dict | None, bytes]:
    """(status, JSON body or None, the raw answer) of one request on a fresh connection."""
    with socket.create_connection(("127.0.0.1", svc.service.http_port)) as sock:
        sock.settimeout(timeout)
        sock.sendall(request)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    return status, doc, answer


def _post(headers: bytes, body: bytes, path: bytes = b"/analyses") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
        b"Content-Type: application/json\r\n" + headers + b"\r\n" + body
    )


BODY = b'{"video_path": "/nowhere/x.mp4"}'
SMUGGLING = [
    ("two conflicting Content-Length", b"Content-Length: 5\r\nContent-Length: %d\r\n"),
    ("two equal Content-Length", b"Content-Length: %d\r\nContent-Length: %d\r\n"),
    ("a Content-Length list", b"Content-Length: %d, %d\r\n"),
    ("Content-Length and chunked", b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"),
]


@pytest.mark.parametrize("name, headers", SMUGGLING, ids=[s[0] for s in SMUGGLING])
def test_ambiguous_body_length_is_refused(svc, name, headers):
    n = headers.count(b"%d")
    status, doc, raw = _raw(svc, _post(headers % ((len(BODY),) * n), BODY))
    assert status == 400, raw
    assert doc["code"] == "INVALID_ARGUMENT" and doc["detail"], raw
    assert b"connection: close" in raw.lower()


def test_the_same_request_with_one_content_length_is_parsed(svc):
    """The control: the body above is fine; it is refused for its path (403), not its head."""
    status, doc, raw = _raw(svc, _post(b"Content-Length: %d\r\n" % len(BODY), BODY))
    assert status == 403 and doc["code"] == "PERMISSION_DENIED", raw


def test_chunked_bodies_are_refused(svc):
    status, doc, raw = _raw(
        svc, _post(b"Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))
    )
    assert status == 411 and doc["code"] == "INVALID_ARGUMENT", raw


def test_a_body_over_the_limit_is_refused_unread(svc):
    status, doc, raw = _raw(svc, _post(b"Content-Length: 10000000\r\n", b"{"))
    assert status == 413 and "limit" in doc["detail"], raw


def test_a_huge_head_is_refused(svc):
    status, doc, raw = _raw(svc, _post(b"X-Filler: " + b"a" * 40_000 + b"\r\n", b""))
    assert status == 431 and doc["code"] == "INVALID_ARGUMENT", raw


def test_a_malformed_head_gets_json(svc):
    status, doc, raw = _raw(svc, b"GET /health HTTP/1.1\r\nHost x\r\n\r\n")
    assert status == 400 and doc["code"] == "INVALID_ARGUMENT", raw


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_auth_scheme_is_case_insensitive(svc, scheme):
    request = b"GET /analyzers HTTP/1.1\r\nHost: x\r\nAuthorization: %s s3cret\r\n\r\n"
    status, doc, raw = _raw(svc, request % scheme.encode())
    assert status == 200 and isinstance(doc, list), raw


@pytest.mark.parametrize("value", [b"Bearer wrong", b"Basic s3cret", b"s3cret", b"Bearer"])
def test_wrong_credentials_are_refused(svc, value):
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % value
    status, doc, raw = _raw(svc, request)
    assert status == 401 and doc["code"] == "UNAUTHENTICATED", raw
    assert b"www-authenticate: bearer" in raw.lower()


@pytest.mark.parametrize(
    "request_line, status, code",
    [
        (b"GET /nowhere", 404, "NOT_FOUND"),
        (b"DELETE /analyze", 405, "UNIMPLEMENTED"),
        (b"GET /analyses", 405, "UNIMPLEMENTED"),
        (b"PUT /analyses/abc", 405, "UNIMPLEMENTED"),
    ],
)
def test_unknown_routes_answer_json(svc, request_line, status, code):
    got, doc, raw = _raw(svc, request_line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert got == status and doc["code"] == code and "no route" in doc["detail"], raw


def test_a_stalled_body_gets_408(svc):
    svc.service._http_api.read_timeout_s = 0.5
    try:
        t0 = time.monotonic()
        status, doc, raw = _raw(svc, _post(b"Content-Length: 100\r\n", b'{"video'))
        assert status == 408 and doc["code"] == "DEADLINE_EXCEEDED", raw
        assert time.monotonic() - t0 < 2
    finally:
        svc.service._http_api.read_timeout_s = 10.0


def test_an_idle_connection_is_dropped(svc):
    svc.service._http_api.read_timeout_s = 0.5
    try:
        with socket.create_connection(("127.0.0.1", svc.service.http_port)) as sock:
            sock.settimeout(3)
            t0 = time.monotonic()
            assert sock.recv(1024) == b""
            assert time.monotonic() - t0 < 2
    finally:
        svc.service._http_api.read_timeout_s = 10.0


def test_openapi_describes_the_routes(svc):
    status, doc, raw = _raw(svc, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200, raw
    assert {"/health", "/analyze", "/analyses", "/analyses/{job_id}", "/metrics"} <= set(
        doc["paths"]
    )
    body = doc["paths"]["/analyze"]["post"]["requestBody"]["content"]["application/json"]
    assert "video_path" in body["schema"]["properties"]


def test_a_lost_job_store_is_503_then_recovers(root, pg_url):
    """The database ends the service's session: that request is UNAVAILABLE in one line, and
    the next one is answered on a fresh connection."""
    import psycopg

    # no dispatcher rounds: this request, not a background poll, meets the dropped session
    quiet = JobSettings(poll_s=3600)
    service = start_service(closed_port_url(), [root], job_store=pg_url, jobs=quiet)
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        request = b"GET /analyses/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"0" * 32)
        status, doc, raw = _raw(service, request)
        assert status == 503 and doc == {
            "detail": "the job store does not answer",
            "code": "UNAVAILABLE",
        }, raw
        status, doc, raw = _raw(service, request)
        assert status == 404 and doc["code"] == "NOT_FOUND", raw
    finally:
        service.stop()
