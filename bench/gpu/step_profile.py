"""Where one decoding step of video_llava's text model spends its time on the GPU.

Builds the 7 B text model (Llama-2-7B shapes, as LLaVA-NeXT-Video-7B's; random weights,
bf16) with transformers, decodes with video_llava's own loop (analyzers/_decoding.py:
static cache, compiled step, CUDA graphs) after a prompt of ``--prompts`` tokens (32 frames
x 144 video tokens plus the question come to about 4,864), and prints per variant the
milliseconds per token, then the CUDA kernels of 64 tokens by total time (torch.profiler).
Variants: each prompt length in bf16, and for each of ``--quant`` (int4, fp8, int8) the
longest again with the decoder's weights in that format (analyzers/_quant.py), each at every
``--batches`` size (rows decoded together, as video_llava batches clips); int4 also
times the prompt through tinygemm (``prefill_tinygemm_s``) besides the default, which widens
the weights to bf16 for a prompt's many rows.

``--steps`` times the decoding step three ways: the model's own forward (transformers),
our walk through its layers (ours), and ours with int4's q, k, v and gate, up products
fused (ours-fused).

    python bench/gpu/step_profile.py --prompts 4864,512 --tokens 256 --quant int4,fp8 \
        --batches 1,4 --steps transformers,ours-fused --out $OUT/step.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from by_path import analyzer_module  # bench/gpu/by_path.py, beside this file


def build(quant: str | None):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
        max_position_embeddings=8192,
    )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    if quant:
        analyzer_module("_quant").quantize_linears(model.get_decoder(), quant)
        torch.cuda.empty_cache()
    return model


def run(
    model,
    decoder_cls,
    prompt: int,
    tokens: int,
    profile: bool,
    quant: str | None,
    batch: int = 1,
    step: str = "auto",
) -> dict:
    decoder = decoder_cls(model, compile=True, max_batch=batch, step=step)
    inputs = {
        "input_ids": torch.randint(1, 32000, (batch, prompt), device="cuda"),
        "attention_mask": torch.ones((batch, prompt), dtype=torch.long, device="cuda"),
    }

    def generate(n: int) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            decoder.generate(inputs, max_new_tokens=n, eos_ids=[2], pad_id=0, forced=True)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    start = time.perf_counter()
    generate(tokens)
    generate(tokens)
    compile_s = time.perf_counter() - start
    prefill = min(generate(1) for _ in range(3))
    whole = min(generate(tokens) for _ in range(2))
    extra = {}
    if quant == "int4" and batch == 1 and step == "transformers":
        # The prompt through tinygemm too (Int4Linear widens to bf16 above DENSE_ROWS rows).
        layer_cls = analyzer_module("_quant").Int4Linear
        kept, layer_cls.DENSE_ROWS = layer_cls.DENSE_ROWS, 10**9
        try:
            extra["prefill_tinygemm_s"] = round(min(generate(1) for _ in range(2)), 4)
        finally:
            layer_cls.DENSE_ROWS = kept
    result = {
        "prompt": prompt,
        "batch": batch,
        "tokens": tokens,
        "prefill_s": round(prefill, 4),
        "ms_per_token": round((whole - prefill) / (tokens - 1) * 1e3, 3),
        "ms_per_token_per_row": round((whole - prefill) / (tokens - 1) * 1e3 / batch, 3),
        "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "whole_s": round(whole, 3),
        "first_two_calls_s": round(compile_s, 1),
        **extra,
    }
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as profiler

        with profiler(activities=[ProfilerActivity.CUDA]) as prof:
            generate(64)
        rows = sorted(
            prof.key_averages(), key=lambda e: getattr(e, "device_time_total", 0), reverse=True
        )
        total = sum(getattr(e, "device_time_total", 0) for e in rows) or 1
        result["kernels"] = [
            {
                "name": e.key[:120],
                "ms": round(e.device_time_total / 1e3, 2),
                "share": round(e.device_time_total / total, 3),
                "calls": e.count,
            }
            for e in rows[:24]
        ]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", default="4864,512")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--quant", default="", help="comma-separated: int4, fp8, int8")
    ap.add_argument(
        "--batches",
        default="1",
        help="comma-separated rows a step: each precision runs the longest prompt at each",
    )
    ap.add_argument(
        "--steps",
        default="ours-fused",
        help="comma-separated decoding steps, each timed at every variant: transformers "
        "(the model's own forward), ours (_decoding.LlamaStep), ours-fused (int4 only: "
        "q, k, v and gate, up fused; bf16 runs it as ours)",
    )
    ap.add_argument("--skip-bf16", action="store_true", help="only the --quant variants")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("step_profile: needs a CUDA GPU", file=sys.stderr)
        return 2
    import transformers

    props = torch.cuda.get_device_properties(0)
    machine = f"{props.name}; torch {torch.__version__}; transformers {transformers.__version__}"
    print(f"machine: {machine}", flush=True)
    decoder_cls = analyzer_module("_decoding").StaticGreedyDecoder
    prompts = [int(p) for p in args.prompts.split(",")]
    quants = [q for q in args.quant.split(",") if q]
    batches = [int(b) for b in args.batches.split(",")]
    longest = max(prompts)
    order = ("transformers", "ours", "ours-fused")  # fusing is for good: last
    steps = sorted({s for s in args.steps.split(",") if s}, key=order.index)
    variants = []
    for step in steps:
        plain = "ours" if step == "ours-fused" else step
        if not args.skip_bf16 and (step != "ours-fused" or "ours" not in steps):
            variants += [(p, None, 1, plain) for p in prompts]
            variants += [(longest, None, b, plain) for b in batches if b > 1]
    variants += [(longest, q, b, s) for q in quants for s in steps for b in batches]
    results = []
    model, built = None, ("none", False)
    for prompt, quant, batch, step in variants:
        fused = step == "ours-fused" and quant == "int4"
        if built[0] != quant or (built[1] and not fused):
            model = None
            torch.cuda.empty_cache()
            model, built = build(quant), (quant, False)
        if fused and not built[1]:
            analyzer_module("_quant").fuse_int4_projections(model.get_decoder())
            built = (quant, True)
        torch._dynamo.reset()
        torch.cuda.reset_peak_memory_stats()
        res = run(
            model, decoder_cls, prompt, args.tokens, True, quant, batch, step.removesuffix("-fused")
        )
        res["precision"] = quant or "bf16"
        res["step"] = step if fused or step != "ours-fused" else "ours"
        results.append(res)
        print(json.dumps(res, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
