"""One training loop for every model of the family.

The loop owns what all training shares: AdamW with decoupled weight decay on
linear-layer matrices (Loshchilov & Hutter 2019, arXiv:1711.05101), warm-up then
cosine decay, gradient accumulation and clipping, bf16 autocast where the hardware
has it, a progress bar, ``metrics.jsonl``, periodic and final evaluation, atomic
checkpoints that resume exactly, and Ctrl-C that saves at a step boundary.
What differs between models is a :class:`Task`: how to draw a batch, the loss,
and what to evaluate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel
from attnlab.training.checkpoint import begin_run, save_checkpoint
from attnlab.training.interrupt import deferred_interrupt
from attnlab.training.precision import autocast, resolve_dtype
from attnlab.training.schedule import warmup_cosine

# Fields that may change between a run and its resumption without breaking exactness
# of what was already trained (they decide only how long to go on and how often to log).
RESUMABLE_CHANGES = {"max_iters", "max_time", "eval_interval", "eval_iters"}


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """How long and how fast to train. ``max_time`` (seconds) stops early if set.

    One optimizer step sees ``batch_size * grad_accum_steps`` examples.
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


@dataclass
class Task:
    """What one kind of training adds to the loop.

    next_batch(generator): a micro-batch (tensors or a dict of them) drawn with
        ``generator`` only, so that checkpointing its state makes resume exact.
    loss(model, batch): the scalar to minimise.
    tokens(batch): how many tokens the batch holds (for tokens/s).
    evaluate_sample(model): cheap metrics logged every ``eval_interval`` steps.
    evaluate_final(model): the full evaluation reported at the end.
    """

    next_batch: Callable[[torch.Generator], Any]
    loss: Callable[[nn.Module, Any], Tensor]
    tokens: Callable[[Any], int]
    evaluate_sample: Callable[[nn.Module], dict[str, float]] | None = None
    evaluate_final: Callable[[nn.Module], dict[str, float]] | None = None


def optimizer_for(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
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


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def run_training(
    model: PreTrainedModel,
    task: Task,
    config: TrainingConfig,
    *,
    out_dir: str | Path | None = None,
    tokenizer=None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train ``model`` on ``task``; returns a summary (steps, losses, final metrics, speed).

    With ``out_dir``: appends to ``metrics.jsonl`` and writes a checkpoint (model,
    ``tokenizer``, training state) at every evaluation, at the end, and when Ctrl-C
    is pressed (then ``summary["interrupted"]`` is True). ``resume=True`` continues
    the checkpoint in ``out_dir`` exactly; without it an existing checkpoint there
    is never overwritten. ``on_step(step, loss)`` runs after each optimizer step.
    """
    out = Path(out_dir) if out_dir is not None else None
    device = next(model.parameters()).device
    dtype = resolve_dtype(config.dtype, device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = optimizer_for(model, config)
    done, tokens_before = 0, 0

    state = begin_run(out, resume, model, asdict(config), RESUMABLE_CHANGES)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        done, tokens_before = state["step"], state["tokens"]
        if done >= config.max_iters:
            raise AttnlabError(
                f"The checkpoint in {out} already has {done} steps; raise --max-iters to train on."
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

    def evaluate(evaluator) -> dict[str, float]:
        if evaluator is None:
            return {}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            metrics = evaluator(model)
        model.train(was_training)
        return metrics

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
                batch = _to(task.next_batch(generator), device)
                with autocast(dtype, device):
                    loss = task.loss(model, batch) / config.grad_accum_steps
                loss.backward()
                step_loss += float(loss.detach())
                tokens_seen += task.tokens(batch)
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
                metrics = evaluate(task.evaluate_sample)
                log({"step": done, **metrics, "tokens": tokens_before + tokens_seen,
                     "seconds": round(elapsed, 2)})
                bar.write(f"step {done}: train loss {loss_value:.4f}" + (
                    f", {_format(metrics)}" if metrics else ""))
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
        final = evaluate(task.evaluate_final)
        summary = {"event": "end", "interrupted": False, "steps": done, "train_loss": loss_value,
                   **final, "tokens": tokens_before + tokens_seen, "dtype": dtype,
                   "seconds": round(elapsed, 2),
                   "tokens_per_second": round(tokens_seen / max(elapsed, 1e-9), 1)}
        log(summary)
        checkpoint()
    model.eval()
    return summary
