"""The linear layer, y = x W^T + b, on the faster of the two exact fp32 GEMMs PyTorch has on a CPU.

Every projection of every model is one: Q, K, V (V = X W_V + b_V), the output projection, both
layers of the feed-forward network, the LM head. PyTorch's CPU builds multiply fp32 matrices with
MKL's sgemm, and on AMD CPUs MKL runs its AVX2 code even where the CPU has AVX-512. oneDNN, the
library PyTorch already uses for bf16, has an fp32 matmul of its own (``torch.ops.mkldnn.
_linear_pointwise``) in full fp32 arithmetic: the same products, summed in another order.

Measured on a 2-core Zen 5 (AVX-512, torch 2.13), SmolLM2/GPT-2 shapes, MKL vs oneDNN:
1 thread, 175 x 576 -> 1536: 116 vs 260 GFLOP/s (2.2x); 2 threads, 32 rows: 2.1-3.0x;
one row through GPT-2's 768 -> 50257 LM head, 2 threads: 7.6 vs 2.4 ms (MKL uses one thread for
a single row); one row through a 768 x 768 layer: 29 vs 33 us (0.9x, the only loss, microseconds).

Accuracy: both are fp32, but oneDNN accumulates along K in longer chains. A single 175 x 576 x 1536
product of unit normals was 1.0e-4 from float64 (MKL 4.5e-5); SmolLM2-135M's logits (up to ~29)
through 30 layers were 1.3e-4 from float64 (transformers with MKL: 4.1e-5); the GPT-2 and BERT
parity tests against transformers (tests/models) pass at their tolerances unchanged.

So :class:`Linear` (an ``nn.Linear``: same parameters, same state dict, same ``isinstance``) sends
fp32 inference to oneDNN when :func:`onednn_is_faster` measured it faster on this CPU, once per
process, and everything else to ``F.linear``: anything that needs gradients (oneDNN's op has no
backward), other dtypes, autocast (which must see the call to cast it), other devices,
``torch.compile`` (inductor picks its own GEMM), ``torch.jit.trace`` and dispatch modes (a FLOP counter knows
``aten.mm``, not oneDNN's op). ``ATTNLAB_FP32_GEMM=torch`` (or ``onednn``) fixes
the choice instead of measuring.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from attnlab.device import pick_fastest, time_interleaved
from attnlab.errors import AttnlabError

ENVIRONMENT = "ATTNLAB_FP32_GEMM"


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def onednn_is_faster() -> bool:
    """Whether oneDNN's fp32 matmul beats ``F.linear`` here: fixed by ``$ATTNLAB_FP32_GEMM``
    (``torch`` or ``onednn``), else timed once on a (64, 768) x (768, 768) product, and chosen
    only when it takes at most 0.9 x the time (:func:`attnlab.device.pick_fastest`)."""
    fixed = os.environ.get(ENVIRONMENT, "").lower()
    if fixed not in ("", "torch", "onednn"):
        raise AttnlabError(f"${ENVIRONMENT} must be 'torch' or 'onednn' (or unset, to measure). "
                           f"Got {fixed!r} instead.")
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False  # a build without oneDNN's CPU matmul (ATTNLAB_FP32_GEMM=onednn cannot force it)
    if fixed:
        return fixed == "onednn"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 768, generator=generator)
    weight = torch.randn(768, 768, generator=generator)
    with torch.no_grad():
        timings = time_interleaved({"torch": lambda: F.linear(x, weight),
                                    "onednn": lambda: _onednn_linear(x, weight, None)})
    return pick_fastest(timings, baseline="torch") == "onednn"


def uses_onednn(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> bool:
    """Whether :func:`linear` sends this product to oneDNN (see the module docstring)."""
    return (not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and x.dtype is torch.float32 and weight.dtype is torch.float32 and x.device.type == "cpu"
            and x.numel() > 0
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                  or (bias is not None and bias.requires_grad)))
            and not torch.is_autocast_enabled("cpu")
            and _get_current_dispatch_mode() is None  # a FlopCounter or fake-tensor mode sees F.linear
            and onednn_is_faster())


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., K) -> (..., N) = x W^T + b, W (N, K), b (N,): ``F.linear``'s contract and values to
    fp32 rounding, on the faster GEMM where nothing needs gradients."""
    if uses_onednn(x, weight, bias):
        return _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` whose fp32 inference runs on this CPU's faster GEMM (:func:`linear`)."""

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features)."""
        return linear(x, self.weight, self.bias)
