"""The whole pipeline on a GPU host against the same analyzers without Triton, with
``synthetic-full`` weights (the real architectures' exact shapes, random values) and honest
generation budgets.

    # where espeak-ng is (the clip has speech): render the 30 s 1080x1920 clip once
    python bench/gpu_bench.py --render bench30.mp4            # --small: 15 s at 360x640
    # on the GPU host (bench/gpu/README.md: bench/gpu/run.sh does this)
    python bench/gpu_bench.py --clip bench30.mp4 --llava-precision bf16 --out-dir "$OUT"

What it measures, in one run:
- the Triton pipeline: server start, one warm-up analysis, then clips at concurrency 1
  (the per-analyzer table and the critical path come from these), 4 and 8 (clips a minute);
  each clip decoded in a child process, as the service decodes (``--in-process-decode``:
  in the bench's own process, as the runs up to 2026-12-06 19:20 UTC did);
- the baseline: the same analyzers built in this one process with the same parameters and
  weights, fed the same Clip the adapter would build from the orchestrator's own decode,
  called one after another (one warm-up pass, then timed passes);
- budgets: random weights never stop, so generation is forced. video_llava makes exactly
  ``max_new_tokens`` (its config's, 384), speech_transcription exactly the token count of
  the clip's known transcript under Whisper's tokenizer (``synthetic_tokens``); the table
  shows each budget and what the model reported making.

Phases that would run past ``--deadline-s`` are skipped and the table says so. Results go to
``--out-dir`` (default ``$OUT``): gpu-<precision>.md (the table), gpu-<precision>.json
(every timing, written after each phase), triton-<precision>.log.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "gpu"))
sys.path.insert(0, str(ROOT / "bench"))

import spans as spanlib  # noqa: E402
import whisper_tokens  # noqa: E402
from pipeline_bench import cpu_name  # noqa: E402
from proc_cpu import diff, tree_cpu  # noqa: E402

LLAVA, SPEECH = "video_llava", "speech_transcription"
WEIGHTS_ENV = "TIKTOK_ANALYZER_WEIGHTS"
_PARAM = re.compile(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"')


def bench_spec(small: bool = False):
    """A 30 s 1080x1920 clip with something for every analyzer: cuts of each kind, camera
    motion, a face, overlay text, speech over a beat, sound effects. ``small``: its first
    15 s at 360x640 with one sentence of speech, for a check on a CPU."""
    from tiktok_analyzer.groundtruth import (
        CATALOG,
        AudioSpec,
        ClipSpec,
        Overlay,
        Photo,
        SoundEvent,
        SpeechSpec,
    )
    from tiktok_analyzer.groundtruth.clips import ASTRONAUT_HEAD, scale_spec
    from tiktok_analyzer.groundtruth.speech import SPEECH_TEXTS

    base = CATALOG["sample_1080"]
    text = SPEECH_TEXTS["morning"] + " " + SPEECH_TEXTS["kitchen"]
    spec = ClipSpec(
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
    if not small:
        return spec
    audio = dataclasses.replace(
        spec.audio,
        speech=SpeechSpec(SPEECH_TEXTS["morning"], wpm=160.0, start_s=3.0),
        events=[SoundEvent("whoosh", 2.4)],
    )
    spec = dataclasses.replace(
        spec, shots=list(base.shots), overlays=spec.overlays[:1], photos=[], audio=audio
    )
    return scale_spec(spec, 360, 640)


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
    # bench/gpu/run.sh --mps starts NVIDIA's MPS daemon and exports its pipe folder: every
    # CUDA process started after (the server's stubs) then shares one GPU context.
    mps = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    # The adapter gives the gpu_critical analyzers MPS's normal priority and every other GPU
    # model below normal, unless the server was started with one value for all (the control
    # run).
    given = os.environ.get("CUDA_MPS_CLIENT_PRIORITY")
    priority = (
        f"every model at MPS client priority {given}"
        if given is not None
        else f"{', '.join(critical_analyzers()) or 'no model'} at MPS's normal client "
        "priority, the other GPU models below"
    )
    return (
        f"{out}; {torch_v}; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPU cores ({cpu_name()}); "
    ) + (f"CUDA MPS on (pipes in {mps}), {priority}" if mps else "CUDA MPS off")


def critical_analyzers() -> list[str]:
    """The analyzers marked ``gpu_critical``: the adapter keeps them at MPS's normal client
    priority."""
    from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class

    return [name for name in ANALYZER_NAMES if load_class(name).gpu_critical]


def host_cpu() -> tuple[int, int] | None:
    """The host's busy and total CPU ticks so far, from the first line of /proc/stat (every
    process, the server's stubs included); None where there is no /proc."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def cpu_load(before: tuple[int, int] | None, after: tuple[int, int] | None, n: int) -> dict:
    """Between two :func:`host_cpu` readings: busy cores on average, and CPU seconds a clip."""
    if before is None or after is None or after[1] <= before[1]:
        return {}
    busy, total = after[0] - before[0], after[1] - before[1]
    cores = os.cpu_count() or 1
    return {
        "cpu_busy_cores": round(cores * busy / total, 2),
        "cpu_s_per_clip": round(busy / os.sysconf("SC_CLK_TCK") / max(n, 1), 2),
    }


