"""The orchestrator service: gRPC and HTTP in one process over one job manager, and the
``serve`` entry point that also runs the embedded Triton when no URL is given."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from tiktok_analyzer_client.pb import tiktok_analyzer_pb2 as pb

from tiktok_analyzer import __version__
from tiktok_analyzer.orchestrator import worker
from tiktok_analyzer.orchestrator.endpoints import EndpointPool
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.probe import Limits
from tiktok_analyzer.service.grpc_api import AnalyzerServicer, TokenInterceptor, add_servicer
from tiktok_analyzer.service.http_api import HttpApi
from tiktok_analyzer.service.jobs import JobManager, JobSettings
from tiktok_analyzer.service.jobstore import open_store
from tiktok_analyzer.service.metrics import Metrics
from tiktok_analyzer.service.paths import PathPolicy
from tiktok_analyzer.serving.launcher import (
    EmbeddedTriton,
    TritonGroup,
    default_model_repository,
    free_port,
)
from tiktok_analyzer.serving.supervisor import TritonSupervisor

__all__ = ["Service", "ServiceConfig", "serve"]

log = logging.getLogger(__name__)


@dataclass
class ServiceConfig:
    #: Triton's gRPC endpoint, HOST:PORT, or several separated by commas.
    triton_url: str
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); the bound ports are on the Service once started.
    grpc_port: int = 50051
    http_port: int = 8003
    allowed_roots: Sequence[str] = ()
    jobs: JobSettings = field(default_factory=JobSettings)
    limits: Limits = field(default_factory=Limits)
    #: Frames through system shared memory to the Triton servers on this host; False: never.
    use_shm: bool = True
    max_upload_bytes: int = 512 * 1024**2
    #: An upload that sends nothing for this long is ended (a stalled client).
    upload_idle_s: float = 30.0
    #: Temporary files of uploads go here (default: a fresh private folder).
    upload_dir: str | None = None
    #: On shutdown, analyses admitted get this long to finish before they are cancelled.
    drain_s: float = 30.0
    #: Bearer token wanted on every call but health (None: no auth).
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    model_repository: Path = field(default_factory=default_model_repository)
    #: Jobs in SQLite under this folder (None, with no job_store: in memory, gone on exit).
    state_dir: str | None = None
    #: A postgresql:// URL: jobs in that database, shared by every replica pointing to it.
    job_store: str | None = None


class Service:
    """Start with :meth:`start`, end with :meth:`stop`; or ``await service.run(stop_event)``."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.triton = EndpointPool(config.triton_url)
        self.paths = PathPolicy.from_dirs(config.allowed_roots)
        self.jobs = JobManager(
            config.jobs,
            triton=self.triton,
            declarations=read_declarations(config.model_repository),
            limits=config.limits,
            use_shm=config.use_shm,
            paths=self.paths,
            metrics=self.metrics,
            store=open_store(config.job_store, config.state_dir),
        )
        self._own_upload_dir = config.upload_dir is None
        self.upload_dir = config.upload_dir or tempfile.mkdtemp(prefix="tiktok-analyzer-uploads-")
        self.grpc_port = 0
        self.http_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._http_api: HttpApi | None = None

    # -- health ------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        triton_ready, reason = await self.triton.ready()
        self.metrics.triton_ready.set(1 if triton_ready else 0)
        draining = self.jobs.draining
        if draining:
            reason = "the service is shutting down"
        ready = triton_ready and not draining
        return {
            "status": "ok" if ready else ("draining" if draining else "unavailable"),
            "ready": ready,
            "triton_ready": triton_ready,
            "draining": draining,
            "triton_url": self.config.triton_url,
            "running": self.jobs.running,
            "queued": self.jobs.queued,
            "version": __version__,
            "reason": "" if ready else reason,
        }

    async def _health_pb(self) -> pb.HealthResponse:
        h = await self.health()
        return pb.HealthResponse(
            ready=h["ready"],
            triton_ready=h["triton_ready"],
            draining=h["draining"],
            triton_url=h["triton_url"],
            running=h["running"],
            queued=h["queued"],
            version=h["version"],
            reason=h["reason"],
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def _tls(self) -> grpc.ServerCredentials | None:
        c = self.config
        if not (c.tls_cert and c.tls_key):
            return None
        cert, key = Path(c.tls_cert).read_bytes(), Path(c.tls_key).read_bytes()
        return grpc.ssl_server_credentials([(key, cert)])

    async def start(self) -> None:
        c = self.config
        creds = self._tls()
        interceptors = [TokenInterceptor(c.token)] if c.token else []
        self._grpc = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", 8 * 1024**2),
                ("grpc.max_send_message_length", 64 * 1024**2),
                ("grpc.so_reuseport", 0),
            ],
        )
        add_servicer(
            self._grpc,
            AnalyzerServicer(
                self.jobs,
                health=self._health_pb,
                upload_dir=self.upload_dir,
                max_upload_bytes=c.max_upload_bytes,
                upload_idle_s=c.upload_idle_s,
            ),
        )
        address = f"{c.host}:{c.grpc_port}"
        self.grpc_port = (
            self._grpc.add_secure_port(address, creds)
            if creds
            else self._grpc.add_insecure_port(address)
        )
        if not self.grpc_port:
            raise OSError(f"cannot bind gRPC to {address}")
        await self.jobs.start()
        await self._grpc.start()
        self._http_api = HttpApi(self.jobs, self.metrics, self.health, token=c.token)
        tls = (c.tls_cert, c.tls_key) if creds else (None, None)
        self.http_port = await self._http_api.start(c.host, c.http_port, *tls)
        log.info(
            "serving: gRPC %s:%d, HTTP %s:%d, Triton %s, allowed roots: %s",
            c.host,
            self.grpc_port,
            c.host,
            self.http_port,
            c.triton_url,
            ", ".join(self.paths.roots) or "(none: uploads only)",
        )

    async def stop(self, drain_s: float | None = None) -> None:
        """Refuse new analyses, let admitted ones finish within the drain bound (cancel the
        rest), then close both servers. Both keep answering meanwhile (health says draining;
        jobs that end during the drain can be fetched)."""
        drain_s = self.config.drain_s if drain_s is None else drain_s
        cancelled = await self.jobs.drain(drain_s)
        if cancelled:
            log.warning("cancelled %d analyses still running after %.0f s", cancelled, drain_s)
        if self._grpc is not None:
            await self._grpc.stop(grace=2.0)
        if self._http_api is not None:
            await self._http_api.stop()
        await self.jobs.close()
        await self.triton.close()
        if self._own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def serve(config: ServiceConfig, *, start_triton: bool, group: TritonGroup | None = None) -> int:
    """Run until SIGTERM or SIGINT; exit 0 after a clean drain. With ``start_triton`` the
    embedded Triton (every model) starts first on a free port and stops last; with
    ``group`` (``--gpus``), its servers instead, one per GPU, each under its own
    supervisor."""
    return asyncio.run(_serve(config, start_triton, group))


