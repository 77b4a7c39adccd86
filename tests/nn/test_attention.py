"""Attention against a loop oracle: eq. 1 of arXiv:1706.03762 written out with Python floats.

Three tiers: the oracle (explicit loops over batch, head, query and key in float64);
tiny random configs (SDPA fast path vs explicit path, KV cache vs one full call);
the module's own contracts (projection slices, errors, dropout only in training).
"""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.nn.attention import (
    KVCache,
    MultiHeadAttention,
    broadcast_padding_mask,
    causal_mask,
    explicit_attention,
)

PATHS = ["sdpa", "explicit"]


# ----------------------------------------------------------------------------- the oracle
def allowed_keys(padding=None, causal=False, q_len=None, k_len=None):
    """allowed(b, i, j): may query i of batch b see key j? Written from the definitions.

    padding: list of rows of 1 (token) / 0 (padding) over the keys.
    causal: queries are the last q_len of k_len positions, so query i sits at k_len - q_len + i.
    """

    def allowed(b: int, i: int, j: int) -> bool:
        if padding is not None and not padding[b][j]:
            return False
        return not (causal and j > k_len - q_len + i)

    return allowed


def loop_attention(query, key, value, allowed=None):
    """softmax(q·k / sqrt(D)) weighted sums of v, one query at a time, in Python floats.

    query (B, H, T, D), key/value (B, H, S, D). Returns context (B, H, T, D) and probs
    (B, H, T, S) as float64 tensors; a query that may see no key gets zeros.
    """
    B, H, T, D = query.shape
    S = key.shape[2]
    q, k, v = (t.double().tolist() for t in (query, key, value))
    context = [[[[0.0] * D for _ in range(T)] for _ in range(H)] for _ in range(B)]
    probs = [[[[0.0] * S for _ in range(T)] for _ in range(H)] for _ in range(B)]
    for b in range(B):
        for h in range(H):
            for i in range(T):
                keys = [j for j in range(S) if allowed is None or allowed(b, i, j)]
                if not keys:
                    continue
                scores = {
                    j: sum(q[b][h][i][d] * k[b][h][j][d] for d in range(D)) / math.sqrt(D) for j in keys
                }
                top = max(scores.values())
                weights = {j: math.exp(s - top) for j, s in scores.items()}
                total = sum(weights.values())
                for j in keys:
                    probs[b][h][i][j] = weights[j] / total
                for d in range(D):
                    context[b][h][i][d] = sum(weights[j] * v[b][h][j][d] for j in keys) / total
    return torch.tensor(context, dtype=torch.float64), torch.tensor(probs, dtype=torch.float64)


def oracle_mha(module, x, memory=None, allowed=None):
    """The whole module by hand: slice the fused weights, project, loop attention, W_O."""
    H, D = module.n_heads, module.d_head
    if module.cross_attention:
        w_q, b_q = module.query.weight, module.query.bias
        w_k, w_v = module.key_value.weight.chunk(2, dim=0)
        b_k, b_v = module.key_value.bias.chunk(2, dim=0)
        source = memory
    else:
        w_q, w_k, w_v = module.qkv.weight.chunk(3, dim=0)
        b_q, b_k, b_v = module.qkv.bias.chunk(3, dim=0)
        source = x

    def heads(t):  # (B, L, H·D) -> (B, H, L, D)
        return t.reshape(t.shape[0], t.shape[1], H, D).transpose(1, 2)

    x64, source64 = x.double(), source.double()
    query = heads(x64 @ w_q.double().T + b_q.double())
    key = heads(source64 @ w_k.double().T + b_k.double())
    value = heads(source64 @ w_v.double().T + b_v.double())
    context, _ = loop_attention(query, key, value, allowed)
    concat = context.transpose(1, 2).reshape(x.shape[0], x.shape[1], H * D)
    return concat @ module.out.weight.double().T + module.out.bias.double()


def set_path(module, path):
    # Any recorder switches the module to the explicit math; None keeps the SDPA kernel.
    module.recorder = None if path == "sdpa" else (lambda module, **tensors: None)
    return module


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def close(a, b, tol):
    return (a.double() - b.double()).abs().max().item() < tol


