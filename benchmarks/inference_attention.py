"""The measured rules of bf16 inference attention in attnlab.nn.attention.

No grad, bf16, 1 thread, on the layout the models produce (q, k, v views of the fused qkv output):
fused SDPA (flash, eager; what transformers runs), attnlab's fused C kernel
(:func:`attnlab.nn.fused_attention.attend_bf16`, eager: what :func:`uses_fused_inference_attention`
picks on CPUs with AVX512-BF16), and the torch form of
:func:`attnlab.nn.attention.compiled_inference_attention` under ``torch.compile`` (what
:func:`uses_compiled_explicit_attention` picks elsewhere, up to 512 keys). Timed in turns (one call of
each per round, medians), each with its max |difference| from a float64 SDPA.
Run: ``PYTHONPATH=$PWD python benchmarks/inference_attention.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from attnlab.nn import fused_attention
from attnlab.nn.attention import causal_mask, compiled_inference_attention

CASES = [  # (B, T, S, H, D, causal)
    (8, 128, 128, 12, 32, False),  # all-MiniLM-L6-v2, 8 x 128
    (8, 128, 128, 12, 64, False),  # BERT-base, 8 x 128
    (1, 256, 256, 12, 64, True),
    (1, 512, 512, 12, 64, True),  # GPT-2 prefill, 512
    (1, 1024, 1024, 12, 64, True),
    (1, 2048, 2048, 12, 64, True),
    (1, 1, 300, 12, 64, False),  # one decoding step over 300 cached keys
]


def main() -> None:
    torch.set_num_threads(1)

    def flash(q, k, v, causal):
        if causal and q.shape[2] != k.shape[2]:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(q.shape[2], k.shape[2]))
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    kernels = {"flash": flash}
    if fused_attention.available():
        kernels["fused C"] = lambda q, k, v, c: fused_attention.attend_bf16(q, k, v, is_causal=c)
    else:
        print("the fused C kernel does not run here (no compiler, or no AVX512-BF16): left out")
    kernels["torch form, compiled"] = torch.compile(
        lambda q, k, v, c: compiled_inference_attention(q, k, v, is_causal=c))
    with torch.no_grad():
        for batch, q_len, k_len, heads, width, causal in CASES:
            q = torch.randn(batch, q_len, 3 * heads * width).bfloat16()[..., : heads * width]
            q = q.view(batch, q_len, heads, width).transpose(1, 2)
            k, v = (torch.randn(batch, heads, k_len, width).bfloat16() for _ in "kv")
            mask = causal_mask(q_len, k_len) if causal else None
            exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
            names = [n for n in kernels if n != "torch form, compiled" or k_len <= 1024]  # its (T, S) fp32
            errors = {n: float((kernels[n](q, k, v, causal).double() - exact).abs().max()) for n in names}
            times: dict[str, list[float]] = {n: [] for n in names}
            for _ in range(max(5, 15 * 1024 // (batch * q_len))):
                for name in names:
                    started = time.perf_counter()
                    kernels[name](q, k, v, causal)
                    times[name].append(time.perf_counter() - started)
            ms = {n: statistics.median(t) * 1e3 for n, t in times.items()}
            ratio = f"; flash / fused C {ms['flash'] / ms['fused C']:.2f}" if "fused C" in ms else ""
            print(f"({batch}, {heads}, {q_len}, {k_len}, {width}){' causal' if causal else ''}: "
                  + ", ".join(f"{n} {ms[n]:.2f} ms (max |d| {errors[n]:.1e})" for n in names) + ratio,
                  flush=True)


if __name__ == "__main__":
    main()
