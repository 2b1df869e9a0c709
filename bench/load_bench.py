"""Load on the service: N concurrent clients for a bounded time, each sending the sample clip
over gRPC (unary Analyze, no retries) as soon as its previous analysis came back.

Prints completed analyses, errors by gRPC code (aim: none), latency percentiles as the
clients saw them (queueing in the service included), clips per minute, and the machine.
Without --server it starts the service in this process, over the embedded Triton with the
analyzers asked for, and reads the clip from its folder (an allowed root).

    .venv/bin/python bench/load_bench.py [--server HOST:PORT] [--clients 8] [--seconds 60]
        [--clip samples/sample.mp4] [--analyzers a,b] [--max-concurrent 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pipeline_bench import ROOT, machine
from tiktok_analyzer_client import Client, RetryPolicy, ServiceError

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.orchestrator import worker
from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
from tiktok_analyzer.orchestrator.probe import probe
from tiktok_analyzer.service import JobSettings, Service, ServiceConfig
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository


@dataclass
class Tally:
    """What the clients saw; appended to from their threads."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)  # complete / partial
    errors: Counter = field(default_factory=Counter)  # gRPC code name
    examples: dict[str, str] = field(default_factory=dict)
    #: analyzer -> its statuses over the completed analyses
    analyzers: dict[str, Counter] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(target: str, clip: str, names: list[str], until: float, tally: Tally) -> None:
    with Client(target, retry=RetryPolicy(attempts=1), timeout_s=900) as client:
        while time.monotonic() < until:
            t0 = time.monotonic()
            try:
                result = client.analyze(clip, names)
            except ServiceError as exc:
                code = exc.code.name if exc.code else type(exc).__name__
                with tally.lock:
                    tally.errors[code] += 1
                    tally.examples.setdefault(code, exc.message)
                continue
            with tally.lock:
                tally.latencies.append(time.monotonic() - t0)
                tally.statuses[result.status] += 1
                for name, status in result.analyzer_status.items():
                    tally.analyzers.setdefault(name, Counter())[status] += 1


class LocalService:
    """The embedded Triton and the service on an event loop of their own."""

    def __init__(self, names: list[str], root: Path, max_concurrent: int) -> None:
        self.triton = EmbeddedTriton(models=names)
        self.triton.start()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = ServiceConfig(
            triton_url=self.triton.grpc_url,
            grpc_port=0,
            http_port=0,
            allowed_roots=[str(root)],
            jobs=JobSettings(max_concurrent=max_concurrent, max_queue=64),
        )
        self.service = self._call(self._make(config))
        self._call(self.service.start())

    @staticmethod
    async def _make(config: ServiceConfig) -> Service:
        return Service(config)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.grpc_port}"

    def stop(self) -> None:
        self._call(self.service.stop(5.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.triton.stop()
        worker.shutdown()


def sample_clip(path: str | None, workdir: Path) -> str:
    if path:
        return str(Path(path).resolve())
    default = ROOT / "samples" / "sample.mp4"
    if default.exists():
        return str(default)
    from tiktok_analyzer.groundtruth import CATALOG, render

    clip = workdir / "sample.mp4"
    render(CATALOG["sample"], clip)
    return str(clip)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a running service's gRPC HOST:PORT (default: start one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="send new analyses for this long; those under way then finish",
    )
    parser.add_argument("--clip", help="default: samples/sample.mp4, rendered if missing")
    parser.add_argument("--analyzers", help="comma-separated (default: every built analyzer)")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=2,
        help="analyses at once in the started service (default 2)",
    )
    parser.add_argument("--out", help="also append the table (markdown) to this file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    clip = sample_clip(args.clip, workdir)
    decls = read_declarations(default_model_repository())
    built = [n for n in ANALYZER_NAMES if not getattr(load_class(n), "brought_by", None)]
    names = with_dependencies(args.analyzers.split(",") if args.analyzers else built, decls)
    info = probe(clip)
    print(f"machine: {machine()}", flush=True)
    print(
        f"clip: {clip} ({info.duration_s:.1f} s, {info.width}x{info.height}); "
        f"analyzers: {', '.join(names)}",
        flush=True,
    )

    local = None if args.server else LocalService(names, Path(clip).parent, args.max_concurrent)
    target = args.server or local.target
    tally = Tally()
    try:
        t0 = time.monotonic()
        until = t0 + args.seconds
        threads = [
            threading.Thread(target=client_loop, args=(target, clip, names, until, tally))
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - t0
    finally:
        if local is not None:
            local.stop()

    done = len(tally.latencies)
    lat = np.array(tally.latencies) if done else np.zeros(1)
    where = (
        f"Service at {args.server}"
        if args.server
        else f"Service started here (max {args.max_concurrent} analyses at once), embedded Triton"
    )
    lines = [
        f"### {dt.date.today().isoformat()}: {args.clients} clients for {args.seconds:g} s, "
        f"{Path(clip).name} ({info.duration_s:.1f} s, {info.width}x{info.height})",
        "",
        f"Machine: {machine()}. {where}; analyzers: {', '.join(names)}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| completed analyses | {done} "
        f"({', '.join(f'{n} {s}' for s, n in sorted(tally.statuses.items())) or 'none'}) |",
        f"| errors by code | "
        f"{', '.join(f'{c}: {n}' for c, n in sorted(tally.errors.items())) or 'none'} |",
        f"| latency p50 / p95 / max (s) | {np.percentile(lat, 50):.2f} / "
        f"{np.percentile(lat, 95):.2f} / {lat.max():.2f} |",
        f"| clips per minute | {done / elapsed * 60:.1f} |",
        f"| clip-seconds analyzed per wall second | {done * info.duration_s / elapsed:.2f} |",
        f"| wall (last answers included) | {elapsed:.1f} s |",
        "",
    ]
    by_status: dict[str, list[str]] = {}
    for name in names:
        counts = tally.analyzers.get(name, Counter())
        label = "/".join(sorted(counts)) or "none"  # its statuses, e.g. "ok" or "ok/failed"
        by_status.setdefault(label, []).append(name)
    lines += [f"Analyzer entries {label}: {', '.join(ns)}." for label, ns in by_status.items()]
    lines += [f"First error of {code}: {msg}" for code, msg in tally.examples.items()]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0 if done and not tally.errors else 1


if __name__ == "__main__":
    sys.exit(main())