# ----------------------------------------------------------------------------- tier 1: the oracle
def test_loop_oracle_is_a_softmax_weighted_average():
    # Guard the guard: with one key the output is that key's value; rows of probs sum to 1.
    q, k, v = rand(1, 1, 2, 3, seed=1), rand(1, 1, 1, 3, seed=2), rand(1, 1, 1, 3, seed=3)
    context, probs = loop_attention(q, k, v)
    assert torch.equal(context, v.expand(1, 1, 2, 3))
    q, k, v = rand(1, 1, 4, 3, seed=1), rand(1, 1, 5, 3, seed=2), rand(1, 1, 5, 3, seed=3)
    context, probs = loop_attention(q, k, v)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 1, 4, dtype=torch.float64))
    assert not torch.allclose(context[0, 0, 0], context[0, 0, 1])


PADDING_7 = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]


@pytest.mark.parametrize(
    "padding, causal, q_len",
    [
        (None, False, 7),
        (PADDING_7, False, 7),
        (None, True, 7),
        (PADDING_7, True, 7),
        (None, True, 3),  # fewer queries than keys: causal aligns bottom-right
        (PADDING_7, True, 3),
        (PADDING_7, False, 3),
    ],
    ids=["plain", "padding", "causal", "causal+padding", "causal-T<S", "causal+padding-T<S", "padding-T<S"],
)
def test_explicit_attention_equals_loop_oracle(padding, causal, q_len):
    B, H, S, D = 2, 3, 7, 5
    query, key, value = rand(B, H, q_len, D, seed=1), rand(B, H, S, D, seed=2), rand(B, H, S, D, seed=3)
    mask = broadcast_padding_mask(torch.tensor(padding)) if padding is not None else None
    context, scores, probs = explicit_attention(query, key, value, mask=mask, is_causal=causal)
    expected_context, expected_probs = loop_attention(
        query, key, value, allowed_keys(padding, causal, q_len, S)
    )
    assert context.shape == (B, H, q_len, D) and probs.shape == scores.shape == (B, H, q_len, S)
    assert close(context, expected_context, 1e-12)
    assert close(probs, expected_probs, 1e-12)
    # Unmasked scores are Q K^T / sqrt(D).
    raw = query @ key.transpose(-2, -1) / math.sqrt(D)
    seen = expected_probs > 0
    assert torch.allclose(scores[seen], raw[seen])


def test_sdpa_kernel_and_explicit_attention_agree_on_a_fully_masked_row():
    query, key, value = rand(2, 2, 4, 3, seed=4), rand(2, 2, 6, 3, seed=5), rand(2, 2, 6, 3, seed=6)
    mask = torch.ones(2, 1, 4, 6, dtype=torch.bool)
    mask[1, 0, 2] = False  # query 2 of batch 1 may see nothing
    context, _, probs = explicit_attention(query, key, value, mask=mask)
    fused = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.equal(context[1, :, 2], torch.zeros(2, 3, dtype=torch.float64))
    assert torch.equal(probs[1, :, 2], torch.zeros(2, 6, dtype=torch.float64))
    assert torch.isfinite(fused).all()
    assert close(fused, context, 1e-12)
    expected, _ = loop_attention(query, key, value, lambda b, i, j: not (b == 1 and i == 2))
    assert close(context, expected, 1e-12)


def test_causal_mask_is_bottom_right_aligned():
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(causal_mask(3, 5), expected)
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(1, 6), torch.ones(1, 6, dtype=torch.bool))  # one decode step sees all


def test_attention_mask_broadcasts_a_padding_mask():
    padding = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mask = broadcast_padding_mask(padding)
    assert mask.dtype == torch.bool and mask.shape == (2, 1, 1, 3)
    assert torch.equal(mask[:, 0, 0], padding.bool())
    assert broadcast_padding_mask(None) is None


