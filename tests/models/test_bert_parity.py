"""BERT against transformers.BertModel on the same weights (fp32, odd sizes)."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError

TOL = 1e-5


@pytest.fixture(scope="module")
def pair(hf_bert):
    reference, directory = hf_bert
    return reference, attnlab.load_pretrained(directory)


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 97, (3, 17), generator=gen)
    mask = torch.ones(3, 17, dtype=torch.long)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    segments = torch.randint(0, 3, (3, 17), generator=gen)
    return ids, mask, segments


def test_last_hidden_state_and_pooler_equal_transformers(pair):
    reference, ours = pair
    ids, mask, segments = _inputs()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        got = ours(ids, attention_mask=mask, token_type_ids=segments)
    assert got.last_hidden_state.shape == (3, 17, 90)
    assert (got.last_hidden_state - expected.last_hidden_state).abs().max().item() < TOL
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOL


def test_without_mask_or_segments(pair):
    reference, ours = pair
    ids, _, _ = _inputs(1)
    with torch.no_grad():
        expected = reference(input_ids=ids).last_hidden_state
        got = ours(ids).last_hidden_state
    assert (got - expected).abs().max().item() < TOL


def test_hidden_states_equal_transformers(pair):
    reference, ours = pair
    ids, mask, segments = _inputs(2)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments,
                             output_hidden_states=True).hidden_states
        got = ours(ids, attention_mask=mask, token_type_ids=segments, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected) == 4
    for ours_layer, their_layer in zip(got.hidden_states, expected, strict=True):
        assert (ours_layer - their_layer).abs().max().item() < TOL


def test_padding_does_not_change_real_tokens(pair):
    _, ours = pair
    ids, _, _ = _inputs(3)
    short = ids[:1, :9]
    padded = torch.cat([short, torch.zeros(1, 8, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 8)], dim=1).long()
    with torch.no_grad():
        alone = ours(short).last_hidden_state
        with_pad = ours(padded, attention_mask=mask).last_hidden_state[:, :9]
    assert (alone - with_pad).abs().max().item() < TOL


def test_eval_mode_after_load_and_deterministic(pair):
    _, ours = pair
    assert not ours.training
    ids, _, _ = _inputs(4)
    with torch.no_grad():
        assert torch.equal(ours(ids).last_hidden_state, ours(ids).last_hidden_state)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attention_mask=torch.ones(3, 16)), r"attention_mask must have shape \(3, 17\).*got \(3, 16\)"),
        (dict(token_type_ids=torch.zeros(3, 16, dtype=torch.long)), "token_type_ids has shape"),
        (dict(token_type_ids=torch.full((3, 17), 3)), r"token_type_ids must hold values in \[0, 3\)"),
        (dict(attention_mask=torch.full((3, 17), 2)), "attention_mask must hold values"),
    ],
)
def test_bad_companions_give_clear_errors(pair, kwargs, message):
    _, ours = pair
    ids, _, _ = _inputs(5)
    with pytest.raises(AttnlabError, match=message):
        ours(ids, **kwargs)


def test_too_long_input_names_the_fix(pair):
    _, ours = pair
    with pytest.raises(AttnlabError, match="at most 40 tokens"):
        ours(torch.ones(1, 41, dtype=torch.long))
