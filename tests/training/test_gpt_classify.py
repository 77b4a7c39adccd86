"""Classification fine-tuning (GPT-1 §3.2): learns a synthetic task, saves, reloads, never overwrites."""

from __future__ import annotations

import json
import random

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig
from attnlab.models.gpt_classifier import GPTForSequenceClassification
from attnlab.training.gpt_classify import (
    ClassifierTrainingConfig,
    accuracy,
    encode_examples,
    predict,
    train_classifier,
)
from attnlab.training.schedule import warmup_linear

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _examples(n: int, seed: int) -> list[tuple[str, str]]:
    """Strings of a-h; the label says whether an 'a' occurs anywhere (about half do)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(4, 8)))
        out.append((text, "yes" if "a" in text else "no"))
    return out


def _classifier(tokenizer: Tokenizer) -> GPTForSequenceClassification:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=16))
    return GPTForSequenceClassification.from_gpt(gpt, ["no", "yes"])


def test_fine_tuning_learns_the_task_and_the_saved_model_reloads(tmp_path):
    tokenizer = Tokenizer.char_level("abcdefgh")
    model = _classifier(tokenizer)
    train, held_out = _examples(300, seed=0), _examples(60, seed=1)
    config = ClassifierTrainingConfig(epochs=20, max_iters=100, batch_size=32, lr=3e-3,
                                      warmup_fraction=0.05, lm_loss_weight=0.5)
    summary = train_classifier(model, tokenizer, train, held_out, config, out_dir=tmp_path, progress=False)
    assert summary["steps"] == 100 and not summary["interrupted"]
    assert summary["val_accuracy"] >= 0.9 and summary["val_accuracy"] >= summary["baseline"] + 0.2
    assert summary["val_accuracy"] == pytest.approx(accuracy(model, tokenizer, held_out))
    saved = json.loads((tmp_path / "classifier_summary.json").read_text())
    assert saved["val_accuracy"] == summary["val_accuracy"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"
    assert all("lm_loss" in r for r in records if "train_loss" in r and "event" not in r)

    loaded = GPTForSequenceClassification.from_pretrained(tmp_path)
    reloaded_tokenizer = Tokenizer.from_dir(tmp_path)
    texts = [text for text, _ in held_out]
    assert predict(loaded, reloaded_tokenizer, texts) == predict(model, tokenizer, texts)

    with pytest.raises(AttnlabError, match="already holds a model"):
        train_classifier(model, tokenizer, train, held_out, config, out_dir=tmp_path, progress=False)


def test_same_seed_same_run():
    tokenizer = Tokenizer.char_level("abcdefgh")
    losses = []
    for _ in range(2):
        config = ClassifierTrainingConfig(max_iters=5, batch_size=8, seed=3)
        summary = train_classifier(_classifier(tokenizer), tokenizer, _examples(40, 0), _examples(8, 1),
                                   config, progress=False)
        losses.append(summary["train_loss"])
    assert losses[0] == losses[1]


def test_long_texts_keep_their_last_tokens_and_bad_examples_are_named():
    tokenizer = Tokenizer.char_level("abcdefgh")
    encoded = encode_examples(tokenizer, [("abcdefgh", "yes"), ("ab", "no")], ["no", "yes"], max_length=3)
    assert encoded.ids == [tokenizer.encode("fgh"), tokenizer.encode("ab")]
    assert encoded.targets == [1, 0] and encoded.truncated == 1
    with pytest.raises(AttnlabError, match=r"Example 1 \('abz'\): Character\(s\) 'z' are not in"):
        encode_examples(tokenizer, [("ab", "no"), ("abz", "yes")], ["no", "yes"], 16)
    with pytest.raises(AttnlabError, match="has the label 'maybe', which the classifier does not have"):
        encode_examples(tokenizer, [("ab", "maybe")], ["no", "yes"], 16)


def test_schedule_and_config_validation():
    assert warmup_linear(0, lr=1.0, warmup=4, total=20) == pytest.approx(0.25)
    assert warmup_linear(4, lr=1.0, warmup=4, total=20) == pytest.approx(1.0)
    assert warmup_linear(12, lr=1.0, warmup=4, total=20) == pytest.approx(0.5)
    assert warmup_linear(20, lr=1.0, warmup=4, total=20) == 0.0
    with pytest.raises(AttnlabError, match="'epochs' fine-tuning parameter must be an int >= 1"):
        ClassifierTrainingConfig(epochs=0)
    with pytest.raises(AttnlabError, match="lm_loss_weight must be >= 0"):
        ClassifierTrainingConfig(lm_loss_weight=-1.0)


def test_ctrl_c_still_reports_accuracy_and_saves(tmp_path):
    import os
    import signal

    tokenizer = Tokenizer.char_level("abcdefgh")
    model = _classifier(tokenizer)
    forward, calls = model.forward, []

    def pressing_ctrl_c_on_the_third_step(*args, **kwargs):
        calls.append(model.training)
        if calls.count(True) == 3 and model.training:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, during the third step
        return forward(*args, **kwargs)

    model.forward = pressing_ctrl_c_on_the_third_step
    config = ClassifierTrainingConfig(max_iters=10, batch_size=8)
    summary = train_classifier(model, tokenizer, _examples(50, 0), _examples(12, 1), config, out_dir=tmp_path,
                               progress=False)
    assert summary["interrupted"] and summary["steps"] == 3
    assert 0 <= summary["val_accuracy"] <= 1 and summary["val_examples"] == 12
    saved = json.loads((tmp_path / "classifier_summary.json").read_text())
    assert saved["interrupted"] and saved["val_accuracy"] == summary["val_accuracy"]
    assert (tmp_path / "model.safetensors").is_file()
