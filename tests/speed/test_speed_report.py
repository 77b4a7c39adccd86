"""RESULTS.md bookkeeping, interleaved timing, and the KV-cache formula against real buffers."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig
from attnlab.speed.memory import kv_cache_bytes, kv_cache_check
from attnlab.speed.report import interleaved, record

EXISTING = """# Benchmark results

Intro line.

## other.py: someone else's table

| a | b |
|---|---|
| 1 | 2 |
"""


def test_a_new_section_goes_before_the_others_and_rows_join_its_table(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(EXISTING, encoding="utf-8")
    record(path, "mine.py: speed", ["x", "y"], [["1", "a|b"]])
    record(path, "mine.py: speed", ["x", "y"], [["2", "c"], ["3", "d"]])
    text = path.read_text(encoding="utf-8")
    assert text.index("## mine.py") < text.index("## other.py")
    mine = text[text.index("## mine.py"): text.index("## other.py")]
    assert mine.splitlines()[2:7] == ["| x | y |", "|---|---|", "| 1 | a/b |", "| 2 | c |", "| 3 | d |"]
    assert text.endswith("## other.py: someone else's table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")


def test_a_missing_file_gets_the_common_header(tmp_path):
    path = tmp_path / "RESULTS.md"
    record(path, "mine.py: speed", ["x"], [["1"]])
    assert path.read_text(encoding="utf-8").startswith("# Benchmark results\n")
    assert "## mine.py: speed\n\n| x |\n|---|\n| 1 |\n" in path.read_text(encoding="utf-8")


def test_interleaved_alternates_the_order_between_rounds():
    calls = []
    variants = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    timings = interleaved(variants, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert len(timings.seconds["a"]) == 3 and timings.ratio("a", "a") == 1.0
    with pytest.raises(AttnlabError, match="rounds must be an int >= 1"):
        interleaved({"a": lambda: None}, rounds=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kv_cache_formula_equals_the_allocated_buffers(dtype):
    config = GPTConfig(vocab_size=50, max_positions=40, n_layers=3, n_heads=6, n_kv_heads=2, d_model=48,
                       position="rope", norm="rmsnorm", ffn="swiglu", bias=False)
    model = GPT(config)
    check = kv_cache_check(model, 40, "tiny", batch_size=2, dtype=dtype)
    element = 4 if dtype == torch.float32 else 2
    assert check.formula == kv_cache_bytes(3, 2, 40, 8, element, 2) == 2 * 3 * 2 * 40 * 8 * element * 2
    assert check.buffers == check.formula
    assert sum(c.keys.nbytes + c.values.nbytes for c in model.new_kv_caches(2, 40)) == kv_cache_bytes(
        3, 2, 40, 8, 4, 2)  # the library's own caches (fp32 model) follow the formula too


def test_script_arguments_and_record_tables(tmp_path, capsys):
    from attnlab.speed.report import record_tables, script_arguments

    args = script_arguments("One line.\n\nMore.", rounds=3).parse_args(["--threads", "2", "--note", "n"])
    assert (args.threads, args.rounds, args.note, args.no_record) == (2, 3, "n", False)
    assert not hasattr(script_arguments("x", rounds=None).parse_args([]), "rounds")
    path = tmp_path / "RESULTS.md"
    record_tables(path, [("a", ["x"], [["1"]]), ("b", ["y"], [["2"]])], skip=True)
    assert not path.exists()
    record_tables(path, [("a", ["x"], [["1"]]), ("b", ["y"], [["2"]])], skip=False)
    text = path.read_text()
    assert "## a" in text and "## b" in text and "| 1 |" in text and "| 2 |" in text
    assert f"recorded in {path}" in capsys.readouterr().out
