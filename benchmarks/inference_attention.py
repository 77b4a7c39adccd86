"""The measured rules of inference attention in attnlab.nn.attention, bf16 then fp32.

bf16: no grad, 1 thread, on the layout the models produce (q, k, v views of the fused qkv output):
fused SDPA (flash, eager; what transformers runs), attnlab's fused C kernel
(:func:`attnlab.nn.fused_attention.attend`, eager: what :func:`uses_fused_inference_attention`
picks on CPUs with AVX512-BF16), and the torch form of
:func:`attnlab.nn.attention.compiled_inference_attention` under ``torch.compile`` (what
:func:`uses_compiled_explicit_attention` picks elsewhere, up to 512 keys). Timed in turns (one call of
each per round, medians), each with its max |difference| from a float64 SDPA.
fp32: fused SDPA against the fused C kernel's fp32 twin, on prompts of at least
``fused_attention.MIN_F32_QUERIES`` queries (fewer keep SDPA), with grouped key/value heads as
SmolLM2's (9 query heads, 3 key/value heads).
Run: ``PYTHONPATH=$PWD python benchmarks/inference_attention.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from attnlab.nn import fused_attention
from attnlab.nn.attention import causal_mask, compiled_inference_attention

CASES_F32 = [  # (B, T, S, H, H_kv, D, causal)
    (8, 128, 128, 12, 12, 32, False),  # all-MiniLM-L6-v2, 8 x 128
    (1, 175, 175, 9, 3, 64, True),  # SmolLM2, a 4-shot fewshot prompt
    (1, 360, 360, 9, 3, 64, True),  # SmolLM2, an 8-shot fewshot prompt
    (1, 512, 512, 12, 12, 64, True),  # GPT-2 prefill, 512
    (1, 8, 300, 9, 3, 64, True),  # 8 or 16 new queries over 300 cached keys
    (1, 16, 300, 9, 3, 64, True),
]
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
        kernels["fused C"] = lambda q, k, v, c: fused_attention.attend(q, k, v, is_causal=c)
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


def main_f32() -> None:
    if not fused_attention.f32_available():
        print("fp32: the fused C kernel does not run here (no compiler, or no AVX-512): nothing to compare")
        return
    kernels = {
        "flash": lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                                      enable_gqa=True),
        "fused C": lambda q, k, v, mask: fused_attention.attend(q, k, v, is_causal=mask is not None),
    }
    with torch.no_grad():
        for batch, q_len, k_len, heads, kv_heads, width, causal in CASES_F32:
            q = torch.randn(batch, q_len, (heads + 2 * kv_heads) * width)[..., : heads * width]
            q = q.view(batch, q_len, heads, width).transpose(1, 2)
            k, v = (torch.randn(batch, kv_heads, k_len, width) for _ in "kv")
            mask = causal_mask(q_len, k_len) if causal else None
            exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask,
                                                   enable_gqa=True)
            errors = {n: float((f(q, k, v, mask).double() - exact).abs().max()) for n, f in kernels.items()}
            times: dict[str, list[float]] = {n: [] for n in kernels}
            for _ in range(max(5, 15 * 1024 // (batch * q_len))):
                for name, kernel in kernels.items():
                    started = time.perf_counter()
                    kernel(q, k, v, mask)
                    times[name].append(time.perf_counter() - started)
            ms = {n: statistics.median(t) * 1e3 for n, t in times.items()}
            shape = f"({batch}, {heads}/{kv_heads}, {q_len}, {k_len}, {width}){' causal' if causal else ''}"
            print(f"fp32 {shape}: "
                  + ", ".join(f"{n} {ms[n]:.2f} ms (max |d| {errors[n]:.1e})" for n in kernels)
                  + f"; flash / fused C {ms['flash'] / ms['fused C']:.2f}", flush=True)


if __name__ == "__main__":
    main()
    main_f32()
