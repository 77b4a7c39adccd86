"""Sequence classification with BERT (Devlin et al. 2019, §4.1 and Figure 4a).

A text becomes ``[CLS] text [SEP]`` (cut to ``max_len`` tokens, the final [SEP]
kept); one linear layer maps a sentence vector to one logit per class. Two sentence
vectors:

- ``cls`` (BERT's): the pooled [CLS] state, tanh(W h_[CLS] + b). The saved model is
  a ``BertForSequenceClassification`` that ``transformers`` runs to the same logits.
- ``mean``: the mean of the last hidden states over the real tokens (the pooling
  all-MiniLM-L6-v2 was trained with; Reimers & Gurevych 2019, arXiv:1908.10084).
  The weights keep the same names, and ``config.json`` records
  ``"attnlab_pooling": "mean"``; ``transformers`` would apply the classifier to the
  pooled [CLS] instead, so only attnlab reproduces these logits.

Metrics: accuracy and macro-F1 (:mod:`attnlab.evaluation.metrics`); the trivial baseline
answers every text with the most frequent label of the training set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import accuracy, macro_f1
from attnlab.models.bert_heads import BertForSequenceClassification
from attnlab.training.bert_finetune import Feature, collate

POOLINGS = ("cls", "mean")
POOLING_KEY = "attnlab_pooling"
Example = tuple[str, str]


def encode_texts(
    tokenizer, texts: Sequence[str], max_len: int, ids: dict[str, int]
) -> tuple[list[list[int]], list[bool]]:
    """``[CLS] text [SEP]`` ids of each text, cut to ``max_len``; and whether each was cut."""
    rows, cut = [], []
    for encoding in tokenizer.backend.encode_batch(list(texts), add_special_tokens=False):
        body = encoding.ids
        cut.append(len(body) > max_len - 2)
        rows.append([ids["cls"], *body[: max_len - 2], ids["sep"]])
    return rows, cut


def features(
    tokenizer,
    examples: Sequence[Example],
    labels: Sequence[str],
    max_len: int,
    ids: dict[str, int],
    source: str = "the data",
) -> tuple[list[Feature], int]:
    """Training features (input_ids, labels) and the number of texts cut to ``max_len``."""
    index = {name: i for i, name in enumerate(labels)}
    unseen = sorted({label for _, label in examples if label not in index})
    if unseen:
        raise AttnlabError(
            f"{source} has the label(s) {unseen[:5]!r}, which the classifier does not know; "
            f"its labels are {list(labels)!r}."
        )
    rows, cut = encode_texts(tokenizer, [text for text, _ in examples], max_len, ids)
    return [
        {"input_ids": row, "labels": index[label]} for row, (_, label) in zip(rows, examples, strict=True)
    ], sum(cut)


def sentence_logits(model: BertForSequenceClassification, batch: dict[str, Tensor], pooling: str) -> Tensor:
    """(B, n_labels) logits of the batch under ``pooling``."""
    if pooling == "cls":
        return model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    hidden = model.bert(
        batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state  # (B, T, D)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # (B, D)
    return model.classifier(model.dropout(mean))


def loss_fn(pooling: str):
    """Cross-entropy of ``sentence_logits`` against the batch's labels, for the fine-tuning loop."""
    if pooling not in POOLINGS:
        raise AttnlabError(f"pooling must be one of {POOLINGS}. Got {pooling!r} instead.")

    def loss(model, batch: dict[str, Tensor]) -> Tensor:
        return torch.nn.functional.cross_entropy(
            sentence_logits(model, batch, pooling).float(), batch["labels"]
        )

    return loss


@torch.no_grad()
def predict_logits(
    model: BertForSequenceClassification,
    rows: Sequence[Sequence[int]],
    pooling: str,
    pad_id: int = 0,
    batch_size: int = 64,
) -> Tensor:
    """(N, n_labels) fp32 logits of N encoded texts, in their order (the model in eval mode)."""
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths, little padding
    logits = torch.zeros(len(rows), model.config.num_labels)
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        batch = {k: v.to(device) for k, v in collate([{"input_ids": rows[i]} for i in chunk], pad_id).items()}
        logits[chunk] = sentence_logits(model, batch, pooling).float().cpu()
    return logits


def predict(
    model: BertForSequenceClassification,
    rows: Sequence[Sequence[int]],
    pooling: str,
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[str]:
    """Predicted label names of encoded texts (the model in eval mode)."""
    best = predict_logits(model, rows, pooling, pad_id, batch_size).argmax(-1).tolist()
    return [model.config.labels[i] for i in best]


def evaluate(
    model, tokenizer, examples: Sequence[Example], pooling: str, max_len: int, ids: dict[str, int]
) -> dict[str, float]:
    """Accuracy and macro-F1 (over the model's labels) of ``examples``."""
    rows, _ = encode_texts(tokenizer, [text for text, _ in examples], max_len, ids)
    predicted = predict(model, rows, pooling, ids["pad"])
    gold = [label for _, label in examples]
    return {"accuracy": accuracy(predicted, gold), "macro_f1": macro_f1(predicted, gold, model.config.labels)}


def majority_baseline(train: Sequence[Example], examples: Sequence[Example], labels: Sequence[str]) -> dict:
    """Scores of answering every example with the most frequent training label."""
    majority = Counter(label for _, label in train).most_common(1)[0][0]
    gold = [label for _, label in examples]
    predicted = [majority] * len(gold)
    return {
        "name": f"majority class ({majority})",
        "accuracy": accuracy(predicted, gold),
        "macro_f1": macro_f1(predicted, gold, labels),
    }
