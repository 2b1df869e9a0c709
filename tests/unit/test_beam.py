"""Our beam search and timestamp rules (analyzers/_beam) against openai-whisper's own, on
the CPU: random logits with ties and end-of-text among the candidates, several steps,
the same tokens, sums, finished sequences, cache reorderings and logits, to the bit."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

from whisper.decoding import (  # noqa: E402
    ApplyTimestampRules,
    BeamSearchDecoder,
    DecodingOptions,
    DecodingTask,
    GreedyDecoder,
    PyTorchInference,
    SuppressTokens,
)

from tiktok_analyzer.analyzers._beam import (  # noqa: E402
    BeamSearch,
    Inference,
    SuppressTokensOnDevice,
    TimestampRules,
    install,
)

from .speech_clips import random_whisper  # noqa: E402

VOCAB, EOT = 24, 5


class _Inference:
    """Records the cache reorderings a decoder asks for."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def rearrange_kv_cache(self, source_indices) -> None:
        self.calls.append(list(source_indices))


def _logits(rng: np.random.Generator, rows: int) -> torch.Tensor:
    """Logits on a coarse grid (ties within and across rows), end-of-text often among the
    best, a few tokens suppressed."""
    logits = rng.integers(-4, 5, (rows, VOCAB)).astype(np.float32) / 2
    logits[:, EOT] += rng.choice([0.0, 2.0, 4.0], rows)
    logits[rng.random((rows, VOCAB)) < 0.1] = -np.inf
    logits[:, 0] = 0.0  # one finite token a row at least
    return torch.from_numpy(logits)


def _finished(decoder) -> list[list[tuple]]:
    return [list(d.items()) for d in decoder.finished_sequences]


def _run_both(seed: int, n_audio: int, beam_size: int, patience, same_prefix: bool):
    rng = np.random.default_rng(seed)
    rows = n_audio * beam_size
    if same_prefix:  # as DecodingTask: every beam starts from the window's prompt
        tokens = torch.tensor([[1, 2, 3]]).repeat(rows, 1)
    else:
        tokens = torch.from_numpy(rng.integers(6, VOCAB, (rows, 3)))
    ours = BeamSearch(beam_size, EOT, _Inference(), patience)
    theirs = BeamSearchDecoder(beam_size, EOT, _Inference(), patience)
    ours.reset()
    theirs.reset()
    ours_tokens, theirs_tokens = tokens.clone(), tokens.clone()
    ours_sums, theirs_sums = torch.zeros(rows), torch.zeros(rows)
    steps = 0
    for step in range(12):
        logits = _logits(rng, rows).requires_grad_(step == 0)
        if step % 3 == 2:  # a caller's own tokens: read back, not taken from the last step
            ours_tokens, theirs_tokens = ours_tokens.clone(), theirs_tokens.clone()
            ours_tokens[:, 0] = theirs_tokens[:, 0] = step
        ours_tokens, ours_done = ours.update(ours_tokens, logits.clone(), ours_sums)
        theirs_tokens, theirs_done = theirs.update(theirs_tokens, logits.clone(), theirs_sums)
        steps += 1
        assert ours_tokens.dtype == theirs_tokens.dtype
        assert torch.equal(ours_tokens, theirs_tokens)
        assert torch.equal(ours_sums, theirs_sums)  # bit for bit
        assert not ours_sums.requires_grad
        assert ours.inference.calls == theirs.inference.calls
        assert _finished(ours) == _finished(theirs)
        assert ours_done == theirs_done
        if ours_done:
            break
    shape = (n_audio, beam_size, -1)
    ours_final = ours.finalize(ours_tokens.reshape(shape), ours_sums.reshape(n_audio, -1))
    theirs_final = theirs.finalize(theirs_tokens.reshape(shape), theirs_sums.reshape(n_audio, -1))
    assert [[t.tolist() for t in s] for s in ours_final[0]] == [
        [t.tolist() for t in s] for s in theirs_final[0]
    ]
    assert ours_final[1] == theirs_final[1]
    return steps, sum(map(len, theirs.finished_sequences))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_audio", [1, 2, 3, 4])
@pytest.mark.parametrize("beam_size", [1, 2, 3, 4, 5])
def test_beam_search_equals_openai_whisper(seed, n_audio, beam_size):
    for patience, same_prefix in itertools.product([None, 2.0], [True, False]):
        _run_both(seed * 7 + n_audio, n_audio, beam_size, patience, same_prefix)


