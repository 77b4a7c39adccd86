"""Supervised fine-tuning of a GPT classifier on labelled text (GPT-1 §3.2, §4.1).

Radford et al. 2018, "Improving Language Understanding by Generative
Pre-Training": the pre-trained body and a new linear head W_y are trained
together on L3 = L2 + lambda L1 (eq. 5): the classification loss plus, with
weight lambda (0.5 in the paper), the language-model loss on the same texts,
which the paper found to help generalisation and speed convergence. The
paper's recipe (§4.1) is kept where it fits a small model: 3 epochs, batch 32,
linear warm-up over 0.2% of training then linear decay to 0, weight decay 0.01,
lambda 0.5. The default learning rate is 2.5e-4 (the paper's pre-training peak)
rather than its fine-tuning 6.25e-5, which suits a 117M-parameter body; the
small bodies trained here barely move at that rate.

Texts longer than the model's context keep their *last* tokens (the head reads
the last token); the summary counts how many were cut. Batches are right-padded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from attnlab.device import resolve_dtype
from attnlab.errors import AttnlabError
from attnlab.files import check_output_dir
from attnlab.interop.tokenizers import pad_right
from attnlab.models.gpt_classifier import GPTForSequenceClassification
from attnlab.training.config_checks import check_counts, check_dtype, check_number, with_old_names
from attnlab.training.fine_tuning import plan_epochs
from attnlab.training.loop import Task, run_training
from attnlab.training.metrics_log import MetricsLog

Example = tuple[str, str]
SUMMARY_FILE = "classifier_summary.json"


@with_old_names
@dataclass(frozen=True, kw_only=True)
class ClassifierTrainingConfig:
    """How to fine-tune. ``max_steps`` (optimizer steps), if set, stops before ``epochs`` end
    (``max_iters`` is its old name)."""

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 2.5e-4
    warmup_fraction: float = 0.002
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lm_loss_weight: float = 0.5
    seed: int = 0
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        check_counts(self, ("epochs", "batch_size"), what="fine-tuning", optional=("max_steps",))
        check_number("lr", self.lr, above=0)
        check_number("warmup_fraction", self.warmup_fraction, at_least=0, below=1)
        check_number("weight_decay", self.weight_decay, at_least=0)
        check_number("grad_clip", self.grad_clip, above=0, finite=False)
        check_number("lm_loss_weight", self.lm_loss_weight, at_least=0, finite=False)
        check_dtype(self.dtype)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class EncodedExamples:
    """Token ids of each text, its class index, and how many texts were cut to fit."""

    ids: list[list[int]]
    targets: list[int]
    truncated: int


def encode_examples(
    tokenizer, examples: Sequence[Example], label_names: Sequence[str], max_length: int
) -> EncodedExamples:
    """Encode every text (keeping its last ``max_length`` tokens) and map labels to indices."""
    index = {name: i for i, name in enumerate(label_names)}
    ids, targets, truncated = [], [], 0
    for number, (text, label) in enumerate(examples):
        if label not in index:
            raise AttnlabError(
                f"Example {number} ({text[:40]!r}) has the label {label!r}, which the classifier does not "
                f"have; its labels are {list(label_names)!r}."
            )
        try:
            tokens = list(tokenizer.encode(text, add_special_tokens=False))
        except AttnlabError as error:
            raise AttnlabError(f"Example {number} ({text[:40]!r}): {error}") from None
        if not tokens:
            raise AttnlabError(f"Example {number} ({text[:40]!r}) encodes to no tokens; remove it.")
        if len(tokens) > max_length:
            tokens, truncated = tokens[-max_length:], truncated + 1
        ids.append(tokens)
        targets.append(index[label])
    return EncodedExamples(ids, targets, truncated)


def collate(rows: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Right-pad token lists into input_ids (padding id 0) and attention_mask, each (B, T) int64."""
    return pad_right([list(row) for row in rows], 0)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def class_logits(
    model: GPTForSequenceClassification, rows: Sequence[Sequence[int]], batch_size: int = 64
) -> Tensor:
    """(N, C) fp32 logits of N encoded texts, in their order."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [torch.zeros(0, model.num_labels)]
    for first in range(0, len(rows), batch_size):
        ids, mask = collate(rows[first : first + batch_size])
        out.append(model(ids.to(device), attention_mask=mask.to(device)).logits.float().cpu())
    model.train(was_training)
    return torch.cat(out)


def predict_indices(
    model: GPTForSequenceClassification, rows: Sequence[Sequence[int]], batch_size: int = 64
) -> list[int]:
    """The argmax class of each encoded text."""
    return class_logits(model, rows, batch_size).argmax(dim=-1).tolist()


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[bool]]:
    """Token ids of each text, keeping its last ``max_length`` (the head reads the last token);
    and whether each text was cut."""
    rows, cut = [], []
    for text in texts:
        tokens = list(tokenizer.encode(text, add_special_tokens=False))
        if not tokens:
            raise AttnlabError(f"The text {text[:40]!r} encodes to no tokens; give a non-empty text.")
        cut.append(len(tokens) > max_length)
        rows.append(tokens[-max_length:])
    return rows, cut


def predict(
    model: GPTForSequenceClassification, tokenizer, texts: Sequence[str], batch_size: int = 64
) -> list[str]:
    """The predicted label name of each text."""
    rows, _ = encode_texts(tokenizer, texts, model.config.max_positions)
    return [model.label_names[i] for i in predict_indices(model, rows, batch_size)]


def accuracy(
    model: GPTForSequenceClassification, tokenizer, examples: Sequence[Example], batch_size: int = 64
) -> float:
    """Fraction of ``examples`` whose predicted label is the gold one."""
    if not examples:
        raise AttnlabError("accuracy needs at least one labelled example.")
    encoded = encode_examples(tokenizer, examples, model.label_names, model.config.max_positions)
    predicted = predict_indices(model, encoded.ids, batch_size)
    return sum(p == t for p, t in zip(predicted, encoded.targets, strict=True)) / len(examples)


def majority_baseline(examples: Sequence[Example]) -> float:
    """Accuracy of always answering the most frequent label of ``examples``."""
    return Counter(label for _, label in examples).most_common(1)[0][1] / len(examples)


# --------------------------------------------------------------------------- training
def train_classifier(
    model: GPTForSequenceClassification,
    tokenizer,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    config: ClassifierTrainingConfig,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune ``model`` on ``train_examples``; report accuracy on ``val_examples``.

    The shared loop (:func:`attnlab.training.loop.run_training`) trains; this builds the
    task: epochs of shuffled batches, the loss of eq. (5), GPT-1's schedule and AdamW.
    With ``out_dir`` (which must not already hold a model): appends to
    ``metrics.jsonl`` and, at the end or on Ctrl-C, saves the model, the tokenizer
    and ``classifier_summary.json``, each file written atomically.
    Returns the summary: steps, final train loss, val_accuracy, baseline (majority
    class of the held-out set), truncated texts, seconds.
    """
    if not train_examples or not val_examples:
        raise AttnlabError(
            f"Fine-tuning needs training and held-out examples; got {len(train_examples)} and "
            f"{len(val_examples)}."
        )
    out = Path(out_dir).expanduser() if out_dir is not None else None
    if out is not None:
        check_output_dir(out, "--out", keep=("config.json", "model.safetensors"))
    limit = model.config.max_positions
    train = encode_examples(tokenizer, train_examples, model.label_names, limit)
    val = encode_examples(tokenizer, val_examples, model.label_names, limit)
    if max(max(r) for r in train.ids + val.ids) >= model.config.vocab_size:
        raise AttnlabError(
            f"The tokenizer gives ids beyond the model's vocabulary of {model.config.vocab_size}; "
            f"use the tokenizer saved with the model."
        )
    # GPT-1 §4.1: AdamW with Adam's beta2, linear warm-up and decay. No evaluation during
    # training: the held-out accuracy is the end's.
    plan = plan_epochs(len(train.ids), config)
    order = plan.order
    targets = torch.tensor(train.targets)

    def next_batch(generator: torch.Generator) -> dict[str, Tensor]:
        rows = order.next(generator)
        ids, mask = collate([train.ids[i] for i in rows])
        return {"input_ids": ids, "attention_mask": mask, "labels": targets[rows]}

    def loss(m: GPTForSequenceClassification, batch: dict[str, Tensor]):
        output = m(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                   lm_loss_weight=config.lm_loss_weight)
        if output.lm_loss is None:
            return output.loss, {}
        # Eq. 5's two means (over texts, over their tokens) as two terms, so that torchrun weighs each
        # by a rank's share of it; recomputed as the model does, their sum is ``output.loss`` exactly.
        texts = F.cross_entropy(output.logits.float(), batch["labels"])
        return [texts, config.lm_loss_weight * output.lm_loss], {"lm_loss": output.lm_loss.detach()}

    def counts(batch: dict[str, Tensor]) -> list[int]:
        texts = len(batch["labels"])  # the next-token loss predicts every real token but the first
        return [texts, int(batch["attention_mask"][:, 1:].sum())] if config.lm_loss_weight > 0 else [texts]

    def val_accuracy(m: GPTForSequenceClassification) -> dict[str, float]:
        predicted = predict_indices(m, val.ids)
        right = sum(p == t for p, t in zip(predicted, val.targets, strict=True))
        return {"val_accuracy": right / len(val.ids)}

    def at_end(m: GPTForSequenceClassification, summary: dict) -> dict:
        added = {"baseline": majority_baseline(val_examples), "val_examples": len(val.ids),
                 "truncated": train.truncated + val.truncated}
        if summary["interrupted"]:  # the loop evaluates only runs that end; report this one too
            added.update(val_accuracy(m), dtype=resolve_dtype(config.dtype, next(m.parameters()).device))
        if out is not None:  # the classifier's own layout (no training checkpoint: no resume)
            from attnlab.files import atomic_write_text

            m.save_pretrained(out)
            if tokenizer is not None and hasattr(tokenizer, "save"):
                tokenizer.save(out)
            atomic_write_text(out / SUMMARY_FILE, json.dumps({**summary, **added}, indent=2) + "\n")
        return added

    task = Task(
        next_batch=next_batch, loss=loss, counts=counts,
        tokens=lambda batch: int(batch["attention_mask"].sum()),
        evaluate_final=val_accuracy, order=order, at_end=at_end, schedule=plan.schedule,
        settings=asdict(config), resumable={"max_steps"},
        info={"labels": list(model.label_names), "train_examples": len(train.ids),
              "val_examples": len(val.ids)},
    )
    log = MetricsLog(out) if out is not None else None
    return run_training(model, task, plan.config, progress=progress, log=log)
