"""Start and stop the real ``tritonserver`` binary shipped in the nvidia-pytriton wheel.

The wheel carries Triton 2.51's server, its Python backend and one backend stub per Python
version. We assemble a backend folder for the running interpreter, point the server at our
model repository with explicit model control (a run loads only the models it needs), bind
every endpoint to 127.0.0.1 on free ports, and tear everything down on exit: the process
group (server and stubs) and the Python backend's /dev/shm regions, which carry a prefix of
our own so we remove exactly ours.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktok_analyzer.serving.placement import Placement

__all__ = [
    "EmbeddedTriton",
    "TritonGroup",
    "host_has_gpu",
    "TritonStartError",
    "default_model_repository",
    "find_wheel_server",
]

#: tritonserver never reaps a Python stub that died (killed, crashed): it stayed a zombie
#: until the server stopped, model reloads included. Started with SIGCHLD ignored, its
#: children are reaped by the kernel as they end. An ignored signal survives exec, so a
#: one-line Python sets it and execs the server (preexec_fn is unsafe in the service,
#: which has threads). The stub sets SIGCHLD back for the models (serving/adapter.py).
_REAPING_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

log = logging.getLogger(__name__)

#: The environment variable the shared adapter reads to put this venv's site-packages
#: first on the stub's sys.path (docs/DESIGN.md, The two traps).
SITE_PACKAGES_ENV = "TIKTOK_ANALYZER_SITE_PACKAGES"


class TritonStartError(RuntimeError):
    """The embedded server could not be started; the message carries the log's tail."""


#: Names another model repository (the CLI's ``--model-repository`` sets it too).
MODEL_REPOSITORY_ENV = "TIKTOK_ANALYZER_MODEL_REPOSITORY"


def default_model_repository() -> Path:
    """The model repository shipped inside this package (package data), unless
    ``TIKTOK_ANALYZER_MODEL_REPOSITORY`` names another."""
    env = os.environ.get(MODEL_REPOSITORY_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "model_repository"


@dataclass(frozen=True)
class WheelServer:
    binary: Path
    backend_python: Path  # folder with libtriton_python.so and triton_python_backend_utils.py
    stub: Path
    libs: Path  # nvidia_pytriton.libs


def find_wheel_server() -> WheelServer:
    """Locate the server, the Python backend and this interpreter's stub in nvidia-pytriton."""
    # Located, not imported: importing pytriton pulls its own client stack, which the
    # server binary does not need.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise TritonStartError(
            "nvidia-pytriton is not installed; run the setup command in README.md"
        )
    root = Path(spec.origin).resolve().parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    server = WheelServer(
        binary=root / "bin" / "tritonserver",
        backend_python=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=root.parent.parent / "nvidia_pytriton.libs",
    )
    for path in (server.binary, server.backend_python, server.stub, server.libs):
        if not path.exists():
            raise TritonStartError(f"nvidia-pytriton is incomplete: {path} is missing")
    return server


def host_has_gpu() -> bool:
    """True when an NVIDIA GPU is visible (``TIKTOK_ANALYZER_GPU=0/1`` overrides)."""
    forced = os.environ.get("TIKTOK_ANALYZER_GPU", "").strip().lower()
    if forced:
        return forced in {"1", "true", "yes", "on"}
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports. Each socket stays bound until all are chosen: ports
    asked for one at a time can come back twice (seen: two servers of a group given the
    same metrics port)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


_PORT_ATTRS = ("grpc_port", "http_port", "metrics_port")


def _assign_free_ports(servers: Sequence[EmbeddedTriton]) -> None:
    """Give every port of ``servers`` that is not set yet a free one, all chosen together
    per host (:func:`free_ports`), none equal to a port a caller set."""
    missing = [(s, a) for s in servers for a in _PORT_ATTRS if not getattr(s, a)]
    # A port given by the caller is not bound yet: the OS may hand it out again.
    given = {getattr(s, a) for s in servers for a in _PORT_ATTRS if getattr(s, a)}
    for host in {s.host for s, _ in missing}:
        wanted = [(s, a) for s, a in missing if s.host == host]
        ports = [p for p in free_ports(len(wanted) + len(given), host) if p not in given]
        for (server, attr), port in zip(wanted, ports, strict=False):
            setattr(server, attr, port)


