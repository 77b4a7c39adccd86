"""The shared core: every attnlab model is a composition of these modules."""

from attnlab.nn.attention import KVCache, MultiHeadAttention, attention_mask, explicit_attention
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
    "attention_mask",
    "explicit_attention",
    "sinusoidal_table",
]
