"""BERT pre-training: masked LM + next-sentence prediction on the shared loop.

Held-out evaluation uses documents never trained on, with a fixed seed so that
every evaluation sees the same pairs and masks. It reports MLM accuracy (at the
masked positions), NSP accuracy, and the baseline of always predicting the most
frequent training token, which MLM accuracy must beat by a wide margin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from attnlab.data.pretraining import PretrainingData
from attnlab.errors import AttnlabError
from attnlab.models.bert_heads import BertForPreTraining
from attnlab.training.loop import Task, TrainingConfig, run_training


def most_frequent_token(data: PretrainingData) -> int:
    counts = Counter(token for document in data.documents for sentence in document for token in sentence)
    return counts.most_common(1)[0][0]


@torch.no_grad()
def evaluate_pretraining(
    model: BertForPreTraining, data: PretrainingData, *, n_batches: int = 8, batch_size: int = 32,
    seed: int = 1234, baseline_token: int | None = None,
) -> dict[str, float]:
    """MLM accuracy, NSP accuracy and losses on ``n_batches`` fixed batches of ``data``."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    correct_mlm = total_mlm = correct_nsp = total_nsp = baseline_hits = 0
    loss_sum = 0.0
    for _ in range(n_batches):
        batch = {k: v.to(device) for k, v in data.batch(batch_size, generator).items()}
        out = model(**batch)
        loss_sum += float(out.loss)
        chosen = batch["labels"] != -100
        predicted = out.prediction_logits.argmax(-1)
        correct_mlm += int((predicted == batch["labels"])[chosen].sum())
        total_mlm += int(chosen.sum())
        if baseline_token is not None:
            baseline_hits += int((batch["labels"][chosen] == baseline_token).sum())
        correct_nsp += int((out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]).sum())
        total_nsp += batch_size
    metrics = {"mlm_accuracy": correct_mlm / max(1, total_mlm), "nsp_accuracy": correct_nsp / total_nsp,
               "val_loss": loss_sum / n_batches}
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
) -> dict:
    """Pre-train ``model`` with MLM (+ NSP when the data has it); the summary holds held-out accuracies."""
    if not isinstance(model, BertForPreTraining):
        raise AttnlabError("train_bert needs a BertForPreTraining model (MLM and NSP heads).")
    if train_data.max_seq_len > model.config.max_positions:
        raise AttnlabError(
            f"max_seq_len {train_data.max_seq_len} exceeds the model's "
            f"{model.config.max_positions} positions."
        )
    baseline = most_frequent_token(train_data)

    def loss(m, batch):
        if not train_data.nsp:
            batch = {k: v for k, v in batch.items() if k != "next_sentence_label"}
        return m(**batch).loss

    task = Task(
        next_batch=lambda generator: train_data.batch(config.batch_size, generator),
        loss=loss,
        tokens=lambda batch: int(batch["attention_mask"].sum()),
        evaluate_sample=lambda m: evaluate_pretraining(m, val_data, n_batches=2),
        evaluate_final=lambda m: evaluate_pretraining(m, val_data, n_batches=16, baseline_token=baseline),
    )
    return run_training(model, task, config, out_dir=out_dir, tokenizer=tokenizer, resume=resume,
                        progress=progress, on_step=on_step)
