"""The BERT fine-tuning loop: padding, early stopping that keeps the best weights, linear probing,
and the tokenizer/checkpoint checks — on a tiny random BERT."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert import BertModel
from attnlab.models.bert_heads import BertForSequenceClassification, BertForTokenClassification
from attnlab.training.bert_finetune import (
    FinetuneConfig,
    collate,
    finetune,
    head_from_encoder,
    special_ids,
)

CORPUS = "the duke of york spoke to the king . a man is eating food . good bad fine awful\n" * 20


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _encoder(vocab_size: int = 60) -> BertModel:
    torch.manual_seed(0)
    return BertModel(
        BertConfig(vocab_size=vocab_size, max_positions=32, n_layers=2, n_heads=2, d_model=16, d_ff=24)
    )


def _features(n: int = 24):
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "input_ids": torch.randint(
                5, 60, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen
            ).tolist(),
            "labels": i % 2,
        }
        for i in range(n)
    ]


def test_collate_pads_ids_labels_and_mask():
    batch = collate(
        [
            {"input_ids": [2, 7, 3], "labels": [-100, 1, -100], "start_positions": 1},
            {"input_ids": [2, 3], "labels": [-100, -100], "start_positions": 0},
        ],
        pad_id=9,
    )
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 9]]
    assert batch["labels"].tolist() == [[-100, 1, -100], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["start_positions"].tolist() == [1, 0]


def test_early_stopping_restores_the_best_weights():
    model = head_from_encoder(_encoder(), BertForSequenceClassification, ["a", "b"])
    scores = iter([0.3, 0.9, 0.5, 0.4, 0.8, 0.95])  # best at the 2nd check; patience 2 stops at the 4th
    snapshots = []

    def validate(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"accuracy": next(scores)}

    config = FinetuneConfig(epochs=10, batch_size=4, lr=1e-2, eval_every=2, patience=2)
    result = finetune(model, _features(), validate, "accuracy", config, progress=False)
    assert result.stopped_early and result.steps == 8 and result.best_step == 4
    assert [h["val_accuracy"] for h in result.history] == [0.3, 0.9, 0.5, 0.4]
    assert result.best == {"accuracy": 0.9}
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, snapshots[1][key]), key
    assert not torch.equal(snapshots[1]["classifier.weight"], snapshots[3]["classifier.weight"])


def test_epochs_and_linear_schedule_run_to_the_end_without_early_stop():
    model = head_from_encoder(_encoder(), BertForSequenceClassification, ["a", "b"])
    records = []
    config = FinetuneConfig(epochs=2, batch_size=8, lr=1e-3, warmup_fraction=0.5)
    result = finetune(
        model, _features(), lambda m: {"acc": 0.5}, "acc", config, progress=False, log=records.append
    )
    lrs = [r["lr"] for r in records if "lr" in r]
    assert result.steps == 6 and len(result.history) == 2  # one check per epoch
    # warm-up to the peak over 3 steps, then linear decay towards 0 (reached after the last step)
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3])


def test_freeze_encoder_trains_only_the_head():
    model = head_from_encoder(_encoder(), BertForTokenClassification, ["O", "B-x", "I-x"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    features = [
        {"input_ids": f["input_ids"], "labels": [f["labels"]] * len(f["input_ids"])} for f in _features()
    ]
    finetune(
        model,
        features,
        lambda m: {"f1": 0.0},
        "f1",
        FinetuneConfig(epochs=1, batch_size=8, lr=1e-2, freeze_encoder=True),
        progress=False,
    )
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("bert."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert not any(p.requires_grad for p in model.bert.parameters())


def test_head_from_encoder_copies_the_encoder():
    encoder = _encoder()
    head = head_from_encoder(encoder, BertForSequenceClassification, ["x", "y", "z"])
    assert head.config.labels == ("x", "y", "z") and head.classifier.out_features == 3
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(head.bert.state_dict()[key], tensor)
    with pytest.raises(AttnlabError, match="not a BERT model"):
        head_from_encoder(torch.nn.Linear(2, 2), BertForSequenceClassification, ["a", "b"])


def test_tokenizer_larger_than_the_checkpoint_vocabulary_is_one_line():
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=120)
    with pytest.raises(
        AttnlabError, match=rf"tokenizer has {tokenizer.vocab_size} tokens but the checkpoint"
    ):
        special_ids(tokenizer, _encoder(vocab_size=50).config)
    ids = special_ids(tokenizer, _encoder(vocab_size=tokenizer.vocab_size).config)
    assert ids == {"cls": 2, "sep": 3, "pad": 0}
    with pytest.raises(AttnlabError, match="no \\[CLS\\] or \\[SEP\\] or \\[PAD\\] token"):
        special_ids(Tokenizer.char_level("abc"), _encoder().config)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("patience", 0), ("lr", 0.0), ("eval_every", 0)])
def test_config_validation(field, value):
    with pytest.raises(AttnlabError, match=field):
        FinetuneConfig(**{field: value})


def test_ctrl_c_before_the_first_check_still_validates():
    import os
    import signal

    model = head_from_encoder(_encoder(), BertForSequenceClassification, ["a", "b"])
    calls = []

    def loss(m, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, during the second step
        return m(**batch).loss

    config = FinetuneConfig(epochs=3, batch_size=4, eval_interval=4)
    result = finetune(model, _features(), lambda m: {"acc": 0.25}, "acc", config, loss_fn=loss,
                      progress=False)
    assert result.interrupted and result.steps == 2 and not result.stopped_early
    assert result.best == {"acc": 0.25} and result.best_step == 2 and len(result.history) == 1
