"""Fine-tuning a pre-trained BERT on a labelled task, with early stopping (Devlin et al. 2019 §4).

BERT's recipe (arXiv:1810.04805, §4 and Appendix A.3): start from the pre-trained
encoder, add one task layer, train everything end to end for a few epochs with Adam,
weight decay 0.01, a learning rate of 5e-5 / 3e-5 / 2e-5 warmed up linearly over the
first 10% of the steps and then decayed linearly to 0. What this loop adds:

- early stopping: the validation metric is computed every ``eval_every`` steps (and
  at the end of each epoch); the best weights seen are kept in memory and restored at
  the end, and training stops after ``patience`` evaluations without improvement;
- ``freeze_encoder``: linear probing (only the task layer learns; the encoder's
  parameters get no gradient and its dropout is off, so its features are fixed);
- AdamW with decoupled weight decay on linear-layer matrices only
  (:func:`attnlab.training.loop.optimizer_for`), gradient clipping, bf16 autocast
  where the hardware has it, a progress bar, Ctrl-C that stops at a step boundary.

The epoch / early-stopping shape is why this is a small loop of its own rather than
:func:`attnlab.training.loop.run_training`, which runs a fixed number of steps on a
cosine schedule with resumable checkpoints. Batches are lists of feature dicts made
by the task modules (:mod:`attnlab.training.bert_tasks`), padded here by :func:`collate`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from attnlab.checks import check_int
from attnlab.device import autocast, resolve_dtype
from attnlab.errors import AttnlabError
from attnlab.training.gpt_classify import warmup_linear
from attnlab.training.interrupt import deferred_interrupt
from attnlab.training.loop import TrainingConfig, optimizer_for

Feature = dict[str, Any]  # sequences (lists of ints) and scalars (ints) of one example or window
# Padding value of each padded field; sequences of any other name are padded with 0.
PAD_VALUES = {"labels": -100}
# The run's summary, saved beside the fine-tuned model (its "config" holds max_seq_len, doc_stride, ...).
METRICS_FILE = "finetune_metrics.json"


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """How to fine-tune. ``max_steps``, if set, ends training before ``epochs`` do."""

    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int | None = None  # steps between validation checks (None: once per epoch)
    patience: int = 3  # validation checks without improvement before stopping
    freeze_encoder: bool = False
    seed: int = 0
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            check_int(f"The {name!r} fine-tuning parameter", value)
        for name in ("max_steps", "eval_every"):
            value = getattr(self, name)
            if value is not None:
                check_int(name, value)
        if not 0 < self.lr < math.inf:  # NaN fails this too
            raise AttnlabError(f"lr must be > 0 and finite. Got {self.lr!r} instead.")
        if not 0 <= self.warmup_fraction < 1:
            raise AttnlabError(f"warmup_fraction must be in [0, 1). Got {self.warmup_fraction!r} instead.")
        if not 0 <= self.weight_decay < math.inf or not self.grad_clip > 0:
            raise AttnlabError(f"weight_decay must be >= 0 and finite, and grad_clip > 0. "
                               f"Got {self.weight_decay!r} and {self.grad_clip!r}.")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise AttnlabError(f"dtype must be 'auto', 'fp32' or 'bf16'. Got {self.dtype!r} instead.")


def collate(features: Sequence[Feature], pad_id: int = 0) -> dict[str, Tensor]:
    """Stack features into (B,) tensors and right-padded (B, T) tensors.

    ``input_ids`` is padded with ``pad_id``, ``labels`` sequences with -100 (ignored
    by the loss), everything else with 0; ``attention_mask`` is made from the lengths.
    """
    batch: dict[str, Tensor] = {}
    length = max(len(f["input_ids"]) for f in features)
    for key in features[0]:
        values = [f[key] for f in features]
        if isinstance(values[0], (list, tuple)):
            pad = pad_id if key == "input_ids" else PAD_VALUES.get(key, 0)
            batch[key] = torch.tensor([list(v) + [pad] * (length - len(v)) for v in values], dtype=torch.long)
        else:
            batch[key] = torch.tensor(values, dtype=torch.long)
    batch["attention_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (length - len(f["input_ids"])) for f in features], dtype=torch.long
    )
    return batch


def freeze_encoder(model: nn.Module) -> int:
    """Stop gradients into ``model.bert``; returns how many parameters still learn (the head's)."""
    for param in model.bert.parameters():
        param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class FinetuneResult:
    """What training did: the best validation metrics (restored weights) and the history."""

    steps: int
    best_step: int
    best: dict[str, float]
    history: list[dict[str, float]]
    stopped_early: bool
    interrupted: bool
    seconds: float


def finetune(
    model: nn.Module,
    features: Sequence[Feature],
    validate: Callable[[nn.Module], dict[str, float]],
    metric: str,
    config: FinetuneConfig,
    *,
    loss_fn: Callable[[nn.Module, dict[str, Tensor]], Tensor] | None = None,
    pad_id: int = 0,
    progress: bool = True,
    log: Callable[[dict], None] | None = None,
) -> FinetuneResult:
    """Train ``model`` on ``features``; keep the weights with the highest ``validate(model)[metric]``.

    ``loss_fn(model, batch)`` defaults to ``model(**batch).loss`` (the heads of
    :mod:`attnlab.models.bert_heads` take ``labels`` / ``start_positions`` /
    ``end_positions``). ``validate`` runs in eval mode without gradients.
    """
    if not features:
        raise AttnlabError("Fine-tuning needs at least one training example.")
    loss_fn = loss_fn or (lambda m, batch: m(**batch).loss)
    log = log or (lambda record: None)
    device = next(model.parameters()).device
    dtype = resolve_dtype(config.dtype, device)
    if config.freeze_encoder:
        freeze_encoder(model)
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = math.ceil(total * config.warmup_fraction)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    # Adam's beta2 0.999 as in BERT; decay on linear-layer matrices only.
    optimizer = optimizer_for(
        model, TrainingConfig(lr=config.lr, weight_decay=config.weight_decay, beta2=0.999)
    )

    def set_train_mode() -> None:
        model.train()
        if config.freeze_encoder:
            model.bert.eval()  # fixed features: no dropout inside the frozen encoder

    best: dict[str, float] = {}
    best_state: dict[str, Tensor] | None = None
    history: list[dict[str, float]] = []
    done, best_step, bad_checks, loss_value = 0, 0, 0, float("nan")
    stopped_early = interrupted = False

    def check() -> None:
        nonlocal best, best_state, best_step, bad_checks, stopped_early
        model.eval()
        with torch.no_grad():
            metrics = validate(model)
        set_train_mode()
        if metric not in metrics:
            raise AttnlabError(f"validate() returned {sorted(metrics)}, without the metric {metric!r}.")
        record = {"step": done, "train_loss": loss_value, **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(record)
        log(record)
        bar.write(f"step {done}: train loss {loss_value:.4f}, validation {metric} {metrics[metric]:.4f}")
        if best_state is None or metrics[metric] > best[metric]:
            best, best_step, bad_checks = metrics, done, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_checks += 1
            stopped_early = bad_checks >= config.patience

    log({"event": "start", "steps": total, "warmup": warmup, "train_examples": len(features), "dtype": dtype})
    started = time.perf_counter()
    set_train_mode()
    bar = tqdm(total=total, desc="fine-tuning", disable=not progress, unit="step")
    with deferred_interrupt() as ctrl_c_pressed:
        while done < total and not (stopped_early or interrupted):
            order = torch.randperm(len(features), generator=generator).tolist()
            for first in range(0, len(order), config.batch_size):
                batch = collate([features[i] for i in order[first : first + config.batch_size]], pad_id)
                batch = {k: v.to(device) for k, v in batch.items()}
                lr = warmup_linear(done, lr=config.lr, warmup=warmup, total=total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                with autocast(dtype, device):
                    loss = loss_fn(model, batch)
                loss.backward()
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise AttnlabError(f"The loss became {loss_value} at step {done}; lower --lr.")
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], config.grad_clip
                )
                optimizer.step()
                done += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
                log({"step": done, "train_loss": loss_value, "lr": lr})
                if ctrl_c_pressed():
                    interrupted = True
                    break
                end_of_epoch = first + config.batch_size >= len(order)
                if done >= total or end_of_epoch or (config.eval_every and done % config.eval_every == 0):
                    check()
                if done >= total or stopped_early:
                    break
        bar.close()
    if best_state is None:  # interrupted before the first check
        check()
    else:
        model.load_state_dict(best_state)
    model.eval()
    return FinetuneResult(
        done, best_step, best, history, stopped_early, interrupted, round(time.perf_counter() - started, 2)
    )


# --------------------------------------------------------------------------- model and tokenizer
def special_ids(tokenizer, model_config) -> dict[str, int]:
    """[CLS], [SEP] and [PAD] ids of a WordPiece tokenizer that fits the model's vocabulary.

    A tokenizer whose vocabulary is larger than the checkpoint's embedding table would
    produce ids past its end (an index error deep inside torch); say so in one line.
    Truncation saved in a ``tokenizer.json`` (all-MiniLM-L6-v2's cuts at 128 tokens) is
    switched off: the task modules cut, chunk or window the ids themselves, and would
    otherwise lose words and answers silently.
    """
    tokenizer.backend.no_truncation()
    if tokenizer.vocab_size > model_config.vocab_size:
        raise AttnlabError(
            f"The tokenizer has {tokenizer.vocab_size:,} tokens but the checkpoint's vocabulary has "
            f"{model_config.vocab_size:,}; use the vocab.txt / tokenizer.json saved with this model."
        )
    ids = {name: tokenizer.backend.token_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "pad")}
    missing = [f"[{name.upper()}]" for name, i in ids.items() if i is None]
    if missing:
        raise AttnlabError(
            f"The tokenizer has no {' or '.join(missing)} token; BERT fine-tuning needs a WordPiece "
            f"vocabulary with [CLS], [SEP] and [PAD] (the vocab.txt saved with the model)."
        )
    return ids


def head_from_encoder(model: nn.Module, head_class: type, labels: Sequence[str] | None = None) -> nn.Module:
    """A new ``head_class`` (e.g. BertForSequenceClassification) around the encoder of ``model``.

    ``model`` is a :class:`~attnlab.models.bert.BertModel` or any BERT head model;
    its encoder weights are copied, the task layer is freshly initialised (under the
    caller's torch seed). A pooler the new head needs but the checkpoint lacks is
    initialised too; one it does not need is dropped.
    """
    from dataclasses import replace

    from attnlab.models.bert import BertModel

    encoder = model if isinstance(model, BertModel) else getattr(model, "bert", None)
    if not isinstance(encoder, BertModel):
        raise AttnlabError(
            f"{type(model).__name__} is not a BERT model; fine-tune a BERT checkpoint "
            f"(e.g. all-MiniLM-L6-v2)."
        )
    config = encoder.config if labels is None else replace(encoder.config, labels=tuple(labels))
    head = head_class(config)
    result = head.bert.load_state_dict(encoder.state_dict(), strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("pooler.")]
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if unexpected or missing:
        raise AttnlabError(f"The encoder's weights do not fit {head_class.__name__}: {missing + unexpected}.")
    return head
