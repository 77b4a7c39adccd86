"""Wrong command-line values that used to fail late, deep or with a traceback, now refused
before any work in one line: an --out that is a file, a prompt outside the vocabulary, a
--resume or --init-from with no checkpoint, --eval-batches 0, input and label files that
are not UTF-8, a length penalty that is NaN or negative."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


# ----------------------------------------------------------------- train gpt
def test_train_gpt_out_is_a_file(corpus, tmp_path, cli, train_args, one_line_error):
    target = tmp_path / "some-file.txt"
    target.write_text("keep me\n")
    code, out, err = cli(train_args(corpus, target, "--max-iters", "2"))
    one_line_error(code, err, "--out", "is a file; give a directory")
    assert "GPT:" not in out  # refused before the model was built
    assert target.read_text() == "keep me\n"


def test_train_gpt_resume_without_a_checkpoint(corpus, tmp_path, cli, train_args, one_line_error):
    for directory in (tmp_path / "missing-dir", tmp_path):  # absent; present but holding no checkpoint
        code, _, err = cli(train_args(corpus, directory, "--max-iters", "2", "--resume"))
        one_line_error(code, err, f"No checkpoint in {directory}", "drop --resume")


def test_train_gpt_prompt_outside_the_vocabulary_is_refused_before_training(corpus, tmp_path, cli,
                                                                             train_args, one_line_error):
    started = time.perf_counter()
    code, out, err = cli(train_args(corpus, tmp_path / "run", "--max-iters", "500", "--prompt", "日本語ü"))
    one_line_error(code, err, "--prompt", "語")  # names the characters the vocabulary lacks
    assert "trained to step" not in out and not (tmp_path / "run").exists()
    assert time.perf_counter() - started < 60  # 500 steps were not run first


def test_train_gpt_prompt_in_the_vocabulary_still_samples(corpus, tmp_path, cli, train_args):
    code, out, err = cli(train_args(corpus, tmp_path / "run", "--max-iters", "2", "--prompt", "日本"))
    assert code == 0, err  # the corpus holds these two characters
    assert "--- sample ---" in out


# ----------------------------------------------------------------- train bert
@pytest.fixture(scope="module")
def speeches(tmp_path_factory) -> Path:
    """40 short speeches, separated by blank lines: 40 documents of one speech each."""
    path = tmp_path_factory.mktemp("speeches") / "speeches.txt"
    path.write_text("\n\n".join(f"ROMEO: speech {i} of the night.\nJULIET: and {i} more of the day."
                                 for i in range(40)) + "\n", encoding="utf-8")
    return path


def test_train_bert_small_run_trains(speeches, tmp_path, cli):
    """The arguments the refusals below start from are a valid run."""
    code, out, err = cli(_bert_args(speeches, tmp_path / "run", "--eval-batches", "1"))
    assert code == 0, err
    assert "trained to step 1" in out


def _bert_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "bert", "--data", str(corpus), "--speeches-per-document", "1", "--n-layers", "1",
            "--n-heads", "2", "--d-model", "16", "--d-ff", "32", "--vocab-size", "100", "--max-seq-len", "16",
            "--batch-size", "2", "--max-iters", "1", "--no-progress", "--dtype", "fp32", "--out", str(out),
            *extra]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_train_bert_eval_batches_below_one(speeches, tmp_path, cli, one_line_error, value):
    code, _, err = cli(_bert_args(speeches, tmp_path / "run", "--eval-batches", value))
    one_line_error(code, err, "--eval-batches must be an int >= 1", f"Got {value}")


def test_train_bert_init_from_or_resume_without_a_checkpoint(speeches, tmp_path, cli, one_line_error):
    missing = tmp_path / "missing-dir"
    code, _, err = cli(_bert_args(speeches, tmp_path / "run", "--init-from", str(missing)))
    one_line_error(code, err, f"No checkpoint in {missing}", "--init-from")
    code, _, err = cli(_bert_args(speeches, missing, "--resume"))
    one_line_error(code, err, f"No checkpoint in {missing}", "drop --resume")


def test_bert_pretraining_functions_refuse_zero_batches():
    from attnlab.data.pretraining import PretrainingData
    from attnlab.errors import AttnlabError
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertConfig
    from attnlab.models.bert_heads import BertForPreTraining
    from attnlab.training.bert_pretrain import evaluate_pretraining, train_bert
    from attnlab.training.loop import TrainingConfig

    documents = [[f"the {word} is here and {i} more" for i in range(4)] for word in ("apple", "river")]
    tokenizer = Tokenizer.train_wordpiece("\n".join(line for doc in documents for line in doc), 100)
    data = PretrainingData.from_texts(documents, tokenizer, max_seq_len=16)
    model = BertForPreTraining(BertConfig.from_preset("bert-tiny", vocab_size=tokenizer.vocab_size,
                                                      max_positions=16, d_model=16, n_heads=2, d_ff=32))
    with pytest.raises(AttnlabError, match="n_batches must be an int >= 1"):
        evaluate_pretraining(model, data, n_batches=0)
    with pytest.raises(AttnlabError, match="eval_batches must be an int >= 1"):
        train_bert(model, data, data, TrainingConfig(max_iters=1), eval_batches=0, progress=False)


# ----------------------------------------------------------------- train transformer
def test_train_transformer_out_is_a_file_or_resume_has_no_checkpoint(tmp_path, cli, one_line_error):
    target = tmp_path / "some-file.txt"
    target.write_text("keep me\n")
    tiny = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32", "--max-steps", "1",
            "--threads", "1", "--no-progress"]
    code, out, err = cli(["train", "transformer", "--out", str(target), *tiny])
    one_line_error(code, err, "--out", "is a file; give a directory")
    assert target.read_text() == "keep me\n" and not out
    missing = tmp_path / "missing-dir"
    code, out, err = cli(["train", "transformer", "--out", str(missing), "--resume", *tiny])
    one_line_error(code, err, f"No checkpoint in {missing}", "drop --resume")


# ----------------------------------------------------------------- translate
# Not UTF-8: bytes that cannot be decoded, and UTF-8 full of NULs (UTF-16 without a BOM, binary).
NOT_UTF8 = {"binary": bytes(range(256)) * 4, "latin-1": "Das ist schön.\nGrüße!\n".encode("latin-1"),
            "utf-16": "Das ist gut.\n".encode("utf-16-le")}


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> Path:
    """A randomly initialised encoder-decoder with a joint BPE vocabulary, saved."""
    import torch

    from attnlab.data.joint_vocab import train_joint_tokenizer
    from attnlab.models.config import TransformerConfig
    from attnlab.models.transformer import Transformer

    tokenizer = train_joint_tokenizer(["Das ist gut.", "That is good.", "Wo ist der Bahnhof?",
                                       "Where is the station?"] * 5, vocab_size=100)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=tokenizer.vocab_size, max_positions=32, n_layers=1,
                                          n_heads=2, d_model=16, d_ff=32, dropout=0.0))
    directory = tmp_path_factory.mktemp("translator")
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


def test_translate_small_model_translates(translator, tmp_path, cli):
    """The model the refusals below use translates a UTF-8 file (BOM and all) and --length-penalty -1."""
    path = tmp_path / "sentences.de"
    path.write_bytes("\ufeffDas ist gut.\nWo ist der Bahnhof?\n".encode())
    code, out, err = cli(["translate", "--model", str(translator), "--input", str(path), "--beam", "2",
                          "--length-penalty", "-1", "--max-new-tokens", "4"])
    assert code == 0, err
    assert len(out.splitlines()) == 2


@pytest.mark.parametrize("name", sorted(NOT_UTF8))
def test_translate_input_that_is_not_utf8(name, translator, tmp_path, cli, one_line_error):
    path = tmp_path / "input.txt"
    path.write_bytes(NOT_UTF8[name])
    code, _, err = cli(["translate", "--model", str(translator), "--input", str(path)])
    one_line_error(code, err, str(path), "not UTF-8 text")


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "-inf", "3.5"])
def test_translate_length_penalty_out_of_range(value, translator, cli, one_line_error):
    code, _, err = cli(["translate", "--model", str(translator), "--text", "Das ist gut.",
                        f"--length-penalty={value}"])
    one_line_error(code, err, "--length-penalty must be a number in [-3, 3]", f"Got {float(value)!r}")


@pytest.mark.parametrize("value", [float("nan"), -5.0, float("inf"), 3.5, "0.6", True, None])
def test_beam_search_refuses_a_bad_length_penalty(value, translator):
    import torch

    from attnlab import load_pretrained
    from attnlab.errors import AttnlabError
    from attnlab.inference.decoding import beam_search, translate
    from attnlab.interop.tokenizers import Tokenizer

    model = load_pretrained(translator)
    ids = torch.tensor([[5, 6, 7, 3]])
    with pytest.raises(AttnlabError, match=r"length_penalty must be a number in \[-3, 3\]"):
        beam_search(model, ids, num_beams=2, max_new_tokens=4, length_penalty=value)
    with pytest.raises(AttnlabError, match=r"length_penalty must be a number in \[-3, 3\]"):
        translate(model, Tokenizer.from_dir(translator), ["Das ist gut."], beam=2, length_penalty=value)
    for fine in (-3, -1.0, 0, 0.6, 3.0):  # the ends of the range, negative values as in transformers
        assert beam_search(model, ids, num_beams=2, max_new_tokens=4, length_penalty=fine).shape[0] == 1


# ----------------------------------------------------------------- finetune gpt --labels-file
@pytest.mark.parametrize("name", sorted(NOT_UTF8))
def test_finetune_labels_file_that_is_not_utf8(name, tiny_gpt_dir, tmp_path, cli, one_line_error):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"ROMEO: {word}\t{label}\n" for word, label in
                             [("But soft", "a"), ("what light", "b")] * 6), encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_bytes(NOT_UTF8[name])
    code, _, err = cli(["finetune", "gpt", "--task", "classify", "--model", str(tiny_gpt_dir), "--data",
                        str(pairs), "--out", str(tmp_path / "ft"), "--labels-file", str(labels),
                        "--max-iters", "1", "--no-progress"])
    one_line_error(code, err, str(labels), "not UTF-8 text")
    labels.write_text("a\nb\n", encoding="utf-8")  # the same command with a UTF-8 labels file trains
    code, _, err = cli(["finetune", "gpt", "--task", "classify", "--model", str(tiny_gpt_dir), "--data",
                        str(pairs), "--out", str(tmp_path / "ft"), "--labels-file", str(labels),
                        "--max-iters", "1", "--no-progress"])
    assert code == 0, err


def test_translate_standard_input_that_is_not_utf8(translator, python):
    import os
    import subprocess

    result = subprocess.run([python, "-m", "attnlab", "translate", "--model", str(translator), "--input",
                             "-"], input=NOT_UTF8["latin-1"], capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 2, result.stderr.decode()
    assert result.stderr.decode().strip() == ("attnlab: error: Standard input is not UTF-8 text; convert it "
                                              "with e.g. iconv -t UTF-8.")
