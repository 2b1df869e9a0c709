"""Time the Triton pipeline against the naive way, on the sample clip, on this machine.

Triton pipeline: the embedded server with the requested models loaded (start-up timed
apart), then `analyze_clip` (probe, decode once, fan-out over gRPC with shared memory, DAG,
report), repeated; the median run is shown.
Naive way: in this process, one analyzer after another, each opening and decoding the clip
itself for its own frames and audio, then analyzing; dependencies get the results of the
analyzers run before them. Analyzer construction (Triton's `initialize`) is timed apart in
both, so the comparison is per clip in steady state.

    .venv/bin/python bench/pipeline_bench.py [--clip samples/sample.mp4] [--runs 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
from tiktok_analyzer.orchestrator.probe import probe
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository

ROOT = Path(__file__).resolve().parents[1]


#: /proc/cpuinfo flag -> name, widest first.
_SIMD = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("sse4_2", "SSE4.2"))


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its widest vector unit, from ``cpuinfo`` (the text of
    /proc/cpuinfo; read here when None). Convolutions on a CPU depend on that unit: the
    same code on two 2-core hosts gave realtime factor 0.48 on an Intel Xeon and 0.62 on an
    AMD EPYC with AVX2 only (the Xeon's unit was not recorded then)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    cpu, flags = "", set[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not cpu:
            cpu = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
        if cpu and flags:
            break
    cpu = cpu or platform.processor() or "unknown CPU"
    simd = next((name for flag, name in _SIMD if flag in flags), "")
    return f"{cpu} ({simd})" if simd else cpu


def machine() -> str:
    cpu = cpu_name()
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def naive(path: str, names: list[str]) -> tuple[dict[str, float], float, float]:
    """Each analyzer decodes the clip itself, one after another. Returns per-analyzer seconds
    (decode + analyze), the total, and the total construction time."""
    decls = read_declarations(default_model_repository())
    analyzers = {}
    t0 = time.perf_counter()
    for name in names:
        analyzers[name] = load_class(name)()
    init_s = time.perf_counter() - t0
    results: dict[str, dict] = {}
    per: dict[str, float] = {}
    total0 = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        info = probe(path)
        decl = decls[name]
        specs = [decl.frames] if decl.frames else []
        dec = decode(path, info, specs, decl.audio)
        fs = dec.frame_sets.get(decl.frames) if decl.frames else None
        clip = Clip(
            meta=ClipMeta(
                info.duration_s, info.fps, info.width, info.height, info.has_video, info.has_audio
            ),
            frames=fs.frames if fs else None,
            timestamps_s=fs.timestamps_s if fs else None,
            frame_indices=fs.frame_indices if fs else None,
            audio=dec.audio,
            upstream={d: results[d] for d in decl.depends_on if d in results},
        )
        (out,) = analyzers[name].analyze_batch([clip])
        if not isinstance(out, Exception):
            results[name] = out.model_dump(mode="json")
        per[name] = time.perf_counter() - t
    return per, time.perf_counter() - total0, init_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "sample.mp4"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--analyzers", help="comma-separated (default: every built analyzer)")
    parser.add_argument("--out", help="also append the table (markdown) to this file")
    args = parser.parse_args()
    if not Path(args.clip).exists():
        print(f"{args.clip} does not exist: run scripts/setup.sh first", file=sys.stderr)
        return 2
    decls = read_declarations(default_model_repository())
    built = [n for n in ANALYZER_NAMES if not getattr(load_class(n), "brought_by", None)]
    names = args.analyzers.split(",") if args.analyzers else built
    names = with_dependencies(names, decls)
    info = probe(args.clip)

    print(f"machine: {machine()}", flush=True)
    print(
        f"clip: {args.clip} ({info.duration_s:.1f} s, {info.width}x{info.height} @ "
        f"{info.fps:g} fps); analyzers: {', '.join(names)}",
        flush=True,
    )

    t0 = time.perf_counter()
    with EmbeddedTriton(models=names) as server:
        start_s = time.perf_counter() - t0
        options = AnalysisOptions(triton_url=server.grpc_url, analyzers=names, declarations=decls)
        reports = []
        for i in range(args.runs + 1):  # the first run warms caches; not counted
            report = analyze_clip(args.clip, options)
            if i:
                reports.append(report)
            bad = [n for n, e in report.analyzers.items() if e.status != "ok"]
            if bad:
                print(f"warning: not ok in run {i}: {bad}", file=sys.stderr)
    median = sorted(reports, key=lambda r: r.processing.wall_s)[len(reports) // 2]
    walls = [r.processing.wall_s for r in reports]

    naive_runs = [naive(args.clip, names) for _ in range(max(1, args.runs))]
    naive_per, naive_total, naive_init = sorted(naive_runs, key=lambda r: r[1])[
        len(naive_runs) // 2
    ]

    lines = [
        f"### {dt.date.today().isoformat()}: {Path(args.clip).name} "
        f"({info.duration_s:.1f} s, {info.width}x{info.height}, {info.fps:g} fps)",
        "",
        f"Machine: {machine()}.",
        "",
        "| analyzer | Triton pipeline: in model (s) | naive: own decode + analyze (s) |",
        "|---|---:|---:|",
    ]
    for name in names:
        lines.append(f"| {name} | {median.analyzers[name].elapsed_s:.3f} | {naive_per[name]:.3f} |")
    p = median.processing
    lines += [
        f"| decode | {p.decode_s:.3f} (once) | (inside each row) |",
        f"| **wall** | **{p.wall_s:.3f}** (median of {len(walls)}: "
        f"{', '.join(f'{w:.2f}' for w in walls)}) | **{naive_total:.3f}** |",
        f"| realtime factor | {p.realtime_factor:.3f} | {naive_total / info.duration_s:.3f} |",
        "",
        f"Speed-up of the pipeline over the naive way: {naive_total / p.wall_s:.1f}x. "
        f"Embedded Triton start-up ({len(names)} models, once per process): {start_s:.1f} s; "
        f"naive analyzer construction: {naive_init:.1f} s (neither counted above).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
