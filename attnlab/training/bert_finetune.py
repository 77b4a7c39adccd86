"""Fine-tuning a pre-trained BERT on a labelled task, with early stopping (Devlin et al. 2019 §4).

BERT's recipe (arXiv:1810.04805, §4 and Appendix A.3): start from the pre-trained
encoder, add one task layer, train everything end to end for a few epochs with Adam,
weight decay 0.01, a learning rate of 5e-5 / 3e-5 / 2e-5 warmed up linearly over the
first 10% of the steps and then decayed linearly to 0. :func:`finetune` builds that
as a :class:`~attnlab.training.loop.Task` for the shared loop, which adds:

- early stopping: the validation metric is computed every ``eval_interval`` steps (and
  at the end of each epoch); the best weights seen are kept in memory and restored at
  the end, and training stops after ``patience`` evaluations without improvement;
- ``freeze_encoder``: linear probing (only the task layer learns; the encoder's
  parameters get no gradient and its dropout is off, so its features are fixed);
- AdamW with decoupled weight decay on linear-layer matrices only
  (:func:`attnlab.training.loop.optimizer_for`), gradient clipping, bf16 autocast
  where the hardware has it, a progress bar, Ctrl-C that stops at a step boundary.

Batches are lists of feature dicts made by the task modules (:mod:`attnlab.training.bert_classify`,
:mod:`~attnlab.training.bert_tagging`, :mod:`~attnlab.training.bert_qa`), padded here by :func:`collate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.training.config_checks import check_counts, check_dtype, check_number, with_old_names
from attnlab.training.fine_tuning import plan_epochs
from attnlab.training.loop import Task, run_training

Feature = dict[str, Any]  # sequences (lists of ints) and scalars (ints) of one example or window
# Padding value of each padded field; sequences of any other name are padded with 0.
PAD_VALUES = {"labels": -100}
# The run's summary, saved beside the fine-tuned model (its "config" holds max_seq_len, doc_stride, ...).
METRICS_FILE = "finetune_metrics.json"


@with_old_names
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
    eval_interval: int | None = None  # steps between validation checks (None: once per epoch)
    patience: int = 3  # validation checks without improvement before stopping
    freeze_encoder: bool = False
    seed: int = 0
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        check_counts(self, ("epochs", "batch_size", "patience"), what="fine-tuning",
                     optional=("max_steps", "eval_interval"))
        check_number("lr", self.lr, above=0)
        check_number("warmup_fraction", self.warmup_fraction, at_least=0, below=1)
        check_number("weight_decay", self.weight_decay, at_least=0)
        check_number("grad_clip", self.grad_clip, above=0, finite=False)
        check_dtype(self.dtype)


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
    ``end_positions``). ``validate`` runs in eval mode without gradients. ``log``
    receives the run's records (those of ``metrics.jsonl``).
    """
    if not features:
        raise AttnlabError("Fine-tuning needs at least one training example.")
    if config.freeze_encoder:
        freeze_encoder(model)  # before the optimizer is made; the loop keeps the frozen encoder in eval mode
    # BERT A.3: AdamW with Adam's beta2, linear warm-up and decay; decay on linear-layer matrices only.
    plan = plan_epochs(len(features), config, eval_interval=config.eval_interval)
    order = plan.order
    keeper = _BestWeights(model, metric, config.patience)

    def validated(m: nn.Module) -> dict[str, float]:
        metrics = validate(m)
        if metric not in metrics:
            raise AttnlabError(f"validate() returned {sorted(metrics)}, without the metric {metric!r}.")
        return {f"val_{k}": v for k, v in metrics.items()}

    def at_end(m: nn.Module, summary: dict) -> dict:
        if keeper.state is None:  # interrupted before the first validation: validate now
            m.eval()
            with torch.no_grad():
                keeper.check(summary["steps"], validated(m), summary["train_loss"])
        m.load_state_dict(keeper.state)
        return {}

    task = Task(
        next_batch=lambda generator: collate([features[i] for i in order.next(generator)], pad_id),
        loss=loss_fn or (lambda m, batch: m(**batch).loss),
        tokens=lambda batch: int(batch["attention_mask"].sum()),
        evaluate_sample=validated, evaluate_final=validated, order=order,
        evaluate_now=lambda step: order.epoch_ended or bool(  # each epoch's end, every eval_interval
            config.eval_interval and step % config.eval_interval == 0),
        after_evaluation=keeper.check, at_end=at_end,
        schedule=plan.schedule, settings=asdict(config), resumable={"max_steps"}, steps_flag="--max-steps",
        info={"steps": plan.total, "warmup": plan.warmup, "train_examples": len(features)},
    )
    summary = run_training(model, task, plan.config, progress=progress, log=log)
    return FinetuneResult(
        summary["steps"], keeper.step, keeper.best, keeper.history, summary.get("stopped_early", False),
        summary["interrupted"], summary["seconds"],
    )


class _BestWeights:
    """Early stopping (the loop's end-of-evaluation hook): keeps a copy of the weights with the
    best validation ``metric`` (higher is better) and says stop after ``patience`` checks
    without improvement."""

    def __init__(self, model: nn.Module, metric: str, patience: int) -> None:
        self.model, self.metric, self.patience = model, metric, patience
        self.best: dict[str, float] = {}
        self.state: dict[str, Tensor] | None = None
        self.step, self.bad_checks = 0, 0
        self.history: list[dict[str, float]] = []

    def check(self, step: int, figures: dict[str, float], train_loss: float) -> bool:
        self.history.append({"step": step, "train_loss": train_loss, **figures})
        metrics = {k.removeprefix("val_"): v for k, v in figures.items()}
        if self.state is None or metrics[self.metric] > self.best[self.metric]:
            self.best, self.step, self.bad_checks = metrics, step, 0
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        self.bad_checks += 1
        return self.bad_checks >= self.patience


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
