"""BERT pre-training: masked LM + next-sentence prediction on the shared loop.

The masked-LM head runs only at the masked positions (about 15% of tokens; see
:meth:`BertForPreTraining.pretraining_outputs`): the loss is the same mean over
masked positions as ``BertForPreTraining(...).loss``, at a fraction of the cost of
vocabulary logits for every token.

Held-out evaluation uses documents never trained on, with a fixed seed so that
every evaluation sees the same pairs and masks. It reports MLM accuracy (at the
masked positions), NSP accuracy (balanced pairs: 50% is chance), and the
baseline of always predicting the most frequent training token, which MLM
accuracy must beat by a wide margin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from attnlab.checks import check_int
from attnlab.data.pretraining import PretrainingData
from attnlab.errors import AttnlabError
from attnlab.models.bert_heads import BertForPreTraining
from attnlab.training.loop import Task, TrainingConfig, run_training


def most_frequent_token(data: PretrainingData) -> int:
    counts = Counter(token for document in data.documents for sentence in document for token in sentence)
    return counts.most_common(1)[0][0]


def pretraining_outputs(
    model: BertForPreTraining, batch: dict[str, Tensor], *, nsp: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:meth:`BertForPreTraining.pretraining_outputs` of a collated batch: (loss, MLM logits
    (N, V) at the N masked positions, NSP logits (B, 2) or None). The loss equals
    ``model(**batch).loss``: mean cross-entropy over masked positions, plus the NSP
    cross-entropy when ``nsp``.
    """
    return model.pretraining_outputs(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=batch["labels"],
        next_sentence_label=batch["next_sentence_label"] if nsp else None,
    )


@torch.no_grad()
def evaluate_pretraining(
    model: BertForPreTraining, data: PretrainingData, *, n_batches: int = 8, batch_size: int = 32,
    seed: int = 1234, baseline_token: int | None = None,
) -> dict[str, float]:
    """MLM accuracy, NSP accuracy (when ``data.nsp``) and loss on ``n_batches`` fixed batches.

    The pairs and masks depend on ``seed`` only, so every call sees the same batches.
    """
    check_int("n_batches", n_batches)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    correct_mlm = total_mlm = correct_nsp = total_nsp = baseline_hits = 0
    loss_sum = 0.0
    for _ in range(n_batches):
        batch = {k: v.to(device) for k, v in data.batch(batch_size, generator).items()}
        loss, logits, nsp_logits = pretraining_outputs(model, batch, nsp=data.nsp)
        loss_sum += float(loss)
        targets = batch["labels"][batch["labels"] != -100]
        correct_mlm += int((logits.argmax(-1) == targets).sum())
        total_mlm += len(targets)
        if baseline_token is not None:
            baseline_hits += int((targets == baseline_token).sum())
        if nsp_logits is not None:
            correct_nsp += int((nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum())
            total_nsp += batch_size
    metrics = {"mlm_accuracy": correct_mlm / max(1, total_mlm), "val_loss": loss_sum / n_batches}
    if total_nsp:
        metrics["nsp_accuracy"] = correct_nsp / total_nsp
    if baseline_token is not None:
        metrics["mlm_baseline_accuracy"] = baseline_hits / max(1, total_mlm)
    return metrics


def train_bert(
    model: BertForPreTraining,
    train_data: PretrainingData,
    val_data: PretrainingData,
    config: TrainingConfig,
    *,
    out_dir: str | Path | None = None,
    tokenizer=None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    eval_batches: int = 32,
) -> dict:
    """Pre-train ``model`` with MLM (+ NSP when the data has it); the summary holds held-out accuracies
    over ``eval_batches`` fixed batches of ``config.batch_size`` pairs."""
    if not isinstance(model, BertForPreTraining):
        raise AttnlabError("train_bert needs a BertForPreTraining model (MLM and NSP heads).")
    check_int("eval_batches", eval_batches)
    if train_data.max_seq_len > model.config.max_positions:
        raise AttnlabError(
            f"max_seq_len {train_data.max_seq_len} exceeds the model's "
            f"{model.config.max_positions} positions."
        )
    if train_data.vocab_size != model.config.vocab_size:
        raise AttnlabError(
            f"The tokenizer has {train_data.vocab_size} tokens but the model's vocabulary has "
            f"{model.config.vocab_size} (config vocab_size); use the vocabulary the model was trained with."
        )
    baseline = most_frequent_token(train_data)

    def loss(m, batch):
        loss, logits, nsp_logits = pretraining_outputs(m, batch, nsp=train_data.nsp)
        if nsp_logits is None:
            return loss
        # Its two means (over masked positions, over pairs) as two terms, so that torchrun weighs
        # each by a rank's share of it; recomputed as the model does, their sum is ``loss`` exactly.
        targets = batch["labels"][batch["labels"] != -100]
        mlm = F.cross_entropy(logits.float(), targets) if len(targets) else logits.sum()
        return [mlm, F.cross_entropy(nsp_logits.float(), batch["next_sentence_label"])]

    def counts(batch) -> list[int]:
        masked = int((batch["labels"] != -100).sum())
        return [masked, len(batch["labels"])] if train_data.nsp else [masked]

    task = Task(
        next_batch=lambda generator: train_data.batch(config.batch_size, generator),
        loss=loss, counts=counts,
        tokens=lambda batch: int(batch["attention_mask"].sum()),
        evaluate_sample=lambda m: evaluate_pretraining(m, val_data, n_batches=max(1, eval_batches // 8),
                                                       batch_size=config.batch_size),
        evaluate_final=lambda m: evaluate_pretraining(m, val_data, n_batches=eval_batches,
                                                      batch_size=config.batch_size, baseline_token=baseline),
    )
    return run_training(model, task, config, out_dir=out_dir, tokenizer=tokenizer, resume=resume,
                        progress=progress, on_step=on_step)
