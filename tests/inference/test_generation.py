"""Generation with the KV cache against naive loops that recompute the whole prefix every step."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate, sample_next

VOCAB, MAX_POSITIONS = 37, 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = attnlab.GPTConfig.from_preset("gpt-nano", vocab_size=VOCAB, max_positions=MAX_POSITIONS)
    return sharpened(attnlab.GPT(config).eval())


@torch.no_grad()
def sharpened(model):
    """GPT-2 init is small; larger weights make the logits, and so greedy choices, depend on the context."""
    for parameter in model.parameters():
        if parameter.dim() == 2:
            parameter.normal_(0, 0.3)
    return model


def prompt(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def naive_greedy(model, ids: torch.Tensor, new: int) -> torch.Tensor:
    """No cache: run the full context every step. When the context is full (max_positions),
    start again from its last max_positions // 2 tokens, as generate's sliding window does."""
    window = MAX_POSITIONS // 2
    context = min(ids.shape[1], MAX_POSITIONS)
    for _ in range(new):
        logits = model(ids[:, -context:]).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        context = window if context == MAX_POSITIONS else context + 1
    return ids


def test_greedy_equals_naive_uncached_loop(model):
    ids = prompt(3, 5)
    got = generate(model, ids, 10, temperature=0)
    assert got.shape == (3, 15)
    assert torch.equal(got[:, :5], ids)
    assert torch.equal(got, naive_greedy(model, ids, 10))
    # Not a constant: the continuation depends on the prompt.
    assert not torch.equal(got[0, 5:], got[1, 5:])


def test_greedy_with_a_one_dimensional_prompt(model):
    ids = prompt(1, 4, seed=2)
    got = generate(model, ids[0], 6, temperature=0)
    assert got.shape == (1, 10)
    assert torch.equal(got, naive_greedy(model, ids, 6))


@pytest.mark.parametrize("prompt_length", [5, 16, 23], ids=["short", "full", "longer-than-model"])
def test_generating_past_max_positions_slides_the_window(model, prompt_length):
    ids = prompt(2, prompt_length, seed=3)
    new = 3 * MAX_POSITIONS
    got = generate(model, ids, new, temperature=0)
    assert got.shape == (2, prompt_length + new)
    assert torch.equal(got[:, :prompt_length], ids)
    assert torch.equal(got, naive_greedy(model, ids, new))


@pytest.fixture(params=["gpt2", "llama"])
def either(request, model):
    """The GPT-2-layout model above, or a Llama-layout one (rotary positions, grouped-query attention)."""
    if request.param == "gpt2":
        return model
    torch.manual_seed(0)
    config = attnlab.GPTConfig(vocab_size=VOCAB, max_positions=MAX_POSITIONS, n_layers=2, n_heads=6,
                               n_kv_heads=2, d_model=48, d_ff=40, position="rope", norm="rmsnorm",
                               ffn="swiglu",
                               activation="silu", bias=False)
    return sharpened(attnlab.GPT(config).eval())


def test_model_generate_is_attnlab_generate_and_the_greedy_reference(either):
    """DESIGN.md: ``model.generate(...)`` is ``attnlab.generate(model, ...)``; greedy, both give the
    tokens of the naive loop that recomputes the whole prefix without a cache."""
    assert attnlab.generate is generate
    ids = prompt(2, 5, seed=12)
    expected = naive_greedy(either, ids, 9)
    assert torch.equal(either.generate(ids, 9, temperature=0), expected)
    assert torch.equal(attnlab.generate(either, ids, max_new_tokens=9, temperature=0), expected)
    assert not torch.equal(expected[0, 5:], expected[1, 5:])


def test_model_generate_samples_like_attnlab_generate(either):
    ids = prompt(2, 4, seed=13)
    settings = dict(temperature=1.3, top_k=10, top_p=0.9, eos_token_id=5, repetition_penalty=1.2)
    ours = either.generate(ids, 25, generator=torch.Generator().manual_seed(4), **settings)
    theirs = attnlab.generate(either, ids, 25, generator=torch.Generator().manual_seed(4), **settings)
    assert torch.equal(ours, theirs)


