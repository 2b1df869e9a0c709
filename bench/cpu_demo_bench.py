"""Time the demo's analysis on a warm embedded Triton: wall and CPU seconds per clip.

What `scripts/demo.sh` does once (every analyzer; real weights where they ship), repeated
on one server so that start-up and first-request costs fall out: the first run is a
warm-up and not counted. Besides the wall (the realtime factor's numerator) it reads the
CPU seconds this process tree used in each run (server, stubs, decode): on a host shared
with other work the wall moves with their load, the CPU seconds much less, so a change is
judged on both. The 1-minute load average at each run's start is printed with it.

    .venv/bin/python bench/cpu_demo_bench.py [--clip samples/sample.mp4] [--runs 3]
        [--env KEY=VALUE ...] [--per-process]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from pipeline_bench import machine  # bench/pipeline_bench.py, beside this file
from proc_cpu import diff, tree_cpu  # bench/proc_cpu.py

from tiktok_analyzer.analyzers import ANALYZER_NAMES
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "sample.mp4"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument(
        "--per-process",
        action="store_true",
        help="also print each process's CPU seconds a clip (tritonserver, each model's stub)",
    )
    args = parser.parse_args()
    if not Path(args.clip).exists():
        print(f"{args.clip} does not exist: run scripts/setup.sh first", file=sys.stderr)
        return 2
    env = dict(item.split("=", 1) for item in args.env)
    names = list(ANALYZER_NAMES)
    decls = read_declarations(default_model_repository())
    print(f"machine: {machine()}", flush=True)
    print(f"clip: {args.clip}", flush=True)
    started = time.perf_counter()
    rows: list[dict] = []
    per_process: list[dict[str, float]] = []
    with EmbeddedTriton(models=names, env=env) as server:
        print(f"server start {time.perf_counter() - started:.1f} s", flush=True)
        options = AnalysisOptions(triton_url=server.grpc_url, analyzers=names, declarations=decls)
        for i in range(args.runs + 1):
            load, cpu0 = os.getloadavg()[0], tree_cpu(os.getpid())
            report = analyze_clip(args.clip, options)
            used = diff(tree_cpu(os.getpid()), cpu0)
            if i:
                per_process.append(used)
            p = report.processing
            row = {
                "run": i,
                "wall_s": round(p.wall_s, 2),
                "realtime_factor": round(p.realtime_factor, 3),
                "decode_s": round(p.decode_s, 2),
                "cpu_s": round(sum(used.values()), 1),
                "load1": round(load, 1),
                "slowest": {
                    n: round(e.elapsed_s, 2)
                    for n, e in sorted(report.analyzers.items(), key=lambda kv: -kv[1].elapsed_s)[
                        :4
                    ]
                },
            }
            rows.append(row)
            print(("warm-up " if i == 0 else "") + json.dumps(row), flush=True)
    counted = rows[1:]
    print(
        f"median of {len(counted)}: wall {statistics.median(r['wall_s'] for r in counted):.2f} s, "
        f"realtime factor {statistics.median(r['realtime_factor'] for r in counted):.3f}, "
        f"CPU {statistics.median(r['cpu_s'] for r in counted):.1f} s"
    )
    if args.per_process and per_process:
        medians = {
            k: statistics.median(u.get(k, 0.0) for u in per_process)
            for k in set().union(*per_process)
        }
        print(f"CPU seconds a clip by process (median of {len(per_process)}):")
        for k, v in sorted(medians.items(), key=lambda kv: -kv[1]):
            if v >= 0.005:
                print(f"  {v:6.2f}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
