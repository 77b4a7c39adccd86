"""Next-token pre-training of a causal language model (GPT).

Batches are random windows of ``block_size + 1`` tokens from the training ids:
the model reads the first ``block_size`` and every position's logits are scored
(cross-entropy) against the token that follows it, so each window gives
``block_size`` predictions.
AdamW with decoupled weight decay (Loshchilov & Hutter 2019, arXiv:1711.05101)
on the matrices of the linear layers only, warm-up then cosine decay, gradient
clipping, gradient accumulation, bf16 autocast where the hardware has it.
Checkpoints resume exactly (see :mod:`attnlab.training.checkpoint`); the final
report evaluates the *whole* validation split.
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
from attnlab.training.checkpoint import (
    config_differences,
    has_checkpoint,
    load_training_state,
    save_checkpoint,
)
from attnlab.training.interrupt import deferred_interrupt
from attnlab.training.precision import autocast, resolve_dtype
from attnlab.training.schedule import warmup_cosine

# Fields that may change between a run and its resumption without breaking exactness
# of what was already trained (they decide only how long to go on and how often to log).
RESUMABLE_CHANGES = {"max_iters", "max_time", "eval_interval", "eval_iters"}


@dataclass(frozen=True, kw_only=True)
class LMTrainingConfig:
    """How long and how fast to train. ``max_time`` (seconds) stops early if set.

    One optimizer step sees ``batch_size * grad_accum_steps`` sequences.
    """

    max_iters: int = 2000
    max_time: float | None = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99  # 0.99 suits small batches (few tokens per step); GPT-3 used 0.95
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("max_iters", "batch_size", "grad_accum_steps", "eval_interval", "eval_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AttnlabError(
                    f"The {name!r} training parameter must be an int >= 1. Got {value!r} instead."
                )
        if not self.lr > 0 or self.min_lr < 0:
            raise AttnlabError(f"lr must be > 0 and min_lr >= 0. Got lr={self.lr}, min_lr={self.min_lr}.")
        if self.warmup_iters < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise AttnlabError("warmup_iters and weight_decay must be >= 0 and grad_clip > 0.")
        if not 0 <= self.beta2 < 1:
            raise AttnlabError(f"beta2 must be in [0, 1). Got {self.beta2!r} instead.")
        if self.max_time is not None and not self.max_time > 0:
            raise AttnlabError(f"max_time must be > 0 seconds. Got {self.max_time!r} instead.")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise AttnlabError(f"dtype must be 'auto', 'fp32' or 'bf16'. Got {self.dtype!r} instead.")


def optimizer_for(model: nn.Module, config: LMTrainingConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on linear-layer matrices only (not norms, biases or embeddings)."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue  # tied weights are optimised once
            seen.add(id(param))
            if isinstance(module, nn.Linear) and name == "weight" and id(param) not in embedding_ids:
                decay.append(param)
            else:
                no_decay.append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))


def random_batch(data: Tensor, batch_size: int, length: int, generator: torch.Generator) -> Tensor:
    """(batch_size, length) windows starting at random offsets of ``data`` (N,)."""
    starts = torch.randint(0, len(data) - length + 1, (batch_size,), generator=generator)
    return torch.stack([data[s : s + length] for s in starts.tolist()])


def next_token_loss(model: GPT, windows: Tensor) -> Tensor:
    """Mean cross-entropy of predicting windows[:, 1:] from windows[:, :-1]; windows (B, T+1)."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    logits = model(inputs).logits  # (B, T, V)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
    )


