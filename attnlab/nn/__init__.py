"""The shared core: every attnlab model is a composition of these modules."""

from attnlab.nn.attention import (
    KVCache,
    MultiHeadAttention,
    broadcast_padding_mask,
    explicit_attention,
    new_kv_caches,
)
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.embeddings import (
    InputEmbedding,
    SinusoidalPositionEncoding,
    sinusoidal_table,
)
from attnlab.nn.feedforward import ACTIVATIONS, PositionwiseFeedForward

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
