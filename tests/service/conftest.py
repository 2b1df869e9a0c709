"""The service tier: one embedded Triton for the session (the two models these tests use),
and the orchestrator service running in a thread of the test process, so tests reach its
job manager and metrics as well as its ports."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from tiktok_analyzer.orchestrator.report import SCHEMA_PATH
from tiktok_analyzer.service import JobSettings, Service, ServiceConfig
from tiktok_analyzer.serving.launcher import EmbeddedTriton, free_port

#: The analyzers the live tests run: one on the picture, one on the sound.
MODELS = ["cut_analysis", "audio_analysis"]


class ServiceThread:
    """A :class:`Service` on its own event loop in a daemon thread."""

    def __init__(self, config: ServiceConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service: Service = self.call(self._make(config))
        self.call(self.service.start())

    @staticmethod
    async def _make(config: ServiceConfig) -> Service:
        return Service(config)  # inside the loop: asyncio primitives bind to it

    def call(self, coro: Coroutine, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.service.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    def stop(self, drain_s: float = 5.0) -> None:
        self.call(self.service.stop(drain_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def start_service(triton_url: str, roots: list[Path], **overrides) -> ServiceThread:
    overrides = {"grpc_port": 0, "http_port": 0, **overrides}
    config = ServiceConfig(
        triton_url=triton_url, allowed_roots=[str(r) for r in roots], **overrides
    )
    return ServiceThread(config)


def closed_port_url() -> str:
    """A loopback address where nothing listens (Triton down)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def triton():
    with EmbeddedTriton(models=MODELS) as server:
        yield server


@pytest.fixture(scope="session")
def schema():
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    """The allowed root the services read from."""
    return tmp_path_factory.mktemp("allowed")


@pytest.fixture(scope="session")
def cuts_clip(clip_factory, root) -> tuple[Path, dict]:
    """The small 'cuts' clip, copied under the allowed root; (path, truth)."""
    src, truth = clip_factory("cuts", width=360, height=640)
    dst = root / "cuts.mp4"
    if not dst.exists():
        shutil.copy(src, dst)
    return dst, truth


@pytest.fixture(scope="session")
def live_service(triton, root):
    svc = start_service(triton.grpc_url, [root], jobs=JobSettings(max_concurrent=2, max_queue=4))
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL (Debian's package, scripts/setup.sh installs it) in a temporary
    folder on a free loopback port; its admin URL. As root, the server runs as ``nobody``:
    PostgreSQL refuses to run as root."""
    import os
    import pwd
    import subprocess
    import tempfile

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs it)")
    bindir = found[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="tiktok-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "nobody", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            [*run_as, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*run_as, bindir / "pg_ctl", "-D", data, "-l", folder / "log", "-o", options, "-w"]
            + ["-t", "60", "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode()[-2000:]} {log[-2000:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server):
    """A fresh, empty database on the test server; its URL."""
    import uuid

    import psycopg

    name = f"jobs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
