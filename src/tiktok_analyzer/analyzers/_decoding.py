"""Greedy decoding of a transformers causal LM over a static KV cache, our own loop.

transformers' ``generate`` with ``cache_implementation="static"`` compiles the decoding
step into CUDA graphs, yet on an H100 video_llava still took 14 ms a token for a 7 B model
whose weights take about 5 ms to stream: between two graph replays ``generate`` runs its
Python (inputs prepared, logits processors, stopping criteria) and reads a flag back from
the GPU, so the CPU and the GPU take turns instead of overlapping. This loop does only what
greedy decoding needs: one eager prefill through the whole model (vision tower included),
then per token one replay of the compiled decoder step, an argmax and a few in-place
updates, all on the GPU. The host reads back whether every row has ended only every
``check_every`` tokens, so it queues the next steps while the GPU works.

The tokens are those of ``generate(do_sample=False, num_beams=1)`` with the same cache
(tested on a CPU against ``generate`` with ``cache_implementation="static"``):

* ``forced`` (``min_new_tokens = max_new_tokens`` in ``generate``): end tokens are masked
  out, every row makes exactly ``max_new_tokens``;
* otherwise a row that made an end token gets ``pad_id`` after it, and decoding stops once
  every row has ended (up to ``check_every - 1`` steps later; those are padding).

The decoder step itself is ours too where the text model is a Llama (video_llava's is):
:class:`LlamaStep` walks the model's own layers and weights for one token, taking a step's
q, k and v products (and the MLP's gate and up) as one fused int4 kernel each where the
layers were quantized so (:func:`._quant.fuse_int4_projections`), writing each row's key
and value at its own cache slot and masking the cache with a mask it builds from the rows'
slots. Elsewhere (another model family, ``step="transformers"``) the step is the model's
own forward with the cache, as transformers decodes.

One cache per batch size, kept between calls, so each batch size meets the tensors its
compiled graphs were recorded on; all of them are views of one storage sized for
``max_batch`` (the first rows of it), so batch sizes 1, 2 and 4 cost the memory of 4, not
7 (on the H100, three caches of their own put video_llava at 52.8 GB and starved the other
models). Its length is the longest prompt so far plus ``max_new_tokens``: a clip whose
prompt fits reuses the graphs. Works with transformers 5.17 and later (the cache's keyword
is ``past_key_values`` there, ``cache`` from 5.24).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)


STEPS = ("auto", "ours", "transformers")


class LlamaStep:
    """One decoding step (one token a row) through a Llama decoder's own modules: the
    embedding, each layer's norms, products, rotary embedding and attention over the
    static cache, the final norm and the LM head. The same arithmetic as transformers'
    Llama forward for one token, in fewer kernels: q, k and v (and gate and up) in one
    product each where the layers carry a fused int4 version (``qkv_proj``,
    ``gate_up_proj``), and the attention mask made once a step from each row's cache slot
    and prompt mask, not through transformers' mask machinery."""

    def __init__(self, decoder, head) -> None:
        self.decoder, self.head = decoder, head
        attn = decoder.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.scaling = attn.scaling
        self.gqa = getattr(attn, "num_key_value_groups", 1) > 1

    @staticmethod
    def fits(decoder) -> bool:
        """Whether ``decoder`` is a Llama decoder whose modules this step knows."""
        if type(decoder).__name__ != "LlamaModel":
            return False
        need = ("embed_tokens", "layers", "norm", "rotary_emb")
        layer_need = ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm")
        attn_need = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
        mlp_need = ("gate_proj", "up_proj", "down_proj", "act_fn")
        return (
            all(hasattr(decoder, n) for n in need)
            and len(decoder.layers) > 0
            and all(
                all(hasattr(layer, n) for n in layer_need)
                and all(hasattr(layer.self_attn, n) for n in attn_need)
                and all(hasattr(layer.mlp, n) for n in mlp_need)
                for layer in decoder.layers
            )
        )

    def __call__(self, tokens, mask, positions, slots, cache):
        """Logits (rows, vocab) of the next token: ``tokens``, ``positions`` (rotary) and
        ``slots`` (where in the cache this token's key and value go) one a row; ``mask``
        (rows, cache length) the prompt's padding mask, every later slot 1."""
        import torch
        import torch.nn.functional as F

        rows = tokens.shape[0]
        x = self.decoder.embed_tokens(tokens[:, None])  # (rows, 1, hidden)
        cos, sin = self.decoder.rotary_emb(x, positions[:, None])
        cos, sin = cos[:, None], sin[:, None]  # (rows, 1 head, 1 token, dim): all heads
        length = mask.shape[1]
        seen = torch.arange(length, device=mask.device)[None] <= slots[:, None]
        visible = (seen & mask.bool())[:, None, None, :]  # (rows, 1, 1 query, length)
        index = torch.arange(rows, device=tokens.device)
        for layer, cached in zip(self.decoder.layers, cache.layers, strict=True):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            if hasattr(attn, "qkv_proj"):
                q, k, v = attn.qkv_proj(h).split(
                    [attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features],
                    -1,
                )
            else:
                q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
            q = q.view(rows, 1, -1, self.head_dim).transpose(1, 2)  # (rows, heads, 1, dim)
            k = k.view(rows, 1, -1, self.head_dim).transpose(1, 2)
            v = v.view(rows, 1, -1, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cached.keys[index, :, slots] = k[:, :, 0]
            cached.values[index, :, slots] = v[:, :, 0]
            out = F.scaled_dot_product_attention(
                q,
                cached.keys,
                cached.values,
                attn_mask=visible,
                scale=self.scaling,
                enable_gqa=self.gqa,
            )
            x = x + attn.o_proj(out.transpose(1, 2).reshape(rows, 1, -1))
            h = layer.post_attention_layernorm(x)
            mlp = layer.mlp
            if hasattr(mlp, "gate_up_proj"):
                gate, up = mlp.gate_up_proj(h).chunk(2, -1)
            else:
                gate, up = mlp.gate_proj(h), mlp.up_proj(h)
            x = x + mlp.down_proj(mlp.act_fn(gate) * up)
        return self.head(self.decoder.norm(x)[:, -1])


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticGreedyDecoder:
    """Greedy decoding for one model; ``compile`` wraps the decoder step in
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs; CUDA only). ``step``: "ours"
    (:class:`LlamaStep`; an error where the model is not a Llama), "transformers" (the
    model's own forward), "auto" (ours where it fits)."""

    def __init__(
        self,
        model,
        *,
        compile: bool,
        max_batch: int = 1,
        check_every: int = 32,
        step: str = "auto",
    ) -> None:
        if step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
        self.model = model
        self.max_batch = max(1, int(max_batch))
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.check_every = max(1, int(check_every))
        self._caches: dict[int, Any] = {}
        self._store: list[tuple[Any, Any]] = []  # per layer: keys, values (max_batch rows)
        self._length = 0
        fits = LlamaStep.fits(self.decoder)
        if step == "ours" and not fits:
            raise ValueError(f"our decoding step is for Llama; this is {type(self.decoder)}")
        #: Which step decodes: "ours" (:class:`LlamaStep`) or "transformers".
        self.step_kind = "ours" if step != "transformers" and fits else "transformers"
        # A bound method, as the model's own step is: what torch.compile was run with on
        # the H100.
        eager = (
            LlamaStep(self.decoder, self.head).__call__
            if self.step_kind == "ours"
            else self._eager_step
        )
        self._step = eager
        if compile:
            import torch

            self._step = torch.compile(eager, mode="reduce-overhead", fullgraph=True, dynamic=False)

    def _eager_step(self, tokens, mask, positions, slots, cache):
        # transformers finds the slot from the cache itself (one for every row).
        hidden = self.decoder(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            use_cache=True,
            **{self._cache_kw: cache},
        ).last_hidden_state
        return self.head(hidden[:, -1])

    def _cache(self, batch: int, length: int) -> tuple[Any, int]:
        """The batch size's cache (the first ``batch`` rows of the storage), emptied, and
        its length. The storage is rebuilt longer when ``length`` does not fit (every
        batch size compiles again, once)."""
        if batch > self.max_batch:
            raise ValueError(f"batch of {batch} over the decoder's max_batch {self.max_batch}")
        if length > self._length:
            if self._length:
                log.info("decoder: cache grows to %d tokens (compiles again)", length)
            # Drop the old views and storage first: old and new never both hold the GPU.
            self._caches.clear()
            self._store = []
            self._store = self._allocate(length)
            self._length = length
        cache = self._caches.get(batch)
        if cache is None:
            cache = self._caches[batch] = self._view(batch)
        cache.reset()
        return cache, self._length

    def _allocate(self, length: int) -> list[tuple[Any, Any]]:
        from transformers import StaticCache

        config = self.model.config.get_text_config()
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        weight = self.head.weight
        full = StaticCache(config=self.model.config, max_cache_len=length)
        full.early_initialization(self.max_batch, heads, dim, weight.dtype, weight.device)
        return [(layer.keys, layer.values) for layer in full.layers]

    def _view(self, batch: int):
        """A cache of ``batch`` rows over the first rows of the storage. Each layer is
        initialised as transformers does (its own zeros, freed at once), then pointed at
        the shared rows, marked static as transformers marks its own."""
        import torch
        from transformers import StaticCache

        cache = StaticCache(config=self.model.config, max_cache_len=self._length)
        for layer, (keys, values) in zip(cache.layers, self._store, strict=True):
            shape = (batch, keys.shape[1], 0, keys.shape[3])
            layer.lazy_initialization(keys.new_zeros(shape), values.new_zeros(shape))
            layer.keys, layer.values = keys[:batch], values[:batch]
            torch._dynamo.mark_static_address(layer.keys)
            torch._dynamo.mark_static_address(layer.values)
        return cache

    def generate(
        self,
        inputs: dict[str, Any],
        *,
        max_new_tokens: int,
        eos_ids: list[int],
        pad_id: int,
        forced: bool,
        rows: int | None = None,
    ):
        """New tokens, (batch, steps) on the model's device: ``inputs`` is what the
        processor made (``input_ids``, ``attention_mask`` left-padded, pixel values).

        ``rows`` (at least the batch): the decoding step runs that many rows, the ones past
        the batch idle, so that a batch of 3 reuses the graphs compiled for 4 while only
        its 3 clips go through the vision tower and the prompt (an idle row costs its share
        of each step, not a clip's prefill)."""
        import torch

        ids, prompt_mask = inputs["input_ids"], inputs["attention_mask"]
        batch, prompt = ids.shape
        rows = batch if rows is None else int(rows)
        if rows < batch:
            raise ValueError(f"rows ({rows}) must be at least the batch ({batch})")
        if rows > batch and self.step_kind != "ours":
            # transformers' step reads where to write from its cache's own counters, which
            # the batch's prefill moved on another view: it takes no idle rows.
            raise ValueError("idle rows need our decoding step; pad the batch instead")
        # The step's rows first (emptied), then the batch's view of the same storage.
        step_cache, length = self._cache(rows, prompt + max_new_tokens)
        cache = step_cache if rows == batch else self._cache(batch, length)[0]
        mask = torch.ones((rows, length), dtype=prompt_mask.dtype, device=ids.device)
        mask[:batch, :prompt] = prompt_mask
        mask[batch:, 1:prompt] = 0  # an idle row sees its first slot: no row sees nothing
        positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        logits = self.model(
            input_ids=ids,
            attention_mask=mask[:batch],
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: cache},
            **extra,
        ).logits[:, -1]
        last = positions[:, -1]
        if rows > batch:
            logits = torch.cat([logits, logits.new_zeros((rows - batch, logits.shape[1]))])
            last = torch.cat([last, last.new_zeros(rows - batch)])
        slots = torch.full((rows,), prompt - 1, dtype=torch.long, device=ids.device)
        out = self._loop(
            logits, mask, last, slots, step_cache, max_new_tokens, eos_ids, pad_id, forced, batch
        )
        return out[:batch]

    def _loop(
        self, logits, mask, last_position, slots, cache, steps, eos_ids, pad_id, forced, live
    ):
        import torch

        device = logits.device
        eos = torch.tensor(eos_ids, device=device)
        out = torch.full((logits.shape[0], steps), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
        done[live:] = True  # idle rows: padding from the start, never waited for
        positions = last_position.clone()
        for step in range(steps):
            if forced:
                logits = logits.clone()
                logits[:, eos] = float("-inf")
            tokens = torch.where(done, pad_id, logits.argmax(-1))
            out[:, step] = tokens
            done |= torch.isin(tokens, eos)
            if step + 1 == steps:
                return out
            if not forced and (step + 1) % self.check_every == 0 and bool(done.all()):
                return out[:, : step + 1]
            positions += 1
            slots += 1
            logits = self._step(tokens, mask, positions, slots, cache)
        return out
