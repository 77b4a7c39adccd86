"""Generation against transformers' generate, batched left-padded prompts, stop strings, streaming."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate, generate_text
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig


@pytest.fixture(scope="module")
def pair(hf_gpt2):
    reference, directory = hf_gpt2
    return reference, attnlab.load_pretrained(directory)


def _hf_generate(reference, ids, mask=None, **kwargs):
    return reference.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids) if mask is None else mask, do_sample=False,
        pad_token_id=0, eos_token_id=None, **kwargs,
    )


def test_greedy_tokens_equal_transformers_generate(pair):
    reference, ours = pair
    ids = torch.randint(1, 101, (2, 7), generator=torch.Generator().manual_seed(0))
    expected = _hf_generate(reference, ids, max_new_tokens=25)
    got = generate(ours, ids, 25, temperature=0)
    assert torch.equal(got, expected)


def test_repetition_penalty_equals_transformers(pair):
    reference, ours = pair
    ids = torch.randint(1, 101, (1, 6), generator=torch.Generator().manual_seed(1))
    expected = _hf_generate(reference, ids, max_new_tokens=20, repetition_penalty=50.0)
    got = generate(ours, ids, 20, temperature=0, repetition_penalty=50.0)
    assert torch.equal(got, expected)
    assert not torch.equal(got, generate(ours, ids, 20, temperature=0))  # the penalty changed something


def test_left_padded_batch_equals_each_prompt_alone_and_transformers(pair):
    reference, ours = pair
    gen = torch.Generator().manual_seed(2)
    long, short = torch.randint(1, 101, (9,), generator=gen), torch.randint(1, 101, (4,), generator=gen)
    ids = torch.zeros(2, 9, dtype=torch.long)
    mask = torch.zeros(2, 9, dtype=torch.long)
    ids[0], mask[0] = long, 1
    ids[1, 5:], mask[1, 5:] = short, 1
    batched = generate(ours, ids, 12, attention_mask=mask, temperature=0)
    alone_long = generate(ours, long[None], 12, temperature=0)
    alone_short = generate(ours, short[None], 12, temperature=0)
    assert torch.equal(batched[0], alone_long[0])
    assert torch.equal(batched[1, 5:], alone_short[0])
    expected = _hf_generate(reference, ids, mask, max_new_tokens=12)
    assert torch.equal(batched[:, 9:], expected[:, 9:])


def test_sampling_is_seeded_and_differs_across_seeds(pair):
    _, ours = pair
    ids = torch.randint(1, 101, (1, 5), generator=torch.Generator().manual_seed(3))
    runs = [generate(ours, ids, 30, temperature=1.0, generator=torch.Generator().manual_seed(s))
            for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_all_padding_prompt_and_bad_penalty_are_clear_errors(pair):
    _, ours = pair
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(AttnlabError, match="all padding"):
        generate(ours, ids, 2, attention_mask=torch.tensor([[1, 1, 1], [0, 0, 0]]))
    with pytest.raises(AttnlabError, match="repetition_penalty"):
        generate(ours, ids, 2, repetition_penalty=0)


@pytest.fixture(scope="module")
def char_model():
    text = "hello world. " * 20
    tokenizer = Tokenizer.char_level(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=32)).eval()
    return model, tokenizer


def test_stop_strings_and_streaming(char_model):
    model, tokenizer = char_model
    full = generate_text(model, tokenizer, "hello", 40, temperature=0)
    assert len(full) == 40
    stop = full[10:12]
    pieces: list[str] = []
    text = generate_text(model, tokenizer, "hello", 40, temperature=0, stop=[stop], stream=pieces.append)
    assert text == full[: full.find(stop)]
    assert "".join(pieces) == text  # the stream never shows the stop string or beyond


def test_streaming_without_stop_shows_everything(char_model):
    model, tokenizer = char_model
    pieces: list[str] = []
    text = generate_text(model, tokenizer, "wor", 15, temperature=0, stream=pieces.append)
    assert "".join(pieces) == text and len(pieces) >= 2
