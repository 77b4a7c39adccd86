"""attnlab.compare.comparison: the parameter and FLOP formulas against the built models and torch's FLOP
counter, and the measured throughput."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.compare import comparison as compare
from attnlab.compare.comparison import (
    ARCHITECTURES,
    Size,
    build,
    closed_form_flops_per_token,
    closed_form_parameters,
    flops_formula_check,
    forward_flops,
    parameter_count,
)
from attnlab.errors import AttnlabError
from attnlab.models import GPT, BertConfig, BertModel, GPTConfig

SIZES = [Size(d_model=48, n_layers=2, n_heads=3, vocab_size=101, seq_len=10),
         Size(d_model=64, n_layers=3, n_heads=4, d_ff=100, vocab_size=77, seq_len=12)]


@pytest.mark.parametrize("size", SIZES, ids=["small", "odd"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_formulas_equal_the_built_models_and_the_flop_counter(arch, size):
    model = build(arch, size)
    counted = sum(p.numel() for p in model.parameters())
    assert parameter_count(model) == counted == closed_form_parameters(arch, size)
    formula, measured = flops_formula_check(arch, size)  # torch.utils.flop_counter, traced forward
    assert formula == measured
    assert formula == closed_form_flops_per_token(arch, size) * compare.positions(arch, size)


def test_formulas_cover_grouped_query_bias_free_models_and_bert_heads(hf_llama):
    import attnlab
    from attnlab.models import BertForQuestionAnswering, BertForSequenceClassification

    llama = attnlab.load_pretrained(hf_llama[1])
    assert parameter_count(llama) == sum(p.numel() for p in llama.parameters())
    smol = GPTConfig.from_preset("smollm2-135m")
    assert compare.gpt_parameters(smol) == 134_515_008  # the real SmolLM2-135M, counted from its .gguf
    config = BertConfig.from_preset("bert-tiny", labels=("a", "b", "c"))
    for cls in (BertModel, BertForSequenceClassification, BertForQuestionAnswering):
        model = cls(config)
        assert parameter_count(model) == sum(p.numel() for p in model.parameters()), cls.__name__
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=50))
    assert forward_flops(gpt, 8) == forward_flops(gpt.config, 8)
    with pytest.raises(AttnlabError, match="No parameter formula"):
        parameter_count(torch.nn.Linear(2, 2))


def test_real_minilm_formula(minilm):
    import attnlab

    model = attnlab.load_pretrained(minilm)
    assert parameter_count(model) == sum(p.numel() for p in model.parameters()) == 22_713_216


def test_compare_measures_all_three_and_renders():
    size = Size(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
    result = compare.compare(size, batch=2, repeats=2)
    for arch in ARCHITECTURES:
        t = result.throughput[arch]
        assert t.runs == 2 and t.seconds > 0 and t.tokens_per_second == pytest.approx(2 * 16 / t.seconds)
        assert result.parameters[arch] == result.counted[arch]
    table = compare.format_comparison(result)
    assert "Transformer" in table and table.count("tokens/s") == 3
    # Cells wrap so that every line, notes included, fits a 100-column terminal.
    assert max(len(line) for line in table.splitlines()) <= 100
    assert max(len(line) for line in compare.format_comparison(result, width=72).splitlines()) <= 72
    markdown = compare.format_comparison(result, "markdown")
    assert "| measured forward throughput, batch 2 x 16 positions |" in markdown
    assert "| encoder (N) + decoder (N) |" in markdown
    assert markdown.splitlines()[0] == "|  | Transformer | BERT | GPT |" and "|---|---|---|---|" in markdown
    data = json.loads(compare.format_comparison(result, "json"))
    assert set(data["throughput_tokens_per_second"]) == set(ARCHITECTURES)
    assert data["size"]["source_len"] == 8
    assert data["features"]["norm placement"]["bert"].startswith("post-LN")
    with pytest.raises(AttnlabError, match="--format"):
        compare.format_comparison(result, "html")


def test_sizes_are_validated():
    with pytest.raises(AttnlabError, match="divisible"):
        Size(d_model=30, n_heads=4)
    with pytest.raises(AttnlabError, match="'n_layers' of the comparison must be an int >= 1"):
        Size(n_layers=0)
    with pytest.raises(AttnlabError, match="seq_len must be >= 2"):
        Size(seq_len=1)
    with pytest.raises(AttnlabError, match="--repeats"):
        compare.measure_throughput({}, {}, repeats=0)
    with pytest.raises(AttnlabError, match="Unknown architecture"):
        build("rnn", Size())
