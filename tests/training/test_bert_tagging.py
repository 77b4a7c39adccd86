"""Token classification inputs: first-sub-word labels (-100 elsewhere), long sentences in chunks."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.ner import TaggedSentence
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForTokenClassification
from attnlab.training.bert_finetune import special_ids
from attnlab.training.bert_tagging import chunk_sentences, evaluate, features, predict

CORPUS = "the empire state building is tall . i love new york city and playstation games\n" * 30


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train_wordpiece(CORPUS, vocab_size=100)


def _ids(tokenizer):
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        max_positions=64,
        n_layers=1,
        n_heads=2,
        d_model=16,
        d_ff=20,
        labels=("O", "B-loc", "I-loc"),
    )
    return special_ids(tokenizer, config), config


def test_labels_sit_on_first_sub_words(tokenizer):
    ids, _ = _ids(tokenizer)
    sentence = TaggedSentence(("Tallest", "New", "York", "."), ("O", "B-loc", "I-loc", "O"))
    [chunk] = chunk_sentences(tokenizer, [sentence.tokens], 32, ids)
    [feature] = features([chunk], [sentence], {"O": 0, "B-loc": 1, "I-loc": 2})
    pieces = tokenizer.tokens(feature["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    first = [p for p, label in zip(pieces, feature["labels"], strict=True) if label != -100]
    word = tokenizer.tokens(tokenizer.encode("Tallest", add_special_tokens=False))
    assert (
        len(word) >= 2 and word[0] == "tall" and pieces[1 : 1 + len(word)] == word
    )  # one word, several pieces
    assert first == ["tall", "new", "york", "."]  # labelled at its first piece only
    assert [label for label in feature["labels"] if label != -100] == [0, 1, 2, 0]
    assert chunk.positions == tuple(i for i, label in enumerate(feature["labels"]) if label != -100)


def test_long_sentences_are_chunked_not_cut(tokenizer):
    ids, config = _ids(tokenizer)
    words = ("new", "york", "city", "is", "tall") * 40  # 200 words, far over max_len
    chunks = chunk_sentences(tokenizer, [words], 16, ids)
    assert all(len(c.input_ids) <= 16 for c in chunks)
    assert [w for c in chunks for w in c.words] == list(range(200))
    torch.manual_seed(0)
    model = BertForTokenClassification(config).eval()
    tags = predict(model, chunks, [200])
    assert len(tags[0]) == 200 and set(tags[0]) <= set(config.labels)


def test_unknown_tags_are_one_line_errors(tokenizer):
    ids, config = _ids(tokenizer)
    sentence = TaggedSentence(("Paris",), ("B-city",))
    chunks = chunk_sentences(tokenizer, [sentence.tokens], 16, ids)
    with pytest.raises(AttnlabError, match="sentence 1 has the tag 'B-city', which the tagger does not know"):
        features(chunks, [sentence], {"O": 0, "B-loc": 1, "I-loc": 2}, "train.txt")
    model = BertForTokenClassification(config).eval()
    with pytest.raises(AttnlabError, match=r"tag\(s\) \['B-city'\], which the tagger does not know"):
        evaluate(model, tokenizer, [sentence], 16, ids)
