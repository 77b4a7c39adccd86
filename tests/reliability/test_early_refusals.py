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
    from attnlab.models import BertConfig
    from attnlab.models.bert_heads import BertForPreTraining
    from attnlab.tokenization import Tokenizer
    from attnlab.training.bert import evaluate_pretraining, train_bert
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
