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


class StaticGreedyDecoder:
    """Greedy decoding for one model; ``compile`` wraps the decoder step in
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs; CUDA only)."""

    def __init__(self, model, *, compile: bool, max_batch: int = 1, check_every: int = 32) -> None:
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
        self._step = self._eager_step
        if compile:
            import torch

            self._step = torch.compile(
                self._eager_step, mode="reduce-overhead", fullgraph=True, dynamic=False
            )

    def _eager_step(self, tokens, mask, positions, cache):
        hidden = self.decoder(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            use_cache=True,
            **{self._cache_kw: cache},
        ).last_hidden_state
        return self.head(hidden[:, -1])

    def _cache(self, batch: int, length: int) -> tuple[Any, int]:
        """The batch size's cache, emptied, and its length. The storage is rebuilt longer
        when ``length`` does not fit (every batch size compiles again, once)."""
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
    ):
        """New tokens, (batch, steps) on the model's device: ``inputs`` is what the
        processor made (``input_ids``, ``attention_mask`` left-padded, pixel values)."""
        import torch

        ids, prompt_mask = inputs["input_ids"], inputs["attention_mask"]
        batch, prompt = ids.shape
        cache, length = self._cache(batch, prompt + max_new_tokens)
        mask = torch.ones((batch, length), dtype=prompt_mask.dtype, device=ids.device)
        mask[:, :prompt] = prompt_mask
        positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: cache},
            **extra,
        ).logits[:, -1]
        return self._loop(
            logits, mask, positions[:, -1], cache, max_new_tokens, eos_ids, pad_id, forced
        )

    def _loop(self, logits, mask, last_position, cache, steps, eos_ids, pad_id, forced):
        import torch

        device = logits.device
        eos = torch.tensor(eos_ids, device=device)
        out = torch.full((logits.shape[0], steps), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
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
            logits = self._step(tokens, mask, positions, cache)
        return out
