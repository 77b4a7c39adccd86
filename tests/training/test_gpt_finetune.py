"""Continued pre-training of a saved GPT: it learns the new text and never touches the base model."""

from __future__ import annotations

import hashlib

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig
from attnlab.training.gpt_finetune import continue_pretraining

NEW_TEXT = "to be or not to be, that is the question. " * 30


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


@pytest.fixture
def base(tmp_path):
    """A saved, untrained char-level GPT whose vocabulary covers NEW_TEXT (and a few more letters)."""
    tokenizer = Tokenizer.char_level(NEW_TEXT + "xyz")
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=32))
    directory = tmp_path / "base"
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_continued_pretraining_lowers_the_loss_and_keeps_the_base(base, tmp_path):
    before = _digest(base)
    out = tmp_path / "tuned"
    config = LMTrainingConfig(max_iters=40, batch_size=8, lr=3e-3, warmup_iters=5, eval_interval=20)
    summary = continue_pretraining(base, NEW_TEXT, out, config, progress=False)
    assert summary["steps"] == 40 and summary["val_loss"] < 0.7 * summary["val_loss_before"]
    assert _digest(base) == before
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_state.pt", "metrics.jsonl"):
        assert (out / name).is_file(), name
    assert Tokenizer.from_dir(out).encode("to be") == Tokenizer.from_dir(base).encode("to be")
    assert isinstance(attnlab.load_pretrained(out), GPT)

    longer = LMTrainingConfig(max_iters=50, batch_size=8, lr=3e-3, warmup_iters=5, eval_interval=20)
    resumed = continue_pretraining(base, NEW_TEXT, out, longer, resume=True, progress=False)
    assert resumed["steps"] == 50 and resumed["val_loss_before"] is None


def test_refusals_come_before_any_training(base, tmp_path, hf_bert):
    config = LMTrainingConfig(max_iters=2, batch_size=2)
    with pytest.raises(AttnlabError, match=r"new\.txt: Character\(s\) '!Q' are not in this model's vocab"):
        continue_pretraining(base, NEW_TEXT + "Q!", tmp_path / "a", config, source="new.txt")
    assert not (tmp_path / "a").exists()
    with pytest.raises(AttnlabError, match="--out is the --model directory"):
        continue_pretraining(base, NEW_TEXT, base, config)
    with pytest.raises(AttnlabError, match="already holds a model"):
        continue_pretraining(base, NEW_TEXT, _plain_model_dir(tmp_path), config)
    with pytest.raises(AttnlabError, match="holds a BertModel, not a GPT"):
        continue_pretraining(hf_bert[1], NEW_TEXT, tmp_path / "b", config)
    with pytest.raises(AttnlabError, match="needs more than"):
        continue_pretraining(base, "to be " * 5, tmp_path / "c", config)


def _plain_model_dir(tmp_path):
    directory = tmp_path / "plain"
    GPT(GPTConfig.from_preset("gpt-nano", vocab_size=5, max_positions=8)).save_pretrained(directory)
    return directory
