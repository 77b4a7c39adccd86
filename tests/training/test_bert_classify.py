"""Sequence classification inputs and pooling: long texts cut with [SEP] kept, [CLS] vs mean pooling."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForSequenceClassification
from attnlab.training.bert_classify import (
    encode_texts,
    features,
    majority_baseline,
    sentence_logits,
)
from attnlab.training.bert_finetune import collate, special_ids

CORPUS = "a very good day . a very bad day . the food was fine\n" * 30


@pytest.fixture(scope="module")
def setup():
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=100)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        max_positions=64,
        n_layers=1,
        n_heads=2,
        d_model=16,
        d_ff=20,
        labels=("neg", "pos"),
    )
    return tokenizer, config, special_ids(tokenizer, config)


def test_texts_over_the_limit_are_cut_keeping_sep(setup):
    tokenizer, _, ids = setup
    rows, cut = encode_texts(tokenizer, ["a good day", "a very good day . " * 200], 12, ids)
    assert cut == [False, True] and len(rows[1]) == 12
    assert rows[0] == tokenizer.encode("a good day")
    assert rows[1][0] == ids["cls"] and rows[1][-1] == ids["sep"]
    assert rows[1][1:-1] == tokenizer.encode("a very good day . " * 200, add_special_tokens=False)[:10]


def test_cls_and_mean_pooling(setup):
    tokenizer, config, ids = setup
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    rows, _ = encode_texts(tokenizer, ["a good day", "the food was fine ."], 32, ids)
    batch = collate([{"input_ids": r} for r in rows], ids["pad"])
    with torch.no_grad():
        assert torch.equal(
            sentence_logits(model, batch, "cls"),
            model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        )
        mean = sentence_logits(model, batch, "mean")
        hidden = model.bert(torch.tensor([rows[0]])).last_hidden_state  # the short text alone, no padding
        torch.testing.assert_close(mean[0], model.classifier(hidden.mean(dim=1))[0], atol=1e-6, rtol=1e-6)


def test_unknown_labels_and_the_majority_baseline(setup):
    tokenizer, _, ids = setup
    with pytest.raises(AttnlabError, match=r"test.csv has the label\(s\) \['meh'\]"):
        features(tokenizer, [("a good day", "pos"), ("so so", "meh")], ["neg", "pos"], 32, ids, "test.csv")
    train = [("x", "neg")] * 3 + [("y", "pos")]
    scores = majority_baseline(train, [("a", "neg"), ("b", "pos")], ["neg", "pos"])
    assert scores["name"] == "majority class (neg)" and scores["accuracy"] == 0.5
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
