"""``attnlab train bert``: --nproc runs it on several processes (torchrun, DDP) with the same result."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from attnlab.cli import main
from attnlab.data import read_text
from attnlab.training import distributed

# A tiny BERT, a few steps, no dropout (each process draws its own masks), fp32 on the CPU.
TINY = ["--speeches-per-document", "4", "--vocab-size", "120", "--n-layers", "1", "--n-heads", "2",
        "--d-model", "16", "--d-ff", "32", "--max-seq-len", "24", "--dropout", "0", "--batch-size", "6",
        "--max-iters", "4", "--warmup-iters", "1", "--lr", "3e-3", "--eval-interval", "100",
        "--eval-batches", "1", "--dtype", "fp32", "--device", "cpu", "--no-progress"]


def _corpus(tmp_path):
    """The first 2,000 lines of tiny-shakespeare: about 100 documents of 4 speeches."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(read_text(None).splitlines()[:2000]), encoding="utf-8")
    return path


@pytest.mark.usefixtures("one_thread")
def test_nproc_2_trains_the_same_weights_as_one_process(tmp_path):
    if distributed.usable_cores() < 2:
        pytest.skip("--nproc 2 needs 2 CPU cores")
    corpus = _corpus(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "bert", "--data", str(corpus), *TINY, "--out", str(one)]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "attnlab", "train", "bert", "--data", str(corpus), *TINY,
                           "--nproc", "2", "--out", str(two)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes (DDP)" in done.stdout and "trained to step 4" in done.stdout
    expected, got = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert got.keys() == expected.keys()
    worst = max(float((got[name] - value).abs().max()) for name, value in expected.items())
    assert worst < 1e-5
