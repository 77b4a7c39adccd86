"""Input embeddings: the sinusoidal table against the formula of §3.5 (arXiv:1706.03762),
and X = token [· sqrt(M)] + position [+ segment], [LayerNorm], against a manual sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnlab.nn.embeddings import InputEmbedding, SinusoidalPositionEncoding, sinusoidal_table


def paper_table(n_positions: int, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), one entry at a time."""
    table = np.zeros((n_positions, d_model))
    for pos in range(n_positions):
        for dim in range(d_model):
            two_i = dim - dim % 2
            angle = pos / 10000 ** (two_i / d_model)
            table[pos, dim] = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
    return table


@pytest.mark.parametrize("d_model", [16, 15, 1, 2])
def test_sinusoidal_table_equals_the_paper_formula(d_model):
    got = sinusoidal_table(60, d_model)
    assert got.shape == (60, d_model) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), paper_table(60, d_model), rtol=0, atol=1e-6)


def test_sinusoidal_table_landmarks():
    table = sinusoidal_table(10, 8)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 4))  # sin 0, cos 0
    assert table[3, 0].item() == pytest.approx(math.sin(3), abs=1e-7)
    assert table[3, 7].item() == pytest.approx(math.cos(3 / 10000 ** (6 / 8)), abs=1e-7)


def test_sinusoidal_encoding_has_no_parameters_and_indexes_the_table():
    encoding = SinusoidalPositionEncoding(20, 6)
    assert list(encoding.parameters()) == [] and encoding.num_embeddings == 20
    assert "table" not in encoding.state_dict()
    positions = torch.tensor([4, 0, 19])
    np.testing.assert_allclose(encoding(positions).numpy(), paper_table(20, 6)[[4, 0, 19]], atol=1e-6)


IDS = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])


def test_token_plus_learned_position():
    torch.manual_seed(0)
    embedding = InputEmbedding(11, 8, 16).eval()
    expected = embedding.token.weight[IDS] + embedding.position.weight[:5]
    assert torch.allclose(embedding(IDS), expected, atol=1e-7)


def test_start_pos_offsets_positions():
    torch.manual_seed(1)
    embedding = InputEmbedding(11, 8, 16).eval()
    got = embedding(IDS, start_pos=7)
    expected = embedding.token.weight[IDS] + embedding.position.weight[7:12]
    assert torch.allclose(got, expected, atol=1e-7)
    # The last 3 of a full call equal a call that starts at position 2.
    assert torch.allclose(embedding(IDS)[:, 2:], embedding(IDS[:, 2:], start_pos=2), atol=1e-7)


def test_segments_and_layer_norm_as_in_bert():
    torch.manual_seed(2)
    embedding = InputEmbedding(11, 8, 16, n_segments=2, norm=True, layer_norm_eps=1e-12).eval()
    with torch.no_grad():  # a non-trivial LayerNorm affine
        embedding.norm.weight.normal_()
        embedding.norm.bias.normal_()
    segments = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    summed = embedding.token.weight[IDS] + embedding.position.weight[:5] + embedding.segment.weight[segments]
    mean = summed.mean(-1, keepdim=True)
    var = summed.var(-1, unbiased=False, keepdim=True)
    expected = (summed - mean) / torch.sqrt(var + 1e-12) * embedding.norm.weight + embedding.norm.bias
    assert torch.allclose(embedding(IDS, token_type_ids=segments), expected, atol=1e-5)
    # Segment ids default to sentence A (0).
    default = embedding(IDS)
    all_a = embedding(IDS, token_type_ids=torch.zeros_like(IDS))
    assert torch.equal(default, all_a)
    assert not torch.allclose(default, embedding(IDS, token_type_ids=segments))


def test_scale_multiplies_token_embeddings_by_sqrt_d_model():
    torch.manual_seed(3)
    embedding = InputEmbedding(11, 16, 16, position="sinusoidal", scale=True).eval()
    expected = embedding.token.weight[IDS] * 4.0 + torch.from_numpy(paper_table(16, 16)[2:7]).float()
    assert torch.allclose(embedding(IDS, start_pos=2), expected, atol=1e-5)


def test_no_position():
    torch.manual_seed(4)
    embedding = InputEmbedding(11, 8, 16, position="none").eval()
    assert embedding.position is None
    assert torch.equal(embedding(IDS), embedding.token.weight[IDS])


def test_padding_idx_row_is_zero():
    embedding = InputEmbedding(11, 8, 16, position="none", padding_idx=0)
    assert torch.equal(embedding(torch.tensor([[0]]))[0, 0], torch.zeros(8))


def test_dropout_only_in_training():
    torch.manual_seed(5)
    embedding = InputEmbedding(11, 8, 16, dropout=0.5)
    embedding.eval()
    clean = embedding(IDS)
    assert torch.equal(clean, F.embedding(IDS, embedding.token.weight) + embedding.position.weight[:5])
    embedding.train()
    noisy = embedding(IDS)
    assert (noisy == 0).any() and not torch.allclose(noisy, clean)
