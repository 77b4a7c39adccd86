"""benchmarks/nanogpt.py: the skip line without a checkout, nanoGPT's data files with attnlab's split and
vocabulary, and the whole-split loss both tools are scored with. Never needs nanoGPT (the end-to-end run
is a slow test, run only where ATTNLAB_NANOGPT names a checkout)."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlab.models import GPT, GPTConfig
from attnlab.training.gpt_pretrain import evaluate_loss

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "nanogpt.py"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 3
        + "First Citizen:\nYou are all resolved rather to die than to famish?\n")
# Lines of nanoGPT's train.py log (log_interval=1), as it prints them.
NANOGPT_LOG = """tokens per iteration will be: 768
found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)
step 0: train loss 4.2874, val loss 4.2823
iter 0: loss 4.2656, time 812.50ms, mfu -100.00%
iter 1: loss 4.1426, time 45.25ms, mfu -100.00%
iter 2: loss 4.0130, time 42.25ms, mfu -100.00%
"""


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("nanogpt")


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "ATTNLAB_NANOGPT"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_without_a_checkout_it_prints_one_line_and_exits_0(tmp_path, bench):
    (tmp_path / "train.py").write_text("")  # a folder that is not a whole nanoGPT checkout
    for args in ((), ("--nanogpt", str(tmp_path))):
        done = run_script(*args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [bench.NOT_FOUND]
        assert "git clone https://github.com/karpathy/nanoGPT" in done.stdout
        assert "--nanogpt DIR" in done.stdout


def test_data_has_nanogpts_format_with_attnlabs_split_and_vocabulary(tmp_path, bench):
    sizes = bench.prepare_char_data(TEXT, tmp_path)
    # What nanoGPT's data/shakespeare_char/prepare.py makes of the same text.
    chars = sorted(set(TEXT))
    stoi = {ch: i for i, ch in enumerate(chars)}
    cut = int(len(TEXT) * 0.9)
    train = np.array([stoi[ch] for ch in TEXT[:cut]], dtype=np.uint16)
    val = np.array([stoi[ch] for ch in TEXT[cut:]], dtype=np.uint16)
    assert (tmp_path / "train.bin").read_bytes() == train.tobytes()
    assert (tmp_path / "val.bin").read_bytes() == val.tobytes()
    with open(tmp_path / "meta.pkl", "rb") as file:
        meta = pickle.load(file)
    assert meta == {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    assert sizes == {"vocab_size": len(chars), "train_tokens": cut, "val_tokens": len(TEXT) - cut}
    # attnlab's own split of its own ids: the same tokens, in the same order.
    from attnlab.data.lm_corpus import corpus_tokenizer, train_val_tensors

    tokenizer = corpus_tokenizer(TEXT, "char")
    attnlab_train, attnlab_val = train_val_tensors(tokenizer.encode(TEXT))
    assert torch.equal(bench.read_ids(tmp_path / "train.bin"), attnlab_train)
    assert torch.equal(bench.read_ids(tmp_path / "val.bin"), attnlab_val)


def test_whole_split_loss_equals_attnlabs_whole_split_figure(bench):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, n_layers=2, n_heads=2, d_model=16, d_ff=32, max_positions=8,
                       dropout=0.0)
    model = GPT(config).eval()
    ids = torch.randint(0, 11, (45,))  # 44 predictions: five windows of 8, then one of 4
    ours = bench.whole_split_loss(lambda x: model(x).logits, ids, block=8, batch_size=2)
    assert ours == pytest.approx(evaluate_loss(model, ids), abs=1e-5)
    assert ours == pytest.approx(bench.whole_split_loss(lambda x: model(x).logits, ids, block=8), abs=1e-6)
    # Shorter windows see less context, so the figure must change with the window.
    assert abs(bench.whole_split_loss(lambda x: model(x).logits, ids, block=3) - ours) > 1e-4


def test_whole_split_loss_predicts_every_token_once(bench):
    # A bigram model's loss does not depend on the windows: it is the mean over tokens 1..N-1 of
    # -log p(token | previous token), computed here directly.
    torch.manual_seed(1)
    table = torch.randn(7, 7)
    ids = torch.randint(0, 7, (50,))
    direct = -torch.log_softmax(table[ids[:-1]], dim=-1).gather(1, ids[1:, None]).mean()
    for block in (1, 4, 7, 49, 64):
        loss = bench.whole_split_loss(lambda x: table[x], ids, block=block, batch_size=3)
        assert loss == pytest.approx(float(direct), abs=1e-5)
    assert bench.whole_split_loss(lambda x: torch.zeros(*x.shape, 7), ids) == pytest.approx(math.log(7))
    with pytest.raises(ValueError):
        bench.whole_split_loss(lambda x: table[x], ids[:1])


def test_reads_nanogpts_log_and_the_readme_command(bench):
    parsed = bench.parse_nanogpt_log(NANOGPT_LOG)
    assert parsed["steps"] == 3 and parsed["train_seconds"] == pytest.approx(0.9)
    assert bench.parse_nanogpt_log("no iterations") == {"steps": None, "train_seconds": None}
    readme = "run: .venv/bin/attnlab train gpt --max-time 120 --out runs/x --dtype bf16 && attnlab values"
    assert bench.readme_command(readme) == ["--dtype", "bf16"]
    assert bench.readme_command("attnlab train gpt --out=runs/x --max-time=9 --seed 3\n") == ["--seed", "3"]
    # The real README's first command must be there to be measured.
    assert "attnlab train gpt" in (ROOT / "README.md").read_text()
    assert bench.eval_interval_for(2000) == 250 and bench.eval_interval_for(200) == 200


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ATTNLAB_NANOGPT"), reason="set ATTNLAB_NANOGPT to a nanoGPT checkout")
def test_end_to_end_with_a_checkout():
    done = subprocess.run([sys.executable, str(SCRIPT), "--max-iters", "10", "--threads", "1", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    assert results["checkout_unchanged"]
    assert results["a"]["iter_num"] == 10 and results["b"]["steps"] == 10
    assert results["b"]["val_loss"] == pytest.approx(results["b"]["reported_val_loss"], abs=1e-3)
    assert results["d"]["steps"] == 10 and results["d"]["dtype"] in ("bf16", "fp32")
    for run in "abcd":
        assert 0 < results[run]["val_loss"] < 5
