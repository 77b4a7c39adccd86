"""KVCache writes keys/values in place and returns the filled prefix; new_kv_caches shapes one
cache per layer from that layer's own key/value heads and head width."""

from __future__ import annotations

import torch

from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.kv_cache import KVCache, new_kv_caches


def test_update_writes_at_start_pos_and_returns_everything_so_far():
    cache = KVCache(2, 3, 8, 4)
    first_k, first_v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    keys, values = cache.update(0, first_k, first_v)
    assert keys.shape == (2, 3, 5, 4) and torch.equal(keys, first_k) and torch.equal(values, first_v)
    next_k, next_v = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4)
    keys, values = cache.update(5, next_k, next_v)
    assert keys.shape == (2, 3, 6, 4)
    assert torch.equal(keys[:, :, :5], first_k) and torch.equal(keys[:, :, 5:], next_k)
    assert torch.equal(values[:, :, 5:], next_v)
    assert not cache.keys[:, :, 6:].any()  # the rest is still the zeros it was allocated with


def test_caches_are_not_saved_with_the_model():
    assert dict(KVCache(1, 1, 2, 2).state_dict()) == {}


def test_new_kv_caches_follows_each_layer_and_the_like_tensor():
    layers = [MultiHeadAttention(16, 4, n_kv_heads=2), MultiHeadAttention(16, 2, d_head=5)]
    like = torch.zeros(1, dtype=torch.float64)
    caches = new_kv_caches(layers, 3, 7, like=like)
    assert [tuple(c.keys.shape) for c in caches] == [(3, 2, 7, 4), (3, 2, 7, 5)]
    assert all(c.keys.dtype == torch.float64 and c.max_len == 7 for c in caches)
    assert new_kv_caches(layers, 1, 2, like=like, dtype=torch.bfloat16)[0].values.dtype == torch.bfloat16
