"""``--weights auto`` for a float GPT: the quality probe decides, the choice is cached per model and
CPU, an unwritable cache only costs a new probe, and small models are not probed at all."""

from __future__ import annotations

import pytest
import torch

from attnlab.inference import auto_weights
from attnlab.inference.auto_weights import cache_key, choose_weights, probe, probe_prompts, quality
from attnlab.inference.generation import generate
from attnlab.inference.weight_quant import quantize_weights
from attnlab.models import GPT, GPTConfig


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=61, n_layers=1, n_heads=2, d_model=64, max_positions=32)).eval()
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def test_small_models_stay_float_without_a_probe(saved, monkeypatch):
    model, path = saved
    monkeypatch.setattr(auto_weights, "probe", lambda *a: pytest.fail("probed a small model"))
    assert choose_weights(model, None, path) == ("float", None)


def test_the_probe_measures_issue_18s_figures(saved):
    model, _ = saved
    entry = probe(model, None)
    assert entry["weights"] in ("float", "int8", "int4", "bf16") and set(entry["figures"]) >= {"int8", "int4"}
    for figures in (entry["figures"]["int8"], entry["figures"]["int4"]):
        assert figures["new_tokens"] == 32 - 8 and 0 <= figures["top1"] <= 1 and figures["max_dlogit"] > 0


def test_the_reference_against_itself_passes(saved):
    model, _ = saved
    prompts = probe_prompts(None, 61, 32)
    assert [p.shape for p in prompts] == [(1, 8)] * 5
    with torch.no_grad():
        answers = [generate(model, p, 12, temperature=0) for p in prompts]
        exact = [model(a).logits[0, p.shape[1] - 1 : -1] for a, p in zip(answers, prompts, strict=True)]
    same = quality(model, prompts, answers, exact)
    assert same == {"tokens_equal_min": 12.0, "new_tokens": 12.0, "top1": 1.0, "max_dlogit": 0.0,
                    "passed": 1.0}
    quantize_weights(model, "int4")
    assert quality(model, prompts, answers, exact)["max_dlogit"] > 0


def passing(*args) -> dict:
    return {"tokens_equal_min": 40.0, "new_tokens": 64.0, "top1": 0.99, "max_dlogit": 0.1, "passed": 1.0}


def test_the_fastest_passing_choice_is_cached_per_model(saved, monkeypatch, cache_home):
    model, path = saved
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    monkeypatch.setattr(auto_weights, "quality", passing)
    monkeypatch.setattr(auto_weights, "time_interleaved", lambda calls, repeat: {
        "float": 1.0, "int8": 0.5, "int4": 0.4})
    said = []
    choice, entry = choose_weights(model, None, path, on_probe=said.append)
    assert choice == "int4" and entry["figures"]["int8"]["seconds"] == 0.5 and len(said) == 1
    assert (cache_home / "attnlab" / "weights.json").is_file()
    monkeypatch.setattr(auto_weights, "probe", lambda *a: pytest.fail("probed twice"))
    assert choose_weights(model, None, path)[0] == "int4"
    (path / "config.json").write_text((path / "config.json").read_text() + " ")  # another model
    monkeypatch.setattr(auto_weights, "probe", lambda *a: {"weights": "float", "figures": {}})
    assert choose_weights(model, None, path)[0] == "float"


def test_an_unwritable_cache_probes_again_without_failing(saved, monkeypatch, tmp_path):
    model, path = saved
    blocker = tmp_path / "a file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    runs = []
    monkeypatch.setattr(auto_weights, "probe",
                        lambda *a: runs.append(1) or {"weights": "int8", "figures": {}})
    assert choose_weights(model, None, path)[0] == choose_weights(model, None, path)[0] == "int8"
    assert len(runs) == 2


def test_a_corrupt_cache_is_ignored(saved, monkeypatch, cache_home):
    model, path = saved
    (cache_home / "attnlab").mkdir(parents=True)
    (cache_home / "attnlab" / "weights.json").write_text("{not json")
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    monkeypatch.setattr(auto_weights, "probe", lambda *a: {"weights": "float", "figures": {}})
    assert choose_weights(model, None, path)[0] == "float"
    assert len(cache_key(path)) == 32


def test_the_flags_limit_what_the_cached_probe_may_choose(saved, monkeypatch, cache_home):
    """One probe measures every candidate; --weights auto may take int8 / int4, --dtype auto bf16."""
    model, path = saved
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    monkeypatch.setattr(auto_weights, "candidates", lambda: ("int8", "int4", "bf16"))
    monkeypatch.setattr(auto_weights, "quality", passing)
    monkeypatch.setattr(auto_weights, "time_interleaved", lambda calls, repeat: {
        "float": 1.0, "int8": 0.5, "int4": 0.95, "bf16": 0.3})
    assert choose_weights(model, None, path, allowed=("int8", "int4", "bf16"))[0] == "bf16"
    monkeypatch.setattr(auto_weights, "probe", lambda *a: pytest.fail("probed twice"))
    assert choose_weights(model, None, path, allowed=("int8", "int4"))[0] == "int8"  # --dtype fp32
    assert choose_weights(model, None, path, allowed=("bf16",))[0] == "bf16"  # --weights float
    assert choose_weights(model, None, path, allowed=("int4",))[0] == "float"  # 0.95 x: not enough


def test_an_entry_cached_before_bf16_was_a_candidate_is_probed_again(saved, monkeypatch, cache_home):
    model, path = saved
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    monkeypatch.setattr(auto_weights, "candidates", lambda: ("int8", "int4", "bf16"))
    auto_weights.write_cached(cache_key(path), {"weights": "float", "figures": {"int8": {}, "int4": {}}})
    runs = []
    monkeypatch.setattr(auto_weights, "probe",
                        lambda *a: runs.append(1) or {"weights": "float", "figures": {"bf16": {}}})
    assert choose_weights(model, None, path, allowed=("int8", "int4"))[0] == "float" and not runs
    assert choose_weights(model, None, path, allowed=("bf16",))[0] == "float" and runs == [1]


@pytest.mark.skipif(not auto_weights.cpu_has_native_bf16(), reason="bf16 is emulated on this CPU")
def test_bf16_is_a_candidate_where_the_cpu_computes_it(saved):
    model, _ = saved
    assert "bf16" in auto_weights.candidates()
    candidate = auto_weights.candidate_model(model, "bf16")
    assert candidate.embeddings.token.weight.dtype == torch.bfloat16
    assert model.embeddings.token.weight.dtype == torch.float32  # a copy: the float model stays
