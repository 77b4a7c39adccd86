"""Forward-pass FLOPs by formula, for the Transformer, BERT and GPT.

What counts (stated once, used everywhere): the forward pass, matrix products only, 2 FLOPs per
multiply-add (the convention of Kaplan et al. 2020, arXiv:2001.08361, §2.1), counted as the
kernels compute them: a causal mask still computes the full T x T score matrix. LayerNorm,
softmax, activations and embedding look-ups are left out (each is O(T·M), not O(T·M²)).
:func:`flops_formula_check` checks the formulas against ``torch.utils.flop_counter``.

Dimension legend: M d_model, F d_ff, N layers, H heads, D head width, H_kv key/value heads,
V vocabulary, T target/sequence length, S source length.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.compare.build import Size, build, example_inputs
from attnlab.errors import AttnlabError
from attnlab.models import BertConfig, GPTConfig, ModelConfig, TransformerConfig

# Closed forms per token at one Size (H·D = M, H_kv = H): what the table prints.
FLOPS_FORMULAS = {
    "transformer": "2N·(6M² + 2MF) + 3N·T·M + M·V   (T/2 source + T/2 target)",
    "bert": "2N·(4M² + 2MF) + 4N·T·M + 2·(M² + M·V)",
    "gpt": "2N·(4M² + 2MF) + 4N·T·M + 2·M·V",
}


def closed_form_flops_per_token(arch: str, size: Size) -> float:
    """:data:`FLOPS_FORMULAS` evaluated; exact when seq_len is even (S = T/2 for the encoder-decoder)."""
    m, n, f, v, t = size.d_model, size.n_layers, size.d_ff, size.vocab_size, size.seq_len
    return {
        "transformer": 2 * n * (6 * m * m + 2 * m * f) + 3 * n * t * m + m * v,
        "bert": 2 * n * (4 * m * m + 2 * m * f) + 4 * n * t * m + 2 * (m * m + m * v),
        "gpt": 2 * n * (4 * m * m + 2 * m * f) + 4 * n * t * m + 2 * m * v,
    }[arch]


def _layer_flops(t: int, s: int, m: int, inner: int, kv: int, f: int, ffn: str) -> int:
    """One self-attention block over t queries and s keys (t == s for self-attention)."""
    projections = 2 * t * (m * inner + 2 * m * kv + inner * m)  # W_Q, W_K, W_V, W_O
    attention = 2 * 2 * t * s * inner  # Q K^T and probs @ V, every head
    feedforward = 2 * t * (3 if ffn == "swiglu" else 2) * m * f
    return projections + attention + feedforward


def forward_flops(
    model_or_config: nn.Module | ModelConfig, seq_len: int, source_len: int | None = None
) -> int:
    """FLOPs of one forward pass over one sequence (see the module docstring for what counts).

    For the encoder-decoder ``seq_len`` is the target length and ``source_len`` the source's
    (default: the same). BERT's heads count only when a model, not a config, is given.
    """
    model = model_or_config if isinstance(model_or_config, nn.Module) else None
    c = model.config if model is not None else model_or_config
    t, m, f, v = seq_len, c.d_model, c.d_ff, c.vocab_size
    if isinstance(c, TransformerConfig):
        s = source_len if source_len is not None else seq_len
        encoder = c.n_layers * _layer_flops(s, s, m, m, m, f, "mlp")
        cross = 2 * t * 2 * m * m + 2 * s * 2 * m * m + 2 * 2 * t * s * m  # W_Q, W_O | W_K, W_V | attention
        decoder = c.n_decoder_layers * (_layer_flops(t, t, m, m, m, f, "mlp") + cross)
        return encoder + decoder + 2 * t * m * c.target_vocab_size
    if isinstance(c, GPTConfig):
        inner, kv = c.n_heads * c.d_head, c.n_kv_heads * c.d_head
        return c.n_layers * _layer_flops(t, t, m, inner, kv, f, c.ffn) + 2 * t * m * v
    if isinstance(c, BertConfig):
        total = c.n_layers * _layer_flops(t, t, m, m, m, f, "mlp")
        bert = getattr(model, "bert", model)
        if model is not None and hasattr(model, "mlm_head"):
            total += 2 * t * (m * m + m * v)
        if model is not None and getattr(bert, "pooler", None) is not None:
            total += 2 * m * m  # the pooler reads the [CLS] position only
        return total
    raise AttnlabError(f"No FLOPs formula for {type(c).__name__}.")


def size_flops(arch: str, model: nn.Module, size: Size) -> int:
    """FLOPs of one forward pass of one sequence of ``size`` (half source, half target for the
    encoder-decoder)."""
    if arch == "transformer":
        return forward_flops(model, size.target_len, size.source_len)
    return forward_flops(model, size.seq_len)


def flops_formula_check(arch: str, size: Size) -> tuple[int, int]:
    """(formula, counted by torch.utils.flop_counter) for one traced forward pass of ``arch``."""
    from torch.utils.flop_counter import FlopCounterMode

    from attnlab.inspect import trace

    model = build(arch, size)
    args, kwargs = example_inputs(arch, size, 1, torch.Generator().manual_seed(0))
    with torch.no_grad(), trace(model), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)  # traced: explicit Q K^T and probs @ V, which the counter sees
    return size_flops(arch, model, size), int(counter.get_total_flops())
