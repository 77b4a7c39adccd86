"""Checkpoints: exact resume, Ctrl-C, no overwriting, and broken or mismatched state."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig, train_language_model
from attnlab.training.checkpoint import STATE_FILE, load_training_state

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def _setup(dropout: float = 0.1):
    tokenizer = Tokenizer.char_level(TEXT)
    ids = torch.tensor(tokenizer.encode(TEXT))
    config = GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=16,
                                   dropout=dropout, attention_dropout=dropout)
    torch.manual_seed(0)
    return GPT(config), ids[:2400], ids[2400:], tokenizer


TRAINING = LMTrainingConfig(max_iters=12, batch_size=4, lr=3e-3, warmup_iters=3, eval_interval=5,
                            eval_iters=2)


def _losses(run_dir=None, resume=False, interrupt_at=None, model_seed_state=None):
    model, train, val, tokenizer = _setup()
    losses = []

    def on_step(step, loss):
        losses.append(loss)
        if step == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this process

    summary = train_language_model(model, train, val, TRAINING, out_dir=run_dir, tokenizer=tokenizer,
                                   resume=resume, progress=False, on_step=on_step)
    return losses, summary, model


def test_interrupt_then_resume_equals_one_run(tmp_path):
    """2N steps in one go == N steps, Ctrl-C, resume for N more (fp32, dropout on)."""
    full_losses, full_summary, full_model = _losses(tmp_path / "full")
    first, summary, _ = _losses(tmp_path / "split", interrupt_at=6)
    assert summary["interrupted"] and summary["steps"] == 6
    assert load_training_state(tmp_path / "split")["step"] == 6
    second, resumed_summary, resumed_model = _losses(tmp_path / "split", resume=True)
    assert first + second == full_losses
    assert resumed_summary["val_loss"] == full_summary["val_loss"]
    for (name, a), (_, b) in zip(full_model.state_dict().items(), resumed_model.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_dir_loads_and_has_tokenizer(tmp_path):
    _losses(tmp_path)
    names = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors", "tokenizer.json", STATE_FILE, "metrics.jsonl"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    model = attnlab.load_pretrained(tmp_path)
    assert Tokenizer.from_dir(tmp_path).decode(Tokenizer.from_dir(tmp_path).encode("lazy dog")) == "lazy dog"
    assert model.config.max_positions == 16


def test_existing_checkpoint_is_never_overwritten(tmp_path):
    _losses(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(AttnlabError, match="already holds a training checkpoint; pass --resume"):
        _losses(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_resume_with_changed_config_is_refused(tmp_path):
    _losses(tmp_path, interrupt_at=3)
    model, train, val, tokenizer = _setup(dropout=0.2)
    with pytest.raises(AttnlabError, match="changed config.*dropout"):
        train_language_model(model, train, val, TRAINING, out_dir=tmp_path, resume=True, progress=False)
    model, train, val, tokenizer = _setup()
    changed = LMTrainingConfig(**{**TRAINING.__dict__, "lr": 1e-2})
    with pytest.raises(AttnlabError, match="changed config.*lr"):
        train_language_model(model, train, val, changed, out_dir=tmp_path, resume=True, progress=False)


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(AttnlabError, match="no training_state.pt to resume from"):
        _losses(tmp_path, resume=True)


def test_corrupt_or_mismatched_state_is_detected(tmp_path):
    _losses(tmp_path, interrupt_at=4)
    state_path = tmp_path / STATE_FILE
    good = state_path.read_bytes()
    state_path.write_bytes(good[: len(good) // 3])
    with pytest.raises(AttnlabError, match="truncated, corrupt"):
        load_training_state(tmp_path)
    # A state from another step than the model file beside it.
    state = torch.load(__import__("io").BytesIO(good), weights_only=True)
    state["step"] = 3
    torch.save(state, state_path)
    with pytest.raises(AttnlabError, match="model file is from step 4 but the training state is from step 3"):
        load_training_state(tmp_path)


def test_gradient_accumulation_equals_bigger_batch():
    """2 micro-batches of b == one batch of 2b (same sequences, dropout off)."""
    results = []
    for batch, accum in ((8, 1), (4, 2)):
        model, train, val, _ = _setup(dropout=0.0)
        config = LMTrainingConfig(max_iters=4, batch_size=batch, grad_accum_steps=accum, lr=3e-3,
                                  warmup_iters=1)
        train_language_model(model, train, val, config, progress=False)
        results.append(model.state_dict())
    for name, tensor in results[0].items():
        assert torch.allclose(tensor, results[1][name], atol=1e-5), name


def test_checkpoint_from_before_the_distributed_options_resumes(tmp_path):
    """A training state without the fsdp/dist_timeout fields (older attnlab) still resumes."""
    full_losses, _, full_model = _losses(tmp_path / "full")
    first, _, _ = _losses(tmp_path / "split", interrupt_at=6)
    state_path = tmp_path / "split" / STATE_FILE
    state = torch.load(state_path, weights_only=True)
    for key in ("fsdp", "dist_timeout"):
        del state["training_config"][key]
    assert "torch_rng_ranks" not in state and "world_size" not in state  # one process: format unchanged
    torch.save(state, state_path)
    second, _, resumed_model = _losses(tmp_path / "split", resume=True)
    assert first + second == full_losses
    assert all(torch.equal(a, b) for a, b in zip(full_model.state_dict().values(),
                                                  resumed_model.state_dict().values(), strict=True))


def test_checkpoint_with_the_old_field_names_resumes(tmp_path):
    """A training state written before max_iters/warmup_iters became max_steps/warmup_steps resumes."""
    full_losses, _, _ = _losses(tmp_path / "full")
    first, _, _ = _losses(tmp_path / "split", interrupt_at=6)
    state_path = tmp_path / "split" / STATE_FILE
    state = torch.load(state_path, weights_only=True)
    saved = state["training_config"]
    saved["max_iters"], saved["warmup_iters"] = saved.pop("max_steps"), saved.pop("warmup_steps")
    torch.save(state, state_path)
    second, _, _ = _losses(tmp_path / "split", resume=True)
    assert first + second == full_losses
