"""Every public name that ../shared/DESIGN.md documents imports and is what it says."""

from __future__ import annotations

import attnlab
from attnlab.inspect import trace
from attnlab.models import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    Transformer,
)


def test_the_documented_names_exist():
    for name in ("load_pretrained", "Perceptron", "MLPClassifier", "GPT", "BertModel",
                 "BertConfig", "GPTConfig", "AttnlabError", "__version__", "generate"):
        assert hasattr(attnlab, name), name
    from attnlab.inference.generation import generate

    assert attnlab.generate is generate and callable(attnlab.GPT.generate)
    assert callable(trace) and callable(attnlab.load_pretrained)
    for model in (attnlab.GPT, attnlab.BertModel, Transformer, BertForMaskedLM, BertForPreTraining,
                  BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification):
        assert callable(model.save_pretrained)
    assert attnlab.__version__ == "0.1.0"


def test_model_generate_is_attnlab_generate():
    """DESIGN.md: ``model.generate(input_ids, max_new_tokens=32, temperature=0)`` is the same as
    ``attnlab.generate(model, ...)``."""
    import torch

    torch.manual_seed(0)
    model = attnlab.GPT(attnlab.GPTConfig.from_preset("gpt-nano", vocab_size=11, max_positions=64)).eval()
    ids = torch.tensor([[1, 2, 3]])
    out = model.generate(ids, max_new_tokens=32, temperature=0)
    assert out.shape == (1, 35) and torch.equal(out[:, :3], ids)
    assert torch.equal(out, attnlab.generate(model, ids, max_new_tokens=32, temperature=0))


def test_save_pretrained_writes_the_layout_load_pretrained_reads(tmp_path):
    config = attnlab.GPTConfig.from_preset("gpt-nano", vocab_size=5, max_positions=8)
    attnlab.GPT(config).save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert isinstance(attnlab.load_pretrained(tmp_path), attnlab.GPT)
