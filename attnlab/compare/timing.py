"""Forward throughput measured here: several models timed in one process, interleaved, so that
a slow spell of the machine hits all of them alike; and the machine it was measured on."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.errors import AttnlabError


@dataclass
class Throughput:
    """Forward passes of one model: median seconds per batch and positions per second."""

    seconds: float
    tokens_per_second: float
    runs: int


@torch.inference_mode()
def measure_throughput(
    models: dict[str, tuple[nn.Module, tuple, dict]],
    tokens_per_batch: dict[str, int],
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, Throughput]:
    """Time forward passes of several models in the same process, interleaved.

    Each round runs every model once (A, B, C, A, B, C, ...), so a slow spell of the
    machine hits all of them alike; the median of ``repeats`` rounds is reported.
    ``models`` maps a name to (model, args, kwargs).
    """
    if repeats < 1 or warmup < 0:
        raise AttnlabError(f"--repeats must be >= 1 and warm-up >= 0. Got {repeats} and {warmup}.")
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(warmup + repeats):
        for name, (model, args, kwargs) in models.items():
            synchronize()
            start = time.perf_counter()
            model(*args, **kwargs)
            synchronize()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {
        name: Throughput(statistics.median(t), tokens_per_batch[name] / statistics.median(t), len(t))
        for name, t in times.items()
    }


def machine_description(device: str = "cpu") -> str:
    """The device, threads and torch version the timings come from, for the table's notes."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return (f"{platform.machine()} CPU ({capability}), {threads} thread{'s' if threads != 1 else ''}, "
            f"torch {torch.__version__}, fp32")
