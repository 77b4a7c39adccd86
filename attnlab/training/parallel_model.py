"""The model under DDP or FSDP2, and its whole state gathered for a checkpoint.

:mod:`attnlab.training.distributed` says where a process stands (its rank, the
process group, the collectives the loop needs); this module holds what changes
about the *model* when several processes train it:

- :func:`wrap` puts it under DistributedDataParallel, which averages the ranks'
  gradients (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704), or under
  FSDP2 (``torch.distributed.fsdp.fully_shard``; Zhao et al. 2023, arXiv:2304.11277),
  which shards parameters, gradients and optimizer state across ranks, one unit per
  Transformer block plus the root;
- :func:`full_model`, :func:`full_optimizer_state` and :func:`gather_rng_states`
  gather what a checkpoint holds to rank 0, as full tensors in the format of a
  single-process run, so that a run saved on N ranks resumes on M
  (:func:`load_optimizer_state`, :func:`restore_rng_state`).

On one process every function here hands back the plain model and its own state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from attnlab.training.distributed import World

T = TypeVar("T")

class Step(nn.Module):
    """Calls ``fn(model, *args)`` as one forward pass of a module that holds ``model``.

    DDP prepares its gradient reduction, and FSDP gathers the parameters outside the
    blocks, in the forward pass of the module they wrap. A task's loss may call parts
    of the model (``model.bert``, a head) rather than ``model(...)``; running it inside
    this forward keeps every such call under their hooks.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.model, *args)


def wrap(model: nn.Module, world: World, fsdp: bool) -> nn.Module:
    """A :class:`Step` around ``model``: plain on one process, else under DDP or FSDP2.

    DDP averages gradients across ranks; ``model`` itself stays the plain, full model.
    FSDP2 shards each Transformer block as one unit and the rest (embeddings, heads,
    final norm) as the root unit. Both start from rank 0's weights.
    """
    step = Step(model)
    if not world.distributed:
        return step
    import torch.distributed as dist

    if fsdp:
        from torch.distributed.fsdp import fully_shard

        from attnlab.nn.blocks import TransformerBlock

        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
        for module in model.modules():
            if isinstance(module, TransformerBlock):
                fully_shard(module)
        # Resharding the root after forward too keeps model.state_dict() sharded between steps.
        fully_shard(step, reshard_after_forward=True)
        return step
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [world.local_rank] if world.backend == "nccl" else None
    # static_graph: a loss may leave parameters unused (BERT without NSP leaves the pooler),
    # always the same ones, which DDP then learns once instead of searching every step.
    return DistributedDataParallel(step, device_ids=device_ids, static_graph=True)


@contextlib.contextmanager
def gradient_sync(trained: nn.Module, enabled: bool) -> Iterator[None]:
    """FSDP2: skip the cross-rank reduce-scatter on accumulation micro-batches but the last.

    DDP reduces every micro-batch: its ``no_sync`` fails with ``static_graph`` (an
    internal assertion in PyTorch 2.13). Gradients being sums, the result is the same.
    """
    if enabled or not hasattr(trained, "set_requires_gradient_sync"):
        yield
        return
    trained.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        trained.set_requires_gradient_sync(True)


def is_sharded(model: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def _names_in_optimizer_order(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    names = {}
    for name, param in model.named_parameters():
        names.setdefault(id(param), name)
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state as one process would hold it (parameters numbered in group order).

    With FSDP every rank must call this (it gathers the shards); rank 0 gets the result.
    """
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    full = get_optimizer_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not full:
        return {}
    index = {name: i for i, name in enumerate(_names_in_optimizer_order(model, optimizer))}
    return {
        "state": {index[name]: value for name, value in full["state"].items()},
        "param_groups": [{**group, "params": [index[n] for n in group["params"]]}
                         for group in full["param_groups"]],
    }


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a single-process optimizer state; with FSDP each rank keeps its shard of it."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _names_in_optimizer_order(model, optimizer)
    by_name = {
        "state": {names[i]: value for i, value in state["state"].items()},
        "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                         for group in state["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def full_model(model: nn.Module, model_class: type[nn.Module]) -> nn.Module | None:
    """A plain copy of an FSDP-sharded model on rank 0's CPU (None elsewhere); collective.

    Unsharded models are returned as they are.
    """
    if not is_sharded(model):
        return model
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    with torch.device("meta"):
        plain = model_class(model.config)
    plain.load_state_dict(state, assign=True)
    if getattr(model.config, "tie_word_embeddings", False) and hasattr(plain, "lm_head"):
        plain.lm_head.weight = plain.embeddings.token.weight
    return plain


def gather_rng_states(world: World) -> list[Tensor]:
    """Every rank's dropout RNG state (the global torch generator), in rank order."""
    state = torch.get_rng_state()
    if not world.distributed:
        return [state]
    import torch.distributed as dist

    states: list[Tensor | None] = [None] * world.size
    dist.all_gather_object(states, state)
    return states  # type: ignore[return-value]


def restore_rng_state(state: dict[str, Any], world: World, seed: int) -> None:
    """This rank's dropout RNG from a checkpoint; re-seeded if it was saved on another world size."""
    ranks = state.get("torch_rng_ranks")
    if ranks is not None and len(ranks) == world.size:
        torch.set_rng_state(ranks[world.rank])
    elif world.rank == 0:
        torch.set_rng_state(state["torch_rng"])
    else:
        torch.manual_seed(seed + 1_000_003 * int(state["step"]) + world.rank)
