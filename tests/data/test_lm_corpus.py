"""A language model's corpus as token ids: the tokenizer chosen, the 90/10 split as tensors."""

from __future__ import annotations

import torch

from attnlab.data.lm_corpus import corpus_tokenizer, train_val_tensors

TEXT = "to be or not to be, that is the question\n" * 20


def test_char_and_bpe_vocabularies_and_a_saved_one_wins(tmp_path):
    char = corpus_tokenizer(TEXT)
    assert char.kind == "char" and char.vocab_size == len(set(TEXT))
    bpe = corpus_tokenizer(TEXT, "bpe", vocab_size=300)
    assert bpe.kind == "bpe" and bpe.decode(bpe.encode("to be")) == "to be"
    char.save(tmp_path)
    again = corpus_tokenizer("zzz", "bpe", saved=tmp_path)  # the text is not read for a saved vocabulary
    assert again.vocab_size == char.vocab_size and again.encode("to be") == char.encode("to be")


def test_train_and_validation_are_the_first_90_and_last_10_percent():
    train, val = train_val_tensors(list(range(100)))
    assert train.dtype == val.dtype == torch.int64
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    train, val = train_val_tensors([5, 6, 7, 8], val_fraction=0.5)
    assert train.tolist() == [5, 6] and val.tolist() == [7, 8]
