"""config.json <-> attnlab configs: each key-table row read and written, defaults, refusals."""

from __future__ import annotations

import pytest

from attnlab.errors import AttnlabError
from attnlab.interop.hf_configs import (
    BERT_KEYS,
    GPT2_KEYS,
    LLAMA_KEYS,
    MARIAN_KEYS,
    bert_config_from_hf,
    bert_config_to_hf,
    gpt2_config_from_hf,
    gpt2_config_to_hf,
    llama_config_from_hf,
    llama_config_to_hf,
    marian_config_from_hf,
    marian_config_to_hf,
    read_keys,
    supported,
    write_keys,
)
from attnlab.models.config import BertConfig, GPTConfig, TransformerConfig

CASES = [
    (BertConfig(vocab_size=99, max_positions=40, n_layers=3, n_heads=2, d_model=16, d_ff=24, dropout=0.2,
                attention_dropout=0.3, layer_norm_eps=1e-7, type_vocab_size=3, pad_token_id=5,
                labels=("neg", "pos", "mid")),
     bert_config_to_hf, bert_config_from_hf, BERT_KEYS),
    (GPTConfig(vocab_size=77, max_positions=32, n_layers=2, n_heads=4, d_model=16, d_ff=40, dropout=0.05,
               attention_dropout=0.15, layer_norm_eps=1e-6, activation="relu", tie_word_embeddings=False),
     gpt2_config_to_hf, gpt2_config_from_hf, GPT2_KEYS),
    (GPTConfig(vocab_size=64, max_positions=48, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, d_ff=48,
               dropout=0.0, attention_dropout=0.1, layer_norm_eps=1e-5, activation="silu", position="rope",
               rope_theta=5e5, norm="rmsnorm", ffn="swiglu", bias=False, tie_word_embeddings=True),
     llama_config_to_hf, llama_config_from_hf, LLAMA_KEYS),
    (TransformerConfig(vocab_size=50, target_vocab_size=50, max_positions=30, n_layers=2, n_decoder_layers=3,
                       n_heads=2, d_model=8, d_ff=12, dropout=0.25, attention_dropout=0.05,
                       sinusoidal_layout="halves", pad_token_id=1, eos_token_id=2,
                       decoder_start_token_id=1),
     marian_config_to_hf, marian_config_from_hf, MARIAN_KEYS),
]


@pytest.mark.parametrize("config, to_hf, from_hf, keys", CASES, ids=["bert", "gpt2", "llama", "marian"])
def test_every_config_survives_the_round_trip(config, to_hf, from_hf, keys):
    hf = to_hf(config)
    assert from_hf(hf) == config
    for field, key, _ in keys:  # each row is written under its key with the config's value ...
        assert hf[key] == getattr(config, field), key
    # ... and read back from that key: change one value in config.json, and only that field moves.
    field, key, _ = keys[0]
    assert getattr(from_hf({**hf, key: hf[key] + 1}), field) == getattr(config, field) + 1


def test_missing_keys_take_hugging_faces_defaults():
    assert read_keys({}, BERT_KEYS)["d_model"] == 768 and read_keys({}, GPT2_KEYS)["vocab_size"] == 50257
    assert read_keys({"n_embd": 64}, GPT2_KEYS)["d_model"] == 64
    assert gpt2_config_from_hf({"n_embd": 64, "n_head": 4, "n_inner": None}).d_ff == 256  # 4 * n_embd
    assert llama_config_from_hf({"hidden_size": 64, "num_attention_heads": 8}).n_kv_heads == 8
    assert write_keys(BertConfig(), BERT_KEYS)["num_hidden_layers"] == 12


def test_supported_names_the_value_and_the_choices():
    assert supported({"a": 1, "b": 2}, "b", "x has k=") == 2
    expected = r"^x has k='c', which attnlab does not implement; supported: \['a', 'b'\]\.$"
    with pytest.raises(AttnlabError, match=expected):
        supported({"a": 1, "b": 2}, "c", "x has k=")
    with pytest.raises(AttnlabError, match="hidden_act='swish', which attnlab does not implement"):
        bert_config_from_hf({"hidden_act": "swish"})
    with pytest.raises(AttnlabError, match="activation_function='tanh'"):
        marian_config_from_hf({"activation_function": "tanh"})
