"""Weight quantization of video_llava's decoder (analyzers/_quant): errors against the
unquantized layers, what gets replaced, and the tiny synthetic LLaVA's logits before and
after (the GPU speed is measured in bench/gpu/linear_bench.py, not here)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tiktok_analyzer.analyzers._quant import (
    Fp8Linear,
    Int4Linear,
    Int8Linear,
    dequantize_int4,
    fuse_int4_projections,
    quantize_int4,
    quantize_linears,
    unfuse_int4_projections,
)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    ("make", "stored", "bound"),
    # e4m3 keeps 3 mantissa bits (steps of 1/16 relative, half of it on average rounding),
    # weights and activations both; int8 per channel: 1/254 of the channel's largest weight;
    # int4 in groups of 128: steps of 1/15 of a group's range (about 5 standard deviations
    # of normal weights), so some 0.1 relative.
    [
        (Fp8Linear, torch.float8_e4m3fn, 0.06),
        (Int8Linear, torch.int8, 0.012),
        (Int4Linear, torch.uint8, 0.15),
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_a_quantized_layer_stays_close_to_the_original(dtype, make, stored, bound, bias):
    torch.manual_seed(0)
    linear = nn.Linear(256, 512, bias=bias).to(dtype)
    x = torch.randn(3, 5, 256).to(dtype)
    quantized = make(linear)
    y = quantized(x)
    assert quantized.weight.dtype == stored
    assert y.dtype == dtype and y.shape == (3, 5, 512)
    error = _relative_error(y, linear(x))
    assert 0 < error < bound


def test_a_quantized_layer_keeps_a_channel_of_large_weights():
    # Per-channel scales: one channel 1000x larger must not flatten the others to zero.
    torch.manual_seed(0)
    linear = nn.Linear(64, 16, bias=False)
    with torch.no_grad():
        linear.weight[0] *= 1000.0
    x = torch.randn(4, 64)
    for make, bound in ((Fp8Linear, 0.06), (Int8Linear, 0.06), (Int4Linear, 0.15)):
        y, ref = make(linear)(x), linear(x)
        assert _relative_error(y[:, 1:], ref[:, 1:]) < bound, make.__name__


@pytest.mark.parametrize(("shape", "group"), [((512, 256), 128), ((64, 96), 32), ((8, 64), 64)])
def test_int4_values_are_within_half_a_step_of_their_group(shape, group):
    torch.manual_seed(1)
    weight = torch.randn(shape) * torch.linspace(0.1, 3.0, shape[1])  # groups of unlike ranges
    scale, zero, q = quantize_int4(weight, group)
    assert scale.shape == zero.shape == (shape[0], shape[1] // group)
    assert q.dtype == torch.int32 and int(q.min()) >= 0 and int(q.max()) <= 15
    error = (dequantize_int4(scale, zero, q) - weight).abs().reshape(shape[0], -1, group)
    step = scale.float().unsqueeze(-1)
    # Half a step, plus what the bf16 offset's rounding moves every value of the group.
    assert bool((error <= step * 0.5 + zero.float().abs().unsqueeze(-1) / 256 + 1e-6).all())


@pytest.mark.parametrize("rows", [5, Int4Linear.DENSE_ROWS + 36])
@pytest.mark.parametrize(("n", "k"), [(256, 512), (32, 96), (16, 64)])
def test_int4_kernel_computes_with_the_values_we_quantized(n, k, rows):
    # Our layout of scales and offsets, and our packing, must be the kernel's: its product
    # equals the one with our dequantized weight to bf16's rounding, far below int4's error.
    # Many rows (a prompt) take the weight widened to bf16 instead: the same product.
    torch.manual_seed(2)
    linear = nn.Linear(k, n, bias=True).to(torch.bfloat16)
    layer = Int4Linear(linear)
    scale, zero, q = quantize_int4(linear.weight.detach(), layer.group_size)
    x = torch.randn(rows, k).to(torch.bfloat16)
    expected = x.float() @ dequantize_int4(scale, zero, q).t() + linear.bias.float()
    assert _relative_error(layer(x), expected) < 0.01
    assert _relative_error(layer(x), linear(x)) > 0.02  # it is quantized, not a copy


def test_int4_refuses_a_layer_its_kernel_cannot_take():
    with pytest.raises(ValueError, match="multiple of 32"):
        Int4Linear(nn.Linear(48, 16))


def test_quantize_linears_replaces_all_but_the_skipped():
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 8))
    )
    assert quantize_linears(model, "int8", skip=("2.1",)) == 2
    assert isinstance(model[0], Int8Linear) and isinstance(model[2][0], Int8Linear)
    assert type(model[2][1]) is nn.Linear
    with pytest.raises(ValueError, match="fp8, int8, int4"):
        quantize_linears(model, "int2")


@pytest.mark.parametrize(("mode", "bound"), [("fp8", 0.1), ("int8", 0.02), ("int4", 0.3)])
def test_tiny_llava_logits_after_quantizing_its_decoder(mode, bound):
    from tiktok_analyzer.analyzers.llava import build_config, build_random_model
    from tiktok_analyzer.analyzers.weights import resolve

    config = build_config(resolve("video_llava", "synthetic-tiny").config)
    model = build_random_model(config, "cpu", torch.float32)
    ids = torch.randint(0, 32000, (2, 12))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        count = quantize_linears(model.get_decoder(), mode)
        after = model(input_ids=ids).logits
    layers = config.text_config.num_hidden_layers
    assert count == 7 * layers  # q, k, v, o, gate, up, down in each decoder layer
    assert type(model.get_output_embeddings()) is nn.Linear  # the LM head stays as it was
    assert not any(
        isinstance(m, (Fp8Linear, Int8Linear, Int4Linear))
        for m in model.model.vision_tower.modules()
    )
    assert 0 < _relative_error(after, before) < bound


@pytest.mark.parametrize("bias", [False, True])
def test_fused_int4_layer_answers_as_its_parts_and_they_keep_answering(bias):
    """q, k and v as one int4 product: the fused layer's output is the parts' outputs side
    by side (the same values, not quantized again), the parts become views of it (no
    second copy of the weights) and still answer a prompt's many rows as before."""
    torch.manual_seed(3)
    parts = [Int4Linear(nn.Linear(256, n, bias=bias).to(torch.bfloat16)) for n in (256, 128, 128)]
    few = torch.randn(3, 256).to(torch.bfloat16)
    many = torch.randn(Int4Linear.DENSE_ROWS + 8, 256).to(torch.bfloat16)
    before_few = torch.cat([p(few) for p in parts], -1)
    before_many = [p(many) for p in parts]
    fused = Int4Linear.fuse(parts)
    assert fused.out_features == 512 and fused.in_features == 256
    assert torch.equal(fused(few), before_few)
    assert _relative_error(fused(many), torch.cat(before_many, -1)) < 1e-6
    for part, want in zip(parts, before_many, strict=True):
        assert part.weight is None  # tinygemm's tiles live in the fused layer only
        assert part.pairs.data_ptr() >= fused.pairs.data_ptr()  # a view, not a copy
        assert torch.equal(part(many), want)
    # a few rows through a part (the model's own step): the fused product, cut
    assert torch.equal(parts[1](few), before_few[:, 256:384])


