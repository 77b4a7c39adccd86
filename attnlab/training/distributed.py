"""Training on several processes: torchrun's world, the collectives the loop uses, launching.

Launched by ``torchrun`` (``python -m torch.distributed.run``), every process finds
its place in the environment variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins one process group:
NCCL when the model is on a CUDA GPU, gloo on the CPU. Without torchrun the world
is one process and nothing here does anything.

How the data is sharded. ``batch_size`` stays the *global* micro-batch. Every rank
draws the same global micro-batch from the same seeded generator (drawing windows or
masked pairs is cheap next to a forward pass) and keeps only its own rows, rank r
rows ``ceil(r*n/N) : ceil((r+1)*n/N)`` of a batch of n rows (``r*b : (r+1)*b`` when they
split evenly); the forward and backward passes, where the time goes, run on those rows only.
So the union of what the ranks train on is exactly what one process would train on, and
the data generator's state is the same on every rank (one checkpointed state resumes any
world size). DistributedDataParallel averages the ranks' gradients (Li et al. 2020,
"PyTorch Distributed", arXiv:2006.15704); each rank's loss is weighted by its share of
what the loss averages over (:func:`split`: rows, target tokens, masked positions, one
weight per term of a loss such as MLM + NSP), so that ``N processes x b`` give the
update of one process with ``N*b`` rows also when the rows or tokens do not split
evenly (an epoch's smaller last batch, translation's batches sized by token count).

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
import sys
from collections.abc import Callable, Iterator, Sequence
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


# Set when a collective failed (a peer died or timed out): the process group is then broken.
_broken = False


def _leave() -> None:
    """At exit: leave the process group, or, when a collective failed, end the process at once.

    After a gloo timeout the group still has a receive in flight; tearing it down (or letting
    interpreter shutdown destroy it) can end in C++'s ``std::terminate`` (SIGABRT, seen about once
    in a few hundred runs) after the one-line error was printed. The error is already reported, so
    the process ends with exit status 2 without running the group's destructors.
    """
    import torch.distributed as dist

    if _broken:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(2)
    if dist.is_initialized():
        # Leave together: a rank tearing its group down while a peer still holds a connection to it
        # has ended the peer in std::terminate at exit (SIGABRT after a finished run, rank 0).
        with contextlib.suppress(dist.DistError, RuntimeError):
            dist.barrier()
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
        global _broken
        _broken = True
        raise AttnlabError(
            f"rank {world.rank} of {world.size} stopped at {doing()}: another process died or did not "
            f"answer within --dist-timeout {timeout:g} s ({_first_line(error)}); see that process's "
            f"error, fix it and continue with --resume."
        ) from None


def _looks_collective(error: RuntimeError) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def rows_per_rank(batch_size: int, world: World) -> int:
    """b = batch_size / world_size, for commands that want every rank to do the same work."""
    if batch_size % world.size:
        lower = max(world.size, batch_size - batch_size % world.size)
        raise AttnlabError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the {world.size} "
            f"processes; use {lower} ({lower // world.size} per process) or {lower + world.size}."
        )
    return batch_size // world.size


def rows_of(n_rows: int, world: World) -> slice:
    """This rank's rows of a batch of ``n_rows``: ``ceil(r*n/N) : ceil((r+1)*n/N)``, which is
    ``r*b : (r+1)*b`` when the rows split evenly; otherwise the first ranks have one row more
    (rank 0, which logs, has rows whenever the batch has)."""
    return slice(-(-world.rank * n_rows // world.size), -(-(world.rank + 1) * n_rows // world.size))


def _n_rows(batch: Any) -> int | None:
    sizes = {tensor.shape[0] for tensor in tensors_of(batch) if tensor.dim() > 0}
    if len(sizes) > 1:
        raise AttnlabError(f"The tensors of a batch have different numbers of rows {sorted(sizes)}; "
                           f"dim 0 must be the batch.")
    return sizes.pop() if sizes else None


def shard(batch: Any, world: World) -> Any:
    """This rank's rows (:func:`rows_of`) of every tensor in a global batch (dim 0 is the batch);
    a rank may get fewer rows than another, or none."""
    if not world.distributed:
        return batch
    n_rows = _n_rows(batch)
    return batch if n_rows is None else _take(batch, rows_of(n_rows, world))


def _take(batch: Any, rows: slice) -> Any:
    if isinstance(batch, Tensor):
        return batch if batch.dim() == 0 else batch[rows]  # a scalar belongs to every rank
    if isinstance(batch, dict):
        return {k: _take(v, rows) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_take(v, rows) for v in batch)
    return batch


@dataclass(frozen=True)
class Shard:
    """This rank's part of a global batch and the weight of each term of its loss.

    ``shares[i]`` = N * (this rank's count of term i) / (the global batch's count of term i),
    where a term's count is what it averages over (rows, tokens, masked positions). DDP
    averages the N ranks' gradients, so the weighted losses add up to the loss of the whole
    batch on one process, for batches that do not split evenly too. A rank with no rows gets
    the batch's first row with every share 0 (``empty``): it still joins the gradient average.
    ``shares`` is None on one process (the loss is used as it is).
    """

    batch: Any
    shares: tuple[float, ...] | None
    empty: bool = False


def split(batch: Any, world: World, counts: Callable[[Any], Sequence[int]]) -> Shard:
    """This rank's :class:`Shard` of ``batch``; ``counts(batch)`` is what each loss term averages over."""
    if not world.distributed:
        return Shard(batch, None)
    n_rows = _n_rows(batch)
    if n_rows is None:
        raise AttnlabError("A training batch needs at least one tensor with a batch dimension.")
    totals = [int(c) for c in counts(batch)]
    rows = rows_of(n_rows, world)
    if rows.start == rows.stop:
        return Shard(_take(batch, slice(0, 1)), tuple(0.0 for _ in totals), empty=True)
    mine = _take(batch, rows)
    shares = tuple(world.size * int(c) / total if total else 0.0 for c, total in zip(counts(mine), totals,
                                                                                    strict=True))
    return Shard(mine, shares)


def check_same_batch(batch: Any, world: World) -> None:
    """Refuse to train if the ranks drew different global batches (different data or tokenizer)."""
    if not world.distributed:
        return
    import torch.distributed as dist

    digest = hashlib.sha256()
    for tensor in tensors_of(batch):
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digests: list[str | None] = [None] * world.size
    dist.all_gather_object(digests, digest.hexdigest())
    if len(set(digests)) > 1:
        raise AttnlabError(
            "The processes drew different batches from the same seed, so their training data or "
            "tokenizer differ; give every process the same --data, tokenizer and attnlab version."
        )


def tensors_of(batch: Any) -> Iterator[Tensor]:
    """Every tensor in a batch (a tensor, or dicts, lists and tuples of them), dict keys sorted."""
    if isinstance(batch, Tensor):
        yield batch
    elif isinstance(batch, dict):
        for key in sorted(batch):
            yield from tensors_of(batch[key])
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from tensors_of(value)


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


def from_main(world: World, value: T) -> T:
    """Rank 0's ``value`` on every rank: a decision (stop early or not) all ranks must share."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    message: list[Any] = [value]
    dist.broadcast_object_list(message, src=0, device=world.collective_device)
    return message[0]


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