def test_left_padded_batch_equals_each_prompt_alone(either):
    """Cache with padding == no padding: each left-padded row continues as its prompt alone does."""
    short, long = prompt(1, 3, seed=14), prompt(1, 6, seed=15)
    ids = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1), long])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    new = MAX_POSITIONS - 6  # up to the end of the context (past it, the window counts padded slots)
    batched = generate(either, ids, new, attention_mask=mask, temperature=0)
    assert torch.equal(batched[0, 3:], naive_greedy(either, short, new)[0])
    assert torch.equal(batched[1], naive_greedy(either, long, new)[0])


def test_zero_new_tokens_returns_the_prompt(model):
    ids = prompt(2, 5)
    assert torch.equal(generate(model, ids, 0), ids)


def test_top_k_1_equals_greedy(model):
    ids = prompt(2, 6, seed=4)
    greedy = generate(model, ids, 12, temperature=0)
    got = generate(model, ids, 12, temperature=1.3, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, greedy)


def test_tiny_top_p_equals_greedy(model):
    ids = prompt(2, 6, seed=5)
    greedy = generate(model, ids, 12, temperature=0)
    got = generate(model, ids, 12, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, greedy)


def test_seeded_sampling_is_reproducible(model):
    ids = prompt(2, 4, seed=6)

    def sample(seed):
        return generate(model, ids, 20, temperature=1.5, top_k=20, top_p=0.95,
                        generator=torch.Generator().manual_seed(seed))

    first = sample(7)
    assert torch.equal(first, sample(7))
    assert not torch.equal(first, sample(8))
    assert not torch.equal(first, generate(model, ids, 20, temperature=0))
    torch.manual_seed(9)  # the global generator works as well
    again = generate(model, ids, 20)
    torch.manual_seed(9)
    assert torch.equal(again, generate(model, ids, 20))


def test_eos_stops_early_and_pads_finished_rows(model):
    ids = prompt(2, 5, seed=10)
    greedy = generate(model, ids, 12, temperature=0)[:, 5:]
    # eos = the token row 0 produces at its 4th step, first appearing there.
    step = next(i for i in range(3, 12) if greedy[0, i] not in greedy[0, :i])
    eos = int(greedy[0, step])

    def first(row):
        hits = (greedy[row] == eos).nonzero()
        return int(hits[0]) if len(hits) else None

    ends = [first(0), first(1)]
    stop = 12 if None in ends else max(ends) + 1
    expected = greedy[:, :stop].clone()
    for row, end in enumerate(ends):
        if end is not None:
            expected[row, end:] = eos
    got = generate(model, ids, 12, temperature=0, eos_token_id=eos)
    assert got.shape[1] == 5 + stop
    assert torch.equal(got[:, 5:], expected)
    # A single sequence stops right after its eos.
    single = generate(model, ids[:1], 12, temperature=0, eos_token_id=eos)
    assert torch.equal(single[0, 5:], greedy[0, : step + 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0. Got -1"),
        (dict(max_new_tokens=2.0), "max_new_tokens must be an int >= 0. Got 2.0"),
        (dict(temperature=-0.5), r"temperature must be a finite float >= 0 \(0 = greedy\). Got -0.5"),
        (dict(top_k=0), "top_k must be an int >= 1. Got 0"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]. Got 0.0"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]. Got 1.5"),
    ],
)
def test_bad_arguments_raise(model, kwargs, message):
    arguments = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(AttnlabError, match=message):
        generate(model, prompt(1, 3), **arguments)


@pytest.mark.parametrize("kwargs", [dict(top_k=2.5), dict(temperature=float("nan"))], ids=["top_k", "nan"])
def test_non_integer_top_k_and_nan_temperature_raise_attnlab_error(model, kwargs):
    with pytest.raises(AttnlabError):
        generate(model, prompt(1, 3), 3, **kwargs)


# ----------------------------------------------------------------------------- sample_next
def test_sample_next_temperature_zero_is_argmax():
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(11))
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


