"""Translation training: loss goes down, checkpoints resume exactly (same weights as an
uninterrupted run), snapshots are averaged into ``averaged/``, bad settings are refused."""

from __future__ import annotations

import json

import pytest
import torch

import attnlab
from attnlab.data.joint_vocab import EOS_ID, PAD_ID, START_ID, train_joint_tokenizer
from attnlab.data.parallel import corpus_split
from attnlab.errors import AttnlabError
from attnlab.models.config import TransformerConfig
from attnlab.models.transformer import Transformer
from attnlab.training.translation import TranslationTrainingConfig, train_translation


@pytest.fixture(scope="module")
def data():
    train, valid = corpus_split("train")[:160], corpus_split("valid")[:8]
    tokenizer = train_joint_tokenizer([s for p in train for s in p], "bpe", 300)
    return train, valid, tokenizer


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def new_model(tokenizer) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(
        vocab_size=tokenizer.vocab_size, n_layers=1, n_heads=2, d_model=32, d_ff=48, max_positions=48,
        dropout=0.1, pad_token_id=PAD_ID, eos_token_id=EOS_ID, decoder_start_token_id=START_ID,
    ))


def settings(**changes) -> TranslationTrainingConfig:
    return TranslationTrainingConfig(**{**dict(max_steps=8, max_tokens=400, warmup_steps=4, eval_interval=4,
                                               snapshot_interval=4,
                                               eval_sentences=2, average_last=2), **changes})


def test_training_lowers_the_loss_and_writes_an_averaged_model(data, tmp_path):
    train, valid, tokenizer = data
    model = new_model(tokenizer)
    losses = []
    schedule = settings(max_steps=24, eval_interval=12, snapshot_interval=8)
    summary = train_translation(model, tokenizer, train, valid, schedule, out_dir=tmp_path, progress=False,
                                on_step=lambda s, loss: losses.append(loss))
    assert summary["steps"] == 24 and not summary["interrupted"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5
    assert summary["averaged_snapshots"] == ["step-0000016.safetensors", "step-0000024.safetensors"]
    averaged = attnlab.load_pretrained(tmp_path / "averaged")
    assert isinstance(averaged, Transformer)
    assert (tmp_path / "averaged" / "tokenizer.json").is_file() and (tmp_path / "training_state.pt").is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("val_bleu_greedy" in r for r in records)
    # Exactly the mean of the two snapshots.
    from attnlab.training.averaging import average_weights, snapshot_paths

    mean = average_weights(snapshot_paths(tmp_path))
    assert torch.equal(mean["model.shared.weight"], averaged.encoder_embeddings.token.weight)


def test_resume_continues_exactly(data, tmp_path):
    train, valid, tokenizer = data
    straight = new_model(tokenizer)
    train_translation(straight, tokenizer, train, valid, settings(), out_dir=tmp_path / "a", progress=False)
    first = new_model(tokenizer)
    train_translation(first, tokenizer, train, valid, settings(max_steps=4), out_dir=tmp_path / "b",
                      progress=False)
    resumed = new_model(tokenizer)
    summary = train_translation(resumed, tokenizer, train, valid, settings(), out_dir=tmp_path / "b",
                                resume=True, progress=False)
    assert summary["steps"] == 8
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(AttnlabError, match="already holds a training checkpoint"):
        train_translation(new_model(tokenizer), tokenizer, train, valid, settings(), out_dir=tmp_path / "b",
                          progress=False)
    with pytest.raises(AttnlabError, match="changed config"):
        train_translation(new_model(tokenizer), tokenizer, train, valid, settings(max_steps=12, lr_scale=2.0),
                          out_dir=tmp_path / "b", resume=True, progress=False)


@pytest.mark.parametrize(
    "changes, message",
    [(dict(max_steps=0), "max_steps"), (dict(label_smoothing=1.0), "label_smoothing"),
     (dict(lr_scale=0), "lr_scale"), (dict(grad_clip=-1.0), "grad_clip")],
)
def test_bad_training_settings_are_refused(changes, message):
    with pytest.raises(AttnlabError, match=message):
        settings(**changes)
