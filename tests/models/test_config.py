"""Configs validate on creation with messages that teach, and presets are what they say."""

from __future__ import annotations

import pytest

from attnlab.errors import AttnlabError
from attnlab.models import BertConfig, GPTConfig


def test_gpt2_preset_is_the_124m_model():
    from attnlab.models import GPT

    config = GPTConfig.from_preset("gpt2")
    assert (config.n_layers, config.n_heads, config.d_model, config.d_ff) == (12, 12, 768, 3072)
    assert config.d_head == 64
    # 124,439,808 parameters for GPT-2 small (tied output layer), the published figure.
    assert GPT(config).num_parameters() == 124_439_808


def test_bert_base_preset():
    config = BertConfig.from_preset("bert-base")
    assert (config.n_layers, config.d_model, config.d_ff, config.layer_norm_eps) == (12, 768, 3072, 1e-12)


def test_d_ff_defaults_to_four_times_width():
    assert GPTConfig(d_model=96, n_heads=4).d_ff == 384


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_heads=0), r"'n_heads' parameter of GPTConfig must be an int >= 1. Got 0 instead"),
        (dict(d_model=100, n_heads=3), "divisible by 'n_heads'"),
        (dict(dropout=1.5), r"'dropout' parameter of GPTConfig must be a float in the range \[0, 1\)"),
        (dict(activation="swish"), "'activation' parameter of GPTConfig must be one of"),
        (dict(vocab_size=2.5), "'vocab_size'"),
        (dict(layer_norm_eps=0), "'layer_norm_eps'"),
    ],
)
def test_invalid_gpt_config(kwargs, message):
    with pytest.raises(AttnlabError, match=message):
        GPTConfig(**kwargs)


def test_invalid_bert_field():
    with pytest.raises(AttnlabError, match="'type_vocab_size' parameter of BertConfig"):
        BertConfig(type_vocab_size=0)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(AttnlabError, match="gpt-mini"):
        GPTConfig.from_preset("gpt5")


def test_config_is_frozen_and_replace_validates():
    config = GPTConfig.from_preset("gpt-nano")
    with pytest.raises(AttributeError):
        config.n_layers = 3  # type: ignore[misc]
    assert config.replace(n_layers=3).n_layers == 3
    with pytest.raises(AttnlabError):
        config.replace(n_layers=-1)


def test_unknown_transformer_preset_and_token_ids():
    from attnlab.models import TransformerConfig

    with pytest.raises(AttnlabError, match="Unknown TransformerConfig preset 'transformer-huge'"):
        TransformerConfig.from_preset("transformer-huge")
    for kwargs, message in [(dict(eos_token_id=-1), "'eos_token_id' parameter of TransformerConfig must be "
                                                    "an int >= 0"),
                            (dict(n_decoder_layers=0), "'n_decoder_layers' parameter of TransformerConfig "
                                                       "must be an int >= 1")]:
        with pytest.raises(AttnlabError, match=message):
            TransformerConfig(**kwargs)


def test_the_shared_checks_name_their_owner():
    from dataclasses import dataclass

    from attnlab.checks import check_int_fields
    from attnlab.models.config import check_heads

    @dataclass
    class Steps:
        steps: int = 3
        warmup: int = 0

    check_int_fields(Steps(), ("steps",))
    check_int_fields(Steps(), ("warmup",), minimum=0)
    with pytest.raises(AttnlabError, match=r"^The 'warmup' parameter of Steps must be an int >= 1. Got 0"):
        check_int_fields(Steps(), ("steps", "warmup"))
    with pytest.raises(AttnlabError, match="'steps' parameter of the schedule must be an int >= 1. Got True"):
        check_int_fields(Steps(steps=True), ("steps",), label="the schedule")
    check_heads("the comparison", 64, 4)
    with pytest.raises(AttnlabError, match=r"'d_model' parameter of the comparison \(30\) must be divisible "
                                           r"by 'n_heads' \(4\)"):
        check_heads("the comparison", 30, 4)
