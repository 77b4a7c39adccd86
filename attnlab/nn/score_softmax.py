"""softmax(Q K^T / sqrt(d)) of bf16 attention scores in one C pass per row, for bf16 inference.

Under ``torch.compile``, bf16 attention on a CPU runs as two bf16 matmuls around an fp32 softmax
(:func:`attnlab.nn.attention.compiled_inference_attention`). The softmax between them was the
largest cost after the linear layers: inductor's fused kernel took 1.4-1.6 ms a layer of
all-MiniLM-L6-v2 (8 x 12 x 128 x 128 scores) and 5.1 ms a layer of a 512-token GPT-2 prefill,
where it also computes the causal mask's hidden half. ``softmax_bf16`` in
:mod:`attnlab.nn.cpu_kernels` reads each row once into fp32, keeps the row's visible keys only
(a key-padding mask, causal positions: a causal row stops at its last visible key), and writes the
probabilities rounded to bf16: 0.94 ms and 1.0 ms at those two shapes (2-core Zen 5, 1 thread).
Its values are the torch formula's to one bf16 unit in the last place (exp's polynomial is not
libm's; the sums add in another order).

The kernel is the custom op ``attnlab::softmax_bf16``, opaque to the compiler. Where the C kernels
cannot be built (no compiler) or are turned off (``ATTNLAB_PACKED_KERNEL=torch``), or the mask
is not one row of keys per sequence, the caller keeps its torch formula.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.nn import cpu_kernels


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the C kernel loads here: a constant to torch.compile, which cannot trace the build."""
    return cpu_kernels.library() is not None


def key_padding(mask: Tensor | None, batch: int, k_len: int) -> Tensor | None:
    """``mask`` as one row of visible keys per sequence (batch, k_len) bool, or None where it is
    not of that form: it must be (B or 1, 1, 1, k_len), the same for every head and query."""
    if mask is None or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
        return None
    if mask.shape[3] != k_len or mask.shape[0] not in (1, batch) or mask.dtype != torch.bool:
        return None
    return mask.reshape(mask.shape[0], k_len).expand(batch, k_len).contiguous()


@torch.library.custom_op("attnlab::softmax_bf16_", mutates_args=("scores",))
def softmax_bf16_(scores: Tensor, scale: float, key_mask: Tensor | None, causal: bool) -> None:
    """softmax(scores * scale) over the last dimension, in fp32, rounded to bf16, written over ``scores``
    (the probabilities take the scores' place: no new buffer, whose pages would be faulted in afresh).

    Args:
        scores: (B, H, T, S) bf16 and contiguous, Q K^T of each head.
        scale: the factor before the softmax, 1 / sqrt(head_dim).
        key_mask: (B, S) bool, True = visible, or None (every key visible).
        causal: query t sees keys up to t + S - T only (bottom-right aligned, as
            :func:`attnlab.nn.attention.causal_mask`).

    Hidden keys get probability 0; a row with no visible key is all 0.
    """
    lib = cpu_kernels.library()
    if lib is None:  # only reached when the kernels were available at load and vanished since
        raise RuntimeError("attnlab::softmax_bf16_ needs the compiled kernels")
    if not scores.is_contiguous():
        raise RuntimeError("attnlab::softmax_bf16_ needs contiguous scores")
    batch, heads, q_len, k_len = scores.shape
    key_mask = None if key_mask is None else key_mask.contiguous()  # held: the kernel reads its memory
    mask_ptr = None if key_mask is None else key_mask.data_ptr()
    lib.softmax_bf16(scores.data_ptr(), batch * heads * q_len, q_len, k_len, heads * q_len, scale, mask_ptr,
                     int(causal), scores.data_ptr(), torch.get_num_threads())


@softmax_bf16_.register_fake
def _(scores: Tensor, scale: float, key_mask: Tensor | None, causal: bool) -> None:
    return None


def softmax_bf16(scores: Tensor, scale: float, key_mask: Tensor | None, causal: bool) -> Tensor:
    """The probabilities of (B, H, T, S) bf16 ``scores``, computed in their place
    (see :func:`softmax_bf16_`)."""
    scores = scores.contiguous()
    softmax_bf16_(scores, scale, key_mask, causal)
    return scores
