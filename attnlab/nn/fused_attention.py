"""Attention for inference in one C call: context = softmax(Q K^T / sqrt(d)) V, Eq. 1 of Vaswani et al.
(2017); bf16 on CPUs with AVX512-BF16 (Zen 4 and later, Intel Cooper Lake and later), fp32 on CPUs with
AVX-512.

bf16 attention on a CPU would otherwise be fused SDPA (its flash kernel converts bf16 blocks to fp32
on CPUs without AMX) or, under ``torch.compile``, the torch form of
:func:`attnlab.nn.attention.compiled_inference_attention`: copies of q, k, v into head-major order, a
bf16 matmul into a (B, H, T, S) score tensor, an fp32 softmax, a second matmul. Profiled inside
all-MiniLM-L6-v2 (8 x 128 tokens, 12 heads of 32) and a 512-token GPT-2 124M prefill, the torch form
was the largest cost after the linear layers: inductor's softmax alone took 1.5 and 5.1 ms a layer
(it also computed the causal mask's hidden half), and each new score tensor's pages faulted in
afresh. ``attend_bf16`` in :mod:`attnlab.nn.cpu_kernels` does a head at a time: it repacks the head's
keys and values into the pair layout of ``vdpbf16ps`` (bf16 products accumulated in fp32), keeps
eight queries' scores in a buffer of the thread, computes their softmax there (an FMA exp), and
writes the context in the (B, T, H, D) layout the output projection reads; a causal row stops at its
last visible key. benchmarks/inference_attention.py (2-core Zen 5, 1 thread): MiniLM's layer 0.65 ms
(flash SDPA 3.29, the compiled torch form 1.64), the 512-token causal layer 1.11 ms (8.76, 4.39).

Arithmetic: scores in fp32 (the torch form rounds them to bf16 first), softmax in fp32, the
probabilities rounded to bf16 for the second product, accumulated in fp32, the context rounded to
bf16. Its error against float64 is below the torch form's (tested).

fp32 (``attend_f32``, the same steps with FMAs): fp32 SDPA multiplies its blocks with PyTorch's sgemm,
MKL's AVX2 code on AMD CPUs. benchmarks/inference_attention.py (2-core Zen 5, 1 thread): SmolLM2's
layer (9 heads, 3 key/value heads of 64) over a 360-token prompt 0.71 vs 3.35 ms for flash SDPA,
over 175 tokens 0.21 vs 1.00 ms, 512 causal GPT-2 tokens 1.87 vs 8.55 ms, MiniLM's layer 1.07 vs
2.73 ms; its error against float64 equals SDPA's. A head's keys are repacked for every call, which a
single query does not repay, so fp32 calls with fewer than ``MIN_F32_QUERIES`` queries, decoding
steps among them, keep SDPA.

The call is the custom op ``attnlab::attend``, opaque to the compiler. Where the kernels cannot
be built (no compiler), are turned off (``ATTNLAB_PACKED_KERNEL=torch``), or were built for a CPU
without AVX512-BF16 (bf16) or AVX-512 (fp32); for a head width that is not a multiple of 16 up to 256;
or for a mask that is not one row of visible keys per sequence, the caller keeps its torch form.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnlab.nn import cpu_kernels

MAX_HEAD_DIM = 256
# fp32 calls with fewer queries keep SDPA. The kernel's speed as a multiple of SDPA's, 9 query heads over
# 3 key/value heads of 64, causal, over 100 / 300 / 1000 keys: 1 thread, 1 query 0.46 / 0.54 / 0.60,
# 4 queries 0.79 / 1.05 / 1.31, 8 queries 1.14 / 1.63 / 2.05; 2 threads, 1 query 0.59 / 0.61 / 0.64,
# 2 queries 1.10 / 1.12 / 1.18.
MIN_F32_QUERIES = 8


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the bf16 kernel runs here: the C kernels load and were built with AVX512-BF16 (a constant
    to torch.compile, which cannot trace the build)."""
    lib = cpu_kernels.library()
    return lib is not None and lib.attend_bf16_built() == 1


