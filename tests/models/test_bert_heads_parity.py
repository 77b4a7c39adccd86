"""BERT's task heads against transformers' BertFor* on the same weights: outputs, losses,
and save_pretrained back into transformers."""

from __future__ import annotations

import warnings

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError

TOL = 1e-5
CONFIG = dict(
    vocab_size=97, hidden_size=90, num_hidden_layers=2, num_attention_heads=6, intermediate_size=70,
    max_position_embeddings=40, type_vocab_size=2,
    id2label={0: "negative", 1: "neutral", 2: "positive"},
    label2id={"negative": 0, "neutral": 1, "positive": 2},
)
OUTPUTS = {
    "BertForPreTraining": ("prediction_logits", "seq_relationship_logits"),
    "BertForMaskedLM": ("logits",),
    "BertForSequenceClassification": ("logits",),
    "BertForTokenClassification": ("logits",),
    "BertForQuestionAnswering": ("start_logits", "end_logits"),
}


def _inputs():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 97, (3, 13), generator=gen)
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    segments = torch.zeros_like(ids)
    segments[:, 6:] = 1
    return ids, mask, segments


def _labels(architecture):
    gen = torch.Generator().manual_seed(1)
    if architecture == "BertForPreTraining":
        labels = torch.full((3, 13), -100)
        labels[:, 2] = torch.randint(0, 97, (3,), generator=gen)
        return dict(labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))
    if architecture == "BertForMaskedLM":
        labels = torch.full((3, 13), -100)
        labels[:, 4] = torch.randint(0, 97, (3,), generator=gen)
        return dict(labels=labels)
    if architecture == "BertForSequenceClassification":
        return dict(labels=torch.tensor([2, 0, 1]))
    if architecture == "BertForTokenClassification":
        return dict(labels=torch.randint(0, 3, (3, 13), generator=gen))
    return dict(start_positions=torch.tensor([1, 4, 20]), end_positions=torch.tensor([3, 4, 22]))


@pytest.fixture(scope="module", params=sorted(OUTPUTS))
def pair(request, tmp_path_factory):
    import transformers

    architecture = request.param
    config = dict(CONFIG)
    if architecture == "BertForQuestionAnswering":  # its head has exactly 2 outputs: start, end
        config.pop("id2label"), config.pop("label2id")
    torch.manual_seed(3)
    reference = getattr(transformers, architecture)(transformers.BertConfig(**config)).eval()
    directory = tmp_path_factory.mktemp(architecture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.save_pretrained(directory)
    return architecture, reference, attnlab.load_pretrained(directory)


def test_loads_as_the_same_head(pair):
    architecture, _, ours = pair
    assert type(ours).__name__ == architecture
    if architecture != "BertForQuestionAnswering":
        assert ours.config.labels == ("negative", "neutral", "positive")


def test_outputs_and_loss_equal_transformers(pair):
    architecture, reference, ours = pair
    ids, mask, segments = _inputs()
    labels = _labels(architecture)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments, **labels)
        got = ours(ids, attention_mask=mask, token_type_ids=segments, **labels)
    for name in OUTPUTS[architecture]:
        assert (getattr(got, name) - getattr(expected, name)).abs().max().item() < TOL, name
    assert abs(got.loss.item() - expected.loss.item()) < TOL


def test_save_pretrained_loads_in_transformers(pair, tmp_path):
    import transformers

    architecture, reference, ours = pair
    ours.save_pretrained(tmp_path)
    back = transformers.AutoConfig.from_pretrained(tmp_path)
    assert back.architectures == [architecture]
    back = getattr(transformers, architecture).from_pretrained(tmp_path).eval()
    ids, mask, segments = _inputs()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        got = back(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    for name in OUTPUTS[architecture]:
        assert torch.equal(getattr(got, name), getattr(expected, name)), name


def test_mlm_output_layer_is_tied_to_word_embeddings_where_there_is_one(pair):
    architecture, _, ours = pair
    if architecture in ("BertForMaskedLM", "BertForPreTraining"):
        assert ours.mlm_head.decoder.weight is ours.bert.embeddings.token.weight
    else:  # a task head only: no vocabulary-sized layer is built (checked rather than skipped)
        assert not hasattr(ours, "mlm_head")
        outside = [p for name, p in ours.named_parameters() if "embeddings" not in name]
        assert all(p.shape[0] != CONFIG["vocab_size"] for p in outside)


def test_label_shape_errors(pair):
    architecture, _, ours = pair
    ids, _, _ = _inputs()
    bad = {"BertForQuestionAnswering": dict(start_positions=torch.zeros(2, dtype=torch.long),
                                            end_positions=torch.zeros(2, dtype=torch.long)),
           "BertForPreTraining": dict(next_sentence_label=torch.zeros(5, dtype=torch.long))}
    kwargs = bad.get(architecture, dict(labels=torch.zeros(7, dtype=torch.long)))
    with pytest.raises(AttnlabError, match="must have shape"):
        ours(ids, **kwargs)
