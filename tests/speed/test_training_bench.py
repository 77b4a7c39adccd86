"""The training benchmarks run both libraries on the same weights: the step-0 losses agree,
every variant is timed against transformers at its fastest dtype here, each variant's loss is
measured against transformers fp32's, and the rows carry the goal."""

from __future__ import annotations

import math
import re

import pytest

from attnlab.device import cpu_has_native_bf16
from attnlab.speed import training_bench


def check_reference_and_quality(result) -> None:
    if cpu_has_native_bf16():
        assert re.search(r" (fp32|bf16 autocast) \(its fastest of fp32/bf16 autocast here\)$",
                         result.reference.name), result.reference.name
    else:
        assert result.reference.name.endswith(" fp32 (bf16 not native here)"), result.reference.name
    for variant in result.variants:  # a measured loss difference, not a label
        assert re.fullmatch(r"step-0 loss vs transformers fp32 [+-]\d\.\de[+-]\d+", variant.quality)
        # fp32: the same loss to float rounding; bf16 autocast: within ~1% of a loss of ~4-10
        assert variant.metrics["loss_gap"] < (0.1 if "bf16" in variant.name else 1e-4), variant.quality


@pytest.mark.parametrize("suite, kwargs", [
    (training_bench.train_gpt, dict(batch=2, block=16)),
    (training_bench.train_bert, dict(batch=2, length=16, vocab_size=1200)),
])
def test_training_benchmark_compares_the_same_model(suite, kwargs):
    result = suite(rounds=1, steps=1, **kwargs)
    gap = next(line for line in result.lines if line.startswith("same weights"))
    assert float(gap.rsplit("=", 1)[1]) < 1e-5, gap
    assert result.reference.name.startswith("transformers")
    assert result.variants[0].name.startswith("attnlab") and result.variants[0].name.endswith("fp32")
    assert all(variant.name.startswith("attnlab") for variant in result.variants)
    check_reference_and_quality(result)
    assert all(v.tokens_per_s > 0 and math.isfinite(v.ratio) for v in result.variants)
    rows = result.rows("test")
    assert any(">= 1.5x" in cell for row in rows for cell in row)


def test_translation_benchmark_compares_the_same_model_on_real_batches():
    result = training_bench.train_transformer(rounds=1, max_tokens=96, n_batches=2, vocab_size=600)
    gap = next(line for line in result.lines if line.startswith("same weights"))
    assert float(gap.rsplit("=", 1)[1]) < 1e-5, gap
    assert result.reference.name.startswith("transformers MarianMTModel ")
    check_reference_and_quality(result)
    names = [variant.name for variant in result.variants]
    assert names[:2] == ["attnlab Transformer fp32", "attnlab Transformer fp32, fused AdamW"]
    assert "2 real batches of <= 96 tokens" in result.workload
    assert all(v.tokens_per_s > 0 and math.isfinite(v.ratio) for v in result.variants)
    assert result.goal is None
