"""Compiled prefill and encoder forwards, for compute-bound inference.

Decoding is memory-bound and runs the one generate path (:func:`attnlab.inference.generation.generate`
over ``GPT.prefill`` and ``GPT.decode_step``). Prefill and encoders are compute-bound instead:
:class:`CompiledPrefill` and :class:`CompiledEncoder` run them in the dtype the probe picks
(bf16 only where it is native and measured faster) through ``torch.compile`` with frozen
weights (inductor's ``freezing``: weights become constants, so it pre-packs them for oneDNN
and fuses bias, GELU and residual adds into the matmuls). Compilation happens on the first
call of each process; its time is reported separately by the benchmarks. Only the generated C++
is cached on disk: inductor's graph cache skips graphs holding pre-packed oneDNN weights (they
cannot be pickled), so a later process compiles again (all-MiniLM-L6-v2: 8.7 s, 8.9 s in a
second process). Without pre-packing the graph is cached, but a second process still took 6.7 s
and the forward ran 52.0 ms instead of 47.5 (8 x 128 tokens, 1 thread), so weights stay packed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch._inductor.config
from torch import Tensor, nn

from attnlab.device import resolve_dtype
from attnlab.errors import AttnlabError
from attnlab.inference.probe import choose_compute_dtype
from attnlab.models.bert import BertModel
from attnlab.models.gpt import GPT
from attnlab.models.inputs import check_input_ids, check_padding_mask
from attnlab.nn.kv_cache import KVCache

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def frozen_compile(module: nn.Module, *, dynamic: bool | None = None) -> Callable[..., Tensor]:
    """``module`` compiled by inductor with frozen weights; call it with gradients off.

    Freezing is switched on through inductor's global config around each call, not through
    ``torch.compile(options={"freezing": True})``: the options reach only inductor's inner
    compile, while the choice to freeze is made before it, so that spelling compiled with
    the weights as graph inputs (plain ``addmm``, nothing pre-packed; seen in the output code
    with torch 2.13). A call that recompiles (a new input shape) freezes again; ``dynamic=True``
    compiles one graph for every shape at once (``torch.compile``'s own argument).
    """
    compiled = torch.compile(module, dynamic=dynamic)

    def run(*args: Tensor | None) -> Tensor:
        with torch._inductor.config.patch(freezing=True):
            return compiled(*args)

    return run


def compute_dtype(dtype: str) -> str:
    """'auto' -> the dtype the probe measured fastest here
    (:func:`attnlab.inference.probe.choose_compute_dtype`, not just the CPU's flags);
    'fp32' / 'bf16' are checked by :func:`attnlab.device.resolve_dtype`."""
    return choose_compute_dtype("cpu") if dtype == "auto" else resolve_dtype(dtype, torch.device("cpu"))


class _Prefill(nn.Module):
    def __init__(self, model: GPT, caches: list[KVCache]) -> None:
        super().__init__()
        self.model = model
        self.caches = nn.ModuleList(caches)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.model.prefill(input_ids, list(self.caches))


class CompiledPrefill:
    """The prefill of (B, T) prompts: fills KV caches and returns the next-token logits (B, V) in fp32.

    Args:
        model: a GPT; **cast to ``dtype`` in place** and frozen into the compiled code,
            so later changes to its weights are not seen.
        batch_size, max_len: the caches' shape; prompts may be up to ``max_len`` long.
        dtype: "auto" (the probe's choice), "bf16" or "fp32".
        compile: False runs the same forward eagerly (to compare, or where inductor is missing).

    ``caches`` holds the filled caches after each call; the first call compiles.
    """

    def __init__(self, model: GPT, batch_size: int, max_len: int, *, dtype: str = "auto",
                 compile: bool = True) -> None:
        if not isinstance(model, GPT):
            raise AttnlabError(f"CompiledPrefill needs a GPT; got {type(model).__name__}.")
        self.dtype = compute_dtype(dtype)
        self.model = model.to(TORCH_DTYPES[self.dtype]).eval().requires_grad_(False)
        self.max_len = max_len
        self.caches = model.new_kv_caches(batch_size, max_len)
        module = _Prefill(self.model, self.caches)
        self._forward = frozen_compile(module) if compile else module

    @torch.no_grad()
    def __call__(self, input_ids: Tensor) -> Tensor:
        cfg = self.model.config
        check_input_ids(input_ids, cfg.vocab_size, min(cfg.max_positions, self.max_len))
        if input_ids.shape[0] != self.caches[0].keys.shape[0]:
            raise AttnlabError(f"This prefill was built for batch size {self.caches[0].keys.shape[0]}; "
                               f"got {input_ids.shape[0]} prompts.")
        return self._forward(input_ids).float()


class _Encoder(nn.Module):
    def __init__(self, model: BertModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        x = self.model.embeddings(input_ids)  # (B, T, M)
        for block in self.model.blocks:
            x = block(x, mask=mask)
        return x


class CompiledEncoder:
    """BERT's encoder, (B, T) ids -> last_hidden_state (B, T, M) in fp32, compiled in ``dtype``.

    ``model`` is **cast to ``dtype`` in place** and frozen into the compiled code (see
    :class:`CompiledPrefill`). ``attention_mask`` (B, T) is 1 for tokens, 0 for padding.
    Segment ids are all 0 (single sentences).
    """

    def __init__(self, model: BertModel, *, dtype: str = "auto", compile: bool = True) -> None:
        if not isinstance(model, BertModel):
            raise AttnlabError(f"CompiledEncoder needs a BertModel; got {type(model).__name__}.")
        self.dtype = compute_dtype(dtype)
        self.model = model.to(TORCH_DTYPES[self.dtype]).eval().requires_grad_(False)
        module = _Encoder(self.model)
        # One graph for every (batch, length): texts come in all lengths. Measured on all-MiniLM-L6-v2:
        # compiling takes 8.7 s once, where a graph per shape took 4.3 s for the first shape and ~5 s
        # for each of the next two (by then the compiler turns dynamic itself); the same 51 ms at 8 x 128.
        self._forward = frozen_compile(module, dynamic=True) if compile else module
        self.compiled = compile

    @torch.no_grad()
    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        cfg = self.model.config
        check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions)
        padding = check_padding_mask(attention_mask, input_ids)
        if padding is None and self.compiled:  # one graph: a batch without padding passes a mask too
            padding = torch.ones_like(input_ids, dtype=torch.bool)
        mask = None if padding is None else padding[:, None, None, :]  # (B, 1, 1, T)
        return self._forward(input_ids, mask).float()
