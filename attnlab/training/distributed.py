"""Training on several processes: torchrun's world, the collectives the loop uses, launching.

Launched by ``torchrun`` (``python -m torch.distributed.run``), every process finds
its place in the environment variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins one process group:
NCCL when the model is on a CUDA GPU, gloo on the CPU. Without torchrun the world
is one process and nothing here does anything.

How the data is sharded. ``batch_size`` stays the *global* micro-batch. Every rank
draws the same global micro-batch from the same seeded generator (drawing windows or
masked pairs is cheap next to a forward pass) and keeps only its own rows, rank r
rows ``r*b : (r+1)*b`` with ``b = batch_size / world_size``; the forward and backward
passes, where the time goes, run on those rows only. So the union of what the ranks
train on is exactly what one process would train on, the data generator's state is
the same on every rank (one checkpointed state resumes any world size), and
``N processes x b`` rows give the same update as one process with ``N*b`` rows:
DistributedDataParallel averages the ranks' gradients, and a rank's loss is the mean
over its rows (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704). For losses
that are means over a varying number of tokens (BERT's masked LM) the average over
ranks is a mean of means, as it already is over accumulated micro-batches.

How the model is replicated (DDP) or sharded (FSDP2), and how its whole state is
gathered for a checkpoint, is :mod:`attnlab.training.parallel_model`; this module is
the process's place in the world, the collectives the loop needs, and launching.

Only rank 0 writes logs and checkpoints. Every collective waits at most
``timeout`` seconds, and a failure in one (a rank died, or stopped answering)
becomes one :class:`~attnlab.errors.AttnlabError` line on the surviving ranks.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from attnlab.checks import check_int
from attnlab.device import pick_device
from attnlab.errors import AttnlabError

T = TypeVar("T")

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def collective_device(self) -> torch.device:
        """Where tensors handed to collectives live: NCCL needs them on the GPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


def launched_world() -> World:
    """The world torchrun's environment describes, before any process group exists."""
    values = {}
    for name in ENV:
        raw = os.environ.get(name)
        if raw is None:
            values[name] = None
            continue
        if not raw.isdigit():
            raise AttnlabError(f"The {name} environment variable must be an int >= 0. Got {raw!r} instead.")
        values[name] = int(raw)
    size = values["WORLD_SIZE"] or 1
    if size == 1:
        return World()
    if values["RANK"] is None or values["RANK"] >= size:
        raise AttnlabError(
            f"WORLD_SIZE is {size} but RANK is {os.environ.get('RANK')!r}; launch with torchrun, "
            f"which sets both."
        )
    return World(rank=values["RANK"], size=size, local_rank=values["LOCAL_RANK"] or 0)


