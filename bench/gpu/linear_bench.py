"""How fast one decoding step's linear layers run in bf16, int4, fp8 and int8 (analyzers/_quant).

A stand-in for video_llava's text model at decoding time: ``--layers`` Llama-2-7B layers
(q, k, v, o 4096x4096; gate, up 11008x4096; down 4096x11008; RMS norms between, no
attention), random weights, ``--rows`` rows a step (the batch: one token per clip), compiled
as video_llava's step is (``torch.compile(mode="reduce-overhead")``: CUDA graphs). Prints per
precision and row count the milliseconds of one pass, the weight bytes it reads and the
bandwidth that makes, and how long the first call (the compile) took; writes the same as
JSON with ``--out``. With int4 it first checks, on the GPU, that tinygemm's product equals
the one with our dequantized weight (the CPU tests check the CPU kernel's packing only).
Needs a CUDA GPU; int4 needs compute capability 8.0 or more, fp8 8.9.

    python bench/gpu/linear_bench.py --layers 8 --rows 1,4 --precisions bf16,int4,fp8,int8 \
        --out $OUT/linear.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from by_path import analyzer_module  # bench/gpu/by_path.py, beside this file
from torch import nn

_quant = analyzer_module("_quant")
quantize_linears = _quant.quantize_linears

HIDDEN, INTERMEDIATE = 4096, 11008


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HIDDEN, HIDDEN, bias=False) for _ in range(4))
        self.gate = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.up = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.down = nn.Linear(INTERMEDIATE, HIDDEN, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = nn.functional.rms_norm(h, (HIDDEN,))
        h = h + self.o(self.q(x) + self.k(x) + self.v(x))
        x = nn.functional.rms_norm(h, (HIDDEN,))
        return h + self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def build(layers: int, precision: str) -> nn.Module:
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = nn.Sequential(*(Layer() for _ in range(layers))).to(torch.bfloat16).eval()
    for p in model.parameters():
        p.requires_grad_(False)
        p.normal_(0.0, 0.02)
    if precision != "bf16":
        quantize_linears(model, precision)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return model


def weight_bytes(model: nn.Module) -> int:
    """What a pass of a few rows reads of the model: weights and their scales (buffers),
    but not int4's plain copy of its values (``pairs``), which only a prompt's many rows
    widen."""
    tensors = [*model.parameters()] + [
        t for name, t in model.named_buffers() if not name.endswith("pairs")
    ]
    return sum(t.numel() * t.element_size() for t in tensors)


def check_int4() -> dict:
    """tinygemm's CUDA product against the one with our dequantized weight, for each
    shape of a Llama-7B layer, at 1, 4 and 256 rows: relative error (bf16 rounding, ~0.002)."""
    torch.manual_seed(1)
    errors = {}
    for n, k in ((HIDDEN, HIDDEN), (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)):
        linear = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
        layer = _quant.Int4Linear(linear)
        scale, zero, q = _quant.quantize_int4(linear.weight.detach(), layer.group_size)
        weight = _quant.dequantize_int4(scale, zero, q)
        for rows in (1, 4, 256):  # 256: above DENSE_ROWS, the widened bf16 weight
            x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
            want = x.float() @ weight.t()
            got = layer(x).float()
            errors[f"{n}x{k}, {rows} rows"] = round(float((got - want).norm() / want.norm()), 5)
    worst = max(errors.values())
    return {"check": "int4 kernel vs dequantized weight", "errors": errors, "ok": worst < 0.01}


def time_one(model: nn.Module, rows: int, iters: int) -> dict:
    step = torch.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False)
    x = torch.randn(rows, HIDDEN, device="cuda", dtype=torch.bfloat16)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(3):  # compile, record the graph, first replays
            step(x)
        torch.cuda.synchronize()
        first = time.perf_counter() - start
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(iters):
            out = step(x)
        end.record()
        torch.cuda.synchronize()
    ms = begin.elapsed_time(end) / iters
    assert torch.isfinite(out.float()).all(), "non-finite output"
    read = weight_bytes(model)
    return {
        "rows": rows,
        "ms_per_pass": round(ms, 4),
        "weight_gb": round(read / 1e9, 3),
        "gb_per_s": round(read / 1e9 / (ms / 1e3), 1),
        "first_calls_s": round(first, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--rows", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--precisions", default="bf16,int4,fp8,int8")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument(
        "--both-tunings", action="store_true", help="each precision with and without tuning"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("linear_bench: needs a CUDA GPU", file=sys.stderr)
        return 2
    import torch._inductor.config as inductor

    props = torch.cuda.get_device_properties(0)
    machine = f"{props.name}, {props.total_memory // 2**20} MiB; torch {torch.__version__}"
    print(f"machine: {machine}", flush=True)
    rows = [int(r) for r in args.rows.split(",")]
    results = []
    if "int4" in args.precisions.split(","):
        results.append(check_int4())
        print(json.dumps(results[-1]), flush=True)
    for precision in args.precisions.split(","):
        # As video_llava compiles each (int8 only with coordinate-descent tuning), or both.
        tunings = (False, True) if args.both_tunings else (precision == "int8",)
        for tuning in tunings:
            inductor.coordinate_descent_tuning = tuning
            model = build(args.layers, precision)
            for r in rows:
                torch._dynamo.reset()
                try:
                    res = time_one(model, r, args.iters)
                except Exception as exc:  # noqa: BLE001 - one failing variant is a result too
                    res = {"rows": r, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                res.update(precision=precision, coordinate_descent_tuning=tuning)
                results.append(res)
                print(json.dumps(res), flush=True)
            del model
            torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(
            json.dumps({"machine": machine, "layers": args.layers, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
