"""Weight quantization of a language model's linear layers, for decoding speed on a GPU.

Generating a token with a 7 B model in bf16 reads its 13 GB of decoder weights once (plus
the KV cache): at batch 1 decoding is bound by memory bandwidth, not arithmetic. Storing the
weights in one byte each halves what every step reads.

* ``fp8``: weights in float8 e4m3 with one scale per output channel; activations quantized
  per row at run time (their absolute maximum maps to e4m3's 448), and the product taken by
  ``torch._scaled_mm`` with row-wise scales into bf16 (the scheme torchao calls float8
  dynamic activation, float8 weight, per row). Needs a GPU with fp8 tensor cores (compute
  capability 8.9 or more: Ada, Hopper); torch also runs it on the CPU, which the tests use.
* ``int8``: weights in int8 with one scale per output channel, activations stay bf16; the
  weight is widened inside the product (``linear(x, w.to(x.dtype)) * scale``). Only fast
  where the compiler fuses the widening into the matrix-vector product (torch.compile with
  ``coordinate_descent_tuning``, one row at a time): elsewhere it first writes the bf16
  weight out, which costs more than it saves.

Both keep the layer's interface (``in_features``, ``out_features``, ``weight`` and ``bias``
attributes) so that code reading a model's config or dtype still works. Rounding: per-channel
scales keep the relative error of a weight at most half a step of its format (e4m3: 1/16;
int8: 1/254 of the channel's largest weight).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["MODES", "Fp8Linear", "Int8Linear", "quantize_linears"]

MODES = ("fp8", "int8")

_FP8 = torch.float8_e4m3fn
_FP8_MAX = float(torch.finfo(_FP8).max)  # 448


class Fp8Linear(nn.Module):
    """A bias-free or biased linear layer with float8 weights and row-wise dynamic float8
    activations (see the module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = weight.dtype
        amax = weight.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
        scale = amax / _FP8_MAX  # (out, 1)
        quantized = (weight.float() / scale).clamp(-_FP8_MAX, _FP8_MAX).to(_FP8)
        self.weight = nn.Parameter(quantized, requires_grad=False)
        self.register_buffer("weight_scale", scale.reshape(1, -1).contiguous())  # (1, out)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        amax = rows.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
        scale = amax / _FP8_MAX  # (rows, 1)
        quantized = (rows.float() / scale).clamp(-_FP8_MAX, _FP8_MAX).to(_FP8)
        out = torch._scaled_mm(
            quantized,
            self.weight.t(),  # column-major (in, out), as _scaled_mm wants its second operand
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=self.out_dtype,
        )
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3"


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (per output channel scales), bf16 activations."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        amax = weight.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
        scale = amax / 127.0
        quantized = (weight.float() / scale).round().clamp(-127, 127).to(torch.int8)
        self.weight = nn.Parameter(quantized, requires_grad=False)
        self.register_buffer("weight_scale", scale.reshape(-1).to(weight.dtype))  # (out,)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.linear(x, self.weight.to(x.dtype)) * self.weight_scale
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linears(module: nn.Module, mode: str, skip: Iterable[str] = ()) -> int:
    """Replace every ``nn.Linear`` under ``module`` (but those whose qualified name starts
    with one of ``skip``) by its ``mode`` version, one at a time, so that the old weight is
    freed before the next is converted. Returns how many were replaced."""
    if mode not in MODES:
        raise ValueError(f"quantization mode must be one of {', '.join(MODES)}, got {mode!r}")
    make = Fp8Linear if mode == "fp8" else Int8Linear
    skip = tuple(skip)
    targets = [
        name
        for name, sub in module.named_modules()
        if isinstance(sub, nn.Linear) and not (skip and name.startswith(skip))
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, make(getattr(parent, child)))
    return len(targets)