@torch.no_grad()
def evaluate_loss(
    model: GPT, data: Tensor, batch_size: int = 32, max_blocks: int | None = None
) -> float:
    """Mean next-token loss over ``data`` (all of it by default).

    Windows of ``block_size + 1`` tokens start every ``block_size`` tokens, so every
    token of the split except the first is predicted exactly once: the figure is the
    loss over the whole split, not an estimate from a sample.
    """
    block = model.config.max_positions
    if len(data) < 2:
        raise AttnlabError("The validation split has fewer than 2 tokens; use a longer text.")
    n_blocks = -(-(len(data) - 1) // block)  # windows needed to predict tokens 1 .. N-1
    if max_blocks is not None:
        n_blocks = min(n_blocks, max_blocks)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for first in range(0, n_blocks, batch_size):
        last = min(first + batch_size, n_blocks)
        rows = [data[i * block : (i + 1) * block + 1] for i in range(first, last)]
        full = [r for r in rows if len(r) == block + 1]
        groups = ([torch.stack(full)] if full else []) + [r[None] for r in rows if len(r) != block + 1]
        for windows in groups:  # the last, shorter window runs on its own
            loss = next_token_loss(model, windows.to(device))
            predicted = windows.shape[0] * (windows.shape[1] - 1)
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
    tokenizer=None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train ``model`` on ``train_ids``; returns a summary with the final losses.

    With ``out_dir``: appends to ``metrics.jsonl`` and writes a checkpoint (model,
    ``tokenizer``, training state) at every evaluation, at the end, and when Ctrl-C
    is pressed (then ``summary["interrupted"]`` is True). ``resume=True`` continues
    the checkpoint in ``out_dir`` exactly; without it an existing checkpoint there
    is never overwritten. ``on_step(step, loss)`` runs after each optimizer step.
    """
    block = model.config.max_positions
    if len(train_ids) <= block + 1:
        raise AttnlabError(
            f"The training split has {len(train_ids)} tokens, not more than the block size "
            f"{block}; use a longer text or a smaller --block-size."
        )
    out = Path(out_dir) if out_dir is not None else None
    device = next(model.parameters()).device
    dtype = resolve_dtype(config.dtype, device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = optimizer_for(model, config)
    done, tokens_before = 0, 0

    if resume:
        if out is None:
            raise AttnlabError("resume needs the checkpoint directory (--out).")
        state = load_training_state(out)
        changed = config_differences(state["model_config"], model.config.to_dict())
        changed += [
            c for c in config_differences(state["training_config"], asdict(config))
            if c.split(":")[0] not in RESUMABLE_CHANGES
        ]
        if changed:
            raise AttnlabError(
                f"--resume with a changed config ({'; '.join(changed[:4])}); "
                f"use the settings of the saved run or a new --out directory."
            )
        from attnlab.interop.hf import load_state
        from attnlab.interop.weights import read_weights

        load_state(model, read_weights(out)[0], source=str(out))
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        done, tokens_before = state["step"], state["tokens"]
        if done >= config.max_iters:
            raise AttnlabError(
                f"The checkpoint in {out} already has {done} steps; raise --max-iters to train on."
            )
    elif out is not None and has_checkpoint(out):
        raise AttnlabError(
            f"{out} already holds a training checkpoint; pass --resume to continue it, "
            f"or choose another --out so nothing saved is overwritten."
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def log(record: dict) -> None:
        if out is not None:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")

    def checkpoint() -> None:
        if out is not None:
            save_checkpoint(out, model, {
                "step": done, "tokens": tokens_before + tokens_seen,
                "optimizer": optimizer.state_dict(),
                "data_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "model_config": model.config.to_dict(), "training_config": asdict(config),
            }, tokenizer=tokenizer)

    log({"event": "resume" if resume else "start", "step": done, "config": asdict(config),
         "dtype": dtype, "model": model.config.to_dict(), "parameters": model.num_parameters()})
    model.train()
    started = time.perf_counter()
    tokens_seen, loss_value, interrupted = 0, float("nan"), False
    bar = tqdm(total=config.max_iters, initial=done, desc="training", disable=not progress, unit="step")
    with deferred_interrupt() as ctrl_c_pressed:
        while done < config.max_iters:
            lr = warmup_cosine(done, lr=config.lr, min_lr=config.min_lr,
                               warmup=config.warmup_iters, total=config.max_iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for _ in range(config.grad_accum_steps):
                windows = random_batch(train_ids, config.batch_size, block + 1, generator).to(device)
                with autocast(dtype, device):
                    loss = next_token_loss(model, windows) / config.grad_accum_steps
                loss.backward()
                step_loss += float(loss.detach())
                tokens_seen += windows.shape[0] * block
            if not torch.isfinite(torch.tensor(step_loss)):
                kept = " (the last checkpoint is kept)" if out is not None else ""
                raise AttnlabError(f"The loss became {step_loss} at step {done}; lower --lr{kept}.")
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            done += 1
            loss_value = step_loss
            elapsed = time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_seen / elapsed:,.0f}")
            if on_step is not None:
                on_step(done, loss_value)
            log({"step": done, "train_loss": loss_value, "lr": lr})
            out_of_time = config.max_time is not None and elapsed >= config.max_time
            if ctrl_c_pressed():
                interrupted = True
                break
            if done % config.eval_interval == 0 and done < config.max_iters and not out_of_time:
                val = evaluate_loss(model, val_ids, max_blocks=config.eval_iters * 8)
                log({"step": done, "val_loss_sample": val, "tokens": tokens_before + tokens_seen,
                     "seconds": round(elapsed, 2)})
                bar.write(f"step {done}: train loss {loss_value:.4f}, val loss (sample) {val:.4f}")
                checkpoint()
            if out_of_time:
                break
        bar.close()
        elapsed = time.perf_counter() - started
        if interrupted:
            checkpoint()
            log({"event": "interrupted", "step": done})
            model.eval()
            return {"event": "interrupted", "interrupted": True, "steps": done,
                    "train_loss": loss_value, "seconds": round(elapsed, 2)}
        val_loss = evaluate_loss(model, val_ids)
        summary = {"event": "end", "interrupted": False, "steps": done, "train_loss": loss_value,
                   "val_loss": val_loss, "tokens": tokens_before + tokens_seen, "dtype": dtype,
                   "seconds": round(elapsed, 2),
                   "tokens_per_second": round(tokens_seen / max(elapsed, 1e-9), 1)}
        log(summary)
        checkpoint()
    model.eval()
    return summary
