"""The task adapter of BERT fine-tuning: labels, features, baselines, the trained-parameter count,
and the saved directory (pooling recorded, summary written)."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.data.ner import TaggedSentence
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert import BertModel
from attnlab.models.bert_heads import BertForSequenceClassification
from attnlab.training.bert_finetune import METRICS_FILE, head_from_encoder, special_ids
from attnlab.training.bert_tasks import (
    BertTask,
    save_finetuned,
    saved_pooling,
    trained_parameters,
)

CORPUS = "a very good day . a very bad day . the food was fine . ross says the king is dead\n" * 30
TRAIN = [("a very good day", "pos"), ("a very bad day", "neg"), ("the food was fine", "pos")]


@pytest.fixture(scope="module")
def setup():
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=100)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_positions=32, n_layers=1, n_heads=2,
                        d_model=16, d_ff=20)
    torch.manual_seed(0)
    return tokenizer, BertModel(config), special_ids(tokenizer, config)


def test_the_task_names_its_architecture_and_metric(setup):
    tokenizer, _, ids = setup
    assert BertTask("qa", tokenizer, ids, data="x").architecture == "BertForQuestionAnswering"
    assert BertTask("classify", tokenizer, ids, data="x").metric == "accuracy"
    with pytest.raises(AttnlabError, match="Unknown task 'rank'"):
        BertTask("rank", tokenizer, ids, data="x")


def test_labels_of_each_task(setup):
    tokenizer, _, ids = setup
    assert BertTask("classify", tokenizer, ids, data="f.tsv").labels(TRAIN, [], []) == ["neg", "pos"]
    # the built-in sentiment data keeps its fixed order, whatever the examples hold
    assert BertTask("classify", tokenizer, ids, data="sentiment").labels(TRAIN, [], []) == [
        "negative", "neutral", "positive"]
    tagged = [TaggedSentence(("ross", "says"), ("B-per", "O"))]
    assert BertTask("tag", tokenizer, ids, data="f.txt").labels(tagged, [], []) == ["O", "B-per"]
    assert BertTask("qa", tokenizer, ids, data="f.jsonl").labels([], [], []) is None
    with pytest.raises(AttnlabError, match="only the label"):
        BertTask("classify", tokenizer, ids, data="f.tsv").labels(TRAIN[:1], [], [])


def test_classify_features_baseline_evaluation_and_save(setup, tmp_path):
    tokenizer, encoder, ids = setup
    task = BertTask("classify", tokenizer, ids, data="f.tsv", max_seq_len=8, pooling="mean")
    model = head_from_encoder(encoder, BertForSequenceClassification, ["neg", "pos"])
    features, note = task.features(model, TRAIN, TRAIN[:1], TRAIN[1:])
    assert len(features) == 3 and note == ""
    # a held-out label the model does not know
    unknown = r"the validation data has the label\(s\) \['meh'\], which the classifier does not know"
    with pytest.raises(AttnlabError, match=unknown):
        task.features(model, TRAIN, [("a good day", "meh")], TRAIN)
    baseline = task.baseline(TRAIN, TRAIN)
    assert baseline["accuracy"] == pytest.approx(2 / 3)
    assert set(task.evaluate(model, TRAIN)) >= {"accuracy", "macro_f1"}
    assert task.loss_fn() is not None and BertTask("tag", tokenizer, ids, data="x").loss_fn() is None
    save_finetuned(model, tokenizer, tmp_path, {"steps": 1}, "mean")
    assert saved_pooling(tmp_path) == "mean"
    assert json.loads((tmp_path / METRICS_FILE).read_text()) == {"steps": 1}
    assert (tmp_path / "tokenizer.json").is_file() or (tmp_path / "vocab.txt").is_file()


def test_trained_parameters_with_a_frozen_encoder_are_the_head(setup):
    _, encoder, _ = setup
    model = head_from_encoder(encoder, BertForSequenceClassification, ["neg", "pos"])
    head = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("bert."))
    assert trained_parameters(model, freeze_encoder=True) == head
    assert trained_parameters(model, freeze_encoder=False) == model.num_parameters()