def test_unfused_int4_parts_answer_as_before_on_their_own_tiles():
    """Where our step fails, the model's own step calls the parts: unfused, each has its
    own tiles again and gives the same outputs as before the fusion, and the module keeps
    no fused layer."""
    torch.manual_seed(4)
    attn = nn.Module()
    for n, out in (("q_proj", 256), ("k_proj", 128), ("v_proj", 128)):
        setattr(attn, n, Int4Linear(nn.Linear(256, out).to(torch.bfloat16)))
    few = torch.randn(3, 256).to(torch.bfloat16)
    before = [attn.q_proj(few), attn.k_proj(few), attn.v_proj(few)]
    assert fuse_int4_projections(attn) == 1 and attn.k_proj.weight is None
    assert unfuse_int4_projections(attn) == 1
    assert not hasattr(attn, "qkv_proj")
    for name, want in zip(("q_proj", "k_proj", "v_proj"), before, strict=True):
        part = getattr(attn, name)
        assert part.weight is not None and part._fused_into is None
        assert torch.equal(part(few), want)
    assert unfuse_int4_projections(attn) == 0


def test_fuse_int4_refuses_parts_of_other_inputs():
    parts = [Int4Linear(nn.Linear(k, 64)) for k in (128, 256)]
    with pytest.raises(ValueError, match="same input"):
        Int4Linear.fuse(parts)


def test_fuse_int4_projections_fuses_each_llama_layer_once():
    from tiktok_analyzer.analyzers.llava import build_config, build_random_model
    from tiktok_analyzer.analyzers.weights import resolve

    config = build_config(resolve("video_llava", "synthetic-tiny").config)
    model = build_random_model(config, "cpu", torch.float32)
    decoder = model.get_decoder()
    assert fuse_int4_projections(decoder) == 0  # nothing in int4 yet
    quantize_linears(decoder, "int4")
    layers = config.text_config.num_hidden_layers
    assert fuse_int4_projections(decoder) == 2 * layers
    assert fuse_int4_projections(decoder) == 0  # already fused
    attn, mlp = decoder.layers[0].self_attn, decoder.layers[0].mlp
    assert attn.qkv_proj.out_features == sum(
        getattr(attn, n).out_features for n in ("q_proj", "k_proj", "v_proj")
    )
    assert mlp.gate_up_proj.out_features == 2 * mlp.gate_proj.out_features
