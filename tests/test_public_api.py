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
    # DESIGN.md also documents model.generate(...) and attnlab.generate(model, ...), which do not
    # exist yet (the generate loop is attnlab.inference.generation.generate): not asserted here.
    for name in ("load_pretrained", "Perceptron", "MLPClassifier", "GPT", "BertModel",
                 "BertConfig", "GPTConfig", "AttnlabError", "__version__"):
        assert hasattr(attnlab, name), name
    from attnlab.inference.generation import generate

    assert callable(generate) and callable(trace) and callable(attnlab.load_pretrained)
    for model in (attnlab.GPT, attnlab.BertModel, Transformer, BertForMaskedLM, BertForPreTraining,
                  BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification):
        assert callable(model.save_pretrained)
    assert attnlab.__version__ == "0.1.0"


def test_save_pretrained_writes_the_layout_load_pretrained_reads(tmp_path):
    config = attnlab.GPTConfig.from_preset("gpt-nano", vocab_size=5, max_positions=8)
    attnlab.GPT(config).save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert isinstance(attnlab.load_pretrained(tmp_path), attnlab.GPT)
