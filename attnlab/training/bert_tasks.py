"""The three BERT fine-tuning tasks behind one interface (Devlin et al. 2019, §4, Figure 4).

:class:`BertTask` gives :func:`attnlab.training.bert_finetune.finetune` what differs per
task: the label set, the training features, the loss, the evaluation and a trivial baseline,
delegating to the task modules :mod:`~attnlab.training.bert_classify` (one label per text),
:mod:`~attnlab.training.bert_tagging` (one BIO tag per word) and
:mod:`~attnlab.training.bert_qa` (an answer span, long contexts in strided windows).
:func:`save_finetuned` writes the result: a transformers ``BertFor*`` directory with the
tokenizer and the run's summary (:data:`~attnlab.training.bert_finetune.METRICS_FILE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write_text
from attnlab.training.bert_classify import POOLING_KEY
from attnlab.training.bert_finetune import METRICS_FILE, Feature

# task -> (the transformers architecture it saves, the validation metric that picks the best weights)
TASKS = {
    "classify": ("BertForSequenceClassification", "accuracy"),
    "tag": ("BertForTokenClassification", "f1"),
    "qa": ("BertForQuestionAnswering", "f1"),
}


class BertTask:
    """One task's labels, features, loss, evaluation and baseline, for a tokenizer and its
    special ids ([CLS], [SEP], [PAD]: :func:`~attnlab.training.bert_finetune.special_ids`).

    ``data`` names the data (built-in ``sentiment`` keeps its fixed label order; built-in
    ``plays-qa`` adds the random-speaker baseline); ``pooling`` is classify's sentence vector.
    """

    def __init__(self, task: str, tokenizer: Any, ids: dict[str, int], *, data: str, max_seq_len: int = 128,
                 doc_stride: int = 64, max_answer_len: int = 30, pooling: str = "cls", seed: int = 0) -> None:
        if task not in TASKS:
            raise AttnlabError(f"Unknown task {task!r}; choose one of {sorted(TASKS)}.")
        self.task, self.tokenizer, self.ids, self.data = task, tokenizer, ids, data
        self.max_seq_len, self.doc_stride, self.max_answer_len = max_seq_len, doc_stride, max_answer_len
        self.pooling, self.seed = pooling, seed

    @property
    def architecture(self) -> str:
        return TASKS[self.task][0]

    @property
    def metric(self) -> str:
        return TASKS[self.task][1]

    def labels(self, train: list, val: list, test: list) -> list[str] | None:
        """The model's labels (None for qa): the sorted labels of all the data, or BIO tags."""
        if self.task == "qa":
            return None
        if self.task == "classify":
            from attnlab.data.sentiment import LABELS

            found = sorted({label for split in (train, val, test) for _, label in split})
            labels = list(LABELS) if self.data == "sentiment" else found
        else:
            from attnlab.data.ner import tag_set

            labels = tag_set([*train, *val, *test])
        if len(labels) < 2:
            raise AttnlabError(f"The training data has only the label(s) {labels}; at least 2 are needed.")
        return labels

    def features(self, model: nn.Module, train: list, val: list, test: list) -> tuple[list[Feature], str]:
        """Training features (and a note); checks that held-out labels are known to the model."""
        tok, ids, max_len = self.tokenizer, self.ids, self.max_seq_len
        if self.task == "classify":
            from attnlab.training import bert_classify

            labels = model.config.labels
            for name, split in (("validation", val), ("test", test)):
                bert_classify.features(tok, split, labels, max_len, ids, f"the {name} data")
            feats, cut = bert_classify.features(tok, train, labels, max_len, ids, "the training data")
            return feats, f" ({cut} text(s) cut to fit)" if cut else ""
        if self.task == "tag":
            from attnlab.training import bert_tagging

            index = {tag: i for i, tag in enumerate(model.config.labels)}
            feats = []
            for name, split in (("the training data", train), ("the validation data", val),
                                ("the test data", test)):
                chunks = bert_tagging.chunk_sentences(tok, [s.tokens for s in split], max_len, ids)
                made = bert_tagging.features(chunks, split, index, name)
                feats = feats or made
            return feats, ""
        from attnlab.training import bert_qa

        windows = bert_qa.make_windows(tok, train, max_len, self.doc_stride, ids, source="the training data")
        for name, split in (("the validation data", val), ("the test data", test)):
            bert_qa.make_windows(tok, split, max_len, self.doc_stride, ids, source=name)
        split_up = len(windows) - len(train)
        note = f" ({split_up} extra window(s) from long contexts)" if split_up else ""
        return bert_qa.features(windows), note

    def loss_fn(self) -> Callable | None:
        """classify's loss on its sentence vector; None: the head's own loss."""
        if self.task == "classify":
            from attnlab.training.bert_classify import loss_fn

            return loss_fn(self.pooling)
        return None

    def evaluate(self, model: nn.Module, examples: list) -> dict[str, float]:
        tok, ids, max_len = self.tokenizer, self.ids, self.max_seq_len
        if self.task == "classify":
            from attnlab.training import bert_classify

            bert_classify.features(tok, examples, model.config.labels, max_len, ids, str(self.data))
            return bert_classify.evaluate(model, tok, examples, self.pooling, max_len, ids)
        if self.task == "tag":
            from attnlab.training import bert_tagging

            return bert_tagging.evaluate(model, tok, examples, max_len, ids)
        from attnlab.training import bert_qa

        return bert_qa.evaluate(model, tok, examples, max_len, self.doc_stride, ids, self.max_answer_len)

    def baseline(self, train: list, test: list) -> dict:
        """A trivial answer's scores on ``test`` (named in ``"name"``), to read the model's beside."""
        if self.task == "classify":
            from attnlab.training.bert_classify import majority_baseline

            return majority_baseline(train, test, sorted({label for _, label in train}))
        from attnlab.evaluation.metrics import entity_scores, qa_scores

        if self.task == "tag":
            from attnlab.data.ner import most_frequent_tag_baseline

            scores = entity_scores(most_frequent_tag_baseline(train, test), [list(s.tags) for s in test])
            return {"name": "most frequent training tag of each word", **scores}
        from attnlab.data.qa import first_capitalised_baseline

        gold = [e.answer for e in test]
        result = {"name": "first capitalised word of the context",
                  **qa_scores(first_capitalised_baseline(test), gold)}
        if self.data == "plays-qa":
            from attnlab.data.plays_qa import random_speaker_baseline

            chance = qa_scores(random_speaker_baseline(test, self.seed), gold)
            result["random_speaker_exact_match"] = chance["exact_match"]
        return result


def trained_parameters(model: nn.Module, freeze_encoder: bool) -> int:
    """How many parameters fine-tuning changes: all, or the task layer's with a frozen encoder."""
    encoder = {id(p) for p in model.bert.parameters()} if freeze_encoder else set()
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in encoder)


def saved_pooling(model_dir: str | Path) -> str:
    """The sentence vector a saved classifier was fine-tuned with ("cls" unless recorded)."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return config.get(POOLING_KEY, "cls")


def save_finetuned(model: nn.Module, tokenizer: Any, out: Path, summary: dict, pooling: str | None) -> None:
    """The model (HF layout), its tokenizer, a non-default ``pooling`` in config.json, and
    ``summary`` as :data:`~attnlab.training.bert_finetune.METRICS_FILE`."""
    model.save_pretrained(out)
    if pooling is not None:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        config[POOLING_KEY] = pooling
        atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save(out)
    atomic_write_text(out / METRICS_FILE, json.dumps(summary, indent=2) + "\n")


