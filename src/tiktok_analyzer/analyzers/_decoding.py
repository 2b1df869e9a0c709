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

One cache per batch size, kept between calls and sized by the longest prompt so far plus
``max_new_tokens``: the compiled graphs depend on its shape, so a clip whose prompt fits
reuses them. Works with transformers 5.17 and later (the cache's keyword is
``past_key_values`` there, ``cache`` from 5.24).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)


class StaticGreedyDecoder:
    """Greedy decoding for one model; ``compile`` wraps the decoder step in
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs; CUDA only)."""

    def __init__(self, model, *, compile: bool, check_every: int = 32) -> None:
        self.model = model
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.check_every = max(1, int(check_every))
        self._caches: dict[int, tuple[Any, int]] = {}
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
        """The batch size's cache, emptied, and its length; rebuilt larger when ``length``
        does not fit."""
        from transformers import StaticCache

        cache, size = self._caches.get(batch, (None, 0))
        if cache is not None and size >= length:
            cache.reset()
            return cache, size
        if cache is not None:
            log.info(
                "decoder: cache for batch %d grows to %d tokens (compiles again)", batch, length
            )
        cache = StaticCache(config=self.model.config, max_cache_len=length)
        self._caches[batch] = (cache, length)
        return cache, length

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
