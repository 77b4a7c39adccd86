"""`attnlab embed`: vectors on stdout, a similarity table, .npy / .safetensors / .jsonl files, and bad
input as one line."""

from __future__ import annotations

import io
import json
import re

import numpy
import pytest
import torch
from safetensors.torch import load_file

from attnlab import cli
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, BertConfig, BertModel, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = "a man is eating food . the girl is carrying a baby . a piece of bread\n" * 20


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A random 1-layer BERT (16 wide) with a WordPiece vocabulary learnt on CORPUS, saved."""
    torch.manual_seed(0)
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=100)
    directory = tmp_path_factory.mktemp("tiny_bert")
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_positions=32, n_layers=1, n_heads=2, d_model=16,
                         d_ff=32)).save_pretrained(directory)
    tokenizer.save(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_gpt_dir(tmp_path_factory):
    tokenizer = Tokenizer.char_level(CORPUS)
    directory = tmp_path_factory.mktemp("tiny_gpt")
    GPT(GPTConfig(vocab_size=tokenizer.vocab_size, max_positions=16, n_layers=1, n_heads=2, d_model=16,
                  d_ff=32)).save_pretrained(directory)
    tokenizer.save(directory)
    return directory

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


def _run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["embed", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_minilm_vectors_and_similarity(minilm, capsys):
    texts = [arg for text in TEXTS for arg in ("--text", text)]
    code, out, err = _run(capsys, "--model", minilm, *texts, "--dtype", "fp32")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["text"] for r in records] == TEXTS
    vectors = torch.tensor([r["embedding"] for r in records])
    assert vectors.shape == (3, 384)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(3), rtol=0, atol=1e-5)
    assert "3 text(s)" in err and "fp32, eager, mean pooling, unit length, 384 dimensions" in err
    code, out, _ = _run(capsys, "--model", minilm, *texts, "--dtype", "fp32", "--similarity")
    rows = out.splitlines()[1:]
    cosine = [[float(value) for value in row.split()[-3:]] for row in rows]
    assert code == 0 and len(rows) == 3 and all(cosine[i][i] == 1.0 for i in range(3))
    expected = (vectors @ vectors.T).tolist()
    assert all(abs(cosine[i][j] - expected[i][j]) < 1e-3 for i in range(3) for j in range(3))
    assert cosine[0][1] > 0.7 > cosine[0][2]  # eating food ~ eating bread, not ~ carrying a baby


@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".jsonl"])
def test_out_files_hold_the_same_vectors(tiny_bert_dir, tmp_path, capsys, monkeypatch, suffix):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(TEXTS) + "\n"))
    out = tmp_path / f"vectors{suffix}"
    code, printed, err = _run(capsys, "--model", tiny_bert_dir, "--input", "-", "--out", out,
                              "--dtype", "fp32", "--no-progress")
    assert code == 0 and printed == "" and "wrote 3 x 16 embeddings" in err and "embedding:" not in err
    if suffix == ".npy":
        vectors = torch.from_numpy(numpy.load(out))
    elif suffix == ".safetensors":
        vectors = load_file(out)["embeddings"]
    else:
        vectors = torch.tensor([json.loads(line)["embedding"] for line in out.read_text().splitlines()])
    _, stdout, _ = _run(capsys, "--model", tiny_bert_dir, *[a for t in TEXTS for a in ("--text", t)],
                        "--dtype", "fp32")
    expected = torch.tensor([json.loads(line)["embedding"] for line in stdout.splitlines()])
    assert vectors.shape == (3, 16)
    torch.testing.assert_close(vectors, expected, rtol=0, atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left


@pytest.mark.parametrize(
    "args, message",
    [(["--text", "a", "--input", "{file}"], "not both"), ([], "none was given"),
     (["--text", "  "], "--text is empty"), (["--input", "{blank}"], "line 1 is empty"),
     (["--input", "{gap}"], "line 2 is empty; remove it (each line is one input)"),
     (["--text", "a", "--out", "{out}.csv"], "name a .npy, .safetensors or .jsonl"),
     (["--text", "a", "--out", "{out}.npy", "--similarity"], "leave out --out"),
     (["--text", "a", "--batch-size", "0"], "--batch-size must be an int >= 1"),
     (["--text", "a", "--max-length", "1"], "--max-length must be an int >= 2"),
     (["--text", "a", "--model", "{gpt}"], "embed needs a BERT encoder")],
)
def test_bad_input_is_one_line(tiny_bert_dir, tiny_gpt_dir, tmp_path, capsys, args, message):
    (tmp_path / "texts.txt").write_text("a\n")
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "gap.txt").write_text("a\n\nb\n")  # a skipped line would shift every later row
    paths = {"{file}": tmp_path / "texts.txt", "{blank}": tmp_path / "blank.txt",
             "{gap}": tmp_path / "gap.txt", "{gpt}": tiny_gpt_dir}
    args = [str(paths.get(a, a)).replace("{out}", str(tmp_path / "vectors")) for a in args]
    if "--model" not in args:
        args = ["--model", str(tiny_bert_dir), *args]
    code, out, err = _run(capsys, *args)
    assert code != 0 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_bf16_is_refused_where_the_cpu_would_emulate_it(tiny_bert_dir, capsys, monkeypatch):
    monkeypatch.setattr("attnlab.device.cpu_has_native_bf16", lambda: False)
    code, out, err = _run(capsys, "--model", tiny_bert_dir, "--text", "a", "--dtype", "bf16")
    assert code != 0 and out == "" and "--dtype bf16 needs a CPU that computes bf16 natively" in err


def test_similarity_of_many_texts_lists_each_ones_nearest(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{word} is eating food number {i}\n" for i, word in
                             enumerate(["a man", "the girl", "a baby", "the bread"] * 6)))
    code, out, _ = _run(capsys, "--model", tiny_bert_dir, "--input", texts, "--similarity", "--dtype", "fp32",
                        "--no-progress")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 24  # 24 texts: past the 20 of a full table
    for index, row in enumerate(rows, start=1):
        found = re.findall(r"(\d+) \((-?\d\.\d{3})\)", row)  # "other (cosine)", most similar first
        neighbours, values = [int(n) for n, _ in found], [float(v) for _, v in found]
        assert len(neighbours) == 3 and index not in neighbours and values == sorted(values, reverse=True)
