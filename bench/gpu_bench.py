"""The whole pipeline on a GPU host, every learned analyzer on a KIND_GPU instance with
``synthetic-full`` weights (the real architectures' exact shapes, random values): per
analyzer its time in the model and Triton's compute time, peak GPU memory per model
process, wall time and realtime factor.

    # where espeak-ng is (the clip has speech): render the 30 s 1080x1920 clip once
    python bench/gpu_bench.py --render bench30.mp4
    # on the GPU host
    python bench/gpu_bench.py --clip bench30.mp4 --llava-precision nf4 --out gpu.md

The model repository is copied with video_llava's ``precision`` parameter set, and the
server is started with ``--model-config-name=gpu`` (the learned models' KIND_GPU
configs). The first analysis warms every model (CUDA contexts, kernels, caches) and is
reported apart; the table shows the median of the timed runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def bench_spec():
    """A 30 s 1080x1920 clip with something for every analyzer: cuts of each kind, camera
    motion, a face, overlay text, speech over a beat, sound effects."""
    from tiktok_analyzer.groundtruth import (
        CATALOG,
        AudioSpec,
        ClipSpec,
        Overlay,
        Photo,
        SoundEvent,
        SpeechSpec,
    )
    from tiktok_analyzer.groundtruth.clips import ASTRONAUT_HEAD
    from tiktok_analyzer.groundtruth.speech import SPEECH_TEXTS

    base = CATALOG["sample_1080"]
    text = SPEECH_TEXTS["morning"] + " " + SPEECH_TEXTS["kitchen"]
    return ClipSpec(
        width=1080,
        height=1920,
        fps=30.0,
        shots=list(base.shots) * 2,
        flashes=list(base.flashes),
        overlays=[
            Overlay("NEW DROP TODAY", 0.3, 3.0, y=0.15, size_px=72),
            Overlay("link in bio", 24.0, 29.5, y=0.75, size_px=48),
        ],
        photos=[Photo("astronaut", 15.0, 22.0, crop=ASTRONAUT_HEAD, y=0.4, height=0.4)],
        audio=AudioSpec(
            tempo_bpm=120.0,
            tone_gain=0.05,
            beat_gain=0.3,
            speech=SpeechSpec(text, wpm=160.0, start_s=3.0),
            events=[SoundEvent("whoosh", 2.4), SoundEvent("ding", 26.0)],
        ),
        seed=53,
        crf=26,
    )


def gpu_info() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = "no nvidia-smi"
    try:
        import torch

        torch_v = f"torch {torch.__version__} (CUDA {torch.version.cuda})"
    except ImportError:
        torch_v = "no torch"
    return f"{out}; {torch_v}; Python {platform.python_version()}; {os.cpu_count()} CPU cores"


class GpuSampler(threading.Thread):
    """Samples nvidia-smi's per-process GPU memory; maps each stub's pid to its model."""

    def __init__(self, repo: Path, period_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.repo, self.period_s = str(repo), period_s
        self.peak_by_model: dict[str, int] = {}
        self.peak_total = 0
        self.stop_event = threading.Event()

    def _model_of(self, pid: str) -> str | None:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        for a in args:
            text = a.decode(errors="replace")
            m = re.search(re.escape(self.repo) + r"/([^/]+)/", text)
            if m:
                return m.group(1)
        return None

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                apps = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-compute-apps=pid,used_memory",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                total = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                self.peak_total = max(self.peak_total, int(total.split()[0]))
                for line in apps.strip().splitlines():
                    pid, mem = (p.strip() for p in line.split(","))
                    model = self._model_of(pid)
                    if model:
                        self.peak_by_model[model] = max(self.peak_by_model.get(model, 0), int(mem))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass
            self.stop_event.wait(self.period_s)


def compute_us(metrics_url: str) -> dict[str, tuple[float, float]]:
    """Per model: (compute microseconds, executions) from Triton's Prometheus metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for key, slot in (
            ("nv_inference_compute_infer_duration_us", 0),
            ("nv_inference_exec_count", 1),
        ):
            if line.startswith(key + "{"):
                model = re.search(r'model="([^"]+)"', line).group(1)
                out.setdefault(model, [0.0, 0.0])[slot] += float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in out.items()}


