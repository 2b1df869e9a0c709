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

* ``int4``: weights in four bits, in groups of 128 along the input with a bf16 scale and
  offset each (asymmetric: ``w = (q - 8) * scale + zero``, q in 0..15), activations stay
  bf16; the product is torch's tinygemm kernel (``torch._weight_int4pack_mm``, the CUDA
  kernel gpt-fast and torchao's int4 weight-only use; CUDA needs compute capability 8.0 or
  more; the CPU has its own packing and kernel, which the tests use). A quarter of bf16's
  bytes: the one format here whose kernel for a few rows reads weights fast enough to pay.
  tinygemm is for a few rows only: a prompt's many rows widen the weight to bf16 on the
  fly and take cuBLAS's product (the values are also kept two a byte for that, so int4
  keeps half of bf16's bytes in all, not a quarter).

All keep the layer's interface (``in_features``, ``out_features``, ``weight`` and ``bias``
attributes) so that code reading a model's config or dtype still works. Rounding: per-channel
scales keep the relative error of a weight at most half a step of its format (e4m3: 1/16;
int8: 1/254 of the channel's largest weight); int4's error is at most half a step of its
group (1/30 of the group's range), plus the bf16 rounding of its scale and offset.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "MODES",
    "Fp8Linear",
    "Int4Linear",
    "Int8Linear",
    "fuse_int4_projections",
    "quantize_linears",
]

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


class Int4Linear(nn.Module):
    """A linear layer with four-bit weights in groups of ``group_size`` inputs (a bf16
    scale and offset a group), bf16 activations, tinygemm's kernel (see the module
    docstring). The group is 128 inputs (gpt-fast's and torchao's default) where the layer
    allows, else 64 or 32; ``in_features`` must be a multiple of 32 and ``out_features`` of
    16 (every linear of a Llama-7B decoder is, with groups of 128)."""

    GROUP_SIZES = (128, 64, 32)  # what tinygemm takes, largest first
    # tinygemm is made for a few rows (decoding); a prompt's thousands of rows (prefill)
    # take cuBLAS's bf16 product with the weight widened on the fly instead: on the H100,
    # video_llava's 384 tokens after a 4,864-token prompt took 5.1-5.5 s with the prompt
    # through tinygemm, 2.8-3.1 s this way.
    DENSE_ROWS = 64
    INNER_K_TILES = (8, 4, 2)  # how it tiles the input dimension (16 x tiles must divide it)

    def __init__(self, linear: nn.Linear, group_size: int = 128) -> None:
        super().__init__()
        weight = linear.weight.detach()
        n, k = weight.shape
        sizes = [g for g in self.GROUP_SIZES if g <= group_size and k % g == 0]
        tiles = [t for t in self.INNER_K_TILES if k % (16 * t) == 0]
        if not sizes or not tiles or n % 16:
            raise ValueError(
                "int4 needs in_features a multiple of 32 and out_features a multiple of 16; "
                f"this layer is {k} -> {n}"
            )
        scale, zero, q = quantize_int4(weight, sizes[0])
        # tinygemm's layout: (groups, out, 2) holding (scale, offset). Two values a byte
        # (even input first, in the high half): the plain form, which many rows widen to
        # bf16 (see forward), and what tinygemm's tiles are made from.
        self._setup(
            torch.stack([scale, zero], -1).transpose(0, 1).contiguous(),
            (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8),
            linear.bias,
            weight.dtype,
            sizes[0],
            tiles[0],
        )

    def _setup(self, scale_and_zero, pairs, bias, out_dtype, group_size, inner_k_tiles) -> None:
        self.out_features, half = pairs.shape
        self.in_features, self.group_size = 2 * half, group_size
        self.inner_k_tiles, self.out_dtype = inner_k_tiles, out_dtype
        self.register_buffer("scale_and_zero", scale_and_zero)
        self.on_cuda = pairs.is_cuda
        if self.on_cuda:
            packed = torch.ops.aten._convert_weight_to_int4pack(pairs, inner_k_tiles)
        else:
            values = torch.stack([pairs >> 4, pairs & 15], -1).reshape(self.out_features, -1)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                values.to(torch.int32), inner_k_tiles
            )
        self.weight = nn.Parameter(packed, requires_grad=False)
        self.register_buffer("pairs", pairs)
        self.bias = bias

    @classmethod
    def fuse(cls, parts: list[Int4Linear]) -> Int4Linear:
        """One layer whose outputs are ``parts``' outputs side by side (a step's q, k and
        v products, or gate and up, as one kernel instead of several: fewer launches, and
        each reads a longer run of weights). The values are the parts' own, not quantized
        again (groups run along the input, so a row's groups do not change). The parts
        keep views of the fused values and scales and drop their tinygemm tiles, so the
        fusion costs no memory: a prompt's many rows widen the part's own values to bf16
        as before, a few rows take the fused product and keep the part's outputs (whole
        work for a part: only where the model's own step runs on fused layers).
        """
        first = parts[0]
        if len({(p.in_features, p.group_size, p.out_dtype, p.on_cuda) for p in parts}) != 1:
            raise ValueError("int4 layers fuse only with the same input, groups and dtype")
        biases = [p.bias for p in parts]
        if any(b is None for b in biases) and any(b is not None for b in biases):
            raise ValueError("int4 layers fuse only where all or none have a bias")
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused._setup(
            torch.cat([p.scale_and_zero for p in parts], 1),
            torch.cat([p.pairs for p in parts]),
            None if biases[0] is None else nn.Parameter(torch.cat(biases), requires_grad=False),
            first.out_dtype,
            first.group_size,
            first.inner_k_tiles,
        )
        start = 0
        for part in parts:
            end = start + part.out_features
            part.pairs = fused.pairs[start:end]
            part.scale_and_zero = fused.scale_and_zero[:, start:end]
            part.weight = None
            part._fused_into = (fused, start, end)  # a tuple: not a child module
            start = end
        return fused

    _fused_into: tuple[Int4Linear, int, int] | None = None

    def unfuse(self) -> None:
        """A fused part on its own again: its own copy of its values and scales and its
        own tinygemm tiles, as before :meth:`fuse`. For the model's own decoding step
        (where ours failed), which calls the parts: through the fused layer each of q, k
        and v would run the whole qkv product. Drop the fused layer after this."""
        if self._fused_into is None:
            return
        self._setup(
            self.scale_and_zero.contiguous().clone(),
            self.pairs.contiguous().clone(),
            self.bias,
            self.out_dtype,
            self.group_size,
            self.inner_k_tiles,
        )
        self._fused_into = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).to(torch.bfloat16).contiguous()
        if self.weight is None and rows.shape[0] <= self.DENSE_ROWS:
            # A fused part with a few rows (the model's own decoding step, where ours did
            # not run): the fused product, cut to this part's outputs.
            fused, start, end = self._fused_into
            return fused(x)[..., start:end]
        if rows.shape[0] > self.DENSE_ROWS:
            out = nn.functional.linear(rows, self.dense())
        else:
            mm = (
                torch.ops.aten._weight_int4pack_mm
                if self.on_cuda
                else torch.ops.aten._weight_int4pack_mm_for_cpu
            )
            out = mm(rows, self.weight, self.group_size, self.scale_and_zero)
        if self.bias is not None:
            out = out + self.bias
        return out.to(self.out_dtype).reshape(*shape[:-1], self.out_features)

    def dense(self) -> torch.Tensor:
        """The bf16 (out, in) weight these four-bit values stand for (made on the fly; not
        kept)."""
        values = torch.stack([self.pairs >> 4, self.pairs & 15], -1).reshape(
            self.out_features, self.in_features
        )
        scale, zero = self.scale_and_zero.transpose(0, 1).unbind(-1)  # (out, groups) each
        return dequantize_int4(scale, zero, values).to(torch.bfloat16)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 groups of {self.group_size}"
        )


