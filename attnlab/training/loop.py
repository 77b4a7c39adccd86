"""One training loop for every model of the family.

The loop owns what all training shares: AdamW with decoupled weight decay on
linear-layer matrices (Loshchilov & Hutter 2019, arXiv:1711.05101), warm-up then
cosine decay, gradient accumulation and clipping, bf16 autocast where the hardware
has it, a progress bar, ``metrics.jsonl``, periodic and final evaluation, atomic
checkpoints that resume exactly, and Ctrl-C that saves at a step boundary.
Under ``torchrun`` the same loop trains on several processes (DDP, or FSDP2 with
``fsdp=True``); what that changes is kept in :mod:`attnlab.training.distributed` (the world) and
:mod:`attnlab.training.parallel_model` (the model).
What differs between models is a :class:`Task`: how to draw a batch, the loss,
what to evaluate, and, where a model's recipe differs from pre-training's, its
optimizer, its schedule, a resumable epoch order (:mod:`attnlab.training.order`) and
hooks: after each step (weight snapshots), after each evaluation (early stopping on a
validation metric) and at the end (checkpoint averaging). Every trainer in this
package is a builder of a Task; ``backward()`` is called here only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from attnlab.device import autocast, resolve_dtype
from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel
from attnlab.training import distributed, parallel_model
from attnlab.training.checkpoint import begin_run, save_checkpoint
from attnlab.training.config_checks import check_counts, check_dtype, check_number, with_old_names
from attnlab.training.interrupt import deferred_interrupt
from attnlab.training.metrics_log import MetricsLog
from attnlab.training.order import EpochOrder
from attnlab.training.schedule import BudgetHorizon, BudgetSchedule

# Fields that may change between a run and its resumption without breaking exactness
# of what was already trained (they decide only how long to go on and how often to log).
# How many processes train, and whether they shard the model, may change too: the
# checkpoint holds full tensors and one data-generator state for any world size.
RESUMABLE_CHANGES = {"max_steps", "max_time", "eval_interval", "eval_iters", "fsdp", "dist_timeout"}


@with_old_names
@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """How long and how fast to train. ``max_time`` (seconds) stops early if set.

    One optimizer step sees ``batch_size * grad_accum_steps`` examples; under torchrun
    ``batch_size`` is the global micro-batch, split by rows over the processes.
    ``fsdp`` shards the model across them (FSDP2) instead of replicating it (DDP);
    ``dist_timeout`` (seconds) bounds every wait on another process. ``max_iters`` and
    ``warmup_iters``, the names of ``max_steps`` and ``warmup_steps`` before, still work.
    """

    max_steps: int = 2000
    max_time: float | None = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99  # 0.99 suits small batches (few tokens per step); GPT-3 used 0.95
    grad_clip: float | None = 1.0  # None: no clipping
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    dtype: str = "fp32"
    fsdp: bool = False
    dist_timeout: float = 300.0

    def __post_init__(self) -> None:
        check_counts(self, ("max_steps", "batch_size", "grad_accum_steps", "eval_interval", "eval_iters"))
        check_number("lr", self.lr, above=0)
        check_number("min_lr", self.min_lr, at_least=0)
        check_number("warmup_steps", self.warmup_steps, at_least=0)
        check_number("weight_decay", self.weight_decay, at_least=0)
        check_number("grad_clip", self.grad_clip, above=0, finite=False, optional=True)
        check_number("beta2", self.beta2, at_least=0, below=1)
        check_number("max_time", self.max_time, above=0, finite=False, optional=True, unit=" seconds")
        check_dtype(self.dtype)
        check_number("dist_timeout", self.dist_timeout, above=0, finite=False, unit=" seconds")


@dataclass
class Task:
    """What one kind of training adds to the loop.

    next_batch(generator): a micro-batch (tensors or a dict of them) drawn with
        ``generator`` only (and ``order``, if any), so that checkpointing their state
        makes resume exact.
    loss(model, batch): the scalar to minimise, or (scalar, {name: scalar}) whose
        extra figures (e.g. an auxiliary loss) join the step's ``metrics.jsonl`` record.
        A loss that adds means over different things (MLM + NSP) may give its terms as a
        list of scalars in place of the scalar, one per entry of ``counts``.
    tokens(batch): how many tokens the batch holds (for tokens/s).
    evaluate_sample(model): metrics logged at every evaluation during training.
    evaluate_final(model): the full evaluation reported at the end.

    Optional, each None for the loop's default:
    optimizer(model): the optimizer (default: AdamW of :func:`optimizer_for`).
    schedule(step): the learning rate of step ``step`` counted from 0 (default: warm-up +
        cosine from the config).
    order: the epoch order ``next_batch`` draws from; saved in checkpoints.
    evaluate_now(step): whether to evaluate after ``step`` (default: every ``eval_interval``).
    after_step(model, step): after every optimizer step (e.g. weight snapshots).
    after_evaluation(step, metrics, train_loss): after every evaluation, the final one
        included; True stops training there (early stopping).
    at_end(model, summary): after the last checkpoint, on Ctrl-C too (``summary["interrupted"]``);
        returns entries added to the summary (e.g. the averaged model's scores).
    settings: the run's config as checkpoints record it and ``resume`` compares it
        (default: the TrainingConfig), with ``resumable`` the fields that may change.
    info: entries added to the start record of ``metrics.jsonl``.
    counts(batch): how many things each term of the loss averages over in ``batch`` (rows,
        target tokens, masked positions); default: one term, a mean over rows. Under torchrun
        each rank's terms are weighted by its share of these (:func:`distributed.split`).
    lr_flag, steps_flag: the command-line options the loop's messages name.

    Under torchrun every rank evaluates (identical replicas, identical figures) and calls
    ``after_evaluation``, whose decision is rank 0's; ``after_step`` and ``at_end``, which
    write files, run on rank 0 only, and rank 0's ``at_end`` entries reach every rank.
    """

    next_batch: Callable[[torch.Generator], Any]
    loss: Callable[[nn.Module, Any], Tensor | tuple[Tensor, dict[str, Tensor]]]
    tokens: Callable[[Any], int]
    evaluate_sample: Callable[[nn.Module], dict[str, float]] | None = None
    evaluate_final: Callable[[nn.Module], dict[str, float]] | None = None
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None
    schedule: Callable[[int], float] | None = None
    order: EpochOrder | None = None
    evaluate_now: Callable[[int], bool] | None = None
    after_step: Callable[[nn.Module, int], None] | None = None
    after_evaluation: Callable[[int, dict[str, float], float], bool] | None = None
    at_end: Callable[[nn.Module, dict], dict] | None = None
    settings: dict[str, Any] | None = None
    resumable: set[str] = field(default_factory=lambda: set(RESUMABLE_CHANGES))
    info: dict[str, Any] = field(default_factory=dict)
    counts: Callable[[Any], Sequence[int]] | None = None
    lr_flag: str = "--lr"
    steps_flag: str = "--max-iters"


def optimizer_for(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on linear-layer matrices only (not norms, biases or embeddings).

    PyTorch's fused kernel on a CPU or a CUDA GPU: it updates every tensor in one pass. For the
    52 tensors of nanoGPT's CPU recipe model (4 x 128) the update took 0.67 ms instead of 1.76 ms
    with the per-tensor loop (one thread, clipping included).
    """
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
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2), fused=fused)


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def train_mode(model: nn.Module) -> None:
    """Train mode, except for parts whose every parameter is frozen: fixed features, no dropout."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


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
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``model`` on ``task``; returns a summary (steps, losses, final metrics, speed).

    With ``out_dir``: appends to ``metrics.jsonl`` and writes a checkpoint (model,
    ``tokenizer``, training state) at every evaluation, at the end, and when Ctrl-C
    is pressed (then ``summary["interrupted"]`` is True). ``resume=True`` continues
    the checkpoint in ``out_dir`` exactly; without it an existing checkpoint there
    is never overwritten. ``on_step(step, loss)`` runs after each optimizer step;
    ``log(record)`` receives every record of ``metrics.jsonl`` (also without ``out_dir``).

    Under torchrun every process calls this with the same arguments; each trains on
    its rows of every batch, rank 0 alone logs and saves, and the summary's loss and
    tokens cover all processes. After an FSDP run ``model`` holds only this rank's
    shards: read the saved checkpoint for the whole model.
    """
    out = Path(out_dir) if out_dir is not None else None
    settings = task.settings if task.settings is not None else asdict(config)
    device = next(model.parameters()).device
    world = distributed.join(device, config.dist_timeout)
    if world.distributed and device.type == "cuda" and device.index != world.local_rank:
        device = torch.device("cuda", world.local_rank)  # one GPU per process
        model.to(device)
    if world.distributed and config.fsdp and (task.after_step or task.at_end):
        raise AttnlabError("This training writes whole-model files as it goes (snapshots, the final "
                           "model) and runs under DDP only; leave --fsdp out.")
    dtype = resolve_dtype(config.dtype, device)
    torch.manual_seed(config.seed + world.rank)  # dropout: each rank its own masks
    generator = torch.Generator().manual_seed(config.seed)  # data: the same global batches everywhere
    done, tokens_before = 0, 0
    where = "the start"

    def doing() -> str:
        return where

    with distributed.failures(world, config.dist_timeout, doing):
        state = distributed.on_main(
            world, lambda: begin_run(out, resume, model, settings, task.resumable))
        model_class = type(model)
        # trained(fn, *args) runs fn(model, *args) as one forward of DDP or FSDP2 (from rank 0's weights).
        trained = parallel_model.wrap(model, world, config.fsdp)
        optimizer = task.optimizer(model) if task.optimizer is not None else optimizer_for(model, config)
        if state is not None:
            parallel_model.load_optimizer_state(model, optimizer, state["optimizer"])
            generator.set_state(state["data_rng"])
            if task.order is not None:
                task.order.load_state_dict(state["data_order"])
            parallel_model.restore_rng_state(state, world, config.seed)
            done, tokens_before = state["step"], state["tokens"]
            if done >= config.max_steps:
                raise AttnlabError(
                    f"The checkpoint in {out} already has {done} steps; raise {task.steps_flag} to train on."
                )
        if out is not None and world.is_main:
            out.mkdir(parents=True, exist_ok=True)
    write = MetricsLog(out, enabled=world.is_main, also=log)

    def checkpoint() -> None:
        if out is None:
            return
        # Collective under torchrun: FSDP shards and every rank's RNG are gathered to rank 0.
        whole = parallel_model.full_model(model, model_class)
        optimizer_state = parallel_model.full_optimizer_state(model, optimizer)
        rng_states = parallel_model.gather_rng_states(world)
        if world.is_main:
            ranks = {"torch_rng_ranks": rng_states, "world_size": world.size} if world.distributed else {}
            order = {"data_order": task.order.state_dict()} if task.order is not None else {}
            save_checkpoint(out, whole, {
                "step": done, "tokens": tokens_before + tokens_seen,
                "optimizer": optimizer_state,
                "data_rng": generator.get_state(), **order, "torch_rng": rng_states[0], **ranks,
                "schedule": schedule.state_dict(),
                "model_config": model.config.to_dict(), "training_config": settings,
            }, tokenizer=tokenizer)
        distributed.barrier(world)

    def evaluate(evaluator) -> dict[str, float]:
        # Every rank evaluates (identical replicas give identical figures; FSDP needs all ranks).
        if evaluator is None:
            return {}
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        with torch.no_grad():
            metrics = trained(evaluator) if parallel_model.is_sharded(model) else evaluator(model)
        for module, mode in modes:  # frozen parts stay in eval mode (see train_mode)
            module.training = mode
        return metrics

    def decide(metrics: dict[str, float]) -> bool:
        """The task's end-of-evaluation hook, on every rank: whether to stop (rank 0's decision)."""
        if task.after_evaluation is None:
            return False
        return distributed.from_main(world, bool(task.after_evaluation(done, metrics, loss_value)))

    def finish(summary: dict) -> dict:
        """The task's end hook, on rank 0 (it writes files); its entries reach every rank."""
        if task.at_end is None:
            return {}
        return distributed.on_main(world, lambda: task.at_end(model, summary))

    write({"event": "resume" if resume else "start", "step": done, "config": settings,
           "dtype": dtype, "model": model.config.to_dict(), "parameters": model.num_parameters(),
           **task.info, **({"world_size": world.size} if world.distributed else {})})
    train_mode(model)
    started = time.perf_counter()
    tokens_seen, loss_value, interrupted, checked = 0, float("nan"), False, False
    stopped_early, evaluated_at, metrics = False, None, {}
    # With --max-time the step the run will reach when the time runs out is re-estimated every step
    # from the pace after warm-up (the slowest rank's): the progress bar ends there, and the rate
    # cools down to min_lr there. Without it the cosine runs over max_steps, as it always did.
    first_done, clock, planned = done, 0.0, config.max_steps
    horizon = BudgetHorizon(max_time=config.max_time, max_steps=config.max_steps,
                            warmup=config.warmup_steps, first_step=done)
    schedule = BudgetSchedule(lr=config.lr, min_lr=config.min_lr, warmup=config.warmup_steps,
                              max_steps=config.max_steps)
    if state is not None and "schedule" in state and config.max_time is not None:
        schedule.load_state_dict(state["schedule"])
    bar = tqdm(total=config.max_steps, initial=done, desc="training", unit="step",
               disable=not progress or not world.is_main)
    with deferred_interrupt() as ctrl_c_pressed, distributed.failures(world, config.dist_timeout, doing):
        while done < config.max_steps:
            where = f"step {done + 1}"
            if config.max_time is not None and done - first_done >= 10 and bar.total != planned:
                bar.total = planned  # a pace to go by: the ETA follows the clock
                bar.refresh()
            lr = task.schedule(done) if task.schedule is not None else schedule.lr_at(done)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_tokens, extras = 0.0, 0, {}
            for micro in range(config.grad_accum_steps):
                batch = task.next_batch(generator)  # the global micro-batch; this rank keeps its rows
                if not checked:
                    distributed.check_same_batch(batch, world)
                    checked = True
                part = distributed.split(batch, world, task.counts or _rows)
                batch = _to(part.batch, device)
                with parallel_model.gradient_sync(trained, enabled=micro == config.grad_accum_steps - 1):
                    with autocast(dtype, device):
                        terms, figures = _terms_and_figures(trained(task.loss, batch))
                        loss = _weighted_sum(terms, part.shares) / config.grad_accum_steps
                    loss.backward()
                step_loss += float(loss.detach())
                step_tokens += 0 if part.empty else task.tokens(batch)
                for name, value in figures.items():  # this rank's, averaged over the micro-batches
                    extras[name] = extras.get(name, 0.0) + float(value) / config.grad_accum_steps
            step_loss, step_tokens = distributed.mean_loss_and_tokens(world, step_loss, step_tokens)
            tokens_seen += step_tokens
            if not math.isfinite(step_loss):
                kept = " (the last checkpoint is kept)" if out is not None else ""
                raise AttnlabError(f"The loss became {step_loss} at step {done}; lower {task.lr_flag}{kept}.")
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            done += 1
            loss_value = step_loss
            elapsed = time.perf_counter() - started
            bar.update(1)
            # No refresh of its own: update() redraws the bar at most ten times a second.
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_seen / elapsed:,.0f}", refresh=False)
            if on_step is not None:
                on_step(done, loss_value)
            epoch = {"epoch": task.order.epoch} if task.order is not None else {}
            write({"step": done, "train_loss": loss_value, "lr": lr, **extras, **epoch})
            if task.after_step is not None and world.is_main:
                task.after_step(model, done)
            # Every rank stops at the same step: Ctrl-C or the clock on any rank stops them all.
            pressed, clock = distributed.max_over_ranks(world, float(ctrl_c_pressed()), elapsed)
            stop, out_of_time = pressed > 0, config.max_time is not None and clock >= config.max_time
            planned = horizon.estimate(done, clock)
            schedule.step_done(done - 1, planned if horizon.trusted else schedule.horizon)
            if stop:
                interrupted = True
                break
            due = (task.evaluate_now(done) if task.evaluate_now is not None
                   else done % config.eval_interval == 0)
            if due and done < config.max_steps and not out_of_time:
                where = f"the evaluation after step {done}"
                metrics, evaluated_at = evaluate(task.evaluate_sample), done
                write({"step": done, **metrics, "tokens": tokens_before + tokens_seen,
                       "seconds": round(elapsed, 2)})
                if world.is_main:
                    bar.write(f"step {done}: train loss {loss_value:.4f}" + (
                        f", {_format(metrics)}" if metrics else ""))
                stopped_early = decide(metrics)
                where = f"the checkpoint after step {done}"
                checkpoint()
            if out_of_time or stopped_early:
                break
        bar.close()
        elapsed = time.perf_counter() - started
        where = f"the end (step {done})"
        if interrupted:
            checkpoint()
            summary = {"event": "interrupted", "interrupted": True, "steps": done,
                       "train_loss": loss_value, "seconds": round(elapsed, 2)}
            added = finish(summary)
            write({"event": "interrupted", "step": done, **added})
            model.eval()
            return {**summary, **added}
        if evaluated_at != done:  # an early stop right after an evaluation keeps its figures
            metrics = evaluate(task.evaluate_final)
            decide(metrics)
        summary = {"event": "end", "interrupted": False, "steps": done, "train_loss": loss_value,
                   **metrics, "tokens": tokens_before + tokens_seen, "dtype": dtype,
                   "seconds": round(elapsed, 2),
                   "tokens_per_second": round(tokens_seen / max(elapsed, 1e-9), 1),
                   **({"stopped_early": stopped_early} if task.after_evaluation is not None else {}),
                   **({"world_size": world.size} if world.distributed else {})}
        checkpoint()
        summary.update(finish(summary))  # after the checkpoint: whatever it does, resume stays exact
        write(summary)
    model.eval()
    return summary


def _rows(batch: Any) -> list[int]:
    """The default count: one loss term, a mean over the batch's rows."""
    first = next(t for t in distributed.tensors_of(batch) if t.dim() > 0)
    return [first.shape[0]]


def _terms_and_figures(result: Any) -> tuple[list[Tensor], dict[str, Tensor]]:
    loss, figures = result if isinstance(result, tuple) else (result, {})
    return (list(loss) if isinstance(loss, list) else [loss]), figures


def _weighted_sum(terms: list[Tensor], shares: tuple[float, ...] | None) -> Tensor:
    """The terms added up in order (one process: the task's loss as it is), each times this rank's
    share under torchrun."""
    if shares is not None and len(shares) != len(terms):
        raise AttnlabError(f"The task's loss has {len(terms)} term(s) but its counts give {len(shares)}.")
    total = terms[0] if shares is None else terms[0] * shares[0]
    for i, term in enumerate(terms[1:], start=1):
        total = total + (term if shares is None else term * shares[i])
    return total
