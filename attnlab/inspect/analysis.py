"""What the value vectors contribute: norms, value-weighted attention, rollout and
the per-head decomposition of an attention layer's output.

Everything here reads a traced :class:`~attnlab.inspect.trace.AttentionRecord`
(or a list of them) and does plain tensor algebra; no model is run.

Dimension legend: B batch, T query positions, S key/value positions, H heads,
D head width, M model width, L layers.

Multi-head attention (Vaswani et al. 2017, arXiv:1706.03762, §3.2.2) is a sum
over heads, because concatenating the heads and multiplying by W_O is the same
as multiplying each head by its own D rows of W_O and adding:

    output_i = Concat_h(context_i^h) W_O + b_O = sum_h context_i^h W_O^(h) + b_O
             = sum_h sum_j alpha_ij^h (x_j W_V^(h) + b_V^(h)) W_O^(h) + b_O
             = sum_h sum_j alpha_ij^h f^h(x_j) + b_O,      f^h(x) = (x W_V^(h) + b_V^(h)) W_O^(h)

Kobayashi et al. 2020 ("Attention is Not Only a Weight: Analyzing Transformers
with Vector Norms", EMNLP 2020, arXiv:2004.10102, §3) read this sum term by term:
how much token j contributes to token i is the *length* of the vector it adds,
||alpha_ij f(x_j)|| = alpha_ij ||f(x_j)||, not the weight alpha_ij alone. A token
with a large weight but a short transformed value vector adds little.

Grouped-query models (a key/value head shared by several query heads) are traced
with key and value already expanded to the query heads, so every function here
works per query head for them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.inspect.trace import AttentionRecord
from attnlab.nn.attention import MultiHeadAttention


def head_output_weights(module: MultiHeadAttention) -> Tensor:
    """The slices W_O^(h) of the output projection, one per head: (H, D, M).

    ``module.out`` is an ``nn.Linear`` (H·D -> M) whose weight is stored as (M, H·D),
    i.e. W_O transposed; head h owns columns h·D .. (h+1)·D of it, so
    context^h (T, D) @ W_O^(h) (D, M) is that head's share of the output.
    """
    weight = module.out.weight.detach()  # (M, H·D) = W_O^T
    d_model = weight.shape[0]
    return weight.T.reshape(module.n_heads, module.d_head, d_model)  # (H, D, M)


def value_norms(record: AttentionRecord) -> Tensor:
    """||v_j|| of every value vector of every head: (B, H, S)."""
    return record.value.norm(dim=-1)


def transformed_values(record: AttentionRecord) -> Tensor:
    """f^h(x_j) = v_j^h W_O^(h): each value vector carried into the model's space, (B, H, S, M).

    This is the vector token j adds to a query's output per unit of attention weight
    (Kobayashi et al. 2020, §3); the output bias b_O belongs to no token and is left out.
    """
    weights = head_output_weights(record.module).to(record.value.dtype)  # (H, D, M)
    return torch.einsum("bhsd,hdm->bhsm", record.value, weights)


def transformed_value_norms(record: AttentionRecord) -> Tensor:
    """||f^h(x_j)|| = ||v_j^h W_O^(h)||: (B, H, S)."""
    return transformed_values(record).norm(dim=-1)


def value_weighted_attention(record: AttentionRecord) -> Tensor:
    """||alpha_ij^h f^h(x_j)|| for every head, query i and key j: (B, H, T, S).

    Equal to alpha_ij^h ||v_j^h W_O^(h)|| because alpha >= 0. Rows no longer sum to 1:
    their scale is the size of what each head actually moves.
    """
    return record.probs * transformed_value_norms(record)[:, :, None, :]


def value_weighted_attention_layer(record: AttentionRecord, chunk: int = 64) -> Tensor:
    """||sum_h alpha_ij^h f^h(x_j)||: token j's contribution to token i through the whole layer, (B, T, S).

    The heads' vectors are added before taking the length (Kobayashi et al. 2020, §3),
    so heads that push in opposite directions cancel. Computed ``chunk`` queries at a
    time to bound memory at (B, chunk, S, M).
    """
    check_int("chunk", chunk)
    vectors = transformed_values(record)  # (B, H, S, M)
    probs = record.probs  # (B, H, T, S)
    rows = []
    for start in range(0, probs.shape[2], chunk):
        part = probs[:, :, start:start + chunk]  # (B, H, t, S)
        summed = torch.einsum("bhts,bhsm->btsm", part, vectors)  # (B, t, S, M)
        rows.append(summed.norm(dim=-1))
    return torch.cat(rows, dim=1)


def head_contributions(record: AttentionRecord) -> Tensor:
    """context^h W_O^(h): what each head adds to the attention output, (B, H, T, M).

    ``head_contributions(r).sum(1) + b_O == r.output`` (up to float rounding): the
    per-head decomposition of multi-head attention.
    """
    weights = head_output_weights(record.module).to(record.context.dtype)  # (H, D, M)
    return torch.einsum("bhtd,hdm->bhtm", record.context, weights)


def output_bias(record: AttentionRecord) -> Tensor | None:
    """b_O (M,), or None for models without biases (the Llama family)."""
    bias = record.module.out.bias
    return None if bias is None else bias.detach()


def attention_rollout(
    probs: Sequence[Tensor], *, residual: bool = True, head_reduction: str = "mean"
) -> Tensor:
    """Attention rollout across a stack of self-attention layers: (B, T, T).

    Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", ACL 2020,
    arXiv:2005.00928, §3. Each layer's attention is reduced over heads (the mean, as
    in the paper), and the residual connection around it is modelled by mixing in the
    identity with equal weight and renormalising the rows:

        A_l      = 0.5 * mean_h(probs_l) + 0.5 * I          (residual=True)
        A_l      = A_l / A_l.sum(-1)                         (rows sum to 1)
        rollout  = A_L @ A_(L-1) @ ... @ A_1

    so ``rollout[b, i, j]`` is how much of position i at the top of the stack traces
    back to input position j, following every path through the layers.

    Args:
        probs: the attention weights of each layer, bottom first, each (B, H, T, T)
            (``[r.probs for r in trace.attention]`` for a one-stack model).
        residual: add the 0.5 I residual term (False gives the bare product).
        head_reduction: "mean" (the paper), "max" or "min" over heads.
    """
    if not probs:
        raise AttnlabError("attention_rollout needs the attention weights of at least one layer.")
    reducers = {"mean": lambda p: p.mean(1), "max": lambda p: p.amax(1), "min": lambda p: p.amin(1)}
    if head_reduction not in reducers:
        raise AttnlabError(f"head_reduction must be one of {sorted(reducers)}. Got {head_reduction!r}.")
    rollout = None
    for index, layer in enumerate(probs):
        if layer.dim() != 4 or layer.shape[-1] != layer.shape[-2]:
            raise AttnlabError(
                f"attention_rollout needs square self-attention weights (B, H, T, T); layer {index} "
                f"is {tuple(layer.shape)} (cross-attention does not roll out)."
            )
        a = reducers[head_reduction](layer.double())  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)
        rollout = a if rollout is None else a @ rollout
    return rollout.to(probs[0].dtype)