def quantize_int4(
    weight: torch.Tensor, group_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (out, in) weight to four bits in groups of ``group_size`` inputs: the groups'
    bf16 scales and offsets (out, groups) and the values (out, in) as int32 in 0..15, with
    ``w ~ (q - 8) * scale + zero``. The values are rounded against the bf16 scale and
    offset the kernel will use, not the exact ones."""
    n, k = weight.shape
    groups = weight.float().reshape(n, k // group_size, group_size)
    low = groups.amin(-1, keepdim=True)
    high = groups.amax(-1, keepdim=True)
    scale = ((high - low).clamp(min=1e-6) / 15).to(torch.bfloat16)
    zero = (low + scale.float() * 8).to(torch.bfloat16)
    start = zero.float() - scale.float() * 8
    q = ((groups - start) / scale.float()).round().clamp(0, 15).to(torch.int32).reshape(n, k)
    return scale.squeeze(-1), zero.squeeze(-1), q


def dequantize_int4(scale: torch.Tensor, zero: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The float32 weight that :func:`quantize_int4`'s output stands for."""
    n, k = q.shape
    groups = q.float().reshape(n, scale.shape[1], -1) - 8
    return (groups * scale.float().unsqueeze(-1) + zero.float().unsqueeze(-1)).reshape(n, k)


_LAYERS = {"fp8": Fp8Linear, "int8": Int8Linear, "int4": Int4Linear}
MODES = tuple(_LAYERS)


#: A Llama-family layer's products that read the same input, fused by
#: :func:`fuse_int4_projections` under the name on the left.
FUSIONS = {
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"),
}


def fuse_int4_projections(module: nn.Module) -> int:
    """Under ``module``, give every attention (``q_proj``, ``k_proj``, ``v_proj``) and
    every gated MLP (``gate_proj``, ``up_proj``) whose parts are all :class:`Int4Linear`
    one fused layer beside them (``qkv_proj``, ``gate_up_proj``; see
    :meth:`Int4Linear.fuse`). Only code that knows the name uses it (video_llava's
    decoding step, :mod:`._decoding`); the model's own forward still calls the parts.
    Returns how many fused layers were made."""
    count = 0
    for sub in list(module.modules()):
        for name, part_names in FUSIONS.items():
            parts = [getattr(sub, n, None) for n in part_names]
            if hasattr(sub, name) or not all(isinstance(p, Int4Linear) for p in parts):
                continue
            if any(p.weight is None for p in parts):  # already a view of another fusion
                continue
            setattr(sub, name, Int4Linear.fuse(parts))
            count += 1
    return count


def unfuse_int4_projections(module: nn.Module) -> int:
    """Undo :func:`fuse_int4_projections` under ``module``: each part its own layer again
    (:meth:`Int4Linear.unfuse`) and the fused layer gone, so the weights are held once, as
    before. Returns how many fused layers were dropped."""
    count = 0
    for sub in list(module.modules()):
        for name, part_names in FUSIONS.items():
            if not isinstance(getattr(sub, name, None), Int4Linear):
                continue
            for part_name in part_names:
                getattr(sub, part_name).unfuse()
            delattr(sub, name)
            count += 1
    return count


def quantize_linears(module: nn.Module, mode: str, skip: Iterable[str] = ()) -> int:
    """Replace every ``nn.Linear`` under ``module`` (but those whose qualified name starts
    with one of ``skip``) by its ``mode`` version, one at a time, so that the old weight is
    freed before the next is converted. Returns how many were replaced."""
    if mode not in MODES:
        raise ValueError(f"quantization mode must be one of {', '.join(MODES)}, got {mode!r}")
    make = _LAYERS[mode]
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
