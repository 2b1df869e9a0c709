"""Our greedy decoding loop (analyzers/_decoding.py) against transformers' generate with
the same static cache, on the tiny synthetic LLaVA-NeXT-Video (CPU, random weights): the
same tokens, forced to the whole budget or stopped by an end token."""

import numpy as np
import pytest

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._decoding import StaticGreedyDecoder
from tiktok_analyzer.analyzers.llava import VideoLlava, _even_ranges, build_prompt

torch = pytest.importorskip("torch")

STEPS = 24


@pytest.fixture(scope="module")
def tiny():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights_layer.MODE_ENV, "synthetic-tiny")
        analyzer = VideoLlava()
    assert analyzer.available, analyzer._unavailable
    return analyzer


@pytest.fixture(scope="module")
def inputs(tiny):
    """Three clips of different prompt lengths: left padding inside the batch."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (2, 336, 336, 3), dtype=np.uint8) for _ in range(3)]
    prompts = [tiny._prompt(build_prompt(_even_ranges(6.0, k), 6.0, 3.0)) for k in (1, 3, 7)]
    out = tiny.processor(text=prompts, videos=frames, padding=True, return_tensors="pt")
    assert len(set(out["attention_mask"].sum(-1).tolist())) == 3  # really padded
    return dict(out)


def _generate(model, inputs, pad_id, **kwargs):
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            num_beams=1,
            max_new_tokens=STEPS,
            pad_token_id=pad_id,
            cache_implementation="static",
            disable_compile=True,
            **kwargs,
        )
    return out[:, inputs["input_ids"].shape[1] :]


def _loop(model, inputs, pad_id, eos, forced, check_every=4):
    decoder = StaticGreedyDecoder(model, compile=False, max_batch=4, check_every=check_every)
    with torch.inference_mode():
        return decoder, decoder.generate(
            dict(inputs), max_new_tokens=STEPS, eos_ids=[eos], pad_id=pad_id, forced=forced
        )


def test_forced_budget_gives_generates_tokens(tiny, inputs):
    tok = tiny.processor.tokenizer
    pad = tok.pad_token_id
    want = _generate(tiny.model, inputs, pad, min_new_tokens=STEPS)
    decoder, got = _loop(tiny.model, inputs, pad, tok.eos_token_id, forced=True)
    assert got.shape == (3, STEPS)
    assert torch.equal(got, want)
    # the cache is kept and emptied between calls: a second call answers the same
    with torch.inference_mode():
        again = decoder.generate(
            dict(inputs), max_new_tokens=STEPS, eos_ids=[tok.eos_token_id], pad_id=pad, forced=True
        )
    assert torch.equal(again, got)


def test_end_token_stops_a_row_and_pads_after_it(tiny, inputs):
    """Random weights never pick the real end token: take as "end" a token row 1 makes at
    step 5, so one row ends early and generate pads it the same way."""
    pad = tiny.processor.tokenizer.pad_token_id
    free = _generate(tiny.model, inputs, pad)
    eos = int(free[1, 5])
    want = _generate(tiny.model, inputs, pad, eos_token_id=eos)
    _, got = _loop(tiny.model, inputs, pad, eos, forced=False)
    first = int((got[1] == eos).nonzero()[0, 0])
    assert first <= 5 and (got[1, first + 1 :] == pad).all()
    assert torch.equal(got, want[:, : got.shape[1]])


def test_forced_never_ends(tiny, inputs):
    """forced masks the end token out, as min_new_tokens does: the same chosen "end" token
    never appears, and every row has the whole budget."""
    pad = tiny.processor.tokenizer.pad_token_id
    eos = int(_generate(tiny.model, inputs, pad)[1, 5])
    _, got = _loop(tiny.model, inputs, pad, eos, forced=True)
    assert got.shape == (3, STEPS) and not (got == eos).any()


def test_rows_all_ended_stop_early(tiny, inputs):
    """Every row ends (several end ids, as a generation config may list): decoding stops
    at the next check, not at the budget."""
    pad = tiny.processor.tokenizer.pad_token_id
    free = _generate(tiny.model, inputs, pad)
    ends = [int(free[0, 2]), int(free[1, 3]), int(free[2, 1])]
    decoder = StaticGreedyDecoder(tiny.model, compile=False, max_batch=3, check_every=4)
    with torch.inference_mode():
        got = decoder.generate(
            dict(inputs), max_new_tokens=STEPS, eos_ids=ends, pad_id=pad, forced=False
        )
    assert got.shape[1] == 4  # all ended by step 3, seen at the first check
    assert all(torch.isin(row, torch.tensor(ends)).any() for row in got)


def test_batch_sizes_share_one_storage_and_answer_alike(tiny, inputs):
    """Batch sizes 1 and 3 decode over views of one storage of max_batch rows: a clip
    alone answers as it does inside the batch, before and after the batch ran, and no
    second storage is made."""
    tok = tiny.processor.tokenizer
    pad = tok.pad_token_id
    decoder = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4)
    alone = {k: v[2:3] for k, v in inputs.items()}
    # the clip alone is not left-padded: drop the padding columns it had in the batch
    keep = alone["attention_mask"][0].bool()
    alone["input_ids"], alone["attention_mask"] = (
        alone["input_ids"][:, keep],
        alone["attention_mask"][:, keep],
    )

    def run(batch):
        with torch.inference_mode():
            return decoder.generate(
                dict(batch),
                max_new_tokens=STEPS,
                eos_ids=[tok.eos_token_id],
                pad_id=pad,
                forced=True,
            )

    first = run(alone)
    store = [k.data_ptr() for k, _ in decoder._store]
    together = run(inputs)
    again = run(alone)
    assert torch.equal(first, again)
    assert torch.equal(first[0, :8], together[2, :8])
    assert [k.data_ptr() for k, _ in decoder._store] == store
    for cache in decoder._caches.values():
        assert [layer.keys.data_ptr() for layer in cache.layers] == store
    with pytest.raises(ValueError, match="max_batch 4"):
        run({k: torch.cat([v, v]) for k, v in inputs.items()})


def test_our_llama_step_gives_transformers_step_tokens(tiny, inputs):
    """The tiny model's text model is a Llama: the loop decodes with our own step
    (LlamaStep), which must give what the model's own forward gives, padding included."""
    pad = tiny.processor.tokenizer.pad_token_id
    got = {}
    for step in ("ours", "transformers"):
        decoder = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4, step=step)
        assert decoder.step_kind == step
        with torch.inference_mode():
            got[step] = decoder.generate(
                dict(inputs), max_new_tokens=STEPS, eos_ids=[2], pad_id=pad, forced=True
            )
    assert torch.equal(got["ours"], got["transformers"])
    assert StaticGreedyDecoder(tiny.model, compile=False).step_kind == "ours"  # the default