def test_greedy_pick_is_argmax_on_every_layout():
    """fp32 rows (the C pick), a transposed view and bf16 (torch's): torch.argmax's first maximum."""
    logits = torch.randint(-2, 2, (4, 49152), generator=torch.Generator().manual_seed(3)).float()
    logits[3] = float("-inf")
    for rows in (logits, logits.t().contiguous().t(), logits.bfloat16()):
        assert torch.equal(sample_next(rows, temperature=0), rows.argmax(-1))


@pytest.mark.parametrize("temperature", [0, 0.7])
def test_sample_next_refuses_nan_logits_anywhere(temperature):
    """Greedy checks only the picked logits (argmax picks a NaN), sampling checks them all."""
    for where in (0, 17, 39):
        logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(where))
        logits[1, where] = float("nan")
        logits[2, 5] = float("inf")
        with pytest.raises(AttnlabError, match="NaN logits"):
            sample_next(logits, temperature=temperature)


def test_sample_next_top_k_never_leaves_the_top_k():
    generator = torch.Generator().manual_seed(12)
    rows = torch.randn(3, 50, generator=generator) * 0.3  # flat: outside tokens would be likely
    n = 4000
    logits = rows.repeat_interleave(n, dim=0)  # (3 n, V)
    samples = sample_next(logits, top_k=5, generator=generator).view(3, n)
    top = torch.topk(rows, 5, dim=-1).indices
    for row in range(3):
        counts = torch.bincount(samples[row], minlength=50).double()
        assert counts[top[row]].sum().item() == n  # nothing outside the top 5
        # ...and within the top 5, the renormalised softmax.
        expected = torch.softmax(rows[row, top[row]].double(), -1)
        assert (counts[top[row]] / n - expected).abs().max().item() < 0.03
        assert (counts[top[row]] > 0).all()


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (0.45, {1: 1.0}),  # the most likely token alone already reaches p
        (0.75, {1: 0.5 / 0.8, 3: 0.3 / 0.8}),  # 0.5 < 0.75 <= 0.5 + 0.3
        (0.85, {1: 0.5 / 0.95, 3: 0.3 / 0.95, 2: 0.15 / 0.95}),
    ],
)
def test_sample_next_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    n = 4000
    logits = probs.log().repeat(n, 1)
    samples = sample_next(logits, top_p=top_p, generator=torch.Generator().manual_seed(13))
    shares = torch.bincount(samples, minlength=4).double() / n
    for token in range(4):
        assert abs(shares[token].item() - kept.get(token, 0.0)) < 0.03, token
    assert set(samples.unique().tolist()) == set(kept)


def test_sample_next_temperature_flattens_and_sharpens():
    logits = torch.tensor([[2.0, 0.0, -1.0]]).repeat(4000, 1)

    def share_of_best(temperature):
        samples = sample_next(logits, temperature=temperature, generator=torch.Generator().manual_seed(14))
        return (samples == 0).double().mean().item()

    expected = torch.softmax(torch.tensor([2.0, 0.0, -1.0]) / 2.0, -1)[0].item()
    assert abs(share_of_best(2.0) - expected) < 0.03
    assert share_of_best(0.25) > 0.99 > share_of_best(1.0) > share_of_best(2.0)


def test_generate_text_reports_counts_timings_and_why_it_stopped():
    from attnlab.inference.generation import GenerationReport, generate_text
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig

    tokenizer = Tokenizer.char_level("abcdefgh \n")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=32)).eval()
    report = GenerationReport()
    text = generate_text(gpt, tokenizer, "abc", 6, temperature=0, report=report)
    assert (report.prompt_tokens, report.new_tokens, report.stopped_by) == (3, 6, "max_new_tokens")
    assert len(text) == 6  # one character a token
    assert 0 < report.first_token_s <= report.total_s and report.tokens_per_s > 0
    # A stop string met at the first token, and end-of-text as the first token: one token each.
    first = tokenizer.encode(text[0])[0]
    for kwargs, reason in (({"stop": [text[0]]}, "stop"), ({"eos_token_id": first}, "eos")):
        report = GenerationReport()
        generate_text(gpt, tokenizer, "abc", 6, temperature=0, report=report, **kwargs)
        assert (report.new_tokens, report.stopped_by) == (1, reason)
        assert report.tokens_per_s != report.tokens_per_s  # nan: no decoding after the first token