def test_the_random_cases_finish_sequences_and_step_on():
    """The cases above do what they are meant to: sequences end on end-of-text, and the
    search runs several steps."""
    found = [_run_both(seed, 3, 5, None, False) for seed in range(4)]
    assert all(finished > 0 for _, finished in found)
    assert max(steps for steps, _ in found) >= 3


# ---------------------------------------------------------------------------------------
# Timestamp rules

_SMALL = SimpleNamespace(eot=10, no_timestamps=12, timestamp_begin=15)
_VOCAB_SMALL = 40


def _history(rng, rows: int, sample_begin: int, sampled: int, begin: int, vocab: int, p: float):
    prompt = rng.integers(0, begin, (rows, sample_begin))
    text = rng.integers(0, min(begin, 200), (rows, sampled))
    stamps = rng.integers(begin, vocab, (rows, sampled))
    pick = rng.random((rows, sampled)) < p
    return torch.from_numpy(np.concatenate([prompt, np.where(pick, stamps, text)], axis=1))


def _timestamp_case(tokenizer, vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 16))
    sample_begin = int(rng.integers(1, 5))
    sampled = int(rng.integers(0, 7))
    p = float(rng.choice([0.0, 0.3, 0.7, 1.0]))
    tokens = _history(rng, rows, sample_begin, sampled, tokenizer.timestamp_begin, vocab, p)
    logits = rng.normal(0.0, 2.0, (rows, vocab)).astype(np.float32)
    # Timestamps sometimes more likely than any text, sometimes not.
    logits[:, tokenizer.timestamp_begin :] += rng.normal(0.0, 3.0, (rows, 1)).astype(np.float32)
    max_initial = rng.choice([None, 0, 3, 50])
    return tokens, torch.from_numpy(logits), sample_begin, max_initial


@pytest.mark.parametrize("seed", range(200))
def test_timestamp_rules_equal_openai_whisper(seed):
    tokens, logits, sample_begin, max_initial = _timestamp_case(_SMALL, _VOCAB_SMALL, seed)
    theirs, ours = logits.clone(), logits.clone()
    ApplyTimestampRules(_SMALL, sample_begin, max_initial).apply(theirs, tokens)
    TimestampRules(_SMALL, sample_begin, max_initial).apply(ours, tokens)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("seed", range(6))
def test_timestamp_rules_equal_openai_whisper_on_its_vocabulary(seed):
    tokenizer = whisper.tokenizer.get_tokenizer(True, num_languages=100, language="en")
    vocab = 51866
    tokens, logits, sample_begin, max_initial = _timestamp_case(tokenizer, vocab, seed)
    theirs, ours = logits.clone(), logits.clone()
    ApplyTimestampRules(tokenizer, sample_begin, max_initial).apply(theirs, tokens)
    TimestampRules(tokenizer, sample_begin, max_initial).apply(ours, tokens)
    assert torch.equal(ours, theirs)


def test_the_timestamp_cases_cover_the_rules():
    """Each rule masks something in some of the random cases above."""
    hit = dict.fromkeys(("pairs", "text_after_one", "decrease", "begin", "final"), False)
    b = _SMALL.timestamp_begin
    for seed in range(200):
        tokens, logits, sample_begin, max_initial = _timestamp_case(_SMALL, _VOCAB_SMALL, seed)
        out = logits.clone()
        ApplyTimestampRules(_SMALL, sample_begin, max_initial).apply(out, tokens)
        masked = torch.isinf(out)
        sampled = tokens[:, sample_begin:]
        for k in range(len(tokens)):
            if sampled.shape[1] >= 2 and (sampled[k, -2:] >= b).all():
                hit["pairs"] |= bool(masked[k, b:].all())
            if sampled.shape[1] >= 2 and sampled[k, -1] >= b > sampled[k, -2]:
                hit["text_after_one"] |= bool(masked[k, : _SMALL.eot].all())
            if (sampled[k] >= b).any() and not (sampled[k, -1] >= b):
                hit["decrease"] |= bool(masked[k, b].item() and not masked[k, -1].item())
            if sampled.shape[1] == 0:
                hit["begin"] |= bool(masked[k, :b].all())
            else:
                hit["final"] |= bool(masked[k, : _SMALL.eot].all())
    assert all(hit.values()), hit


# ---------------------------------------------------------------------------------------
# In a DecodingTask