class GpuSampler(threading.Thread):
    """Samples nvidia-smi's per-process GPU memory (each stub's pid mapped to its model) and
    the GPU's utilization (the share of time a kernel was running)."""

    def __init__(self, repo: Path, period_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.repo, self.period_s = str(repo), period_s
        self.peak_by_model: dict[str, int] = {}
        self.peak_total = 0
        self.utilization: list[tuple[float, int]] = []  # (perf_counter, percent)
        self.stop_event = threading.Event()

    def mean_utilization(self, t0: float, t1: float) -> float | None:
        """nvidia-smi's utilization averaged over the samples taken between t0 and t1."""
        values = [u for t, u in self.utilization if t0 <= t <= t1]
        return round(statistics.mean(values), 1) if values else None

    def _model_of(self, pid: str) -> str | None:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        for a in args:
            m = re.search(re.escape(self.repo) + r"/([^/]+)/", a.decode(errors="replace"))
            if m:
                return m.group(1)
        return None

    def _smi(self, *query: str) -> str:
        return subprocess.run(
            ["nvidia-smi", *query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        while not self.stop_event.is_set():
            try:
                first = self._smi("--query-gpu=memory.used,utilization.gpu").splitlines()[0]
                total, util = first.split(",")[:2]  # the first card (the bench uses one)
                self.peak_total = max(self.peak_total, int(total))
                self.utilization.append((time.perf_counter(), int(util)))
                for line in self._smi("--query-compute-apps=pid,used_memory").splitlines():
                    pid, mem = (p.strip() for p in line.split(","))
                    model = self._model_of(pid)
                    if model:
                        self.peak_by_model[model] = max(self.peak_by_model.get(model, 0), int(mem))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass
            self.stop_event.wait(self.period_s)


def compute_us(metrics_url: str) -> dict[str, float]:
    """Per model: Triton's compute microseconds so far, from its Prometheus metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("nv_inference_compute_infer_duration_us{"):
            model = re.search(r'model="([^"]+)"', line).group(1)
            out[model] = out.get(model, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# -- the model repository, budgets set -------------------------------------------------


def set_param(text: str, key: str, value: object) -> str:
    """``text`` (a config.pbtxt) with parameter ``key`` set; KeyError when it has none."""
    pattern = re.compile(
        r'(parameters\s*\{\s*key:\s*"' + re.escape(key) + r'"\s*value\s*\{\s*string_value:\s*")'
        r'[^"]*(")'
    )
    new, n = pattern.subn(lambda m: f"{m.group(1)}{value}{m.group(2)}", text)
    if n == 0:
        raise KeyError(key)
    return new


def params_of(text: str) -> dict[str, str]:
    return dict(_PARAM.findall(text))


def default_repo() -> Path:
    from tiktok_analyzer.serving.launcher import default_model_repository

    return default_model_repository()


def prepare_repo(
    precision: str,
    speech_tokens: int | None,
    llava_batch: int | None = None,
    llava_params: dict[str, str] | None = None,
) -> tuple[Path, dict[str, int]]:
    """A copy of the model repository with video_llava's precision set and both generators'
    budgets forced; returns it and {analyzer: tokens}. Fails loudly where a config lacks a
    parameter the budget needs."""
    repo = Path(tempfile.mkdtemp(prefix="gpu-bench-repo-")) / "model_repository"
    shutil.copytree(default_repo(), repo, ignore=shutil.ignore_patterns("__pycache__"))
    budgets: dict[str, int] = {}
    for name in (LLAVA, SPEECH):
        for cfg in sorted((repo / name).rglob("*.pbtxt")):
            text = cfg.read_text()
            try:
                if name == LLAVA:
                    text = set_param(text, "precision", precision)
                    if llava_batch:
                        text = set_param(text, "batch_size", llava_batch)
                    for key, value in (llava_params or {}).items():
                        text = set_param(text, key, value)
                    tokens = int(params_of(text)["max_new_tokens"])
                    # Older llava.py forced its own shorter synthetic budget: make it the same.
                    if "synthetic_new_tokens" in params_of(text):
                        text = set_param(text, "synthetic_new_tokens", tokens)
                elif speech_tokens is not None:
                    text = set_param(text, "synthetic_tokens", speech_tokens)
                    tokens = speech_tokens
                else:
                    continue
            except KeyError as exc:
                raise SystemExit(
                    f"{cfg} has no {exc.args[0]} parameter: the model cannot take the bench's "
                    "budget (see bench/gpu/README.md)"
                ) from None
            if budgets.setdefault(name, tokens) != tokens:
                raise SystemExit(f"{name}: its configs disagree on the budget")
            cfg.write_text(text)
    return repo, budgets


def used_config(repo: Path, name: str, gpu: bool) -> tuple[Path, str]:
    """The config the server loads for ``name`` (the launcher's --model-config-name=gpu)."""
    path = repo / name / "configs" / "gpu.pbtxt"
    if not (gpu and path.exists()):
        path = repo / name / "config.pbtxt"
    return path, path.read_text()


def loaded_config(http_url: str, name: str) -> dict:
    """The config Triton actually loaded for ``name`` (instance groups, batching)."""
    try:
        with urllib.request.urlopen(f"{http_url}/v2/models/{name}/config", timeout=10) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return {}


def describe_config(cfg: dict) -> tuple[str, str]:
    """("GPU x1", "8 (preferred 4, 8)") from a loaded config."""
    groups = cfg.get("instance_group") or [{}]
    inst = ", ".join(
        f"{str(g.get('kind', '?')).removeprefix('KIND_')} x{g.get('count', '?')}" for g in groups
    )
    pref = (cfg.get("dynamic_batching") or {}).get("preferred_batch_size") or []
    batch = str(cfg.get("max_batch_size", "?"))
    batch += f" (preferred {', '.join(map(str, pref))})" if pref else " (no preferred)"
    return inst, batch


# -- the Triton pipeline ---------------------------------------------------------------


@dataclasses.dataclass
class Clock:
    """Seconds since the bench started, against ``--deadline-s``."""

    deadline_s: float
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def allows(self, estimate_s: float) -> bool:
        return self.elapsed() + estimate_s <= self.deadline_s


async def run_level(clip: str, options_for, n: int, concurrency: int) -> dict:
    """``n`` clips with ``concurrency`` of them in flight against one server: each clip's
    report and spans, and the level's wall time."""
    from tiktok_analyzer.orchestrator.endpoints import EndpointPool
    from tiktok_analyzer.orchestrator.pipeline import analyze_clip_async

    pool = None
    gate = asyncio.Semaphore(concurrency)
    clips: list[dict] = []

    async def one() -> None:
        async with gate:
            rec = spanlib.SpanRecorder()
            report = await analyze_clip_async(clip, options_for(rec, pool))
            clips.append({"report": report, "spans": rec.spans()})
            print(
                f"  concurrency {concurrency}: clip {len(clips)}/{n} "
                f"{report.processing.wall_s:.2f} s",
                flush=True,
            )

    options = options_for(None, None)
    pool = EndpointPool(options.triton_url)
    try:
        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t
    finally:
        await pool.close()
    return {"concurrency": concurrency, "clips": clips, "wall_s": wall}


def level_summary(level: dict) -> dict:
    walls = [c["report"].processing.wall_s for c in level["clips"]]
    return {
        "concurrency": level["concurrency"],
        "clips": len(walls),
        "wall_s": round(level["wall_s"], 3),
        "clips_per_min": round(60.0 * len(walls) / level["wall_s"], 2) if walls else 0.0,
        "clip_wall_median_s": round(statistics.median(walls), 3) if walls else None,
        "not_ok": not_ok(level["clips"]),
    }


def level_row(lv: dict) -> str:
    """A concurrency level's row of the table; its clips a minute only where every
    analyzer ended ok in every clip."""
    rate = (
        f"**{lv['clips_per_min']:.1f}**"
        if not lv.get("not_ok")
        else f"not valid ({', '.join(lv['not_ok'])} not ok)"
    )
    decoder = lv.get("video_decoder")
    return (
        f"| {lv['concurrency']}{f' ({decoder})' if decoder else ''} | {lv['clips']} "
        f"| {lv['wall_s']:.2f} | {rate} | "
        f"{_f(lv['clip_wall_median_s'], 2)} | {_f(lv.get('cpu_busy_cores'), 1)} | "
        f"{_f(lv.get('cpu_s_per_clip'), 1)} | {_pct(lv.get('gpu_utilization_pct'))} |"
    )


def not_ok(clips: list[dict]) -> dict[str, str]:
    """Per analyzer that did not end ok in some of a level's clips: in how many, and the
    first error. A level with any is no throughput figure: those clips skipped work."""
    bad: dict[str, list] = {}
    for clip in clips:
        for name, entry in clip["report"].analyzers.items():
            if entry.status != "ok":
                bad.setdefault(name, []).append(entry)
    return {
        name: f"{len(entries)} of {len(clips)} clips {entries[0].status}"
        + (f" ({str(entries[0].error)[:120]})" if entries[0].error else "")
        for name, entries in sorted(bad.items())
    }


def llava_batches(clips: list[dict]) -> dict[str, dict[str, float]]:
    """How video_llava batched a level's clips: per batch size, the clips that ran in such
    batches and the median generation time of those batches (its result's timings)."""
    by_size: dict[int, list[float]] = {}
    for clip in clips:
        entry = clip["report"].analyzers.get("video_llava")
        timings = (getattr(entry, "result", None) or {}).get("timings") or {}
        if "batch_clips" in timings and "generate_s" in timings:
            by_size.setdefault(int(timings["batch_clips"]), []).append(float(timings["generate_s"]))
    return {
        str(size): {"clips": len(times), "generate_s": round(statistics.median(times), 3)}
        for size, times in sorted(by_size.items())
    }


def by_process(used: dict[str, float], clips: int, top: int = 8) -> dict[str, float]:
    """The ``top`` processes by CPU seconds a clip (tritonserver, ``stub <model>``, the
    bench with its decode children), largest first; the rest summed as ``others``."""
    per_clip = sorted(((k, v / max(clips, 1)) for k, v in used.items()), key=lambda kv: -kv[1])
    out = {k: round(v, 2) for k, v in per_clip[:top] if v >= 0.005}
    rest = sum(v for _, v in per_clip[top:])
    if rest >= 0.005:
        out["others"] = round(rest, 2)
    return out


def baseline_estimate(res: dict, per_clip_s: float) -> float:
    """Loading every model in one process takes about as long as the server's start (which
    loads them side by side) and more; then a warm-up pass and a timed one."""
    return 1.5 * res.get("start_s", 60.0) + 3.0 * per_clip_s


def serve_phase(args, repo: Path, names: list[str], decls: dict, clock: Clock, out) -> dict:
    """Start the server, warm it, then run each concurrency level the deadline allows."""
    from tiktok_analyzer.orchestrator import nvdec, worker
    from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
    from tiktok_analyzer.serving.launcher import EmbeddedTriton

    nvdec.VIDEO_DECODER = args.video_decoders[0]
    sampler = GpuSampler(repo)
    sampler.start()
    env = {WEIGHTS_ENV: args.weights}
    res: dict = {"levels": [], "skipped": []}
    t = time.perf_counter()
    with EmbeddedTriton(
        models=names,
        model_repository=repo,
        gpu=args.gpu,
        env=env,
        ready_timeout_s=max(60.0, args.deadline_s - clock.elapsed() - 60),
    ) as server:
        res["start_s"] = time.perf_counter() - t
        res["gpu"] = server.gpu
        res["states"] = server.model_states()
        res["configs"] = {n: loaded_config(server.http_url, n) for n in names}
        print(f"server ready in {res['start_s']:.1f} s", flush=True)

        def options_for(rec, pool):
            return AnalysisOptions(
                triton_url=server.grpc_url,
                analyzers=names,
                declarations=decls,
                timeout_s=600,
                progress=rec,
                pool=pool,
                isolate_decode=args.isolate_decode,
            )

        t = time.perf_counter()
        warm = analyze_clip(args.clip, options_for(None, None))
        res["warm_s"] = time.perf_counter() - t
        # The first clip after start-up is slow (42 s in run H, 5.4 s after): which models.
        res["warm_slowest_s"] = dict(
            sorted(
                ((n, e.elapsed_s or 0.0) for n, e in warm.analyzers.items()), key=lambda kv: -kv[1]
            )[:4]
        )
        slowest = _seconds(res["warm_slowest_s"], 1)
        print(f"warm-up analysis: {res['warm_s']:.1f} s (slowest: {slowest})", flush=True)
        for decoder, c in [(d, c) for d in args.video_decoders for c in args.concurrency]:
            if nvdec.VIDEO_DECODER != decoder:
                # Another decoder from here on: a new forkserver, which imports torch only
                # for nvdec (worker.memory_cap), and a first clip that pays the start, untimed.
                nvdec.VIDEO_DECODER = decoder
                worker.shutdown()
                t = time.perf_counter()
                analyze_clip(args.clip, options_for(None, None))
                print(f"{decoder}: warm-up {time.perf_counter() - t:.1f} s", flush=True)
            n = args.runs if c == 1 else c * args.rounds
            per_clip = res["levels"][0]["clip_wall_median_s"] if res["levels"] else res["warm_s"]
            estimate = per_clip * n / min(c, 2)
            # Time is kept for the baseline only while it can still fit: reserving it when
            # it cannot skipped every level and the baseline too (2026-12-06, run E).
            reserve = baseline_estimate(res, per_clip) if args.baseline else 0.0
            if clock.allows(reserve):
                estimate += reserve
            if res["levels"] and not clock.allows(estimate):
                res["skipped"].append(f"concurrency {c}: ~{estimate:.0f} s would pass the deadline")
                print(f"skipped concurrency {c} (deadline)", flush=True)
                continue
            before, cpu_before = compute_us(server.metrics_url), host_cpu()
            procs_before = tree_cpu(os.getpid())
            t_level = time.perf_counter()
            level = asyncio.run(run_level(args.clip, options_for, n, c))
            after, cpu_after = compute_us(server.metrics_url), host_cpu()
            procs = diff(tree_cpu(os.getpid()), procs_before)
            compute = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / 1e6 / max(n, 1) for k in names}
            if c == 1:
                res["compute_s"] = compute
                res["runs"] = level["clips"]
            summary = level_summary(level)
            summary["video_decoder"] = decoder
            # Which side bounds a loaded level: the host's cores or the GPU.
            summary.update(cpu_load(cpu_before, cpu_after, n))
            summary["cpu_s_by_process"] = by_process(procs, n)
            summary["gpu_utilization_pct"] = sampler.mean_utilization(t_level, time.perf_counter())
            # Where a loaded level's time goes: the slowest clip's chain of stages, and the
            # analyzers with the most Triton compute a clip (queueing excluded).
            slowest = max(level["clips"], key=lambda c_: c_["report"].processing.wall_s)
            deps = {k: decls[k].depends_on for k in names}
            summary["slowest_path"] = spanlib.describe(
                spanlib.critical_path(slowest["spans"], deps),
                slowest["report"].processing.wall_s,
            )
            summary["top_compute_s"] = dict(sorted(compute.items(), key=lambda kv: -kv[1])[:4])
            # Whether the one video_llava instance batched the clips it got at once.
            summary["llava_batches"] = llava_batches(level["clips"])
            print(f"  concurrency {c}: slowest clip {summary['slowest_path']}", flush=True)
            print(
                f"  concurrency {c}: CPU s a clip by process: "
                f"{_seconds(summary['cpu_s_by_process'], 2)}",
                flush=True,
            )
            res["levels"].append(summary)
            out.save("triton", res)
        if server.log_path is not None and out.dir is not None:
            shutil.copy(server.log_path, out.dir / f"triton-{args.llava_precision}.log")
        res["log_tail"] = server.log_tail(60)
    sampler.stop_event.set()
    sampler.join(timeout=5)
    res["peak_mib"], res["peak_total_mib"] = sampler.peak_by_model, sampler.peak_total
    return res


# -- the baseline: one process, no Triton ----------------------------------------------


def baseline_setup(repo: Path, names: list[str], gpu: bool) -> dict[str, tuple[dict, bool]]:
    """Per analyzer: the parameters the adapter would build it from (the same config the
    server loaded, declarations left out) and whether its instance is on the GPU."""
    out = {}
    for name in names:
        _, text = used_config(repo, name, gpu)
        from tiktok_analyzer import wire

        params = wire.tunables(params_of(text))  # what the adapter builds the analyzer from
        if name == LLAVA and "batch_size" in params:
            # One clip at a time here: compiling the batch sizes 2 and 4 as well would only
            # spend a minute of the call on graphs this phase never replays.
            params["batch_size"] = "1"
        out[name] = (params, "KIND_GPU" in text)
    return out


def _cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _clip_for(name: str, decl, info, decoded, results: dict):
    """The Clip the adapter builds from the orchestrator's request for ``name``."""
    import numpy as np

    from tiktok_analyzer.analyzers.base import Clip, ClipMeta

    meta = ClipMeta(
        duration_s=info.duration_s,
        fps=info.fps,
        width=info.width,
        height=info.height,
        has_video=info.has_video,
        has_audio=info.has_audio,
    )
    fs = decoded.frame_sets.get(decl.frames) if decl.frames is not None else None
    # Copies, as each stub gets its own: one analyzer cannot change another's frames.
    return Clip(
        meta=meta,
        frames=None if fs is None else fs.frames.copy(),
        timestamps_s=None if fs is None else fs.timestamps_s.copy(),
        frame_indices=None if fs is None else fs.frame_indices.copy(),
        audio=np.array(decoded.audio) if decl.audio and decoded.audio is not None else None,
        upstream={d: results[d] for d in decl.depends_on if d in results},
    )


def baseline_pass(clip: str, names, decls, analyzers, setup) -> dict:
    """One clip: probe and decode as the orchestrator does, then each analyzer in turn.
    The wall is probe + decode + the analyzers' own times (the copies are not counted)."""
    from tiktok_analyzer.orchestrator.decode import decode
    from tiktok_analyzer.orchestrator.probe import Limits, probe

    torch = _cuda()
    t = time.perf_counter()
    info = probe(clip, Limits())
    specs = [decls[n].frames for n in names if decls[n].frames is not None]
    decoded = decode(clip, info, specs, any(decls[n].audio for n in names), Limits())
    decode_s = time.perf_counter() - t
    results: dict[str, dict] = {}
    rows: dict[str, dict] = {}
    for name in names:
        c = _clip_for(name, decls[name], info, decoded, results)
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()
            resident = torch.cuda.memory_allocated()
        t = time.perf_counter()
        (outcome,) = analyzers[name].analyze_batch([c])
        if torch is not None:
            torch.cuda.synchronize()
        took = time.perf_counter() - t
        row = {"time_s": took, "status": "ok"}
        if isinstance(outcome, Exception):
            row.update(status=type(outcome).__name__, error=str(outcome)[:200])
        else:
            results[name] = outcome.model_dump(mode="json")
            row["made"] = made_tokens(name, results[name])
        if torch is not None:
            # Every model stays loaded in this one process: count what this one adds.
            row["peak_mib"] = round((torch.cuda.max_memory_allocated() - resident) / 2**20)
        rows[name] = row
    wall = decode_s + sum(r["time_s"] for r in rows.values())
    return {"decode_s": decode_s, "analyzers": rows, "wall_s": wall}


def baseline_phase(args, repo: Path, names, decls, gpu: bool, out) -> dict:
    """Build every analyzer here, warm them with one pass, then time ``--baseline-runs``."""
    from tiktok_analyzer.analyzers import load_class

    os.environ[WEIGHTS_ENV] = args.weights
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="gpu-bench-numba-"))
    setup = baseline_setup(repo, names, gpu)
    analyzers, load_s = {}, {}
    t0 = time.perf_counter()
    for name in names:
        params, on_gpu = setup[name]
        # The device the adapter hands a KIND_GPU instance (its first GPU here).
        t = time.perf_counter()
        device = "cuda:0" if on_gpu else "cpu"
        analyzers[name] = load_class(name).from_strings(params, device=device)
        load_s[name] = time.perf_counter() - t
        print(f"  baseline: {name} built in {load_s[name]:.1f} s", flush=True)
    res: dict = {"load_s": load_s, "build_s": time.perf_counter() - t0}
    torch = _cuda()
    res["resident_mib"] = round(torch.cuda.memory_allocated() / 2**20) if torch else None
    t = time.perf_counter()
    baseline_pass(args.clip, names, decls, analyzers, setup)
    res["warm_s"] = time.perf_counter() - t
    print(f"baseline warm-up pass: {res['warm_s']:.1f} s", flush=True)
    res["passes"] = []
    for i in range(args.baseline_runs):
        res["passes"].append(baseline_pass(args.clip, names, decls, analyzers, setup))
        print(f"baseline pass {i + 1}: {res['passes'][-1]['wall_s']:.2f} s", flush=True)
        out.save("baseline", res)
    res["kinds"] = {n: ("GPU" if setup[n][1] and gpu else "CPU") for n in names}
    return res


def made_tokens(name: str, result: dict | None) -> int | None:
    """Tokens the generator reports having made, where its result says."""
    if not result:
        return None
    for key in ("new_tokens", "decoded_tokens", "text_tokens", "tokens"):
        if isinstance(result.get(key), int):
            return result[key]
    counts = [s.get("tokens") for s in result.get("segments") or [] if isinstance(s, dict)]
    if counts and all(isinstance(c, int) for c in counts):
        return sum(counts)
    return None


# -- results ---------------------------------------------------------------------------


class Output:
    """Where results go: ``--out-dir`` (default ``$OUT``), raw timings after each phase."""

    def __init__(self, folder: str | None, precision: str) -> None:
        self.dir = Path(folder) if folder else None
        self.precision = precision
        self.raw: dict = {}
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, key: str, value) -> None:
        self.raw[key] = value
        if self.dir is not None:
            path = self.dir / f"gpu-{self.precision}.json"
            path.write_text(json.dumps(self.raw, indent=1, default=_jsonable) + "\n")

    def write(self, name: str, text: str) -> None:
        """(Re)write ``name``: a table written before the baseline is replaced after it."""
        if self.dir is not None:
            (self.dir / name).write_text(text + "\n")


