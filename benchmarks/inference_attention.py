"""The measured rule behind attnlab.nn.attention.uses_compiled_explicit_attention.

Inside ``torch.compile``, no grad, bf16, 1 thread: fused SDPA (flash) against
:func:`attnlab.nn.attention.compiled_inference_attention`, timed in turns (one call of each per round,
medians), on the layout the models produce (q, k, v views of the fused qkv output), with each one's
max |difference| from a float64 SDPA. Run: ``PYTHONPATH=$PWD python benchmarks/inference_attention.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from attnlab.nn.attention import compiled_inference_attention

CASES = [  # (B, T = S, H, D, causal)
    (8, 128, 12, 32, False),  # all-MiniLM-L6-v2, 8 x 128
    (1, 128, 12, 64, True),
    (1, 256, 12, 64, True),
    (8, 128, 12, 64, False),  # BERT-base, 8 x 128
    (1, 512, 12, 64, True),  # GPT-2 prefill, 512
    (1, 1024, 12, 64, True),
]


def main() -> None:
    torch.set_num_threads(1)
    kernels = {
        "flash": torch.compile(lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c)),
        "explicit": torch.compile(lambda q, k, v, c: compiled_inference_attention(q, k, v, is_causal=c)),
    }
    with torch.no_grad():
        for batch, length, heads, width, causal in CASES:
            fused = torch.randn(batch, length, 3 * heads * width).bfloat16()
            q, k, v = (t.view(batch, length, heads, width).transpose(1, 2)
                       for t in fused.split(heads * width, -1))
            exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal)
            errors = {n: float((f(q, k, v, causal).double() - exact).abs().max()) for n, f in kernels.items()}
            times: dict[str, list[float]] = {n: [] for n in kernels}
            for _ in range(max(5, 15 * 1024 // (batch * length))):
                for name, kernel in kernels.items():
                    started = time.perf_counter()
                    kernel(q, k, v, causal)
                    times[name].append(time.perf_counter() - started)
            ms = {n: statistics.median(t) * 1e3 for n, t in times.items()}
            print(f"({batch}, {heads}, {length}, {width}){' causal' if causal else ''}: "
                  + ", ".join(f"{n} {ms[n]:.2f} ms (max |d| {errors[n]:.1e})" for n in kernels)
                  + f"; flash / explicit {ms['flash'] / ms['explicit']:.2f}", flush=True)


if __name__ == "__main__":
    main()
