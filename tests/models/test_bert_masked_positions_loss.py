"""The masked-positions MLM loss equals the full-logits loss (and its gradients), and it
agrees with transformers' BertForPreTraining loss on the same weights."""

from __future__ import annotations

import warnings

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForMaskedLM, BertForPreTraining


def _batch(vocab: int = 97):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (3, 17), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    segments = torch.zeros_like(ids)
    segments[:, 8:] = 1
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape, generator=gen) < 0.2
    chosen[0, 3] = True
    labels[chosen] = ids[chosen]
    return ids, mask, segments, labels, torch.tensor([0, 1, 1])


def _config():
    return BertConfig(vocab_size=97, d_model=90, n_layers=2, n_heads=6, d_ff=70, max_positions=40)


@pytest.mark.parametrize("architecture", [BertForPreTraining, BertForMaskedLM])
def test_masked_positions_loss_equals_full_loss_and_gradients(architecture):
    torch.manual_seed(0)
    model = architecture(_config()).train(False)
    ids, mask, segments, labels, nsp = _batch()
    extra = {"next_sentence_label": nsp} if architecture is BertForPreTraining else {}
    full = model(ids, attention_mask=mask, token_type_ids=segments, labels=labels, **extra).loss
    full.backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fast = model.pretraining_loss(ids, mask, segments, labels=labels, **extra)
    fast.backward()
    assert abs(fast.item() - full.item()) < 1e-6
    for expected, param in zip(full_grads, model.parameters(), strict=True):
        assert torch.allclose(param.grad, expected, atol=1e-6, rtol=1e-5)


def test_masked_positions_loss_matches_transformers():
    import transformers
    torch.manual_seed(0)
    ours = BertForPreTraining(_config()).eval()
    ids, mask, segments, labels, nsp = _batch()
    import tempfile

    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(directory)
        theirs = transformers.BertForPreTraining.from_pretrained(directory).eval()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask, token_type_ids=segments, labels=labels,
                          next_sentence_label=nsp).loss
        got = ours.pretraining_loss(ids, mask, segments, labels=labels, next_sentence_label=nsp)
    assert abs(float(got) - float(expected)) < 1e-5


def test_masked_positions_loss_rejects_bad_labels():
    model = BertForMaskedLM(_config())
    ids, mask, segments, labels, _ = _batch()
    with pytest.raises(AttnlabError, match="labels"):
        model.pretraining_loss(ids, mask, segments, labels=labels[:, :5])
    with pytest.raises(AttnlabError, match="labels"):
        model.pretraining_loss(ids, mask, segments, labels=labels.clamp(min=0) + 97)


def test_pretraining_outputs_are_the_forward_logits_at_the_masked_positions():
    torch.manual_seed(0)
    model = BertForPreTraining(_config()).eval()
    ids, mask, segments, labels, nsp = _batch()
    with torch.no_grad():
        full = model(ids, attention_mask=mask, token_type_ids=segments, labels=labels,
                     next_sentence_label=nsp)
        loss, mlm_logits, nsp_logits = model.pretraining_outputs(
            ids, mask, segments, labels=labels, next_sentence_label=nsp)
        mlm_only, _, no_nsp = model.pretraining_outputs(ids, mask, segments, labels=labels)
    chosen = labels != -100
    assert mlm_logits.shape == (int(chosen.sum()), 97)
    assert torch.allclose(mlm_logits, full.prediction_logits[chosen], atol=1e-5)
    assert torch.allclose(nsp_logits, full.seq_relationship_logits, atol=1e-6)
    assert abs(float(loss) - float(full.loss)) < 1e-6
    assert no_nsp is None and float(mlm_only) < float(loss)


@pytest.mark.parametrize("architecture", [BertForPreTraining, BertForMaskedLM])
def test_a_batch_with_nothing_masked_adds_zero_not_nan(architecture):
    model = architecture(_config())
    ids, mask, segments, labels, _ = _batch()
    loss = model.pretraining_loss(ids, mask, segments, labels=torch.full_like(labels, -100))
    loss.backward()  # still a graph: accumulation over such a batch works
    assert float(loss.detach()) == 0.0
