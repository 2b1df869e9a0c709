"""openai-whisper's beam search and timestamp rules, reading the GPU once a step.

On the GPU host the speech model shares the card with about ten other CUDA processes, and
the card runs them in turns. Each time the host waits for a result (``.item()``,
``.tolist()``, a copy from host memory without ``non_blocking``) it waits for the other
processes' turns too. openai-whisper's ``BeamSearchDecoder.update`` waits about 13 times a
row a step, and its ``ApplyTimestampRules`` several times a row: 5 beams of 3 windows took
about 100 ms a step on an H100 whose kernels need a few.

:class:`BeamSearch` ranks the candidates as openai-whisper does, in plain Python, on one
read of the device a step: every row's top ``beam_size + 1`` tokens and their summed log
probabilities, computed on the device in the dtype openai-whisper adds them in (so the
scores are the same floats and ties break the same way). The token prefixes stay on the
host from one step to the next. The new tokens and sums are gathered on the device from
indices sent with a non-blocking copy. :class:`TimestampRules` applies openai-whisper's
timestamp rules to every row at once on the device, with no read at all.

Indexing a GPU tensor with a Python list waits too: torch copies the list to the GPU and
waits for the copy. openai-whisper does it in its cache reordering (twice a decoder layer a
step) and in ``SuppressTokens`` (once a step). :class:`Inference` and
:class:`SuppressTokensOnDevice` send those indices with a non-blocking copy instead.

:func:`install` puts them all into a ``DecodingTask``. Tested on a CPU against
openai-whisper's classes on random inputs: the same tokens, sums, finished sequences and
cache reorderings, the same logits. On a GPU, where a kernel may take another path for
all rows at once than for one row, two differences are possible, both at near-ties:
``topk`` may order exactly equal log probabilities differently, and the timestamps' summed
probability may differ in its last bit, which matters only where it equals the best text
token's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from whisper.decoding import (
    ApplyTimestampRules,
    BeamSearchDecoder,
    DecodingTask,
    PyTorchInference,
    SuppressTokens,
)


def _to_device(values: list[int], device: torch.device) -> Tensor:
    """``values`` as an int64 tensor on ``device``, without waiting for the device: a CUDA
    copy comes from pinned memory, which torch keeps until the copy is done."""
    host = torch.tensor(values, dtype=torch.long)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


class BeamSearch(BeamSearchDecoder):
    """``BeamSearchDecoder`` with the same results, one read of the device a step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tokens: Tensor | None = None  # what the last update returned
        self._prefixes: list[tuple[int, ...]] = []  # its rows, on the host

    def reset(self) -> None:
        super().reset()
        self._tokens, self._prefixes = None, []

    @torch.no_grad()  # openai-whisper writes the sums as numbers: no autograd history
    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        if tokens.shape[0] % self.beam_size != 0:
            raise ValueError(f"{tokens.shape}[0] % {self.beam_size} != 0")

        n_audio = tokens.shape[0] // self.beam_size
        if self.finished_sequences is None:  # for the first update
            self.finished_sequences = [{} for _ in range(n_audio)]

        k = self.beam_size + 1
        logprobs = F.log_softmax(logits.float(), dim=-1)
        top, top_tokens = logprobs.topk(k)
        # openai-whisper adds sum_logprobs[idx] + logprob one pair at a time: the same dtype
        # promotion, so the same floats.
        candidates = sum_logprobs[:, None] + top
        # The one read: scores and tokens as float64 (exact for float32 and token ids),
        # and the prefixes unless they are still on the host.
        known = tokens is self._tokens and len(self._prefixes) == len(tokens)
        parts = [candidates.double(), top_tokens.double()]
        if not known:
            parts.append(tokens.double())
        host = torch.cat(parts, dim=1).tolist()
        if known:
            prefixes = self._prefixes
        else:
            prefixes = [tuple(int(t) for t in row[2 * k :]) for row in host]

        next_tokens, source_indices, finished_sequences = [], [], []
        picked = []  # where each kept sequence's score and token sit in `candidates`
        for i in range(n_audio):
            scores, where, finished = {}, {}, {}

            # STEP 1: calculate the cumulative log probabilities for possible candidates
            for j in range(self.beam_size):
                idx = i * self.beam_size + j
                prefix, row = prefixes[idx], host[idx]
                for c in range(k):
                    sequence = (*prefix, int(row[k + c]))
                    scores[sequence] = row[c]
                    where[sequence] = idx * k + c  # its source row is where // k

            # STEP 2: rank the candidates and keep the top beam_size sequences for each audio
            saved = 0
            for sequence in sorted(scores, key=scores.get, reverse=True):
                if sequence[-1] == self.eot:
                    finished[sequence] = scores[sequence]
                else:
                    next_tokens.append(sequence)
                    source_indices.append(where[sequence] // k)
                    picked.append(where[sequence])

                    saved += 1
                    if saved == self.beam_size:
                        break

            finished_sequences.append(finished)

        # Every audio keeps beam_size sequences (at most one of a prefix's beam_size + 1
        # candidates is end-of-text): n is the number of rows.
        n = len(next_tokens)
        index = _to_device(source_indices + picked, tokens.device)
        rows, picked_at = index[:n], index[n:]
        new_tokens = top_tokens.reshape(-1)[picked_at]
        tokens = torch.cat([tokens[rows].long(), new_tokens[:, None]], dim=1)
        # As openai-whisper: the first n rows get the kept sequences' sums.
        sum_logprobs[:n] = candidates.reshape(-1)[picked_at]
        self._tokens, self._prefixes = tokens, next_tokens
        self.inference.rearrange_kv_cache(source_indices)

        # add newly finished sequences to self.finished_sequences
        assert len(self.finished_sequences) == len(finished_sequences)
        for previously_finished, newly_finished in zip(
            self.finished_sequences, finished_sequences, strict=True
        ):
            for seq in sorted(newly_finished, key=newly_finished.get, reverse=True):
                if len(previously_finished) >= self.max_candidates:
                    break  # the candidate list is full
                previously_finished[seq] = newly_finished[seq]

        # mark as completed if all audio has enough number of samples
        completed = all(
            len(sequences) >= self.max_candidates for sequences in self.finished_sequences
        )
        return tokens, completed

    def finalize(self, preceding_tokens: Tensor, sum_logprobs: Tensor):
        # openai-whisper reads the tokens a row at a time: read them all at once.
        return super().finalize(preceding_tokens.cpu(), sum_logprobs)


class TimestampRules(ApplyTimestampRules):
    """``ApplyTimestampRules`` on every row at once, on the device: the same logits, and
    no read of the device."""

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        tokenizer = self.tokenizer
        begin, eot = tokenizer.timestamp_begin, tokenizer.eot
        # suppress <|notimestamps|> which is handled by without_timestamps
        if tokenizer.no_timestamps is not None:
            logits[:, tokenizer.no_timestamps] = -torch.inf

        sampled = tokens[:, self.sample_begin :]
        if sampled.shape[1] >= 1:
            is_timestamp = sampled >= begin
            last = is_timestamp[:, -1]
            if sampled.shape[1] >= 2:
                penultimate = is_timestamp[:, -2]
            else:
                penultimate = torch.ones_like(last)
            # timestamps have to appear in pairs, except directly before EOT
            logits[:, begin:].masked_fill_((last & penultimate)[:, None], -torch.inf)
            logits[:, :eot].masked_fill_((last & ~penultimate)[:, None], -torch.inf)

            # timestamps shouldn't decrease; forbid timestamp tokens smaller than the last
            # also force each segment to have a nonzero length, to prevent infinite looping
            positions = torch.arange(sampled.shape[1], device=sampled.device)
            at = torch.where(is_timestamp, positions, -1).amax(dim=1)
            latest = sampled.gather(1, at.clamp(min=0)[:, None])[:, 0]
            bound = torch.where(last & ~penultimate, latest, latest + 1)
            columns = torch.arange(begin, logits.shape[1], device=logits.device)
            forbid = (at >= 0)[:, None] & (columns[None, :] < bound[:, None])
            logits[:, begin:].masked_fill_(forbid, -torch.inf)

        if tokens.shape[1] == self.sample_begin:
            # suppress generating non-timestamp tokens at the beginning
            logits[:, :begin] = -torch.inf

            # apply the `max_initial_timestamp` option
            if self.max_initial_timestamp_index is not None:
                last_allowed = begin + self.max_initial_timestamp_index
                logits[:, last_allowed + 1 :] = -torch.inf

        # if sum of probability over timestamps is above any other token, sample timestamp
        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, begin:].logsumexp(dim=-1)
        max_text_token_logprob = logprobs[:, :begin].max(dim=-1).values
        logits[:, :begin].masked_fill_(
            (timestamp_logprob > max_text_token_logprob)[:, None], -torch.inf
        )