def prepare_repo(precision: str) -> Path:
    from tiktok_analyzer.serving.launcher import default_model_repository

    repo = Path(tempfile.mkdtemp(prefix="gpu-bench-repo-")) / "model_repository"
    shutil.copytree(default_model_repository(), repo, ignore=shutil.ignore_patterns("__pycache__"))
    for cfg in (repo / "video_llava").rglob("*.pbtxt"):
        text = cfg.read_text()
        new = re.sub(
            r'(key: "precision" value \{ string_value: ")[^"]*(")', rf"\g<1>{precision}\2", text
        )
        if new == text and 'key: "precision"' not in text:
            raise SystemExit(f"{cfg} has no precision parameter")
        cfg.write_text(new)
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", metavar="PATH", help="render the bench clip and exit")
    parser.add_argument("--clip", help="the clip to analyze (made with --render)")
    parser.add_argument("--llava-precision", default="bf16", choices=["bf16", "nf4", "auto"])
    parser.add_argument("--weights", default="synthetic-full")
    parser.add_argument("--runs", type=int, default=2, help="timed runs after the warm-up")
    parser.add_argument("--analyzers", help="comma-separated (default: all 21)")
    parser.add_argument("--out", help="append the markdown table to this file")
    parser.add_argument("--server-log", help="copy Triton's log here before it stops")
    args = parser.parse_args()
    if args.render:
        from tiktok_analyzer.groundtruth import render

        info = render(bench_spec(), args.render)
        print(f"wrote {args.render} ({info['duration_s']:.1f} s)")
        return 0
    if not args.clip:
        parser.error("--clip is required (or --render)")

    from tiktok_analyzer.analyzers import ANALYZER_NAMES
    from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
    from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
    from tiktok_analyzer.orchestrator.probe import probe
    from tiktok_analyzer.serving.launcher import EmbeddedTriton

    repo = prepare_repo(args.llava_precision)
    decls = read_declarations(repo)
    names = with_dependencies(
        args.analyzers.split(",") if args.analyzers else list(ANALYZER_NAMES), decls
    )
    info = probe(args.clip)
    machine = gpu_info()
    print(f"machine: {machine}", flush=True)
    print(
        f"clip: {args.clip} ({info.duration_s:.1f} s, {info.width}x{info.height} @ "
        f"{info.fps:g} fps); weights {args.weights}; video_llava {args.llava_precision}",
        flush=True,
    )
    sampler = GpuSampler(repo)
    sampler.start()
    t0 = time.perf_counter()
    env = {"TIKTOK_ANALYZER_WEIGHTS": args.weights}
    with EmbeddedTriton(
        models=names, model_repository=repo, gpu=True, env=env, ready_timeout_s=900
    ) as server:
        start_s = time.perf_counter() - t0
        states = server.model_states()
        print(f"server ready in {start_s:.1f} s", flush=True)
        options = AnalysisOptions(
            triton_url=server.grpc_url, analyzers=names, declarations=decls, timeout_s=900
        )
        t = time.perf_counter()
        analyze_clip(args.clip, options)
        warm_s = time.perf_counter() - t
        print(f"warm-up analysis: {warm_s:.1f} s", flush=True)
        before = compute_us(server.metrics_url)
        reports = []
        for i in range(args.runs):
            reports.append(analyze_clip(args.clip, options))
            print(f"run {i + 1}: {reports[-1].processing.wall_s:.2f} s", flush=True)
        after = compute_us(server.metrics_url)
        log_tail = server.log_tail(60)
        if args.server_log and server.log_path is not None:
            shutil.copy(server.log_path, args.server_log)
    sampler.stop_event.set()
    sampler.join(timeout=5)

    runs = max(1, len(reports))
    median = sorted(reports, key=lambda r: r.processing.wall_s)[len(reports) // 2]
    walls = [r.processing.wall_s for r in reports]
    lines = [
        f"### {dt.date.today().isoformat()}: video_llava {args.llava_precision}, "
        f"weights {args.weights}",
        "",
        f"Machine: {machine}.",
        f"Clip: {Path(args.clip).name}, {info.duration_s:.1f} s, {info.width}x{info.height} "
        f"@ {info.fps:g} fps. Server start-up (all models loaded): {start_s:.1f} s; "
        f"warm-up analysis: {warm_s:.1f} s.",
        "",
        "| analyzer | status | weights | instance | in model (s) | Triton compute (s) "
        "| peak GPU memory (MiB) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for name in names:
        entry = median.analyzers[name]
        c_us = after.get(name, (0.0, 0.0))[0] - before.get(name, (0.0, 0.0))[0]
        state = states.get(name, ("?", ""))[0]
        kind = "GPU" if (repo / name / "configs" / "gpu.pbtxt").exists() else "CPU"
        peak = sampler.peak_by_model.get(name)
        status = entry.status if entry.status == "ok" else f"{entry.status}: {entry.error}"
        if state != "READY":
            status = f"model {state}"
        lines.append(
            f"| {name} | {status} | {entry.model.weights} | {kind} | "
            f"{statistics.median(r.analyzers[name].elapsed_s for r in reports):.3f} | "
            f"{c_us / 1e6 / runs:.3f} | {peak if peak is not None else '-'} |"
        )
    p = median.processing
    lines += [
        f"| decode | | | | {p.decode_s:.3f} | | |",
        f"| **wall** | | | | **{p.wall_s:.2f}** (median of {len(walls)}: "
        f"{', '.join(f'{w:.2f}' for w in walls)}) | | GPU total peak {sampler.peak_total} |",
        f"| **realtime factor** | | | | **{p.realtime_factor:.3f}** | | |",
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    if not sampler.peak_by_model:
        print("note: nvidia-smi showed no per-process memory here", flush=True)
    bad = [n for n in names if median.analyzers[n].status != "ok"]
    if bad:
        print("server log tail:\n" + log_tail, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
