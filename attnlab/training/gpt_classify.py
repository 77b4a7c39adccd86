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
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from attnlab.checks import check_int
from attnlab.device import autocast, resolve_dtype
from attnlab.errors import AttnlabError
from attnlab.models.gpt_classifier import GPTForSequenceClassification
from attnlab.training.gpt_pretrain import LMTrainingConfig, optimizer_for
from attnlab.training.interrupt import deferred_interrupt

Example = tuple[str, str]
SUMMARY_FILE = "classifier_summary.json"


@dataclass(frozen=True, kw_only=True)
class ClassifierTrainingConfig:
    """How to fine-tune. ``max_iters`` (optimizer steps), if set, stops before ``epochs`` end."""

    epochs: int = 3
    max_iters: int | None = None
    batch_size: int = 32
    lr: float = 2.5e-4
    warmup_fraction: float = 0.002
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lm_loss_weight: float = 0.5
    seed: int = 0
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            check_int(f"The {name!r} fine-tuning parameter", value)
        if self.max_iters is not None and (
            isinstance(self.max_iters, bool) or not isinstance(self.max_iters, int) or self.max_iters < 1
        ):
            raise AttnlabError(f"max_iters must be None or an int >= 1. Got {self.max_iters!r} instead.")
        if not 0 < self.lr < math.inf:  # NaN fails this too
            raise AttnlabError(f"lr must be > 0 and finite. Got {self.lr!r} instead.")
        if not 0 <= self.warmup_fraction < 1:
            raise AttnlabError(f"warmup_fraction must be in [0, 1). Got {self.warmup_fraction!r} instead.")
        if not 0 <= self.weight_decay < math.inf or not self.grad_clip > 0:
            raise AttnlabError(f"weight_decay must be >= 0 and finite, and grad_clip > 0. "
                               f"Got {self.weight_decay!r} and {self.grad_clip!r}.")
        if not self.lm_loss_weight >= 0:
            raise AttnlabError(f"lm_loss_weight must be >= 0. Got {self.lm_loss_weight!r} instead.")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise AttnlabError(f"dtype must be 'auto', 'fp32' or 'bf16'. Got {self.dtype!r} instead.")


def warmup_linear(step: int, *, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then linear decay to 0 at ``total`` (GPT-1 §4.1)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * max(0.0, (total - step) / max(1, total - warmup))


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
    """Right-pad token lists into input_ids and attention_mask, each (B, T) int64."""
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row))
        mask[i, : len(row)] = 1
    return ids, mask


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
def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AttnlabError(f"{out} is a file; --out needs a directory.")
    if (out / "config.json").exists() or (out / "model.safetensors").exists():
        raise AttnlabError(
            f"{out} already holds a model; choose another --out so nothing saved is overwritten."
        )


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

    With ``out_dir`` (which must not already hold a model): appends to
    ``metrics.jsonl`` and, at the end or on Ctrl-C, saves the model, the tokenizer
    and ``classifier_summary.json``, each file written atomically. Returns the
    summary: steps, final train loss, val_accuracy, baseline (majority class of
    the held-out set), truncated texts, seconds.
    """
    if not train_examples or not val_examples:
        raise AttnlabError(
            f"Fine-tuning needs training and held-out examples; got {len(train_examples)} and "
            f"{len(val_examples)}."
        )
    out = Path(out_dir).expanduser() if out_dir is not None else None
    if out is not None:
        _check_out(out)
    limit = model.config.max_positions
    train = encode_examples(tokenizer, train_examples, model.label_names, limit)
    val = encode_examples(tokenizer, val_examples, model.label_names, limit)
    if max(max(r) for r in train.ids + val.ids) >= model.config.vocab_size:
        raise AttnlabError(
            f"The tokenizer gives ids beyond the model's vocabulary of {model.config.vocab_size}; "
            f"use the tokenizer saved with the model."
        )
    device = next(model.parameters()).device
    dtype = resolve_dtype(config.dtype, device)
    steps_per_epoch = math.ceil(len(train.ids) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_iters is not None:
        total = min(total, config.max_iters)
    warmup = math.ceil(total * config.warmup_fraction)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    # AdamW with decay on linear-layer matrices only; Adam's default beta2, as in GPT-1 §4.1.
    optimizer = optimizer_for(model, LMTrainingConfig(
        lr=config.lr, min_lr=0.0, weight_decay=config.weight_decay, beta2=0.999,
    ))
    targets = torch.tensor(train.targets)

    def log(record: dict) -> None:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")

    log({"event": "start", "config": asdict(config), "dtype": dtype, "labels": list(model.label_names),
         "train_examples": len(train.ids), "val_examples": len(val.ids)})
    model.train()
    started = time.perf_counter()
    done, loss_value, interrupted = 0, float("nan"), False
    bar = tqdm(total=total, desc="fine-tuning", disable=not progress, unit="step")
    with deferred_interrupt() as ctrl_c_pressed:
        while done < total and not interrupted:
            order = torch.randperm(len(train.ids), generator=generator).tolist()
            for first in range(0, len(order), config.batch_size):
                if done >= total:
                    break
                batch = order[first : first + config.batch_size]
                ids, mask = collate([train.ids[i] for i in batch])
                lr = warmup_linear(done, lr=config.lr, warmup=warmup, total=total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                with autocast(dtype, device):
                    output = model(ids.to(device), attention_mask=mask.to(device),
                                   labels=targets[batch].to(device), lm_loss_weight=config.lm_loss_weight)
                output.loss.backward()
                loss_value = float(output.loss.detach())
                if not math.isfinite(loss_value):
                    raise AttnlabError(f"The loss became {loss_value} at step {done}; lower --lr.")
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                done += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
                record = {"step": done, "train_loss": loss_value, "lr": lr}
                if output.lm_loss is not None:
                    record["lm_loss"] = float(output.lm_loss.detach())
                log(record)
                if ctrl_c_pressed():
                    interrupted = True
                    break
        bar.close()
        predicted = predict_indices(model, val.ids)
        val_accuracy = sum(p == t for p, t in zip(predicted, val.targets, strict=True)) / len(val.ids)
        summary = {
            "event": "interrupted" if interrupted else "end", "interrupted": interrupted,
            "steps": done, "train_loss": loss_value, "val_accuracy": val_accuracy,
            "baseline": majority_baseline(val_examples), "val_examples": len(val.ids),
            "truncated": train.truncated + val.truncated, "dtype": dtype,
            "seconds": round(time.perf_counter() - started, 2),
        }
        log(summary)
        if out is not None:
            from attnlab.files import atomic_write_text

            model.save_pretrained(out)
            if tokenizer is not None and hasattr(tokenizer, "save"):
                tokenizer.save(out)
            atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    model.eval()
    return summary