async def _serve(
    config: ServiceConfig, start_triton: bool, group: TritonGroup | None = None
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    triton = None
    supervisors: list[TritonSupervisor] = []
    supervising: list[asyncio.Task] = []
    if start_triton and group is not None:
        # Ports now, so the pool knows every server's address before any has started.
        group.assign_ports()
        triton = group
        config.triton_url = group.url
    elif start_triton:
        triton = EmbeddedTriton(
            models=list(read_declarations(config.model_repository)),
            model_repository=config.model_repository,
            grpc_port=free_port(),
        )
        config.triton_url = triton.grpc_url
    service = Service(config)
    await service.start()
    print(
        f"serving: gRPC {config.host}:{service.grpc_port}, HTTP "
        f"http://{config.host}:{service.http_port}, Triton {config.triton_url}"
        + (" (starting)" if triton else ""),
        flush=True,
    )
    try:
        if triton is not None:
            # The APIs answer (not ready) while Triton starts; a signal meanwhile waits
            # for the start to end, then shuts everything down.
            await asyncio.to_thread(triton.start)
            servers = triton.servers if isinstance(triton, TritonGroup) else [triton]
            print(f"Triton ready at {','.join(s.grpc_url for s in servers)}", flush=True)
            # A server that dies is cleaned up and started again on the same ports; one
            # supervisor per server, so one card's server restarting leaves the others be.
            for server in servers:
                supervisor = TritonSupervisor(
                    server,
                    on_restart=lambda ok: service.metrics.triton_restarts.labels(
                        "ok" if ok else "failed"
                    ).inc(),
                )
                supervisors.append(supervisor)
                supervising.append(asyncio.create_task(supervisor.run()))
        await stop.wait()
        print("shutting down: draining analyses", flush=True)
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        if supervising:
            await asyncio.gather(*supervising)
        await service.stop()
        if triton is not None:
            await asyncio.to_thread(triton.stop)
        worker.shutdown()
    print("stopped", flush=True)
    return 0
