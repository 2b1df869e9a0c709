"""Time a clip from decode start to every array in its shared-memory region, on this machine.

Every analyzer's frame set (the model repository's declarations) and the audio, as
`analyze_clip` asks for them, in three ways:

- in-process: `decode` writes into the region itself (the CLI's way);
- isolated: a worker process probes and decodes into a region its parent created, and the
  parent maps it (the service's way; probe included, as the service runs both in one child);
- heap + copy: `decode` into this process's memory, then a copy into a new region (what a
  `run_models` caller with its own decode pays on the first request).

The median of --runs runs is shown, with this process's CPU seconds where the work is
done here (not for the isolated way: its child is the forkserver's, not this process's).

    .venv/bin/python bench/decode_to_shm.py --clip CLIP [--runs 3]

``--side-by-side N`` instead times N isolated decodes started at once (the service under
load), with the cores shared out among them and with every decode taking every core,
alternated: the wall time of all N, and the CPU seconds a clip of every process under this
one (the forkserver's decode children included).

    .venv/bin/python bench/decode_to_shm.py --clip CLIP --side-by-side 8 [--runs 3]

``--turns 8,2,1`` with it asks for the N decodes at once but lets K run at a time
(``worker.DECODES_AT_ONCE``), each taking every core: when the first, the average and the
last decode end, for each K.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from pipeline_bench import machine  # bench/pipeline_bench.py, beside this file
from proc_cpu import tree_cpu  # bench/proc_cpu.py

from tiktok_analyzer.orchestrator import nvdec, pipeline, worker
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.probe import Limits, probe
from tiktok_analyzer.orchestrator.region import Region
from tiktok_analyzer.orchestrator.worker import probe_and_decode_isolated, shutdown
from tiktok_analyzer.serving.launcher import default_model_repository

ROOT = Path(__file__).resolve().parents[1]


#: What decoded the pictures of the isolated decodes, and their warnings: printed at the end,
#: so that a fall-back to the CPU under TIKTOK_ANALYZER_VIDEO_DECODER=nvdec is seen.
DECODERS: set[tuple[str, str]] = set()


def in_process(clip: str, specs, audio: bool) -> tuple[float, float | None, int]:
    region = Region.create()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        decoded = decode(clip, probe(clip), specs, audio, region=region, gpu=nvdec.wanted())
        DECODERS.add((decoded.video_decoder, "; ".join(decoded.warnings)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert decoded.region is region, "no room in /dev/shm"
        return wall, cpu, region.size
    finally:
        region.unlink()


def isolated(clip: str, specs, audio: bool) -> tuple[float, float | None, int]:
    region = Region.create()
    try:
        t0 = time.perf_counter()
        _, decoded = asyncio.run(probe_and_decode_isolated(clip, Limits(), specs, audio, region))
        wall = time.perf_counter() - t0
        DECODERS.add((decoded.video_decoder, "; ".join(decoded.warnings)))
        assert decoded.region is region, "no room in /dev/shm"
        return wall, None, region.size
    finally:
        region.unlink()


def heap_and_copy(clip: str, specs, audio: bool, decls) -> tuple[float, float | None, int]:
    t0, c0 = time.perf_counter(), time.process_time()
    decoded = decode(clip, probe(clip), specs, audio, gpu=nvdec.wanted())
    transport = pipeline._Transport(pipeline._arrays(decoded, decls, list(decls)), True)
    region = transport.region = Region.create()
    try:
        transport._fill(region)
        return time.perf_counter() - t0, time.process_time() - c0, region.size
    finally:
        region.unlink()


def side_by_side(
    clip: str, specs, audio: bool, n: int, share: bool, at_once: int | None = None
) -> tuple[float, float, list[float]]:
    """N isolated decodes asked for at once, ``at_once`` of them running side by side (None:
    all N): (wall of all, CPU seconds a clip of this process tree, each decode's end after
    the start, sorted)."""
    worker.SHARE_CORES = share
    worker.DECODES_AT_ONCE = n if at_once is None else at_once
    ends: list[float] = []

    async def one(region: Region, t0: float) -> None:
        _, decoded = await probe_and_decode_isolated(clip, Limits(), specs, audio, region)
        ends.append(time.perf_counter() - t0)
        DECODERS.add((decoded.video_decoder, "; ".join(decoded.warnings)))

    async def all_of_them(t0: float) -> None:
        regions = [Region.create() for _ in range(n)]
        try:
            await asyncio.gather(*(one(r, t0) for r in regions))
        finally:
            for r in regions:
                r.unlink()

    before = sum(tree_cpu(os.getpid()).values())
    t0 = time.perf_counter()
    asyncio.run(all_of_them(t0))
    wall = time.perf_counter() - t0
    return wall, (sum(tree_cpu(os.getpid()).values()) - before) / n, sorted(ends)


def main_turns(clip: str, specs, audio: bool, n: int, turns: list[int], runs: int) -> None:
    """N decodes asked for at once, K at a time for each K of ``turns``, alternated: when
    the first, the average and the last ends, and the CPU a clip."""
    side_by_side(clip, specs, audio, 1, False)  # the forkserver starts outside the timing
    seen: dict[int, list[tuple[float, float, list[float]]]] = {k: [] for k in turns}
    for _ in range(runs):
        for k in turns:
            seen[k].append(side_by_side(clip, specs, audio, n, False, k))
    for k, results in seen.items():
        med = statistics.median
        print(
            f"  {n} asked, {k} at a time: first ends {med(e[0] for _, _, e in results):6.2f} s, "
            f"mean {med(statistics.fmean(e) for _, _, e in results):6.2f} s, "
            f"last {med(w for w, _, _ in results):6.2f} s; "
            f"{med(c for _, c, _ in results):6.2f} CPU-s a clip "
            f"({', '.join(f'{w:.2f} s / {c:.2f}' for w, c, _ in results)})"
        )


def main_side_by_side(clip: str, specs, audio: bool, n: int, runs: int) -> None:
    side_by_side(clip, specs, audio, 1, True)  # the forkserver starts outside the timing
    ways: dict[str, list[tuple[float, float]]] = {"shared": [], "every core": []}
    for _ in range(runs):
        for name, share in (("shared", True), ("every core", False)):
            wall, cpu, _ = side_by_side(clip, specs, audio, n, share)
            ways[name].append((wall, cpu))
    for name, results in ways.items():
        walls = [w for w, _ in results]
        cpus = [c for _, c in results]
        print(
            f"  {n} side by side, {name:10s}: {statistics.median(walls):6.2f} s for all, "
            f"{statistics.median(cpus):6.2f} CPU-s a clip, {n * 60 / statistics.median(walls):5.1f}"
            f" clips a minute ({', '.join(f'{w:.2f} s / {c:.2f}' for w, c in results)})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "sample.mp4"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side-by-side", type=int, default=0, metavar="N")
    parser.add_argument(
        "--turns",
        metavar="K,K",
        help="with --side-by-side N: the N decodes K at a time (worker.DECODES_AT_ONCE) "
        "for each K, every one taking every core",
    )
    args = parser.parse_args()
    decls = read_declarations(default_model_repository())
    specs = [d.frames for d in decls.values() if d.frames]
    audio = any(d.audio for d in decls.values())
    info = probe(args.clip)
    print(machine())
    print(
        f"{args.clip}: {info.width}x{info.height}, {info.fps:g} fps, {info.duration_s:.1f} s; "
        f"{len(set(specs))} frame sets{' and audio' if audio else ''}; median of {args.runs}"
    )
    if args.side_by_side > 0:
        try:
            if args.turns:
                turns = [int(k) for k in args.turns.split(",")]
                main_turns(args.clip, specs, audio, args.side_by_side, turns, args.runs)
            else:
                main_side_by_side(args.clip, specs, audio, args.side_by_side, args.runs)
        finally:
            shutdown()
        print(_decoders())
        return 0
    ways = {
        "in-process": lambda: in_process(args.clip, specs, audio),
        "isolated": lambda: isolated(args.clip, specs, audio),
        "heap + copy": lambda: heap_and_copy(args.clip, specs, audio, decls),
    }
    try:
        for name, run in ways.items():
            runs = [run() for _ in range(args.runs)]
            walls = [w for w, _, _ in runs]
            cpus = [c for _, c, _ in runs if c is not None]
            cpu = f"{statistics.median(cpus):6.2f} CPU-s" if cpus else " " * 12
            print(
                f"  {name:12s} {statistics.median(walls):6.2f} s {cpu}  "
                f"({', '.join(f'{w:.2f}' for w in walls)}; region {runs[0][2] / 1e6:.0f} MB)"
            )
    finally:
        shutdown()
    print(_decoders())
    return 0


def _decoders() -> str:
    return "  picture decoded by: " + (
        "; ".join(f"{d}" + (f" ({w})" if w else "") for d, w in sorted(DECODERS)) or "-"
    )


if __name__ == "__main__":
    raise SystemExit(main())
