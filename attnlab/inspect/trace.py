"""Record what every attention layer computes: the answer to "what are the
value vectors, and how are they computed from the input?"

    with trace(model) as t:
        model(input_ids)
    a = t.attention[0]          # the first attention layer
    a.value                     # (B, H, S, D): V = X W_V^T + b_V, split into heads

While a trace is active each attention module runs the explicit form of
eq. 1 of arXiv:1706.03762 (so scores and probabilities exist) and hands its
tensors to the recorder. Outside a trace the modules hold no recorder, run the
fused kernel, and keep no tensors: tracing costs nothing when it is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.nn.attention import MultiHeadAttention


@dataclass
class AttentionRecord:
    """One call of one attention layer (all tensors detached).

    input   (B, T, M)    X entering the attention (after the LayerNorm in pre-LN models)
    query   (B, H, T, D) Q = X W_Q^T + b_Q, split into heads
    key     (B, H, S, D) K = X W_K^T + b_K
    value   (B, H, S, D) V = X W_V^T + b_V: the value vectors
    scores  (B, H, T, S) Q K^T / sqrt(D), after masking
    probs   (B, H, T, S) softmax(scores): the attention weights
    context (B, H, T, D) probs @ value: each query's weighted sum of value vectors
    output  (B, T, M)    Concat(heads) W_O^T + b_O
    """

    name: str
    module: MultiHeadAttention
    input: Tensor
    query: Tensor
    key: Tensor
    value: Tensor
    scores: Tensor
    probs: Tensor
    context: Tensor
    output: Tensor


class Trace:
    """What a ``with trace(model)`` block recorded.

    ``attention[i]`` is the latest call of the i-th attention layer (in module
    order); ``records`` is every call, in order (several per layer when a model
    is called more than once, as in generation).
    """

    def __init__(self, names: dict[MultiHeadAttention, str]) -> None:
        self._names = names
        self._order = list(names)
        self._latest: dict[MultiHeadAttention, AttentionRecord] = {}
        self.records: list[AttentionRecord] = []

    def __call__(self, module: MultiHeadAttention, **tensors: Tensor) -> None:
        record = AttentionRecord(
            name=self._names[module], module=module,
            **{key: value.detach() for key, value in tensors.items()},
        )
        self._latest[module] = record
        self.records.append(record)

    @property
    def attention(self) -> list[AttentionRecord]:
        """The latest record of each attention layer that ran, in module order."""
        return [self._latest[m] for m in self._order if m in self._latest]

    @property
    def layer_names(self) -> list[str]:
        """Module names of every attention layer, e.g. ``blocks.0.attention``."""
        return [self._names[m] for m in self._order]


@contextmanager
def trace(model: nn.Module) -> Iterator[Trace]:
    """Record every attention layer of ``model`` for the duration of the block."""
    names = {
        module: name for name, module in model.named_modules()
        if isinstance(module, MultiHeadAttention)
    }
    if not names:
        raise AttnlabError(
            f"{type(model).__name__} has no attnlab attention layers to trace; "
            f"pass a model built by attnlab (e.g. from attnlab.load_pretrained)."
        )
    busy = [name for module, name in names.items() if module.recorder is not None]
    if busy:
        raise AttnlabError(f"{busy[0]} is already being traced; nested traces are not supported.")
    recorder = Trace(names)
    for module in names:
        module.recorder = recorder
    try:
        yield recorder
    finally:
        for module in names:
            module.recorder = None
