"""Wrong shapes, dtypes and values into every public model, generation and inspection
function: each is one AttnlabError naming the fix, never an error from deep in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate, generate_text, sample_next
from attnlab.inspect.report import inspect_text
from attnlab.inspect.values import value_report
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, BertModel
from attnlab.models.bert_heads import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from attnlab.models.config import BertConfig, GPTConfig
from attnlab.models.gpt_classifier import GPTForSequenceClassification

V, P = 50, 16  # vocabulary, positions
SMALL = dict(vocab_size=V, max_positions=P, n_layers=1, n_heads=2, d_model=16, d_ff=32)


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(**SMALL)).eval()


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    return BertModel(BertConfig(**SMALL)).eval()


IDS = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0))

BAD_IDS = [
    (IDS.float(), "integer token ids"),
    (IDS.bool(), "integer token ids"),
    (IDS.to(torch.int8), "integer token ids"),
    (IDS.to(torch.int16), "integer token ids"),
    (IDS.to(torch.uint8), "integer token ids"),
    (IDS[0], "unsqueeze"),
    (IDS[None], "shape \\(batch, seq\\)"),
    (IDS[:, :0], "empty"),
    (torch.full((1, 3), V), "outside the vocabulary"),
    (torch.full((1, 3), -1), "outside the vocabulary"),
    (torch.zeros(1, P + 1, dtype=torch.long), f"has {P}"),
    ([[1, 2, 3]], "torch.Tensor"),
    (np.array([[1, 2, 3]]), "torch.Tensor"),
]


@pytest.mark.parametrize("ids, message", BAD_IDS)
@pytest.mark.parametrize("which", ["gpt", "bert"])
def test_bad_input_ids(which, ids, message, request):
    model = request.getfixturevalue(which)
    with pytest.raises(AttnlabError, match=message):
        model(ids)


@pytest.mark.parametrize("mask, message", [
    (torch.ones(2, 4), "shape"),
    (torch.full((2, 5), 0.5), "whole numbers"),
    (torch.full((2, 5), 2), "\\[0, 2\\)"),
    ([[1] * 5] * 2, "torch.Tensor"),
])
def test_bad_attention_mask_to_bert(bert, mask, message):
    with pytest.raises(AttnlabError, match=message):
        bert(IDS, attention_mask=mask)


def test_gpt_attention_mask_of_wrong_shape(gpt):
    with pytest.raises(AttnlabError, match="attention_mask must have shape"):
        gpt(IDS, attention_mask=torch.ones(2, 4))


@pytest.mark.parametrize("types, message", [
    (torch.full((2, 5), 2), "token_type_ids must hold values in \\[0, 2\\)"),
    (torch.zeros(2, 4, dtype=torch.long), "shape"),
])
def test_bad_token_type_ids(bert, types, message):
    with pytest.raises(AttnlabError, match=message):
        bert(IDS, token_type_ids=types)


@pytest.mark.parametrize("labels, message", [
    (torch.full((2, 5), V), "class indices in \\[0, 50\\)"),
    (torch.full((2, 5), -5), "class indices"),
    (IDS.float(), "integer class indices"),
    (IDS[:, :4], "shape"),
])
def test_bad_lm_labels(gpt, labels, message):
    with pytest.raises(AttnlabError, match=message):
        gpt(IDS, labels=labels)


def test_ignored_label_positions_are_allowed(gpt):
    labels = IDS.clone()
    labels[:, :2] = -100
    assert torch.isfinite(gpt(IDS, labels=labels).loss)


@pytest.mark.parametrize("head, kwargs, message", [
    (BertForMaskedLM, {"labels": torch.full((2, 5), V)}, "class indices"),
    (BertForPreTraining, {"next_sentence_label": torch.tensor([0, 2])}, "next_sentence_label"),
    (BertForSequenceClassification, {"labels": torch.tensor([0, 7])}, "class indices in \\[0, 2\\)"),
    (BertForSequenceClassification, {"labels": torch.tensor([0.0, 1.0])}, "integer class indices"),
    (BertForSequenceClassification, {"labels": torch.tensor([0, 1, 1])}, "shape"),
    (BertForTokenClassification, {"labels": torch.full((2, 5), 9)}, "class indices"),
])
def test_bad_labels_into_bert_heads(head, kwargs, message):
    model = head(BertConfig(**SMALL)).eval()
    with pytest.raises(AttnlabError, match=message):
        model(IDS, **kwargs)


def test_bad_labels_into_the_gpt_classifier():
    model = GPTForSequenceClassification(GPTConfig(**SMALL), ["neg", "pos"]).eval()
    with pytest.raises(AttnlabError, match="class indices"):
        model(IDS, labels=torch.tensor([0, 5]))


@pytest.mark.parametrize("config, message", [
    (dict(SMALL, n_heads=3), "divisible"),
    (dict(SMALL, n_layers=0), "n_layers"),
    (dict(SMALL, d_model=-4), "d_model"),
    (dict(SMALL, max_positions=0), "max_positions"),
    (dict(SMALL, dropout=1.5), "dropout"),
    (dict(SMALL, vocab_size=0), "vocab_size"),
])
def test_bad_configs(config, message):
    with pytest.raises(AttnlabError, match=message):
        GPTConfig(**config)


# ----------------------------------------------------------------- generation
@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"top_k": 0}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"attention_mask": torch.ones(1, 4)}, "attention_mask"),
    ({"attention_mask": torch.zeros(1, 5)}, "all padding"),
])
def test_bad_generation_settings(gpt, kwargs, message):
    settings = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(AttnlabError, match=message):
        generate(gpt, IDS[:1], settings.pop("max_new_tokens"), **settings)


def test_generate_refuses_a_bert_and_a_list(gpt, bert):
    with pytest.raises(AttnlabError, match="causal language model"):
        generate(bert, IDS, 3)
    with pytest.raises(AttnlabError, match="torch.Tensor"):
        generate(gpt, [[1, 2, 3]], 3)


def test_generation_past_the_context_slides_the_window(gpt):
    """A prompt longer than the positions keeps its last ones; generation runs past the end."""
    long_prompt = torch.randint(0, V, (1, P + 4))
    out = generate(gpt, long_prompt, 2 * P, temperature=0)
    assert out.shape == (1, 3 * P + 4) and int(out.max()) < V


def test_a_temperature_that_overflows_is_greedy(gpt):
    greedy = generate(gpt, IDS[:1], 4, temperature=0)
    assert torch.equal(generate(gpt, IDS[:1], 4, temperature=1e-300), greedy)


def test_sample_next_checks_its_logits():
    with pytest.raises(AttnlabError, match="NaN logits"):
        sample_next(torch.full((1, 5), float("nan")))
    with pytest.raises(AttnlabError, match="\\(batch, vocab\\)"):
        sample_next(torch.randn(5))


# ----------------------------------------------------------------- text in, tokens out
@pytest.fixture(scope="module")
def char_model():
    tokenizer = Tokenizer.char_level("abcdefghij ")
    torch.manual_seed(0)
    return GPT(GPTConfig(**dict(SMALL, vocab_size=tokenizer.vocab_size))).eval(), tokenizer


def test_unknown_characters_are_named(char_model):
    model, tokenizer = char_model
    for call in (lambda: tokenizer.encode("abc xyz"), lambda: generate_text(model, tokenizer, "xyz", 2),
                 lambda: inspect_text(model, tokenizer, "xyz")):
        with pytest.raises(AttnlabError, match="'xyz' are not in this model's vocabulary"):
            call()


def test_byte_level_bpe_encodes_any_text():
    """No unknown tokens with byte-level BPE: every byte is in the vocabulary."""
    tokenizer = Tokenizer.train_bpe("plain ascii training text " * 20, vocab_size=300)
    for text in ["日本語 \u202e\x00\x07", "🙂" * 5, "mixed é and \ufffd replacement"]:
        ids = tokenizer.encode(text)
        assert ids and tokenizer.decode(ids) == text


def test_wordpiece_maps_unknown_words_to_unk():
    tokenizer = Tokenizer.train_wordpiece("the cat sat on the mat " * 30, vocab_size=100)
    ids = tokenizer.encode("日本")
    assert tokenizer.tokens(ids)[1:-1] == ["[UNK]"] * len(tokenizer.tokens(ids)[1:-1])


@pytest.mark.parametrize("text", [None, b"abc", 12])
def test_encode_needs_a_string(char_model, text):
    with pytest.raises(AttnlabError, match="encode takes a str"):
        char_model[1].encode(text)


def test_decode_refuses_negative_ids_and_skips_padded_rows(char_model):
    tokenizer = char_model[1]
    with pytest.raises(AttnlabError, match=">= 0"):
        tokenizer.decode([-1])
    assert tokenizer.decode([0, 10_000]) == tokenizer.decode([0])


def test_text_longer_than_the_model(char_model):
    model, tokenizer = char_model
    with pytest.raises(AttnlabError, match="--truncate"):
        inspect_text(model, tokenizer, "abc" * 10)
    cut = inspect_text(model, tokenizer, "abc" * 10, truncate=True)
    assert len(cut.source_ids) == P and cut.dropped == 30 - P
    with pytest.raises(AttnlabError, match="truncate input_ids to at most 16"):
        value_report(model, [0] * (P + 1), ["a"] * (P + 1), 0, 0)


@pytest.mark.parametrize("args, message", [
    (([0, 1], ["a", "b"], 1, 0), "--layer"),
    (([0, 1], ["a", "b"], 0, 2), "--head"),
    (([], [], 0, 0), "no tokens"),
    (([0, 1, 2], ["a"], 0, 0), "one per id"),
])
def test_bad_value_report_requests(char_model, args, message):
    with pytest.raises(AttnlabError, match=message):
        value_report(char_model[0], *args)


@pytest.mark.parametrize("penalty", [1e-320, 1e-30, 1e30, 1e308])
def test_an_extreme_repetition_penalty_still_samples(gpt, penalty):
    """Before: a penalty of 1e-320 overflowed the logits to inf and sampling failed in torch."""
    out = generate(gpt, IDS[:1], 4, repetition_penalty=penalty, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 9) and int(out.max()) < V
