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
