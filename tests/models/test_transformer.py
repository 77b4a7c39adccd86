"""The encoder-decoder Transformer (arXiv:1706.03762) on tiny random configs: shapes, masking,
causality, the KV cache, projected cross-attention memory, weight sharing, presets; and one
encoder and one decoder layer of the model against torch.nn's post-LN ReLU layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.models.config import TransformerConfig
from attnlab.models.transformer import Transformer, shift_right

TOL = 1e-5


def tiny(**overrides) -> Transformer:
    settings = dict(vocab_size=37, n_layers=2, n_decoder_layers=3, n_heads=3, d_model=30, d_ff=44,
                    max_positions=24, dropout=0.0)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**{**settings, **overrides})).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_()
    return model


def ids(batch: int, length: int, seed: int, vocab: int = 37) -> torch.Tensor:
    return torch.randint(4, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_presets_are_the_papers_models():
    base = TransformerConfig.from_preset("transformer-base", vocab_size=37000)
    assert (base.n_layers, base.n_decoder_layers, base.d_model, base.d_ff, base.n_heads, base.dropout) == (
        6, 6, 512, 2048, 8, 0.1)
    assert base.d_head == 64
    # Table 3 reports 65M parameters for base and 213M for big (shared 37k BPE vocabulary).
    big = TransformerConfig.from_preset("transformer-big", vocab_size=37000)
    with torch.device("meta"):  # count without allocating
        assert Transformer(base).num_parameters() == pytest.approx(65e6, rel=0.04)
        assert Transformer(big).num_parameters() == pytest.approx(213e6, rel=0.01)


def test_the_cpu_default_preset_is_as_wide_as_small_and_as_shallow_as_tiny():
    mini = TransformerConfig.from_preset("transformer-mini", vocab_size=4000)
    tiny = TransformerConfig.from_preset("transformer-tiny", vocab_size=4000)
    small = TransformerConfig.from_preset("transformer-small", vocab_size=4000)
    assert (mini.n_layers, mini.d_model, mini.d_ff, mini.n_heads) == (2, 256, 1024, 4)
    assert mini.max_positions == 128
    assert mini.n_layers == tiny.n_layers and (mini.d_model, mini.d_ff) == (small.d_model, small.d_ff)
    with torch.device("meta"):
        assert Transformer(mini).num_parameters() == 4_710_400  # as attnlab train transformer prints


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(vocab_size=10, target_vocab_size=12), "share_embeddings needs one joint vocabulary"),
        (dict(sinusoidal_layout="spiral"), "sinusoidal_layout"),
        (dict(eos_token_id=50, vocab_size=40), "eos_token_id"),
        (dict(n_decoder_layers=0), "n_decoder_layers"),
        (dict(share_embeddings="yes"), "share_embeddings"),
    ],
)
def test_config_validation_teaches(changes, message):
    with pytest.raises(AttnlabError, match=message):
        TransformerConfig(**changes)


def test_shared_and_tied_embeddings_are_one_matrix():
    model = tiny()
    assert model.encoder_embeddings.token.weight is model.decoder_embeddings.token.weight
    assert model.lm_head.weight is model.decoder_embeddings.token.weight
    untied = tiny(share_embeddings=False, tie_word_embeddings=False, target_vocab_size=29)
    weights = {id(untied.encoder_embeddings.token.weight), id(untied.decoder_embeddings.token.weight),
               id(untied.lm_head.weight)}
    assert len(weights) == 3 and untied.lm_head.weight.shape == (29, 30)
    # The padding embedding starts at zero.
    assert untied.encoder_embeddings.token.weight[0].abs().sum() == 0


@torch.no_grad()
def test_forward_shapes_and_loss():
    model = tiny()
    src, tgt = ids(2, 7, 1), ids(2, 5, 2)
    out = model(src, decoder_input_ids=tgt)
    assert out.logits.shape == (2, 5, 37)
    assert out.encoder_last_hidden_state.shape == (2, 7, 30)
    assert out.last_hidden_state.shape == (2, 5, 30)
    labels = tgt.clone()
    labels[1, 3:] = -100
    out = model(src, labels=labels)
    decoder_inputs = shift_right(labels, 2, 0)
    assert decoder_inputs[:, 0].tolist() == [2, 2] and decoder_inputs[1, 4] == 0
    logits = model(src, decoder_input_ids=decoder_inputs).logits
    keep = labels != -100
    expected = nn.functional.cross_entropy(logits[keep], labels[keep])
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    smoothed = model(src, labels=labels, label_smoothing=0.1).loss
    assert smoothed.item() != pytest.approx(out.loss.item())


@torch.no_grad()
def test_decoder_is_causal_and_encoder_is_not():
    model = tiny()
    src, tgt = ids(1, 6, 3), ids(1, 6, 4)
    logits = model(src, decoder_input_ids=tgt).logits
    changed_tgt = tgt.clone()
    changed_tgt[0, 4] = 5 if tgt[0, 4] != 5 else 6
    changed = model(src, decoder_input_ids=changed_tgt).logits
    assert (logits[0, :4] - changed[0, :4]).abs().max() < TOL  # the past does not see the future
    assert (logits[0, 4:] - changed[0, 4:]).abs().max() > 1e-4
    changed_src = src.clone()
    changed_src[0, 5] = 5 if src[0, 5] != 5 else 6
    # Every target position sees the whole source.
    assert (model(changed_src, decoder_input_ids=tgt).logits[0, 0] - logits[0, 0]).abs().max() > 1e-4


@torch.no_grad()
def test_padding_on_both_sides_changes_nothing():
    model = tiny()
    src_a, tgt_a = ids(1, 7, 5), ids(1, 6, 6)
    src_b, tgt_b = ids(1, 4, 7), ids(1, 3, 8)
    src = torch.zeros(2, 7, dtype=torch.long)
    tgt = torch.zeros(2, 6, dtype=torch.long)
    src[0], tgt[0] = src_a[0], tgt_a[0]
    src[1, :4], tgt[1, :3] = src_b[0], tgt_b[0]
    src_mask, tgt_mask = (src != 0).long(), (tgt != 0).long()
    batched = model(src, src_mask, tgt, tgt_mask).logits
    alone_a = model(src_a, decoder_input_ids=tgt_a).logits
    alone_b = model(src_b, decoder_input_ids=tgt_b).logits
    assert (batched[0] - alone_a[0]).abs().max() < TOL
    assert (batched[1, :3] - alone_b[0]).abs().max() < TOL


@torch.no_grad()
def test_cached_decoding_with_projected_memory_equals_full_decoding():
    model = tiny()
    src, tgt = ids(2, 7, 9), ids(2, 6, 10)
    src_mask = torch.ones_like(src)
    src_mask[1, 5:] = 0
    memory = model.encode(src, src_mask)
    full = model.logits(model.decode(tgt, memory, src_mask))
    projected = model.project_memory(memory)
    caches = model.new_kv_caches(2, max_len=8)
    steps = [
        model.logits(model.decode(tgt[:, t : t + 1], projected, src_mask, kv_caches=caches, start_pos=t))
        for t in range(6)
    ]
    assert (torch.cat(steps, dim=1) - full).abs().max() < TOL


@torch.no_grad()
def test_interleaved_and_halves_layouts_differ_only_by_a_permutation():
    halves, interleaved = tiny(), tiny(sinusoidal_layout="interleaved")
    table_h = halves.encoder_embeddings.position.table
    table_i = interleaved.encoder_embeddings.position.table
    assert torch.equal(table_h, torch.cat([table_i[:, 0::2], table_i[:, 1::2]], dim=1))


def test_bad_inputs_are_one_line_errors():
    model = tiny()
    with pytest.raises(AttnlabError, match="positions"):
        model(ids(1, 30, 1), decoder_input_ids=ids(1, 3, 2))
    with pytest.raises(AttnlabError, match="decoder_input_ids"):
        model(ids(1, 3, 1))
    with pytest.raises(AttnlabError, match="vocabulary"):
        model(torch.tensor([[1, 99]]), decoder_input_ids=ids(1, 3, 2))


def _copy_attention(ours, theirs, cross: bool = False) -> None:
    weight = torch.cat([ours.query.weight, ours.key_value.weight]) if cross else ours.qkv.weight
    bias = torch.cat([ours.query.bias, ours.key_value.bias]) if cross else ours.qkv.bias
    theirs.in_proj_weight.copy_(weight)
    theirs.in_proj_bias.copy_(bias)
    theirs.out_proj.weight.copy_(ours.out.weight)
    theirs.out_proj.bias.copy_(ours.out.bias)


def _copy(target: nn.Module, source: nn.Module) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)


@torch.no_grad()
def test_model_layers_equal_torch_post_ln_relu_layers():
    model = tiny()
    generator = torch.Generator().manual_seed(3)
    for parameter in model.parameters():  # LayerNorm affine random too
        parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    d, h, ff = 30, 3, 44
    enc = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation="relu", batch_first=True).eval()
    dec = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, activation="relu", batch_first=True).eval()
    ours_enc, ours_dec = model.encoder[0], model.decoder[1]
    _copy_attention(ours_enc.attention, enc.self_attn)
    for target, source in [(enc.linear1, ours_enc.ffn.fc_in), (enc.linear2, ours_enc.ffn.fc_out),
                           (enc.norm1, ours_enc.attention_norm), (enc.norm2, ours_enc.ffn_norm)]:
        _copy(target, source)
    _copy_attention(ours_dec.attention, dec.self_attn)
    _copy_attention(ours_dec.cross_attention, dec.multihead_attn, cross=True)
    for target, source in [(dec.linear1, ours_dec.ffn.fc_in), (dec.linear2, ours_dec.ffn.fc_out),
                           (dec.norm1, ours_dec.attention_norm), (dec.norm2, ours_dec.cross_attention_norm),
                           (dec.norm3, ours_dec.ffn_norm)]:
        _copy(target, source)
    x = torch.randn(2, 9, d, generator=generator)
    y = torch.randn(2, 5, d, generator=generator)
    padding = torch.ones(2, 9, dtype=torch.long)
    padding[1, 6:] = 0
    from attnlab.nn.attention import broadcast_padding_mask

    got = ours_enc(x, mask=broadcast_padding_mask(padding))
    assert (got - enc(x, src_key_padding_mask=padding == 0)).abs().max() < TOL
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    got = ours_dec(y, is_causal=True, memory=x, memory_mask=broadcast_padding_mask(padding))
    expected = dec(y, x, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding == 0)
    assert (got - expected).abs().max() < TOL


@torch.no_grad()
def test_trace_records_self_and_cross_attention_and_changes_nothing():
    from attnlab.inspect import trace

    model = tiny()
    src, tgt = ids(2, 7, 11), ids(2, 5, 12)
    src_mask = torch.ones_like(src)
    src_mask[1, 4:] = 0
    fast = model(src, src_mask, tgt).logits
    with trace(model) as t:
        traced = model(src, src_mask, tgt).logits
    assert (fast - traced).abs().max() < TOL  # explicit math == SDPA
    assert len(t.attention) == 2 + 3 + 3  # encoder self, decoder self, decoder cross
    cross = [r for name, r in zip(t.layer_names, t.attention, strict=True) if "cross_attention" in name]
    assert len(cross) == 3 and cross[0].probs.shape == (2, 3, 5, 7)
    assert cross[0].probs[1, :, :, 4:].abs().max() == 0  # padded source positions get no attention
    assert torch.allclose(cross[0].probs.sum(-1), torch.ones(2, 3, 5))
