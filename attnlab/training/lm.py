"""Next-token pre-training of a causal language model (GPT).

Batches are random windows of ``block_size`` tokens from the training ids; the
loss is the cross-entropy of each position's logits against the next token.
AdamW with decoupled weight decay (Loshchilov & Hutter 2019, arXiv:1711.05101)
on the matrices of the linear layers only, warm-up then cosine decay, gradient
clipping. The final report evaluates the *whole* validation split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT
from attnlab.training.schedule import warmup_cosine


@dataclass(frozen=True, kw_only=True)
class LMTrainingConfig:
    """How long and how fast to train. ``max_time`` (seconds) stops early if set."""

    max_iters: int = 2000
    max_time: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337

    def __post_init__(self) -> None:
        for name in ("max_iters", "batch_size", "eval_interval", "eval_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise AttnlabError(
                    f"The {name!r} training parameter must be an int >= 1. Got {value!r} instead."
                )
        if not self.lr > 0 or self.min_lr < 0:
            raise AttnlabError(f"lr must be > 0 and min_lr >= 0. Got lr={self.lr}, min_lr={self.min_lr}.")
        if self.max_time is not None and not self.max_time > 0:
            raise AttnlabError(f"max_time must be > 0 seconds. Got {self.max_time!r} instead.")


def optimizer_for(model: nn.Module, config: LMTrainingConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on linear-layer matrices only (not norms, biases or embeddings)."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, nn.Linear) and name == "weight" and id(param) not in embedding_ids:
                decay.append(param)
            elif id(param) not in {id(p) for p in decay + no_decay}:
                no_decay.append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def random_batch(data: Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> Tensor:
    """(batch_size, block_size) windows starting at random offsets of ``data`` (N,)."""
    starts = torch.randint(0, len(data) - block_size + 1, (batch_size,), generator=generator)
    return torch.stack([data[s : s + block_size] for s in starts.tolist()])


@torch.no_grad()
def evaluate_loss(model: GPT, data: Tensor, batch_size: int = 32, max_blocks: int | None = None) -> float:
    """Mean next-token loss over ``data`` cut into consecutive blocks (all of it by default).

    Every token except the first of each block is predicted once, so the figure is
    the loss over the whole split, not an estimate from a sample.
    """
    block = model.config.max_positions
    if len(data) < 2:
        raise AttnlabError("The validation split has fewer than 2 tokens; use a longer text.")
    n_blocks = max(1, len(data) // block)
    if max_blocks is not None:
        n_blocks = min(n_blocks, max_blocks)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for first in range(0, n_blocks, batch_size):
        rows = [data[i * block : (i + 1) * block] for i in range(first, min(first + batch_size, n_blocks))]
        rows = [r for r in rows if len(r) >= 2]
        length = min(len(r) for r in rows)
        ids = torch.stack([r[:length] for r in rows])
        loss = model(ids, labels=ids).loss
        predicted = ids.shape[0] * (length - 1)
        total += float(loss) * predicted
        count += predicted
    model.train(was_training)
    return total / count


def train_language_model(
    model: GPT,
    train_ids: Tensor,
    val_ids: Tensor,
    config: LMTrainingConfig,
    *,
    out_dir: str | Path | None = None,
    on_save: Callable[[Path], None] | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` on ``train_ids``; returns a summary with the final losses.

    Writes ``metrics.jsonl`` (one JSON object per evaluation) and the model to
    ``out_dir`` at each evaluation and at the end; ``on_save(dir)`` runs after
    each save (e.g. to write the tokenizer beside the weights).
    """
    block = model.config.max_positions
    if len(train_ids) <= block:
        raise AttnlabError(
            f"The training split has {len(train_ids)} tokens, not more than the block size "
            f"{block}; use a longer text or a smaller --block-size."
        )
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = optimizer_for(model, config)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def log(record: dict) -> None:
        if out is not None:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")

    def save() -> None:
        if out is not None:
            model.save_pretrained(out)
            if on_save is not None:
                on_save(out)

    log({"event": "start", "config": asdict(config), "model": model.config.to_dict(),
         "parameters": model.num_parameters()})
    model.train()
    started = time.perf_counter()
    tokens_seen, step, loss_value = 0, 0, float("nan")
    bar = tqdm(total=config.max_iters, desc="training", disable=not progress, unit="step")
    for step in range(config.max_iters):
        lr = warmup_cosine(step, lr=config.lr, min_lr=config.min_lr,
                           warmup=config.warmup_iters, total=config.max_iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ids = random_batch(train_ids, config.batch_size, block, generator)
        loss = model(ids, labels=ids).loss
        if not torch.isfinite(loss):
            save_note = " (the last saved checkpoint is kept)" if out is not None else ""
            raise AttnlabError(
                f"The loss became {float(loss)} at step {step}; lower --lr{save_note}."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_value = float(loss.detach())
        tokens_seen += ids.numel()
        elapsed = time.perf_counter() - started
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_seen / elapsed:,.0f}")
        last = step + 1 == config.max_iters or (
            config.max_time is not None and elapsed >= config.max_time
        )
        if (step + 1) % config.eval_interval == 0 and not last:
            val = evaluate_loss(model, val_ids, max_blocks=config.eval_iters * 8)
            log({"step": step + 1, "train_loss": loss_value, "val_loss_sample": val, "lr": lr,
                 "tokens": tokens_seen, "seconds": round(elapsed, 2)})
            bar.write(f"step {step + 1}: train loss {loss_value:.4f}, val loss (sample) {val:.4f}")
            save()
        if last:
            break
    bar.close()
    elapsed = time.perf_counter() - started
    val_loss = evaluate_loss(model, val_ids)
    summary = {"event": "end", "steps": step + 1, "train_loss": loss_value, "val_loss": val_loss,
               "tokens": tokens_seen, "seconds": round(elapsed, 2),
               "tokens_per_second": round(tokens_seen / elapsed, 1)}
    log(summary)
    save()
    model.eval()
    return summary