def test_our_step_with_fused_int4_products_stays_with_the_unfused(tiny, inputs):
    """After int4 quantization, our step takes q, k, v (and gate, up) as one product each;
    its logits match the unfused step's to int4's rounding (both quantized alike)."""
    import copy

    from tiktok_analyzer.analyzers._quant import fuse_int4_projections, quantize_linears

    model = copy.deepcopy(tiny.model)  # fp32; the int4 layers compute in bf16 inside
    quantize_linears(model.get_decoder(), "int4")
    batch = dict(inputs)
    pad = tiny.processor.tokenizer.pad_token_id

    def first_logits():
        decoder = StaticGreedyDecoder(model, compile=False, max_batch=4, step="ours")
        seen = []
        step = decoder._step
        decoder._step = lambda *a: seen.append(step(*a)) or seen[-1]
        with torch.inference_mode():
            decoder.generate(dict(batch), max_new_tokens=3, eos_ids=[2], pad_id=pad, forced=True)
        return torch.stack(seen).float()

    unfused = first_logits()
    assert fuse_int4_projections(model.get_decoder()) > 0
    fused = first_logits()
    assert float((fused - unfused).norm() / unfused.norm()) < 0.02


def test_idle_rows_past_the_batch_change_nothing(tiny, inputs):
    """A batch of 3 decoded by a step 4 rows wide (a compiled size, the last row idle):
    the same tokens as the step 3 rows wide, and only the batch's rows come back. The
    model's own step takes no idle rows (its cache counts where to write by itself)."""
    pad = tiny.processor.tokenizer.pad_token_id
    decoder = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4, check_every=4)

    def run(**kw):
        with torch.inference_mode():
            return decoder.generate(
                dict(inputs), max_new_tokens=STEPS, eos_ids=[2], pad_id=pad, forced=True, **kw
            )

    narrow = run()
    wide = run(rows=4)
    assert wide.shape == narrow.shape == (3, STEPS)
    assert torch.equal(wide, narrow)
    # not forced: the idle row never holds decoding up (every live row ends, it stops)
    free = run()
    ends = [int(free[0, 2]), int(free[1, 3]), int(free[2, 1])]
    with torch.inference_mode():
        stopped = decoder.generate(
            dict(inputs), max_new_tokens=STEPS, eos_ids=ends, pad_id=pad, forced=False, rows=4
        )
    assert stopped.shape == (3, 4)
    with pytest.raises(ValueError, match="at least the batch"):
        run(rows=2)
    theirs = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4, step="transformers")
    with pytest.raises(ValueError, match="idle rows"), torch.inference_mode():
        theirs.generate(
            dict(inputs), max_new_tokens=2, eos_ids=[2], pad_id=pad, forced=True, rows=4
        )
