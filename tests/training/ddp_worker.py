"""One process of a torchrun launch for test_distributed.py (not a test module itself).

Trains the tiny GPT of the distributed tests with the shared loop, plain DDP, FSDP2
and a stop-and-resume, and rank 0 writes every run's losses to ``results.json``.
``--fail-at N`` makes rank 1 fail after step N, killed (``--fail kill``, SIGKILL) or
silent (``--fail hang``), to test that the others stop. The plain DDP run also records
the rows each rank's model saw first, and gives rank 1 an ``--out`` of its own, which
must stay unwritten; ``stopped_at_3`` keeps a 2-process checkpoint for the test to
resume on one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig, train_language_model

VOCAB = 11
STEPS = 5


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (3000,), generator=torch.Generator().manual_seed(seed))
    return ids[:2500], ids[2500:]


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("gpt-nano", vocab_size=VOCAB, n_layers=2, d_model=32, d_ff=128,
                                     n_heads=2, max_positions=16, dropout=0.0, attention_dropout=0.0))


def config(batch_size: int, grad_accum_steps: int = 1, **extra) -> LMTrainingConfig:
    return LMTrainingConfig(**{"max_iters": STEPS, "batch_size": batch_size,
                               "grad_accum_steps": grad_accum_steps, "lr": 3e-3, "warmup_iters": 1,
                               "eval_interval": 100, "eval_iters": 1, **extra})


def train(cfg: LMTrainingConfig, out: Path | None, resume: bool = False, on_step=None,
          data_seed: int = 0, seen: list | None = None) -> tuple[list[float], GPT]:
    """Losses per step and the model; ``seen`` gets each token-embedding input (B, T)."""
    losses: list[float] = []

    def record(step: int, loss: float) -> None:
        losses.append(loss)
        if on_step is not None:
            on_step(step)

    model = tiny_gpt()
    if seen is not None:
        model.embeddings.token.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    train_ids, val_ids = data(data_seed)
    train_language_model(model, train_ids, val_ids, cfg, out_dir=out, resume=resume, progress=False,
                         on_step=record)
    return losses, model


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fail-at", type=int, default=None)
    parser.add_argument("--fail", choices=["kill", "hang"], default="kill")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    rank = int(os.environ["RANK"])

    def ctrl_c_at_3(step: int) -> None:
        if rank == 0 and step == 3:  # one rank's Ctrl-C stops every rank after this step
            os.kill(os.getpid(), signal.SIGINT)

    def fail(step: int) -> None:
        if rank == 1 and step == args.fail_at:
            if args.fail == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)  # alive, but never answers again

    try:
        if args.fail_at is not None:
            train(config(args.batch_size, max_iters=50, dist_timeout=args.timeout), None, on_step=fail)
            return 0
        seen: list[torch.Tensor] = []
        ddp_out = args.out / ("ddp" if rank == 0 else "ddp_rank1")  # rank 1 must not write there
        results = {
            "ddp": train(config(args.batch_size), ddp_out, seen=seen)[0],
            "ddp_accum": train(config(args.batch_size // 2, grad_accum_steps=2), args.out / "ddp_accum")[0],
            "fsdp": train(config(args.batch_size, fsdp=True), args.out / "fsdp")[0],
            "first": train(config(args.batch_size), args.out / "resumed", on_step=ctrl_c_at_3)[0],
        }
        if rank == 0:  # for the test to resume on one process
            shutil.copytree(args.out / "resumed", args.out / "stopped_at_3")
        torch.distributed.barrier()
        results["resumed"] = train(config(args.batch_size), args.out / "resumed", resume=True)[0]
        # Stopped under FSDP, continued under DDP.
        results["fsdp_first"] = train(config(args.batch_size, fsdp=True), args.out / "fsdp_then_ddp",
                                      on_step=ctrl_c_at_3)[0]
        results["fsdp_then_ddp"] = train(config(args.batch_size), args.out / "fsdp_then_ddp", resume=True)[0]
        first_rows: list[list[list[int]] | None] = [None] * 2
        torch.distributed.all_gather_object(first_rows, seen[0].tolist())
        results["first_rows"] = first_rows
        try:
            train(config(args.batch_size), None, data_seed=rank)
        except AttnlabError as error:
            results["different_data"] = str(error)
    except AttnlabError as error:
        print(f"attnlab: error: {error}", file=sys.stderr)
        return 2
    if rank == 0:
        (args.out / "results.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
