"""attnlab.compare.parameters: the parameter formulas against the built models and real checkpoints."""

from __future__ import annotations

import pytest
import torch

from attnlab.compare.build import ARCHITECTURES, Size, build
from attnlab.compare.parameters import closed_form_parameters, gpt_parameters, parameter_count
from attnlab.errors import AttnlabError
from attnlab.models import BertConfig, BertModel, GPTConfig, Transformer, TransformerConfig

SIZES = [Size(d_model=48, n_layers=2, n_heads=3, vocab_size=101, seq_len=10),
         Size(d_model=64, n_layers=3, n_heads=4, d_ff=100, vocab_size=77, seq_len=12)]


@pytest.mark.parametrize("size", SIZES, ids=["small", "odd"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_formulas_equal_the_built_models(arch, size):
    model = build(arch, size)
    counted = sum(p.numel() for p in model.parameters())
    assert parameter_count(model) == counted == closed_form_parameters(arch, size)


def test_formulas_cover_grouped_query_bias_free_models_and_bert_heads(hf_llama):
    import attnlab
    from attnlab.models import BertForQuestionAnswering, BertForSequenceClassification

    llama = attnlab.load_pretrained(hf_llama[1])
    assert parameter_count(llama) == sum(p.numel() for p in llama.parameters())
    smol = GPTConfig.from_preset("smollm2-135m")
    assert gpt_parameters(smol) == 134_515_008  # the real SmolLM2-135M, counted from its .gguf
    config = BertConfig.from_preset("bert-tiny", labels=("a", "b", "c"))
    for cls in (BertModel, BertForSequenceClassification, BertForQuestionAnswering):
        model = cls(config)
        assert parameter_count(model) == sum(p.numel() for p in model.parameters()), cls.__name__
    with pytest.raises(AttnlabError, match="No parameter formula"):
        parameter_count(torch.nn.Linear(2, 2))


def test_transformer_formula_with_separate_vocabularies_and_decoder_depth():
    config = TransformerConfig(vocab_size=50, target_vocab_size=40, share_embeddings=False,
                               tie_word_embeddings=False, n_layers=2, n_decoder_layers=3, n_heads=2,
                               d_model=16, d_ff=24, max_positions=16)
    model = Transformer(config)
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())


def test_real_minilm_formula(minilm):
    import attnlab

    model = attnlab.load_pretrained(minilm)
    assert parameter_count(model) == sum(p.numel() for p in model.parameters()) == 22_713_216