def _jsonable(value):
    """Reports kept small (a 30 s clip's results run to megabytes): timings and statuses."""
    if hasattr(value, "analyzers") and hasattr(value, "processing"):
        return {
            "processing": value.processing.model_dump(mode="json"),
            "analyzers": {
                n: {
                    "status": e.status,
                    "error": e.error,
                    "elapsed_s": e.elapsed_s,
                    "weights": e.model.weights,
                    "made_tokens": made_tokens(n, e.result),
                    # video_llava's says which decoder ran and how long generation took
                    "timings": (e.result or {}).get("timings"),
                }
                for n, e in value.analyzers.items()
            },
        }
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def _decoders(runs: list[dict]) -> str:
    """What decoded the runs' pictures (the reports' processing.video_decoder)."""
    names = sorted({getattr(r["report"].processing, "video_decoder", "cpu") for r in runs})
    return "video: " + "/".join(names) if names else ""


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _seconds(by_name: dict[str, float], digits: int) -> str:
    """``{"video_llava": 35.04}`` -> ``"video_llava 35.0 s"``, comma-separated."""
    return ", ".join(f"{k} {v:.{digits}f} s" for k, v in by_name.items())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


def analyzer_rows(names, serve: dict, base: dict | None, budgets: dict) -> list[str]:
    runs = serve.get("runs", [])
    passes = (base or {}).get("passes", [])
    rows = []
    for name in names:
        entries = [r["report"].analyzers[name] for r in runs]
        bad = [e for e in entries if e.status != "ok"]
        status = "ok" if not bad else f"{bad[0].status}: {bad[0].error} ({len(bad)}/{len(entries)})"
        state = serve["states"].get(name, ("?", ""))[0]
        if state != "READY":
            status = f"model {state}"
        inst, batch = describe_config(serve["configs"].get(name, {}))
        budget = "-"
        if name in budgets:
            made = _median(made_tokens(name, e.result) for e in entries)
            budget = (
                f"{budgets[name]} tokens (made: {'not reported' if made is None else _f(made, 0)})"
            )
        span = _median(
            c["spans"][name][1] - c["spans"][name][0] for c in runs if name in c["spans"]
        )
        b_rows = [p["analyzers"][name] for p in passes]
        b_time = _median(r["time_s"] for r in b_rows)
        b_status = next(
            (r["status"] for r in b_rows if r["status"] != "ok"), "ok" if b_rows else ""
        )
        rows.append(
            f"| {name} | {status} | {entries[0].model.weights if entries else '-'} | {inst} | "
            f"{batch} | {budget} | {_f(_median(e.elapsed_s for e in entries))} | "
            f"{_f(serve.get('compute_s', {}).get(name))} | {_f(span)} | "
            f"{_f(b_time)}{'' if b_status in ('ok', '') else ' ' + b_status} | "
            f"{serve['peak_mib'].get(name, '-')} | "
            f"{_f(_median(r.get('peak_mib') for r in b_rows), 0)} |"
        )
    return rows