# ----------------------------------------------------------------------------- the module vs the oracle
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "padding, causal",
    [(None, False), (PADDING_7, False), (None, True), (PADDING_7, True)],
    ids=["plain", "padding", "causal", "causal+padding"],
)
def test_multi_head_attention_equals_loop_oracle(path, padding, causal):
    torch.manual_seed(0)
    module = set_path(MultiHeadAttention(12, 3).double(), path)
    x = rand(2, 7, 12, seed=7)
    mask = broadcast_padding_mask(torch.tensor(padding)) if padding is not None else None
    got = module(x, mask=mask, is_causal=causal)
    expected = oracle_mha(module, x, allowed=allowed_keys(padding, causal, 7, 7))
    assert got.shape == (2, 7, 12)
    assert close(got, expected, 1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_fully_padded_sequence_gives_zero_context(path):
    torch.manual_seed(1)
    module = set_path(MultiHeadAttention(8, 2).double(), path)
    x = rand(2, 5, 8, seed=8)
    padding = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    got = module(x, mask=broadcast_padding_mask(padding))
    assert torch.isfinite(got).all()
    # Zero context for every query of the empty sequence: only W_O's bias is left.
    assert close(got[1], module.out.bias.expand(5, 8), 1e-12)
    expected = oracle_mha(module, x, allowed=allowed_keys(padding.tolist()))
    assert close(got, expected, 1e-10)


@pytest.mark.parametrize("padding", [None, PADDING_7], ids=["plain", "padding"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_sdpa_and_explicit_paths_agree_in_float32(padding, causal):
    torch.manual_seed(2)
    module = MultiHeadAttention(32, 4)
    x = torch.randn(2, 7, 32)
    mask = broadcast_padding_mask(torch.tensor(padding)) if padding is not None else None
    fast = set_path(module, "sdpa")(x, mask=mask, is_causal=causal)
    slow = set_path(module, "explicit")(x, mask=mask, is_causal=causal)
    assert close(fast, slow, 1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_odd_sizes_head_width_15(path):
    torch.manual_seed(3)
    module = set_path(MultiHeadAttention(90, 6).double(), path)
    assert (module.d_head, module.inner_dim) == (15, 90)
    x = rand(1, 5, 90, seed=9)
    assert close(module(x, is_causal=True), oracle_mha(module, x, allowed=allowed_keys(None, True, 5, 5)),
                 1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_explicit_d_head_need_not_divide_d_model(path):
    torch.manual_seed(4)
    module = set_path(MultiHeadAttention(10, 3, d_head=4).double(), path)
    assert module.qkv.weight.shape == (36, 10) and module.out.weight.shape == (10, 12)
    x = rand(2, 4, 10, seed=10)
    assert close(module(x), oracle_mha(module, x), 1e-10)


def test_d_model_not_divisible_by_heads_raises():
    with pytest.raises(AttnlabError, match=r"d_model \(10\) must be divisible by n_heads \(3\)"):
        MultiHeadAttention(10, 3)


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("chunks", [[1] * 9, [3, 1, 4, 1], [9]], ids=["token-by-token", "chunks", "one-call"])
def test_kv_cache_equals_one_full_causal_call(path, chunks):
    torch.manual_seed(5)
    module = set_path(MultiHeadAttention(24, 4), path)
    x = torch.randn(2, 9, 24)
    full = module(x, is_causal=True)
    cache = KVCache(2, 4, 12, 6)
    pieces, start = [], 0
    for size in chunks:
        pieces.append(module(x[:, start:start + size], kv_cache=cache, start_pos=start, is_causal=True))
        start += size
    assert close(torch.cat(pieces, dim=1), full, 1e-5)
    # The cache holds the keys of every position written.
    _, w_k, _ = module.qkv.weight.chunk(3, dim=0)
    _, b_k, _ = module.qkv.bias.chunk(3, dim=0)
    keys = (x @ w_k.T + b_k).view(2, 9, 4, 6).transpose(1, 2)
    assert close(cache.keys[:, :, :9], keys, 1e-5)


def test_kv_cache_decode_equals_loop_oracle():
    torch.manual_seed(6)
    module = MultiHeadAttention(12, 2).double()
    x = rand(1, 6, 12, seed=11)
    cache = KVCache(1, 2, 6, 6, dtype=torch.float64)
    module(x[:, :4], kv_cache=cache, start_pos=0, is_causal=True)  # prefill
    step = module(x[:, 4:5], kv_cache=cache, start_pos=4, is_causal=True)  # decode one
    expected = oracle_mha(module, x[:, :5], allowed=allowed_keys(None, True, 5, 5))[:, 4:5]
    assert close(step, expected, 1e-10)


def test_kv_cache_overflow_raises():
    module = MultiHeadAttention(8, 2)
    cache = KVCache(1, 2, 4, 4)
    module(torch.randn(1, 3, 8), kv_cache=cache, start_pos=0, is_causal=True)
    with pytest.raises(AttnlabError, match="KV cache holds 4 positions but position 5"):
        module(torch.randn(1, 2, 8), kv_cache=cache, start_pos=3, is_causal=True)
    with pytest.raises(AttnlabError, match="larger max_len"):
        cache.update(4, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    keys, values = cache.update(3, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))  # exactly fills it
    assert keys.shape == values.shape == (1, 2, 4, 4)


# ----------------------------------------------------------------------------- cross-attention
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("memory_padding", [None, [[1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]]],
                         ids=["plain", "memory-padding"])
def test_cross_attention_with_memory_of_another_length(path, memory_padding):
    torch.manual_seed(7)
    module = set_path(MultiHeadAttention(12, 3, cross_attention=True).double(), path)
    x, memory = rand(2, 4, 12, seed=12), rand(2, 7, 12, seed=13)
    mask = broadcast_padding_mask(torch.tensor(memory_padding)) if memory_padding is not None else None
    got = module(x, memory=memory, mask=mask)
    assert got.shape == (2, 4, 12)
    expected = oracle_mha(module, x, memory=memory, allowed=allowed_keys(memory_padding))
    assert close(got, expected, 1e-10)


def test_cross_attention_without_memory_raises():
    module = MultiHeadAttention(12, 3, cross_attention=True)
    with pytest.raises(AttnlabError, match="pass memory="):
        module(torch.randn(1, 4, 12))


# ----------------------------------------------------------------------------- projections by name
def test_named_projections_are_row_slices_of_fused_qkv():
    torch.manual_seed(8)
    module = MultiHeadAttention(12, 3)
    inner = 12
    w, b = module.qkv.weight, module.qkv.bias
    for index, name in enumerate(["query", "key", "value"]):
        rows = slice(index * inner, (index + 1) * inner)
        assert torch.equal(getattr(module, f"{name}_weight"), w[rows])
        assert torch.equal(getattr(module, f"{name}_bias"), b[rows])
    # And they are what the module really uses: V = X W_V^T + b_V, as the recorder sees it.
    seen = {}
    module.recorder = lambda module, **tensors: seen.update(tensors)
    x = torch.randn(2, 5, 12)
    module(x)
    for name in ["query", "key", "value"]:
        projected = x @ getattr(module, f"{name}_weight").T + getattr(module, f"{name}_bias")
        assert close(seen[name], projected.view(2, 5, 3, 4).transpose(1, 2), 1e-6), name


def test_named_projections_of_cross_attention():
    torch.manual_seed(9)
    module = MultiHeadAttention(12, 3, cross_attention=True)
    assert torch.equal(module.query_weight, module.query.weight)
    assert torch.equal(module.query_bias, module.query.bias)
    assert torch.equal(module.key_weight, module.key_value.weight[:12])
    assert torch.equal(module.value_weight, module.key_value.weight[12:])
    assert torch.equal(module.key_bias, module.key_value.bias[:12])
    assert torch.equal(module.value_bias, module.key_value.bias[12:])
    seen = {}
    module.recorder = lambda module, **tensors: seen.update(tensors)
    x, memory = torch.randn(1, 3, 12), torch.randn(1, 6, 12)
    module(x, memory=memory)
    value = memory @ module.value_weight.T + module.value_bias
    query = x @ module.query_weight.T + module.query_bias
    assert close(seen["value"], value.view(1, 6, 3, 4).transpose(1, 2), 1e-6)
    assert close(seen["query"], query.view(1, 3, 3, 4).transpose(1, 2), 1e-6)


def test_named_projections_without_bias_are_none():
    module = MultiHeadAttention(8, 2, bias=False)
    assert module.query_bias is None and module.value_bias is None
    assert module.value_weight.shape == (8, 8)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("path", PATHS)
def test_attention_dropout_only_in_training(path):
    torch.manual_seed(10)
    module = set_path(MultiHeadAttention(16, 2, dropout=0.5), path)
    reference = set_path(MultiHeadAttention(16, 2, dropout=0.0), path)
    reference.load_state_dict(module.state_dict())
    x = torch.randn(2, 6, 16)

    module.eval()
    assert torch.equal(module(x), module(x))
    assert close(module(x), reference(x), 1e-6)

    module.train()
    first, second = module(x), module(x)
    assert not torch.allclose(first, reference(x), atol=1e-3)
    assert not torch.allclose(first, second, atol=1e-3)
