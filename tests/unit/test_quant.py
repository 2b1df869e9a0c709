"""Weight quantization of video_llava's decoder (analyzers/_quant): errors against the
unquantized layers, what gets replaced, and the tiny synthetic LLaVA's logits before and
after (the GPU speed is measured in bench/gpu/linear_bench.py, not here)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tiktok_analyzer.analyzers._quant import Fp8Linear, Int8Linear, quantize_linears


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    ("make", "stored", "bound"),
    # e4m3 keeps 3 mantissa bits (steps of 1/16 relative, half of it on average rounding),
    # weights and activations both; int8 per channel: 1/254 of the channel's largest weight.
    [(Fp8Linear, torch.float8_e4m3fn, 0.06), (Int8Linear, torch.int8, 0.012)],
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
    linear = nn.Linear(64, 8, bias=False)
    with torch.no_grad():
        linear.weight[0] *= 1000.0
    x = torch.randn(4, 64)
    for make in (Fp8Linear, Int8Linear):
        y, ref = make(linear)(x), linear(x)
        assert _relative_error(y[:, 1:], ref[:, 1:]) < 0.06, make.__name__


def test_quantize_linears_replaces_all_but_the_skipped():
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 8))
    )
    assert quantize_linears(model, "int8", skip=("2.1",)) == 2
    assert isinstance(model[0], Int8Linear) and isinstance(model[2][0], Int8Linear)
    assert type(model[2][1]) is nn.Linear
    with pytest.raises(ValueError, match="fp8, int8"):
        quantize_linears(model, "int4")


@pytest.mark.parametrize(("mode", "bound"), [("fp8", 0.1), ("int8", 0.02)])
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
        isinstance(m, (Fp8Linear, Int8Linear)) for m in model.model.vision_tower.modules()
    )
    assert 0 < _relative_error(after, before) < bound
