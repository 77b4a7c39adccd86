"""Next-token pre-training of a causal language model (GPT).

Batches are random windows of ``block_size + 1`` tokens from the training ids:
the model reads the first ``block_size`` and every position's logits are scored
(cross-entropy) against the token that follows it, so each window gives
``block_size`` predictions. The shared loop (:mod:`attnlab.training.loop`) does
the rest; the final report evaluates the *whole* validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT
from attnlab.training.loop import Task, TrainingConfig, optimizer_for, run_training

# The language-model loop's settings are the shared loop's.
LMTrainingConfig = TrainingConfig

__all__ = ["LMTrainingConfig", "evaluate_loss", "next_token_loss", "optimizer_for", "random_batch",
           "train_language_model"]


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
    config: TrainingConfig,
    *,
    out_dir: str | Path | None = None,
    tokenizer=None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train ``model`` on ``train_ids``; the summary's ``val_loss`` covers all of ``val_ids``.

    Checkpoints, resume, Ctrl-C and logging are those of :func:`attnlab.training.loop.run_training`;
    so is training on several processes under torchrun, where ``config.batch_size`` windows
    are drawn on every rank and each rank trains on its ``batch_size / world_size`` of them.
    """
    block = model.config.max_positions
    if len(train_ids) <= block + 1:
        raise AttnlabError(
            f"The training split has {len(train_ids)} tokens; a window needs block size + 1 = "
            f"{block + 1} and more. Use a longer text or a smaller --block-size."
        )
    task = Task(
        next_batch=lambda generator: random_batch(train_ids, config.batch_size, block + 1, generator),
        loss=next_token_loss,
        tokens=lambda windows: windows.shape[0] * (windows.shape[1] - 1),
        evaluate_sample=lambda m: {
            "val_loss_sample": evaluate_loss(m, val_ids, max_blocks=config.eval_iters * 8)},
        evaluate_final=lambda m: {"val_loss": evaluate_loss(m, val_ids)},
    )
    return run_training(model, task, config, out_dir=out_dir, tokenizer=tokenizer, resume=resume,
                        progress=progress, on_step=on_step)
