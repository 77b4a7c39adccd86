"""The shared core: every attnlab model is a composition of these modules."""

from attnlab.nn.attention import MultiHeadAttention, broadcast_padding_mask, explicit_attention
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.embeddings import (
    InputEmbedding,
    SinusoidalPositionEncoding,
    sinusoidal_table,
)
from attnlab.nn.feedforward import ACTIVATIONS, PositionwiseFeedForward
from attnlab.nn.kv_cache import KVCache, new_kv_caches

__all__ = [
    "ACTIVATIONS",
    "InputEmbedding",
    "KVCache",
    "MultiHeadAttention",
    "PositionwiseFeedForward",
    "SinusoidalPositionEncoding",
    "TransformerBlock",
    "broadcast_padding_mask",
    "explicit_attention",
    "new_kv_caches",
    "sinusoidal_table",
]