@dataclass
class EmbeddedTriton:
    """The embedded tritonserver as a context manager.

    >>> with EmbeddedTriton(models=["cut_analysis"]) as server:
    ...     server.grpc_url  # '127.0.0.1:PORT'
    """

    models: Sequence[str]
    model_repository: Path = field(default_factory=default_model_repository)
    host: str = "127.0.0.1"
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    ready_timeout_s: float = 120.0
    log_verbose: int = 0
    workdir: Path | None = None
    #: Load the models' ``configs/gpu.pbtxt`` (KIND_GPU instances) where they have one;
    #: None: when this host has a GPU (:func:`host_has_gpu`).
    gpu: bool | None = None
    #: Extra environment for the server and its stubs (for example the weights mode).
    env: dict[str, str] = field(default_factory=dict)
    #: ``CUDA_VISIBLE_DEVICES`` for the server and its stubs: one server per GPU
    #: (:class:`TritonGroup`) sees only its own card, which KIND_GPU instances then use.
    #: None: inherited, as before.
    cuda_devices: str | None = None

    process: subprocess.Popen | None = field(default=None, init=False)
    #: The watchdog that ends the server if this process dies (serving/watchdog.py), and the
    #: write end of its pipe, which only this process holds.
    _watchdog: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _watchdog_fd: int | None = field(default=None, init=False, repr=False)
    shm_prefix: str = field(default="", init=False)
    log_path: Path | None = field(default=None, init=False)
    _own_workdir: bool = field(default=False, init=False)

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedTriton:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        wheel = find_wheel_server()
        cmd, env = self.command_line(wheel)
        log.info(
            "starting tritonserver (gRPC %s%s, models: %s)",
            self.grpc_url,
            f", CUDA_VISIBLE_DEVICES={self.cuda_devices}" if self.cuda_devices is not None else "",
            ", ".join(self.models),
        )
        assert self.log_path is not None
        with open(self.log_path, "wb") as logf:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _REAPING_EXEC, *cmd],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        self._start_watchdog()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def command_line(self, wheel: WheelServer | None = None) -> tuple[list[str], dict[str, str]]:
        """The server's argv and environment, without starting it: prepares the work
        folder (backend links), picks the free ports still unset and this start's shm
        prefix. :meth:`start` runs exactly this."""
        wheel = wheel or find_wheel_server()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="tiktok-triton-"))
            self._own_workdir = True
        backends = self.workdir / "backends"
        python_backend = backends / "python"
        python_backend.mkdir(parents=True, exist_ok=True)
        for src in (
            wheel.backend_python / "libtriton_python.so",
            wheel.backend_python / "triton_python_backend_utils.py",
            wheel.stub,
        ):
            dst = python_backend / src.name
            if not dst.exists():
                os.symlink(src, dst)
        _assign_free_ports([self])
        # A prefix of our own on the Python backend's shm regions, so that shutdown removes
        # exactly this server's regions and servers side by side never collide.
        self.shm_prefix = f"tta{os.getpid()}x{uuid.uuid4().hex[:8]}_"
        self.log_path = self.workdir / "tritonserver.log"
        cmd = [
            str(wheel.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in self.models],
            # One broken model must not take the server (and the other analyzers) down.
            "--exit-on-error=false",
            "--strict-readiness=false",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            # Frames arrive in Triton system shm; the backend's own region must hold a
            # request's tensors without many growth steps.
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=16777216",
            # A stub has this long to answer its first health check (default 30 s): with
            # every model loading at once (torch imports, a 7B model written to disk) a slow
            # start is not a dead one.
            "--backend-config=python,stub-timeout-seconds=180",
            f"--log-verbose={self.log_verbose}",
            "--exit-timeout-secs=10",
        ]
        if self.gpu is None:
            self.gpu = self.cuda_devices is not None or host_has_gpu()
        if self.gpu:
            cmd.append("--model-config-name=gpu")
            # Triton loads 4 models at a time by default: on the H100 video_llava (the
            # slowest to load, its compiles included) waited 68 s for a thread before its
            # own 171 s began (run H, bench/results/gpu_h100.md). On a GPU host every model
            # loads at once; a CPU host keeps 4, its few cores being the bound.
            cmd.append(f"--model-load-thread-count={max(4, len(self.models))}")
        return cmd, self._environment(wheel)

    def _start_watchdog(self) -> None:
        """A process of its own session that ends the server's process group (stubs
        included), its shm regions and ours, and its work folder, once this process is
        gone however it died: it sees end-of-file on a pipe only we hold the write end of."""
        assert self.process is not None
        read_fd, write_fd = os.pipe()  # both close-on-exec: no other child inherits them
        try:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tiktok_analyzer.serving.watchdog",
                    str(self.process.pid),
                    f"{self.shm_prefix}*",
                    f"tta_{os.getpid()}_*",  # the orchestrator's regions (pipeline._Transport)
                    *(["--workdir", str(self.workdir)] if self._own_workdir else []),
                ],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_fd)
        self._watchdog_fd = write_fd

    def _stop_watchdog(self) -> None:
        from tiktok_analyzer.serving.watchdog import STOP

        fd, self._watchdog_fd = self._watchdog_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, STOP)
            os.close(fd)
        proc, self._watchdog = self._watchdog, None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def alive(self) -> bool:
        """Whether the server process is still running (it may still be loading)."""
        return self.process is not None and self.process.poll() is None

    def restart(self) -> None:
        """Clean up after a server that died (its stubs, regions and work folder) and start
        a new one on the same ports, so clients' endpoints stay valid."""
        self.stop(timeout_s=5.0)
        self.start()

    def _environment(self, wheel: WheelServer) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(wheel.libs), self._libpython_dir(), env.get("LD_LIBRARY_PATH", "")) if p
        )
        # The stub's embedded interpreter derives sys.prefix from the first `python3` on
        # PATH, not from PYTHONPATH: with this venv's bin first it starts with the venv's
        # site-packages (numpy 1.26), not the base interpreter's (numpy 2.x breaks the stub).
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
        # Already set: a host whose packages come from elsewhere first (PYTHONPATH, e.g. a
        # numpy 1.x beside a numpy 2.x interpreter) names that folder itself.
        env.setdefault(SITE_PACKAGES_ENV, sysconfig.get_paths()["purelib"])
        env.pop("PYTHONHOME", None)
        # Every model's stub runs at once: OpenMP threads that spin while they wait (torch's
        # default) burn the cores the other stubs, and the clips' decoding, need. On the
        # 2-core host the demo clip took 14.4 CPU-s instead of 16.1 (median of 3 each,
        # bench/results/cpu_pipeline.md); on the H100's 16-core host 31 CPU-s a clip instead
        # of 54 at one clip in flight, 4.76 s wall instead of 5.88, and 19.9 clips a minute
        # instead of 15.7 at eight (bench/results/gpu_h100.md, fifth session). A value set
        # by the caller wins.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # OpenCV's own thread pool (pthreads in the opencv-python wheels) spins too, and its
        # frames here are small: camera_analysis's 300 frames of 144x256 took 0.82 CPU-s
        # with 2 threads and 0.46 with 1, and no less wall; on the H100's 16-core host it
        # spent 2.3-3.6 CPU-s a clip. One thread a stub; the stubs run side by side.
        env.setdefault("OPENCV_FOR_THREADS_NUM", "1")
        if self.cuda_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.cuda_devices
        env.update(self.env)
        return env

    def _libpython_dir(self) -> str:
        """A folder holding only this interpreter's libpython (the stub links to it).
        Not its LIBDIR itself: on a system interpreter that is /usr/lib/<arch>, and putting
        it on LD_LIBRARY_PATH makes torch in the stubs load the system's cuDNN instead of
        its own (measured on the H100 image: "cuDNN version incompatibility")."""
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        soname = sysconfig.get_config_var("INSTSONAME") or ""
        source = Path(libdir) / soname
        if not soname or not source.exists() or self.workdir is None:
            return ""
        folder = self.workdir / "libpython"
        folder.mkdir(exist_ok=True)
        link = folder / soname
        if not link.exists():
            os.symlink(source, link)
        return str(folder)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self.process.returncode} during start-up; "
                    f"log tail:\n{self.log_tail()}"
                )
            # Triton opens gRPC, then HTTP, then metrics: HTTP answering does not yet mean
            # a scrape (or a client's first metrics read) would find the metrics port open.
            if (
                self._http_ok("/v2/health/live")
                and self._models_settled()
                and self._metrics_ok()
                and self._port_open(self.grpc_port)
            ):
                return
            time.sleep(0.2)
        raise TritonStartError(
            f"tritonserver was not ready after {self.ready_timeout_s:.0f} s; log tail:\n"
            f"{self.log_tail()}"
        )

    def _models_settled(self) -> bool:
        """True once every requested model is READY or UNAVAILABLE (failed to load)."""
        states = self.model_states()
        return all(states.get(m, ("", ""))[0] in {"READY", "UNAVAILABLE"} for m in self.models)

    def model_states(self) -> dict[str, tuple[str, str]]:
        """Model name -> (state, reason) from the repository index."""
        try:
            req = urllib.request.Request(
                f"{self.http_url}/v2/repository/index", data=b"{}", method="POST"
            )
            with urllib.request.urlopen(req, timeout=2) as resp:
                rows = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return {}
        return {r["name"]: (r.get("state", ""), r.get("reason", "")) for r in rows}

    def _http_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}{path}", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _metrics_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _port_open(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server gracefully (SIGTERM lets Triton unload models and end its stubs),
        then kill whatever of its process group remains, and remove its shm regions."""
        # Told first, so the watchdog never acts on a process group that is already gone.
        self._stop_watchdog()
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in %.0f s; killing it", timeout_s)
        if proc is not None:
            # Stubs are in the server's process group (start_new_session): none may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.shm_prefix:
            for path in glob.glob(f"/dev/shm/{self.shm_prefix}*"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        if self._own_workdir and self.workdir is not None:
            # Keep the log of a failed start for the error message, drop the rest.
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def load(self, models: Iterable[str]) -> None:
        """Ask the running server to load more models (explicit model control)."""
        for model in models:
            req = urllib.request.Request(
                f"{self.http_url}/v2/repository/models/{model}/load", data=b"{}", method="POST"
            )
            with urllib.request.urlopen(req, timeout=self.ready_timeout_s):
                pass


@dataclass
class TritonGroup:
    """One embedded tritonserver per GPU of a placement (serving/placement.py), each
    seeing only its card (``CUDA_VISIBLE_DEVICES``) and loading that card's models, on
    ports of its own; the orchestrator's endpoint pool takes :attr:`url` (all their gRPC
    addresses) and sends each model's requests to the servers that load it.

    >>> group = TritonGroup.for_gpus(["cut_analysis"], "all")
    >>> group.start(); group.url  # '127.0.0.1:P1,127.0.0.1:P2'
    """

    servers: list[EmbeddedTriton]
    #: The plan it came from, as lines for an operator (Placement.describe).
    plan_lines: list[str] = field(default_factory=list)

    @classmethod
    def from_placement(
        cls, placement: Placement, model_repository: Path | None = None, **kwargs
    ) -> TritonGroup:
        repo = model_repository or default_model_repository()
        return cls(
            [
                EmbeddedTriton(
                    models=list(models),
                    model_repository=repo,
                    gpu=True,
                    cuda_devices=str(card.index),
                    **kwargs,
                )
                for card, models in placement.servers()
            ],
            placement.describe(),
        )

    @classmethod
    def for_gpus(
        cls,
        models: Sequence[str],
        gpus: str,
        *,
        gpu_memory_mib: int | None = None,
        model_repository: Path | None = None,
        **kwargs,
    ) -> TritonGroup:
        """Plan ``models`` over the cards ``gpus`` names (``all`` or ``0,1,...``); raises
        :class:`~tiktok_analyzer.serving.placement.PlacementError` when no plan fits."""
        from tiktok_analyzer.serving import placement as pl

        repo = model_repository or default_model_repository()
        cards = pl.cards_for(gpus, gpu_memory_mib)
        plan = pl.plan(models, cards, pl.model_needs(models, repo))
        log.info("%s", "\n".join(plan.describe()))
        return cls.from_placement(plan, repo, **kwargs)

    @property
    def url(self) -> str:
        return ",".join(s.grpc_url for s in self.servers)

    def assign_ports(self) -> None:
        """Free ports for every server now, so :attr:`url` is known before they start."""
        _assign_free_ports(self.servers)

    def start(self) -> None:
        """Start every server at once (each load takes minutes on a GPU); if one fails to
        start, stop them all and raise its error."""
        from concurrent.futures import ThreadPoolExecutor

        self.assign_ports()
        with ThreadPoolExecutor(max_workers=max(1, len(self.servers))) as pool:
            futures = [pool.submit(s.start) for s in self.servers]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.stop()
            raise errors[0]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> TritonGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
