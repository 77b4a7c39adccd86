"""attnlab's Transformer equals Hugging Face's MarianMTModel (fp32, 1e-5) on randomly initialised
odd-size configs, with padding on both sides, for every way Marian shares its embeddings; and
``save_pretrained`` round-trips into transformers."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import transformers

import attnlab
from attnlab.errors import AttnlabError
from attnlab.models.transformer import Transformer

TOL = 1e-5
# d_model 90 with 6 heads: head width 15; 2 encoder and 3 decoder layers; FFN 70.
MARIAN_ODD = dict(
    vocab_size=99, d_model=90, encoder_layers=2, decoder_layers=3, encoder_attention_heads=6,
    decoder_attention_heads=6, encoder_ffn_dim=70, decoder_ffn_dim=70, max_position_embeddings=40,
    activation_function="relu", pad_token_id=98, decoder_start_token_id=98, eos_token_id=0,
    forced_eos_token_id=None, dropout=0.1, attention_dropout=0.1,
)
SHARING = {
    "shared+tied": dict(share_encoder_decoder_embeddings=True, tie_word_embeddings=True),
    "shared+untied": dict(share_encoder_decoder_embeddings=True, tie_word_embeddings=False),
    "separate+tied": dict(share_encoder_decoder_embeddings=False, tie_word_embeddings=True,
                          decoder_vocab_size=87, pad_token_id=86, decoder_start_token_id=86),
    "separate+untied": dict(share_encoder_decoder_embeddings=False, tie_word_embeddings=False,
                            decoder_vocab_size=87, pad_token_id=86, decoder_start_token_id=86),
}


def hf_marian(seed: int, **overrides):
    """A MarianMTModel with every learnt parameter and the logits bias random (no trivial LayerNorm).

    The sinusoidal tables (``embed_positions``, frozen parameters) keep their values."""
    torch.manual_seed(seed)
    model = transformers.MarianMTModel(transformers.MarianConfig(**{**MARIAN_ODD, **overrides})).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                continue
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=generator))
    return model


def save_hf(model, directory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    return directory


def batch(src_vocab: int, tgt_vocab: int, pad: int, seed: int):
    """Right-padded source (3, 11) and target (3, 8) with masks; the rows have different lengths."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(1, src_vocab - 1, (3, 11), generator=generator)
    tgt = torch.randint(1, tgt_vocab - 1, (3, 8), generator=generator)
    src_mask, tgt_mask = torch.ones_like(src), torch.ones_like(tgt)
    for row, (s_len, t_len) in enumerate([(11, 8), (6, 5), (3, 2)]):
        src[row, s_len:], src_mask[row, s_len:] = pad, 0
        tgt[row, t_len:], tgt_mask[row, t_len:] = pad, 0
    return src, src_mask, tgt, tgt_mask


def logits_pair(ours, theirs, seed: int = 0):
    cfg = theirs.config
    src, src_mask, tgt, tgt_mask = batch(cfg.vocab_size, cfg.decoder_vocab_size, cfg.pad_token_id, seed)
    with torch.no_grad():
        expected = theirs(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt,
                          decoder_attention_mask=tgt_mask).logits
        got = ours(src, attention_mask=src_mask, decoder_input_ids=tgt,
                   decoder_attention_mask=tgt_mask).logits
    return got, expected


@pytest.mark.parametrize("sharing", list(SHARING))
@pytest.mark.parametrize("scale_embedding", [True, False], ids=["scaled", "unscaled"])
def test_load_pretrained_equals_marian(tmp_path, sharing, scale_embedding):
    theirs = hf_marian(seed=len(sharing) + scale_embedding, scale_embedding=scale_embedding,
                       **SHARING[sharing])
    ours = attnlab.load_pretrained(save_hf(theirs, tmp_path))
    assert isinstance(ours, Transformer) and not ours.training
    got, expected = logits_pair(ours, theirs)
    assert got.shape == expected.shape == (3, 8, theirs.config.decoder_vocab_size)
    assert (got - expected).abs().max().item() < TOL


def test_save_pretrained_round_trips_into_transformers(tmp_path):
    theirs = hf_marian(seed=7, scale_embedding=True, **SHARING["shared+tied"])
    ours = attnlab.load_pretrained(save_hf(theirs, tmp_path / "hf"))
    ours.save_pretrained(tmp_path / "ours")
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert config["model_type"] == "marian" and config["architectures"] == ["MarianMTModel"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded = transformers.MarianMTModel.from_pretrained(tmp_path / "ours").eval()
    theirs_state, reloaded_state = theirs.state_dict(), reloaded.state_dict()
    for key, tensor in theirs_state.items():
        assert torch.equal(tensor, reloaded_state[key]), key
    got, expected = logits_pair(reloaded, theirs, seed=3)
    assert torch.equal(got, expected)
    again = attnlab.load_pretrained(tmp_path / "ours")
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values(),
                                                 strict=True))


@pytest.mark.parametrize("sharing", ["separate+tied", "separate+untied"])
def test_untied_configs_round_trip(tmp_path, sharing):
    theirs = hf_marian(seed=11, scale_embedding=True, **SHARING[sharing])
    ours = attnlab.load_pretrained(save_hf(theirs, tmp_path / "hf"))
    ours.save_pretrained(tmp_path / "ours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded = transformers.MarianMTModel.from_pretrained(tmp_path / "ours").eval()
    got, expected = logits_pair(reloaded, theirs, seed=5)
    assert torch.equal(got, expected)


def test_a_new_attnlab_transformer_loads_in_transformers(tmp_path):
    from attnlab.models.config import TransformerConfig

    torch.manual_seed(3)
    ours = Transformer(TransformerConfig(vocab_size=50, n_layers=2, n_heads=2, d_model=18, d_ff=20,
                                         max_positions=16)).eval()
    with torch.no_grad():
        ours.final_logits_bias.normal_()
    ours.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.MarianMTModel.from_pretrained(tmp_path).eval()
    got, expected = logits_pair(ours, theirs, seed=1)
    assert (got - expected).abs().max().item() < TOL


def test_swish_marian_loads_as_silu(tmp_path):
    theirs = hf_marian(seed=4, activation_function="swish", scale_embedding=True)
    ours = attnlab.load_pretrained(save_hf(theirs, tmp_path))
    assert ours.config.activation == "silu"
    got, expected = logits_pair(ours, theirs)
    assert (got - expected).abs().max().item() < TOL


def test_marian_variants_attnlab_cannot_hold_are_refused(tmp_path):
    theirs = hf_marian(seed=5, decoder_ffn_dim=64)
    with pytest.raises(AttnlabError, match="decoder_ffn_dim"):
        attnlab.load_pretrained(save_hf(theirs, tmp_path))


def test_interleaved_layout_cannot_be_saved_as_marian(tmp_path):
    from attnlab.models.config import TransformerConfig

    model = Transformer(TransformerConfig(vocab_size=20, n_layers=1, n_heads=2, d_model=8, d_ff=8,
                                          sinusoidal_layout="interleaved"))
    with pytest.raises(AttnlabError, match="interleaved"):
        model.save_pretrained(tmp_path)
