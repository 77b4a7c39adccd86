"""Measure, then choose: the compute dtype (and, for :mod:`attnlab.inference.auto_weights`, the weights).

Which fast path pays depends on the CPU. bf16 matmuls run on AMX / AVX512-BF16 units
several times faster than fp32, but on AVX2-only CPUs PyTorch emulates them and they
are hundreds of times slower; int8 / int4 weights can decode several times faster than fp32
on one model and slower on another. So nothing here is decided from a flag list alone: each choice
times the candidates on a representative matmul and takes the fastest, keeping the
plain fp32 path unless a candidate beats it by a clear margin (``margin``; a candidate
must take at most that fraction of the baseline's time).

The timing and choosing helpers (:func:`attnlab.device.time_interleaved`,
:func:`attnlab.device.pick_fastest`) are shared with the fp32 GEMM choice of
:mod:`attnlab.nn.linear`; the timings are cached per process.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from attnlab.device import cpu_has_native_bf16, pick_fastest, time_interleaved
from attnlab.errors import AttnlabError


def compute_dtype_timings(m: int = 256, k: int = 1024, n: int = 1024, repeat: int = 5) -> dict[str, float]:
    """Seconds of an (m, k) x (k, n) matmul in fp32 and in bf16 on this CPU."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator)
    b = torch.randn(n, k, generator=generator)
    a16, b16 = a.bfloat16(), b.bfloat16()
    return time_interleaved({"fp32": lambda: F.linear(a, b), "bf16": lambda: F.linear(a16, b16)},
                            repeat=repeat)


@functools.cache
def choose_compute_dtype(device: str = "cpu") -> str:
    """'bf16' where it is native *and* measured faster here, else 'fp32' (for prefill and encoders).

    On CUDA: 'bf16' when the GPU supports it. On a CPU without AMX / AVX512-BF16 the bf16
    matmul is not even timed (it can take seconds there).
    """
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if not cpu_has_native_bf16():
        return "fp32"
    return "bf16" if pick_fastest(compute_dtype_timings(), baseline="fp32", margin=0.8) == "bf16" else "fp32"


def resolve_dtype(dtype: str, device: str = "cpu") -> torch.dtype:
    """``--dtype`` of an inference command -> the torch dtype its float layers run in.

    "auto" is fp32: measured on SmolLM2-135M (benchmarks/weight_quant.py), bf16 fails issue 18's
    quality check (greedy tokens and teacher-forced top-1 against fp32), so it stays opt-in.
    "bf16" is refused where the CPU would emulate it (hundreds of times slower than fp32).
    """
    if dtype not in ("auto", "fp32", "bf16"):
        raise AttnlabError(f"dtype must be 'auto', 'fp32' or 'bf16'. Got {dtype!r} instead.")
    import attnlab.device as precision  # looked up at call time: tests stand in for the CPU

    if dtype != "bf16":
        return torch.float32
    if torch.device(device).type == "cpu" and not precision.cpu_has_native_bf16():
        raise AttnlabError("--dtype bf16 needs a CPU that computes bf16 natively (AVX512-BF16 or AMX); "
                           "on this one it is far slower than fp32: use --dtype fp32.")
    return torch.bfloat16