def training_device(name: str, world: World | None = None) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` -> this process's device (its own GPU under torchrun)."""
    world = world or launched_world()
    return pick_device(name, world.local_rank if world.distributed else None)


def join(device: torch.device, timeout: float) -> World:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU) once; a World of 1 without torchrun."""
    world = launched_world()
    if not world.distributed:
        return world
    import torch.distributed as dist

    if not dist.is_available():
        raise AttnlabError("This PyTorch build has no torch.distributed; install a standard build.")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        if dist.get_world_size() != world.size or dist.get_rank() != world.rank:
            raise AttnlabError("A process group other than torchrun's is already initialized.")
        return World(world.rank, world.size, world.local_rank, dist.get_backend())
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    try:
        dist.init_process_group(
            backend, timeout=datetime.timedelta(seconds=timeout),
            **({"device_id": torch.device("cuda", world.local_rank)} if backend == "nccl" else {}),
        )
    except (RuntimeError, ValueError) as error:
        raise AttnlabError(
            f"rank {world.rank} of {world.size} could not join the process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within {timeout:g} s "
            f"({_first_line(error)}); check the rendezvous endpoint and that every node was started."
        ) from None
    atexit.register(_leave)
    return World(world.rank, world.size, world.local_rank, backend)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


@contextlib.contextmanager
def failures(world: World, timeout: float, doing: Callable[[], str]) -> Iterator[None]:
    """Turn a failed collective (a rank died or stopped answering) into one AttnlabError line."""
    if not world.distributed:
        yield
        return
    import torch.distributed as dist

    try:
        yield
    except (dist.DistError, RuntimeError) as error:
        if not isinstance(error, dist.DistError) and not _looks_collective(error):
            raise
        raise AttnlabError(
            f"rank {world.rank} of {world.size} stopped at {doing()}: another process died or did not "
            f"answer within --dist-timeout {timeout:g} s ({_first_line(error)}); see that process's "
            f"error, fix it and continue with --resume."
        ) from None


def _looks_collective(error: RuntimeError) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def rows_per_rank(batch_size: int, world: World) -> int:
    """b = batch_size / world_size; the global batch must split evenly."""
    if batch_size % world.size:
        lower = max(world.size, batch_size - batch_size % world.size)
        raise AttnlabError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the {world.size} "
            f"processes; use {lower} ({lower // world.size} per process) or {lower + world.size}."
        )
    return batch_size // world.size


def shard(batch: Any, world: World) -> Any:
    """This rank's rows ``r*b : (r+1)*b`` of every tensor in a global batch (dim 0 is the batch)."""
    if not world.distributed:
        return batch
    if isinstance(batch, Tensor):
        if batch.dim() == 0:
            return batch  # a scalar belongs to every rank
        rows, left = divmod(batch.shape[0], world.size)
        if left:  # dropping rows silently would train on less than one process does
            raise AttnlabError(
                f"A batch of {batch.shape[0]} rows does not split evenly over the {world.size} processes "
                f"(an epoch's last batch, or batches sized by token count); train it on one process."
            )
        return batch[world.rank * rows : (world.rank + 1) * rows]
    if isinstance(batch, dict):
        return {k: shard(v, world) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(v, world) for v in batch)
    return batch


def check_same_batch(batch: Any, world: World) -> None:
    """Refuse to train if the ranks drew different global batches (different data or tokenizer)."""
    if not world.distributed:
        return
    import torch.distributed as dist

    digest = hashlib.sha256()
    for tensor in _tensors(batch):
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digests: list[str | None] = [None] * world.size
    dist.all_gather_object(digests, digest.hexdigest())
    if len(set(digests)) > 1:
        raise AttnlabError(
            "The processes drew different batches from the same seed, so their training data or "
            "tokenizer differ; give every process the same --data, tokenizer and attnlab version."
        )


def _tensors(batch: Any) -> Iterator[Tensor]:
    if isinstance(batch, Tensor):
        yield batch
    elif isinstance(batch, dict):
        for key in sorted(batch):
            yield from _tensors(batch[key])
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from _tensors(value)


def on_main(world: World, action: Callable[[], T]) -> T:
    """Run ``action`` on rank 0 only and hand its result, or its AttnlabError, to every rank."""
    if not world.distributed:
        return action()
    import torch.distributed as dist

    message: list[Any] = [None]
    if world.is_main:
        try:
            message[0] = ("ok", action())
        except AttnlabError as error:
            message[0] = ("error", str(error))
    dist.broadcast_object_list(message, src=0, device=world.collective_device)
    kind, value = message[0]
    if kind == "error":
        raise AttnlabError(value)
    return value


def mean_loss_and_tokens(world: World, loss: float, tokens: int) -> tuple[float, int]:
    """The step's loss averaged over ranks (as DDP averages gradients) and its tokens summed."""
    if not world.distributed:
        return loss, tokens
    import torch.distributed as dist

    values = torch.tensor([loss, tokens], dtype=torch.float64, device=world.collective_device)
    dist.all_reduce(values)
    return float(values[0]) / world.size, int(values[1])


def max_over_ranks(world: World, *values: float) -> tuple[float, ...]:
    """Each value's maximum over the ranks: a flag (0/1) true anywhere, or the slowest clock, so
    that every rank stops at the same step and computes the same learning rate."""
    if not world.distributed:
        return values
    import torch.distributed as dist

    reduced = torch.tensor([float(v) for v in values], dtype=torch.float64, device=world.collective_device)
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return tuple(float(v) for v in reduced.cpu())


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


# --- launching --------------------------------------------------------------------------------


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_nproc(nproc: int, device: str, world: World) -> None:
    """Refuse a ``--nproc`` that cannot work, before any process starts.

    One process per GPU on CUDA (NCCL cannot share a GPU between ranks), at most one
    per usable core on the CPU: more single-thread processes than cores only take turns,
    slower than fewer. Under torchrun ``--nproc`` must be left out (or equal its world).
    """
    check_int("--nproc", nproc, hint=" (the number of processes)")
    if world.distributed:
        if nproc not in (1, world.size):
            raise AttnlabError(
                f"--nproc {nproc} asks for a launch, but torchrun already started {world.size} "
                f"processes; leave --nproc out under torchrun."
            )
        return
    if nproc == 1:
        return
    gpus = device in ("auto", "cuda") and torch.cuda.is_available()
    limit, what = (torch.cuda.device_count(), "GPUs") if gpus else (usable_cores(), "CPU cores")
    if nproc > limit:
        raise AttnlabError(
            f"--nproc {nproc} is more processes than this machine's {limit} {what}; use --nproc {limit} "
            f"or fewer (several machines: see docs/distributed.md)."
        )


def refuse_torchrun(command: str) -> None:
    """For commands with a training loop of their own: one clear line instead of N copies of one run."""
    world = launched_world()
    if world.distributed:
        raise AttnlabError(
            f"{command} trains on one process only, but torchrun started {world.size}; run it without "
            f"torchrun (attnlab train gpt and attnlab train bert train on several)."
        )


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run ``attnlab <argv>`` on ``nproc`` processes of this machine under torchrun; its exit code.

    The same as ``torchrun --standalone --nproc-per-node nproc -m attnlab <argv>``.
    Each process gets ``OMP_NUM_THREADS`` = cores / nproc unless it is set already,
    so the processes do not fight over the cores.
    """
    import subprocess
    import sys

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "attnlab", *argv]
    print(f"launching {nproc} processes: torchrun --standalone --nproc-per-node={nproc} -m attnlab "
          f"{' '.join(argv)}", flush=True)
    process = subprocess.Popen(command, env=env)
    interrupted = False
    while True:
        try:
            code = process.wait()
            return 130 if interrupted else code
        except KeyboardInterrupt:
            # torchrun got the same Ctrl-C and passes it to the processes, which save at the
            # end of the step; killing torchrun now would orphan them, so wait.
            interrupted = True
