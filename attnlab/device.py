"""Choosing the device and the compute dtype: bf16 only where the hardware computes it natively.

On CPUs with AMX or AVX512-BF16 a bf16 matmul runs several times faster than fp32;
on AVX2-only CPUs PyTorch emulates it and a 2048x2048 bf16 matmul was measured
~500x slower than fp32. So "auto" picks bf16 autocast only on such CPUs and on
CUDA GPUs that support it, and fp32 everywhere else.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from attnlab.errors import AttnlabError

DTYPES = ("auto", "fp32", "bf16")


def pick_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a torch.device; ``cuda`` with a ``local_rank``
    (one process per GPU under torchrun) -> that process's own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise AttnlabError(f"--device must be auto, cpu or cuda. Got {name!r} instead.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AttnlabError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    if name == "cuda" and local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise AttnlabError(
                f"Local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible); "
                f"start at most one process per GPU (--nproc, or torchrun --nproc-per-node)."
            )
        return torch.device("cuda", local_rank)
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists amx_bf16 or avx512_bf16 (Linux; False elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(dtype: str, device: str | torch.device,
                  choose: Callable[[str], str] | None = None) -> str:
    """'auto' -> 'bf16' or 'fp32' for this device; explicit choices are checked.

    ``choose(device_type)`` makes the 'auto' choice when given (inference passes its measured
    probe, :func:`attnlab.inference.probe.choose_compute_dtype`); otherwise 'auto' is bf16
    where the hardware computes it natively (a CUDA GPU that supports it, an AMX/AVX512-BF16 CPU).
    """
    if dtype not in DTYPES:
        raise AttnlabError(f"--dtype must be one of {DTYPES}. Got {dtype!r} instead.")
    if dtype != "auto":
        return dtype
    device = torch.device(device)
    if choose is not None:
        return choose(device.type)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for 'bf16'; a no-op for 'fp32'. Weights and optimizer stay fp32."""
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_cpu() -> str:
    """e.g. 'AVX512 (native bf16: yes)', for logs and benchmarks."""
    native = "yes" if cpu_has_native_bf16() else "no"
    return f"{torch.backends.cpu.get_cpu_capability()} (native bf16: {native})"


# --------------------------------------------------------------------------- measure, then choose
def time_call(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` calls after ``warmup`` calls."""
    if repeat < 1:
        raise AttnlabError(f"repeat must be an int >= 1. Got {repeat!r} instead.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pick_fastest(timings: dict[str, float], *, baseline: str, margin: float = 0.9) -> str:
    """The fastest candidate if it takes at most ``margin`` x the baseline's time, else the baseline.

    ``timings`` maps names to seconds (``inf`` or NaN for a candidate that failed); the
    baseline must be among them. Ties go to the baseline: a fast path has to earn its place.
    """
    if baseline not in timings:
        raise AttnlabError(f"The baseline {baseline!r} has no timing; got {sorted(timings)}.")
    if not 0 < margin <= 1:
        raise AttnlabError(f"margin must be in (0, 1]. Got {margin!r} instead.")
    valid = {name: t for name, t in timings.items() if t == t and t < float("inf")}  # drop NaN, inf
    if baseline not in valid:
        raise AttnlabError(f"The baseline {baseline!r} could not be timed ({timings[baseline]!r}).")
    reference = valid[baseline]
    best = min(valid, key=lambda name: (valid[name], name != baseline))
    return best if best != baseline and valid[best] <= margin * reference else baseline


def time_interleaved(fns: dict[str, Callable[[], object]], *, repeat: int = 5) -> dict[str, float]:
    """Median seconds of each function, timed in turns (one call of each per round) so that
    a burst of load on a shared machine hits every candidate alike. A candidate that raises
    (a kernel this build or CPU lacks) gets ``inf``."""
    if repeat < 1:
        raise AttnlabError(f"repeat must be an int >= 1. Got {repeat!r} instead.")
    times: dict[str, list[float]] = {}
    for name, fn in fns.items():  # warm-up, and weed out what fails
        try:
            fn()
            times[name] = []
        except (RuntimeError, NotImplementedError):
            pass
    for _ in range(repeat):
        for name in times:
            started = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(times[name]) if name in times else float("inf") for name in fns}
