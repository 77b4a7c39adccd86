"""TransformerBlock against torch.nn.TransformerEncoderLayer / TransformerDecoderLayer on the same weights.

Weight correspondence (fp32, eval mode, dropout 0):
    self_attn.in_proj      = attention.qkv           rows [W_Q; W_K; W_V]
    self_attn.out_proj     = attention.out
    multihead_attn.in_proj = [cross_attention.query; cross_attention.key_value]
    linear1 / linear2      = ffn.fc_in / ffn.fc_out
    norm1 / norm2 (/ norm3) = attention_norm / (cross_attention_norm /) ffn_norm
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.nn.attention import broadcast_padding_mask
from attnlab.nn.blocks import TransformerBlock

TOL = 1e-5
D_MODEL, N_HEADS, D_FF = 90, 6, 70  # head width 15, on purpose


def randomise(module: nn.Module, seed: int) -> None:
    """Every parameter random (LayerNorm affine too), so no weight is left at a trivial value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def copy_(target: torch.Tensor, source: torch.Tensor) -> None:
    assert target.shape == source.shape
    target.copy_(source)


def copy_attention(ours, theirs) -> None:
    copy_(theirs.in_proj_weight, ours.qkv.weight)
    copy_(theirs.in_proj_bias, ours.qkv.bias)
    copy_(theirs.out_proj.weight, ours.out.weight)
    copy_(theirs.out_proj.bias, ours.out.bias)


def copy_cross_attention(ours, theirs) -> None:
    copy_(theirs.in_proj_weight, torch.cat([ours.query.weight, ours.key_value.weight]))
    copy_(theirs.in_proj_bias, torch.cat([ours.query.bias, ours.key_value.bias]))
    copy_(theirs.out_proj.weight, ours.out.weight)
    copy_(theirs.out_proj.bias, ours.out.bias)


def copy_linear_and_norm(target: nn.Module, source: nn.Module) -> None:
    copy_(target.weight, source.weight)
    copy_(target.bias, source.bias)


@torch.no_grad()
def encoder_pair(norm_first: bool, activation: str = "relu", seed: int = 0):
    ours = TransformerBlock(D_MODEL, N_HEADS, D_FF, norm_first=norm_first, activation=activation).eval()
    randomise(ours, seed)
    theirs = nn.TransformerEncoderLayer(
        D_MODEL, N_HEADS, D_FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    copy_attention(ours.attention, theirs.self_attn)
    copy_linear_and_norm(theirs.linear1, ours.ffn.fc_in)
    copy_linear_and_norm(theirs.linear2, ours.ffn.fc_out)
    copy_linear_and_norm(theirs.norm1, ours.attention_norm)
    copy_linear_and_norm(theirs.norm2, ours.ffn_norm)
    return ours, theirs


@torch.no_grad()
def decoder_pair(norm_first: bool, seed: int = 0):
    ours = TransformerBlock(D_MODEL, N_HEADS, D_FF, norm_first=norm_first, cross_attention=True).eval()
    randomise(ours, seed)
    theirs = nn.TransformerDecoderLayer(
        D_MODEL, N_HEADS, D_FF, dropout=0.0, activation="relu", batch_first=True, norm_first=norm_first
    ).eval()
    copy_attention(ours.attention, theirs.self_attn)
    copy_cross_attention(ours.cross_attention, theirs.multihead_attn)
    copy_linear_and_norm(theirs.linear1, ours.ffn.fc_in)
    copy_linear_and_norm(theirs.linear2, ours.ffn.fc_out)
    copy_linear_and_norm(theirs.norm1, ours.attention_norm)
    copy_linear_and_norm(theirs.norm2, ours.cross_attention_norm)
    copy_linear_and_norm(theirs.norm3, ours.ffn_norm)
    return ours, theirs


def inputs(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, length, D_MODEL, generator=torch.Generator().manual_seed(seed))


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@torch.no_grad()
def test_encoder_block_equals_torch_encoder_layer(norm_first, activation):
    ours, theirs = encoder_pair(norm_first, activation)
    x = inputs(3, 11, seed=1)
    got = ours(x)
    assert got.shape == (3, 11, D_MODEL)
    assert max_difference(got, theirs(x)) < TOL


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@torch.no_grad()
def test_encoder_block_with_padding_equals_torch_encoder_layer(norm_first):
    ours, theirs = encoder_pair(norm_first, seed=2)
    x = inputs(3, 11, seed=3)
    padding = torch.ones(3, 11, dtype=torch.long)
    padding[1, 7:] = 0
    padding[2, 3:] = 0
    got = ours(x, mask=broadcast_padding_mask(padding))
    expected = theirs(x, src_key_padding_mask=padding == 0)  # torch: True = ignore
    assert max_difference(got, expected) < TOL  # padded queries too: they still see the real keys
    # Padding changes the answer for the padded sequences but not for the full one.
    unpadded = ours(x)
    assert max_difference(unpadded[0], got[0]) < TOL
    assert max_difference(unpadded[1, :7], got[1, :7]) > 1e-3


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@torch.no_grad()
def test_causal_encoder_block_equals_torch_with_causal_mask(norm_first):
    ours, theirs = encoder_pair(norm_first, seed=4)
    x = inputs(2, 9, seed=5)
    causal = nn.Transformer.generate_square_subsequent_mask(9)
    assert max_difference(ours(x, is_causal=True), theirs(x, src_mask=causal, is_causal=True)) < TOL


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@torch.no_grad()
def test_decoder_block_equals_torch_decoder_layer(norm_first):
    ours, theirs = decoder_pair(norm_first, seed=6)
    x, memory = inputs(2, 8, seed=7), inputs(2, 13, seed=8)
    causal = nn.Transformer.generate_square_subsequent_mask(8)
    got = ours(x, is_causal=True, memory=memory)
    expected = theirs(x, memory, tgt_mask=causal, tgt_is_causal=True)
    assert got.shape == (2, 8, D_MODEL)
    assert max_difference(got, expected) < TOL


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@torch.no_grad()
def test_decoder_block_with_memory_padding_equals_torch(norm_first):
    ours, theirs = decoder_pair(norm_first, seed=9)
    x, memory = inputs(2, 8, seed=10), inputs(2, 13, seed=11)
    memory_padding = torch.ones(2, 13, dtype=torch.long)
    memory_padding[1, 5:] = 0
    causal = nn.Transformer.generate_square_subsequent_mask(8)
    got = ours(x, is_causal=True, memory=memory, memory_mask=broadcast_padding_mask(memory_padding))
    expected = theirs(
        x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=memory_padding == 0
    )
    assert max_difference(got, expected) < TOL
    assert max_difference(got[1], ours(x, is_causal=True, memory=memory)[1]) > 1e-3


def test_dropout_only_in_training():
    torch.manual_seed(12)
    block = TransformerBlock(16, 2, 32, dropout=0.5)
    x = torch.randn(2, 5, 16)
    block.eval()
    with torch.no_grad():
        assert torch.equal(block(x), block(x))
        block.train()
        assert not torch.allclose(block(x), block(x))
