"""Can this GPU host decode the bench clip on NVDEC, and how fast, against PyAV on the CPU?

The decode is the pipeline's largest CPU cost (10.7 CPU-s of 26.5 a clip at eight in flight
on the H100 host, bench/results/gpu_h100.md) and 1.4 s of one clip's critical path. This
probe answers the questions a move to the GPU's decoder would turn on, before any of the
pipeline changes:

- is the driver's video library there (``libnvcuvid.so.1``; containers get it only with
  the ``video`` driver capability)?
- does PyNvVideoCodec (NVIDIA's wheel, PyPI) decode the clip to RGB in GPU memory, every
  frame, and in what wall time and CPU time?
- what do the frame sets cost made on the GPU from those frames (the every-frame 64-pixel
  set, a 10 fps 480-pixel one, 32 frames at 336; area resizes with torch)?
- PyAV's own decode of the same clip, in the same process, for the comparison.

    # here: the wheel for the GPU host's Python (3.12) and the bench clip, in an ignored folder
    pip download --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/nvdec PyNvVideoCodec==2.2.4
    cp .gpu/bench30.mp4 .gpu/nvdec/
    # one device call, carrying .gpu/nvdec (29 MB), with the host's own python3 (torch):
    python3 -c "import zipfile,glob; zipfile.ZipFile(glob.glob('.gpu/nvdec/*.whl')[0]).extractall('/tmp/nvc')"
    PYTHONPATH=/tmp/nvc python3 bench/gpu/nvdec_probe.py --clip .gpu/nvdec/bench30.mp4 --runs 2 --parallel 4,8
    # one clip cut at keyframes over 2 and 4 decoders (NVDEC engines), checked frame by frame
    PYTHONPATH=/tmp/nvc python3 bench/gpu/nvdec_probe.py --clip .gpu/nvdec/bench30.mp4 --runs 2 --parallel "" --segments 2,4

Prints one JSON object; nothing here is part of the product.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import sys
import time


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, runs: int) -> list[dict]:
    out = []
    for _ in range(runs):
        t, c = time.perf_counter(), cpu_s()
        extra = fn()
        out.append(
            {"wall_s": round(time.perf_counter() - t, 3), "cpu_s": round(cpu_s() - c, 3), **extra}
        )
    return out


def nvdec_runs(clip: str, runs: int, batch: int, parallel: list[int], segments: list[int]) -> dict:
    import PyNvVideoCodec as nvc
    import torch
    import torch.nn.functional as F

    def to_sets(frames: torch.Tensor, first: int, sets: dict) -> None:
        # frames: (n, H, W, 3) uint8 on the GPU; made as the orchestrator's frame sets.
        x = frames.permute(0, 3, 1, 2).float()
        h, w = x.shape[2:]
        for name, side, every in (("64_all", 64, 1), ("480_10fps", 480, 3), ("336_32", 336, 28)):
            pick = [i for i in range(len(x)) if (first + i) % every == 0]
            if not pick:
                continue
            size = (round(side * h / w), side) if w < h else (side, round(side * w / h))
            small = F.interpolate(x[pick], size=size, mode="area").round().to(torch.uint8)
            sets[name] = sets.get(name, 0) + len(small)

    def once(make_sets: bool) -> dict:
        dec = nvc.SimpleDecoder(
            clip, gpu_id=0, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB
        )
        n, sets, shape = 0, {}, None
        total = len(dec) or 10**9  # asked past the end it warns once a frame
        while n < total:
            got = dec.get_batch_frames(min(batch, total - n))
            if not got:
                break
            frames = torch.stack([torch.from_dlpack(f) for f in got])
            shape = list(frames.shape[1:])
            if make_sets:
                to_sets(frames, n, sets)
            n += len(got)
        torch.cuda.synchronize()
        return {"frames": n, "frame_shape": shape, "sets": sets}

    def side_by_side(k: int) -> dict:
        # k clips decoded at once, one decoder each on its own thread (the H100 has 7
        # NVDEC engines): what eight clips in flight would meet.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(k) as pool:
            got = list(pool.map(lambda _: once(True)["frames"], range(k)))
        return {"clips": k, "frames": sum(got)}

    def checksums(frames: list) -> list[float]:
        return [float(torch.from_dlpack(f).float().mean()) for f in frames]

    def segmented(k: int) -> dict:
        # One clip cut at keyframes into k runs of frames, each decoded by its own decoder
        # on its own thread (its own NVDEC engine): what one clip alone could take. The
        # frames' checksums are compared with one decoder's, in order.
        from concurrent.futures import ThreadPoolExecutor

        scan = nvc.SimpleDecoder(clip, gpu_id=0, need_scanned_stream_metadata=True)
        keys = list(scan.get_scanned_stream_metadata().key_frame_indices)
        total = len(scan)
        del scan
        starts = sorted({min(keys, key=lambda x: abs(x - total * i / k)) for i in range(k)})
        bounds = list(zip(starts, starts[1:] + [total], strict=True))

        def part(b: tuple[int, int]) -> list[float]:
            dec = nvc.SimpleDecoder(
                clip, gpu_id=0, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB
            )
            if b[0]:
                dec.seek_to_index(b[0])
            sums, n = [], b[0]
            while n < b[1]:
                got = dec.get_batch_frames(min(batch, b[1] - n))
                if not got:
                    break
                sums += checksums(got)
                n += len(got)
            return sums

        with ThreadPoolExecutor(len(bounds)) as pool:
            parts = list(pool.map(part, bounds))
        torch.cuda.synchronize()
        return {"segments": bounds, "frames": sum(len(p) for p in parts), "sums": parts}

    def reference() -> list[float]:
        dec = nvc.SimpleDecoder(
            clip, gpu_id=0, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB
        )
        sums = []
        while len(sums) < len(dec):
            got = dec.get_batch_frames(min(batch, len(dec) - len(sums)))
            if not got:
                break
            sums += checksums(got)
        return sums

    out: dict = {}
    if segments:
        ref = reference()
        for k in segments:
            runs_k = timed(lambda k=k: segmented(k), 2)
            for r in runs_k:
                got = [x for p in r.pop("sums") for x in p]
                r["same_frames_as_one_decoder"] = len(got) == len(ref) and all(
                    abs(a - b) < 1e-3 for a, b in zip(got, ref, strict=True)
                )
            out[f"segments_{k}"] = runs_k
    out |= {
        "decode_only": timed(lambda: once(False), runs),
        "decode_and_frame_sets": timed(lambda: once(True), runs),
    }
    for k in parallel:
        out[f"side_by_side_{k}"] = timed(lambda k=k: side_by_side(k), 2)
    return out


def pyav_runs(clip: str, runs: int) -> list[dict]:
    import av

    def once() -> dict:
        n = 0
        with av.open(clip) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for _ in c.decode(s):
                n += 1
        return {"frames": n}

    return timed(once, runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="frames a get_batch_frames call")
    ap.add_argument("--parallel", default="4,8", help="clips decoded side by side")
    ap.add_argument(
        "--segments", default="", help="one clip cut at keyframes into this many parts, e.g. 2,4"
    )
    args = ap.parse_args()
    res: dict = {"host": f"{platform.node()}, {os.cpu_count()} cores"}
    res["NVIDIA_DRIVER_CAPABILITIES"] = os.environ.get("NVIDIA_DRIVER_CAPABILITIES")
    try:
        ctypes.CDLL("libnvcuvid.so.1")
        res["libnvcuvid"] = "loads"
    except OSError as exc:
        res["libnvcuvid"] = f"missing: {exc}"
    try:
        import torch

        res["gpu"] = torch.cuda.get_device_name(0)
        parallel = [int(k) for k in args.parallel.split(",") if k]
        segments = [int(k) for k in args.segments.split(",") if k]
        res["nvdec"] = nvdec_runs(args.clip, args.runs, args.batch, parallel, segments)
    except Exception as exc:  # noqa: BLE001 - a probe reports what failed
        res["nvdec_error"] = f"{type(exc).__name__}: {exc}"
    try:
        res["pyav"] = pyav_runs(args.clip, args.runs)
    except Exception as exc:  # noqa: BLE001
        res["pyav_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