def _speech_budget(budgets: dict, meta: dict) -> str:
    if SPEECH not in budgets:
        return f"NOT forced ({meta['speech_budget']})"
    return f"{budgets[SPEECH]} text tokens for the whole clip ({meta['speech_budget']})"


def table(args, names, decls, serve: dict, base: dict | None, budgets, meta: dict) -> str:
    runs = serve.get("runs", [])
    walls = [r["report"].processing.wall_s for r in runs]
    median = sorted(runs, key=lambda r: r["report"].processing.wall_s)[len(runs) // 2]
    deps = {n: decls[n].depends_on for n in names}
    chain = spanlib.critical_path(median["spans"], deps)
    b_walls = [p["wall_s"] for p in (base or {}).get("passes", [])]
    wall, b_wall = _median(walls), _median(b_walls)
    lines = [
        f"### {meta['date']}: video_llava {args.llava_precision}, weights {args.weights}",
        "",
        f"Machine: {meta['machine']}.",
        f"Clip: {Path(args.clip).name}, {meta['clip']}. Server start-up (all models loaded): "
        f"{serve['start_s']:.1f} s; warm-up analysis: {serve['warm_s']:.1f} s"
        + (
            f" (slowest: {_seconds(serve['warm_slowest_s'], 1)})."
            if serve.get("warm_slowest_s")
            else "."
        ),
        f"Budgets: video_llava {budgets.get(LLAVA, '-')} new tokens (its max_new_tokens); "
        f"speech_transcription {_speech_budget(budgets, meta)}.",
        f"Command: `{meta['command']}`",
        "",
        "| analyzer | status | weights | instance | batch: max (preferred) | budget "
        "| in model (s) | Triton compute (s) | span in pipeline (s) | baseline, no Triton (s) "
        "| peak GPU MiB, stub | GPU MiB above resident, baseline |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
        *analyzer_rows(names, serve, base, budgets),
        f"| probe+decode | | {_decoders(runs)} | | | | "
        f"{_f(_median(r['report'].processing.decode_s for r in runs))} "
        f"| | | {_f(_median(p['decode_s'] for p in (base or {}).get('passes', [])))} | | |",
        f"| **wall** | | | | | | **{_f(wall, 2)}** (median of {len(walls)}: "
        f"{', '.join(f'{w:.2f}' for w in walls)}) | | | **{_f(b_wall, 2)}** | "
        f"all stubs: {serve['peak_total_mib'] or '-'} | |",
        "",
        f"Triton pipeline / baseline wall: **{_f(wall / b_wall if wall and b_wall else None, 2)}** "
        f"(realtime factor {_f(wall / meta['duration_s'] if wall else None, 3)}).",
        f"Critical path (median run): {spanlib.describe(chain, median['report'].processing.wall_s)}.",
        "",
        "| concurrency | clips | wall (s) | clips a minute | median clip wall (s) "
        f"| host CPU busy (of {os.cpu_count()} cores) | CPU s a clip | GPU utilization |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(level_row(lv) for lv in serve["levels"]),
    ]
    for lv in serve["levels"]:
        if lv["concurrency"] > 1 and lv.get("slowest_path"):
            top = _seconds(lv.get("top_compute_s", {}), 2)
            batches = ", ".join(
                f"{b['clips']} clips in batches of {size} (generation {b['generate_s']:.2f} s)"
                for size, b in lv.get("llava_batches", {}).items()
            )
            lines += [
                "",
                f"Concurrency {lv['concurrency']}: slowest clip {lv['slowest_path']}; "
                f"most Triton compute a clip: {top}."
                + (f" video_llava: {batches}." if batches else ""),
            ]
    for lv in serve["levels"]:
        for name, what in lv.get("not_ok", {}).items():
            lines += ["", f"Concurrency {lv['concurrency']}: {name} {what}."]
    for lv in serve["levels"]:
        if lv.get("cpu_s_by_process"):
            lines += [
                "",
                f"CPU s a clip by process at concurrency {lv['concurrency']}: "
                f"{_seconds(lv['cpu_s_by_process'], 2)}.",
            ]
    if serve["skipped"] or base is None:
        lines += [
            "",
            "Skipped: "
            + "; ".join(serve["skipped"] + ([meta["baseline_skip"]] if base is None else []))
            + ".",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", metavar="PATH", help="render the bench clip and exit")
    parser.add_argument("--small", action="store_true", help="the 15 s 360x640 clip (CPU check)")
    parser.add_argument("--clip", help="the clip to analyze (made with --render, same --small)")
    parser.add_argument(
        "--llava-precision", default="bf16", choices=["bf16", "int4", "fp8", "int8", "nf4", "auto"]
    )
    parser.add_argument(
        "--llava-batch-size",
        type=int,
        help="video_llava's batch_size (the sizes it compiles at start-up); 1 is enough for "
        "--concurrency 1 and starts the server a minute sooner (default: as configured)",
    )
    parser.add_argument(
        "--llava-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one more of video_llava's parameters in its configs (repeatable; e.g. "
        "step=transformers for the model's own decoding step)",
    )
    parser.add_argument("--weights", default="synthetic-full")
    parser.add_argument("--runs", type=int, default=3, help="clips at concurrency 1, timed")
    parser.add_argument("--concurrency", default="1,4,8", help="levels of clips in flight")
    parser.add_argument(
        "--video-decoders",
        default=os.environ.get("TIKTOK_ANALYZER_VIDEO_DECODER", "cpu"),
        help="what decodes the picture, each level run under each on the same server: "
        "cpu, nvdec or cpu,nvdec (default: $TIKTOK_ANALYZER_VIDEO_DECODER, else cpu)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="clips per level: level x this")
    parser.add_argument("--baseline-runs", type=int, default=1, help="timed passes, no Triton")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="no server: only the baseline (a second call on the same warm machine, when one "
        "10-minute call cannot hold both; gpu-<precision>-baseline.md)",
    )
    parser.add_argument(
        "--in-process-decode",
        dest="isolate_decode",
        action="store_false",
        help="decode in this process, not in a child process a clip as the service does "
        "(clips in flight then share this process's GIL: 4 clips took 10.7 s to decode)",
    )
    parser.add_argument("--analyzers", help="comma-separated (default: all 21)")
    parser.add_argument("--gpu", type=lambda s: s == "1", default=None, help="1/0 (default: auto)")
    parser.add_argument("--deadline-s", type=float, default=520.0, help="skip what would pass it")
    parser.add_argument("--whisper-ranks", help="multilingual.tiktoken, without openai-whisper")
    parser.add_argument(
        "--no-speech-budget",
        action="store_true",
        help="CPU check only: leave speech_transcription's budget unforced (the table says so)",
    )
    parser.add_argument("--out", help="also append the markdown table to this file")
    parser.add_argument("--out-dir", default=os.environ.get("OUT"), help="default: $OUT")
    args = parser.parse_args(argv)
    levels = sorted({int(c) for c in args.concurrency.split(",")} | {1})
    args.concurrency = levels
    args.video_decoders = [d.strip() for d in args.video_decoders.split(",") if d.strip()]
    if not args.video_decoders or set(args.video_decoders) - {"cpu", "nvdec"}:
        parser.error("--video-decoders: cpu, nvdec or both, comma-separated")
    if not args.render and not args.clip:
        parser.error("--clip is required (or --render)")
    return args


def clip_facts(args, spec) -> tuple[str, float]:
    """The clip's description; exits when it is not the spec's clip (the budget is the
    spec's transcript)."""
    from tiktok_analyzer.orchestrator.probe import BadInput, probe

    try:
        info = probe(args.clip)
    except (BadInput, OSError) as exc:
        raise SystemExit(f"{args.clip}: {exc}") from None
    expected = sum(s.duration_s for s in spec.shots)
    if abs(info.duration_s - expected) > 0.25 or (info.width, info.height) != (
        spec.width,
        spec.height,
    ):
        raise SystemExit(
            f"{args.clip} is {info.duration_s:.1f} s {info.width}x{info.height}, not the "
            f"{'--small ' if args.small else ''}bench clip ({expected:.1f} s "
            f"{spec.width}x{spec.height}): make it with --render{' --small' if args.small else ''}"
        )
    text = f"{info.duration_s:.1f} s, {info.width}x{info.height} @ {info.fps:g} fps"
    return text, info.duration_s


def finish(args, names, decls, serve: dict, base: dict | None, budgets, meta, out) -> None:
    """The final table: printed, under --out-dir, appended to --out; then what failed."""
    text = table(args, names, decls, serve, base, budgets, meta)
    if base is not None:
        text += (
            f"\nBaseline: {len(names)} analyzers built in one process in {base['build_s']:.1f} s, "
            f"warm-up pass {base['warm_s']:.1f} s; its wall is probe + decode + the analyzers' "
            "own times, one after another. Its memory column is torch's peak allocation during "
            "the analyzer's call above what was allocated before it; all its models together "
            f"hold {base['resident_mib'] if base['resident_mib'] is not None else '-'} MiB.\n"
        )
    print(text, flush=True)
    out.write(f"gpu-{args.llava_precision}.md", text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    failed = [
        n
        for n in names
        if any(r["report"].analyzers[n].status != "ok" for r in serve.get("runs", []))
    ]
    if failed:
        print(f"not ok: {', '.join(failed)}\nserver log tail:\n{serve['log_tail']}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    # run.sh's timeout sends SIGTERM: unwind, so the server and its stubs stop with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = bench_spec(args.small)
    if args.render:
        from tiktok_analyzer.groundtruth import render

        info = render(spec, args.render)
        print(f"wrote {args.render} ({info['duration_s']:.1f} s)")
        return 0
    from tiktok_analyzer.analyzers import ANALYZER_NAMES
    from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
    from tiktok_analyzer.serving.launcher import TritonStartError

    clock = Clock(args.deadline_s)
    clip_text, duration = clip_facts(args, spec)
    speech_tokens, source = None, "--no-speech-budget"
    if not args.no_speech_budget:
        ranks = Path(args.whisper_ranks) if args.whisper_ranks else None
        speech_tokens, how = whisper_tokens.transcript_tokens(spec.audio.speech.text, ranks)
        source = f"the clip's transcript, counted by {how}"
    llava_params = {}
    for item in args.llava_param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--llava-param wants NAME=VALUE, got {item!r}")
        llava_params[key.strip()] = value.strip()
    repo, budgets = prepare_repo(
        args.llava_precision, speech_tokens, args.llava_batch_size, llava_params
    )
    decls = read_declarations(repo)
    wanted = args.analyzers.split(",") if args.analyzers else list(ANALYZER_NAMES)
    try:
        names = with_dependencies(wanted, decls)
    except KeyError as exc:
        raise SystemExit(f"unknown analyzer {exc.args[0]!r}") from None
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": gpu_info(),
        "clip": clip_text,
        "duration_s": duration,
        "speech_budget": source,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "baseline_skip": "baseline: --no-baseline",
    }
    print(f"machine: {meta['machine']}\nclip: {args.clip} ({clip_text})", flush=True)
    print(f"budgets: {budgets} ({source}); analyzers: {', '.join(names)}", flush=True)
    out = Output(args.out_dir, args.llava_precision)
    out.save("meta", meta)
    if args.baseline_only:
        return baseline_only(args, repo, names, decls, budgets, meta, out, clock)
    try:
        serve = serve_phase(args, repo, names, decls, clock, out)
    except TritonStartError as exc:
        raise SystemExit(f"the server did not start: {exc}") from None
    base = None
    per_clip = serve["levels"][0]["clip_wall_median_s"] if serve["levels"] else serve["warm_s"]
    if args.baseline and clock.allows(baseline_estimate(serve, per_clip)):
        # The Triton table first, in case the call's time runs out during the baseline.
        meta["baseline_skip"] = "baseline: still running (the call ended first)"
        out.write(
            f"gpu-{args.llava_precision}.md", table(args, names, decls, serve, None, budgets, meta)
        )
        base = baseline_phase(args, repo, names, decls, bool(serve["gpu"]), out)
    elif args.baseline:
        meta["baseline_skip"] = f"baseline: would pass the deadline at {clock.elapsed():.0f} s"
    shutil.rmtree(repo.parent, ignore_errors=True)
    finish(args, names, decls, serve, base, budgets, meta, out)
    print(f"bench done in {clock.elapsed():.0f} s", flush=True)
    return 0


def baseline_only(args, repo: Path, names, decls, budgets, meta, out, clock) -> int:
    """The baseline alone, in its own table: per analyzer the time in one process, no
    Triton; the ratio is taken against a Triton table of the same machine."""
    out.raw.clear()
    out.precision = f"{args.llava_precision}-baseline"
    out.save("meta", meta)
    gpu = args.gpu if args.gpu is not None else _cuda() is not None
    base = baseline_phase(args, repo, names, decls, gpu, out)
    shutil.rmtree(repo.parent, ignore_errors=True)
    passes = base["passes"]
    lines = [
        f"### {meta['date']}: baseline (no Triton), video_llava {args.llava_precision}, "
        f"weights {args.weights}",
        "",
        f"Machine: {meta['machine']}.",
        f"Clip: {Path(args.clip).name}, {meta['clip']}. Built every analyzer in "
        f"{base['build_s']:.1f} s; warm-up pass {base['warm_s']:.1f} s.",
        f"Budgets: video_llava {budgets.get(LLAVA, '-')} new tokens; speech_transcription "
        f"{_speech_budget(budgets, meta)}.",
        f"Command: `{meta['command']}`",
        "",
        "| analyzer | kind | status | time (s), median of passes | GPU MiB above resident |",
        "|---|---|---|---:|---:|",
    ]
    for name in names:
        rows = [p["analyzers"][name] for p in passes]
        status = next((r["status"] for r in rows if r["status"] != "ok"), "ok")
        lines.append(
            f"| {name} | {base['kinds'][name]} | {status} | "
            f"{_f(_median(r['time_s'] for r in rows))} | "
            f"{_f(_median(r.get('peak_mib') for r in rows), 0)} |"
        )
    walls = [p["wall_s"] for p in passes]
    lines += [
        f"| probe+decode | | | {_f(_median(p['decode_s'] for p in passes))} | |",
        f"| **wall** (one after another) | | | **{_f(_median(walls), 2)}**"
        f" (passes: {', '.join(f'{w:.2f}' for w in walls)}) | |",
    ]
    out.write(f"gpu-{out.precision}.md", "\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"bench done in {clock.elapsed():.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