@torch.compiler.assume_constant_result
def f32_available() -> bool:
    """Whether the fp32 kernel runs here: the C kernels load and were built with AVX-512."""
    lib = cpu_kernels.library()
    return lib is not None and lib.attend_f32_built() == 1


def is_key_padding(mask: Tensor, batch: int, k_len: int) -> bool:
    """Whether ``mask`` is one row of visible keys per sequence: boolean (B or 1, 1, 1, k_len), the same
    for every head and query (a check of its shape and dtype; no tensor work)."""
    return (mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[2] == 1 and mask.shape[3] == k_len
            and mask.shape[0] in (1, batch) and mask.dtype == torch.bool)


def key_padding(mask: Tensor | None, batch: int, k_len: int) -> Tensor | None:
    """``mask`` as one row of visible keys per sequence (batch, k_len) bool, or None where it is
    not of that form (:func:`is_key_padding`)."""
    if mask is None or not is_key_padding(mask, batch, k_len):
        return None
    return mask.reshape(mask.shape[0], k_len).expand(batch, k_len).contiguous()


def serves(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> bool:
    """Whether :func:`attend` takes this call: bf16, or fp32 with at least ``MIN_F32_QUERIES`` queries,
    on the CPU, that dtype's kernel available, a head width it serves, each head's rows contiguous, and
    no mask or one row of visible keys per sequence."""
    d, dtype = query.shape[-1], query.dtype
    return (
        all(t.dtype == dtype and t.device.type == "cpu" and t.stride(-1) == 1 for t in (query, key, value))
        and d % 16 == 0 and d <= MAX_HEAD_DIM and query.shape[1] % key.shape[1] == 0
        and (mask is None or is_key_padding(mask, query.shape[0], key.shape[2]))
        and (available() if dtype == torch.bfloat16
             else dtype == torch.float32 and query.shape[2] >= MIN_F32_QUERIES and f32_available())
    )


@torch.library.custom_op("attnlab::attend", mutates_args=())
def _attend(query: Tensor, key: Tensor, value: Tensor, key_mask: Tensor | None, causal: bool) -> Tensor:
    lib = cpu_kernels.library()
    batch, heads, q_len, d = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    out = query.new_empty(batch, q_len, heads, d)
    strides = [torch.tensor(t.stride()[:3], dtype=torch.int64) for t in (query, key, value)]
    kernel = None if lib is None else lib.attend_bf16 if query.dtype == torch.bfloat16 else lib.attend_f32
    done = -1 if kernel is None else kernel(
        query.data_ptr(), key.data_ptr(), value.data_ptr(), batch, heads, kv_heads, q_len, k_len, d,
        *(s.data_ptr() for s in strides), None if key_mask is None else key_mask.data_ptr(), int(causal),
        1.0 / math.sqrt(d), out.data_ptr(), torch.get_num_threads())
    if done != 0:  # serves() said yes, so only a kernel that vanished since gets here
        raise RuntimeError("attnlab::attend: the kernel did not run")
    return out


@_attend.register_fake
def _(query: Tensor, key: Tensor, value: Tensor, key_mask: Tensor | None, causal: bool) -> Tensor:
    batch, heads, q_len, d = query.shape
    return query.new_empty(batch, q_len, heads, d)


def attend(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
           is_causal: bool = False) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V in one call; check :func:`serves` first.

    Args:
        query: (B, H, T, D) bf16 or fp32; key, value: (B, H_kv, S, D) of the same dtype, H a multiple
            of H_kv (each key/value head serves H / H_kv query heads); the last dimension contiguous,
            any other strides.
        mask: None, or boolean (B or 1, 1, 1, S), True = visible.
        is_causal: query t sees keys up to t + S - T (bottom-right aligned, as
            :func:`attnlab.nn.attention.causal_mask`).

    Returns: the context (B, H, T, D) in the inputs' dtype, a view of a (B, T, H, D) tensor (so that
    merging the heads for the output projection copies nothing); a row with no visible key gets 0.
    """
    key_mask = key_padding(mask, query.shape[0], key.shape[2])
    return _attend(query, key, value, key_mask, is_causal).transpose(1, 2)