def test_install_keeps_the_arguments_and_leaves_greedy_alone():
    model, _ = random_whisper(1.0)
    options = DecodingOptions(language="en", beam_size=4, patience=1.5, fp16=False)
    task = DecodingTask(model, options)
    old_decoder = task.decoder
    (old_rules,) = [f for f in task.logit_filters if isinstance(f, ApplyTimestampRules)]
    others = [f for f in task.logit_filters if not isinstance(f, ApplyTimestampRules)]
    install(task)
    decoder = task.decoder
    assert isinstance(decoder, BeamSearch)
    assert (decoder.beam_size, decoder.eot, decoder.patience, decoder.max_candidates) == (
        4,
        old_decoder.eot,
        1.5,
        6,
    )
    assert type(task.inference) is Inference and decoder.inference is task.inference
    assert task.inference.initial_token_length == len(task.initial_tokens)
    (rules,) = [f for f in task.logit_filters if isinstance(f, ApplyTimestampRules)]
    assert isinstance(rules, TimestampRules)
    assert (rules.tokenizer, rules.sample_begin, rules.max_initial_timestamp_index) == (
        old_rules.tokenizer,
        old_rules.sample_begin,
        old_rules.max_initial_timestamp_index,
    )
    assert task.logit_filters.index(rules) == len(task.logit_filters) - 1
    (old_suppress,) = [f for f in others if isinstance(f, SuppressTokens)]
    (suppress,) = [f for f in task.logit_filters if isinstance(f, SuppressTokens)]
    assert isinstance(suppress, SuppressTokensOnDevice)
    assert suppress.suppress_tokens == old_suppress.suppress_tokens
    assert [type(f) for f in task.logit_filters] == [
        type(f) for f in [*others[:-1], suppress, rules]
    ]

    greedy = DecodingTask(model, DecodingOptions(language="en", fp16=False))
    install(greedy)
    assert type(greedy.decoder) is GreedyDecoder


@pytest.mark.parametrize(
    "options",
    [
        {"beam_size": 5},
        {"beam_size": 3, "patience": 2.0},
        {"beam_size": 2, "max_initial_timestamp": 0.2},
        {"beam_size": 4, "without_timestamps": True},
    ],
)
def test_a_decoding_task_gives_what_openai_whisper_gives(options):
    """A whole decode of a tiny random model: the same tokens and scores, exactly."""
    model, _ = random_whisper(1.0)
    torch.manual_seed(5)
    mel = torch.randn(1, 128, 3000)
    options = DecodingOptions(language="en", fp16=False, sample_len=24, **options)
    (theirs,) = DecodingTask(model, options).run(mel)
    task = DecodingTask(model, options)
    install(task)
    (ours,) = task.run(mel)
    assert ours.tokens == theirs.tokens
    assert ours.avg_logprob == theirs.avg_logprob
    assert ours.no_speech_prob == theirs.no_speech_prob


def test_suppress_tokens_equal_openai_whisper():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0.0, 1.0, (7, 50)).astype(np.float32))
    suppress = [3, 9, 9, 17, 49]
    theirs, ours = logits.clone(), logits.clone()
    SuppressTokens(suppress).apply(theirs, None)
    on_device = SuppressTokensOnDevice(suppress)
    on_device.apply(ours, None)
    on_device.apply(ours, None)  # the second step reuses its tensor
    assert torch.equal(ours, theirs)


def test_the_cache_reordering_equals_openai_whisper():
    model, _ = random_whisper(1.0)
    torch.manual_seed(0)
    tokens = torch.randint(0, 50000, (4, 3))
    step = torch.cat([tokens, torch.tensor([[7], [8], [9], [10]])], dim=1)

    def run(make):
        """The caches after each reordering, and the next step's logits from them (one
        inference at a time: both would hook the same model)."""
        inference = make(model, 3)
        caches = []
        with torch.no_grad():
            audio = model.encoder(
                torch.randn(1, 128, 3000, generator=torch.Generator().manual_seed(1))
            )
            inference.logits(tokens, audio)
            for order in ([0, 1, 2, 3], [3, 3, 0, 1], [2, 0, 1, 1]):
                inference.rearrange_kv_cache(order)
                caches.append([inference.kv_cache[m] for m in inference.kv_modules])
            logits = inference.logits(step, audio)
        inference.cleanup_caching()
        return caches, logits

    theirs, ours = run(PyTorchInference), run(Inference)
    for their_step, our_step in zip(theirs[0], ours[0], strict=True):
        assert all(map(torch.equal, our_step, their_step))
    assert torch.equal(ours[1], theirs[1])