class Inference(PyTorchInference):
    """``PyTorchInference`` whose cache reordering sends the rows to the device once, with
    a non-blocking copy. openai-whisper indexes every cached key and value with a Python
    list, and torch copies such a list to the GPU and waits for it: two waits a decoder
    layer a step (64 for large-v3)."""

    def rearrange_kv_cache(self, source_indices) -> None:
        if source_indices != list(range(len(source_indices))):
            index = None
            for module in self.kv_modules:
                cached = self.kv_cache[module]
                if index is None:
                    index = _to_device(list(source_indices), cached.device)
                # update the key/value cache to contain the selected sequences
                self.kv_cache[module] = cached[index].detach()


class SuppressTokensOnDevice(SuppressTokens):
    """``SuppressTokens`` with its tokens kept on the device: indexing with the Python list
    copies it to the GPU and waits for it, every step."""

    def __init__(self, suppress_tokens) -> None:
        super().__init__(suppress_tokens)
        self._index: Tensor | None = None

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        if self._index is None or self._index.device != logits.device:
            self._index = _to_device(self.suppress_tokens, logits.device)
        logits[:, self._index] = -torch.inf


def install(task: DecodingTask) -> None:
    """Put :class:`BeamSearch` (where the task searches beams), :class:`TimestampRules`,
    :class:`SuppressTokensOnDevice` and :class:`Inference` into ``task``, each with the
    arguments of what it replaces."""
    if type(task.inference) is PyTorchInference:
        task.inference = Inference(task.inference.model, task.inference.initial_token_length)
    decoder = task.decoder
    if isinstance(decoder, BeamSearchDecoder):
        task.decoder = BeamSearch(decoder.beam_size, decoder.eot, task.inference, decoder.patience)
    filters = []
    for f in task.logit_filters:
        if isinstance(f, ApplyTimestampRules):
            f = TimestampRules(f.tokenizer, f.sample_begin, f.max_initial_timestamp_index)
        elif isinstance(f, SuppressTokens):
            f = SuppressTokensOnDevice(f.suppress_tokens)
        filters.append(f)
    task.logit_filters = filters
