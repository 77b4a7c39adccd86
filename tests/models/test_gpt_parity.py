"""GPT against transformers.GPT2LMHeadModel on the same weights (fp32, odd sizes)."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError

TOL = 1e-5


@pytest.fixture(scope="module")
def pair(hf_gpt2):
    reference, directory = hf_gpt2
    return reference, attnlab.load_pretrained(directory)


def test_logits_equal_transformers(pair):
    reference, ours = pair
    ids = torch.randint(0, 101, (3, 29), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        got = ours(ids).logits
    assert got.shape == (3, 29, 101)
    assert (got - expected).abs().max().item() < TOL


def test_logits_with_right_padding_equal_transformers(pair):
    reference, ours = pair
    ids = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 23, dtype=torch.long)
    mask[1, 15:] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    assert (got - expected).abs().max().item() < TOL


def test_loss_equals_transformers(pair):
    reference, ours = pair
    ids = torch.randint(0, 101, (2, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(input_ids=ids, labels=ids).loss
        got = ours(ids, labels=ids).loss
    assert abs(got.item() - expected.item()) < TOL


def test_every_hidden_state_equals_transformers(pair):
    """The embeddings, every block's output and the final LayerNorm's output, each against transformers.

    transformers' hidden_states hold the embeddings, blocks 1 .. L-1 and ln_f(block L), so block L's
    own output (before ln_f) is caught with a hook on its last block. Neighbouring layers of this
    model differ by about 0.05, far above TOL, so a state shifted by one layer cannot pass."""
    reference, ours = pair
    ids = torch.randint(0, 101, (2, 9), generator=torch.Generator().manual_seed(3))
    caught = []

    def catch(module, args, output):
        caught.append(output[0] if isinstance(output, tuple) else output)

    hook = reference.transformer.h[-1].register_forward_hook(catch)
    try:
        with torch.no_grad():
            out = ours(ids, output_hidden_states=True)
            expected = reference(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        hook.remove()
    n_layers = len(reference.transformer.h)
    assert len(out.hidden_states) == len(expected) == n_layers + 1 and len(caught) == 1
    for layer in range(n_layers):  # 0: the embeddings; then the output of blocks 1 .. L-1
        assert (out.hidden_states[layer] - expected[layer]).abs().max().item() < TOL, layer
    assert (out.hidden_states[n_layers] - caught[0]).abs().max().item() < TOL  # block L, before ln_f
    assert (out.last_hidden_state - expected[n_layers]).abs().max().item() < TOL  # after ln_f


def test_kv_cache_decoding_equals_full_forward(pair):
    _, ours = pair
    ids = torch.randint(0, 101, (2, 20), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = ours(ids).logits
        caches = ours.new_kv_caches(2)
        prefill = ours(ids[:, :12], kv_caches=caches).logits
        steps = [ours(ids[:, t : t + 1], kv_caches=caches, start_pos=t).logits for t in range(12, 20)]
    cached = torch.cat([prefill, *steps], dim=1)
    assert (cached - full).abs().max().item() < TOL


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda: torch.randint(0, 101, (7,)), "unsqueeze"),
        (lambda: torch.rand(1, 7), "integer"),
        (lambda: torch.randint(0, 101, (1, 51)), "truncate"),
        (lambda: torch.tensor([[3, 101]]), "outside the vocabulary"),
        (lambda: torch.tensor([[-1, 3]]), "outside the vocabulary"),
        (lambda: [[1, 2, 3]], "torch.Tensor"),
        (lambda: torch.zeros(1, 0, dtype=torch.long), "empty"),
    ],
)
def test_bad_input_ids_give_clear_errors(pair, make_input, message):
    _, ours = pair
    with pytest.raises(AttnlabError, match=message):
        ours(make_input())


def test_mask_shape_mismatch_is_named(pair):
    _, ours = pair
    with pytest.raises(AttnlabError, match="attention_mask must have shape"):
        ours(torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


def test_labels_shape_mismatch_is_named(pair):
    _, ours = pair
    with pytest.raises(AttnlabError, match="labels"):
        ours(torch.ones(2, 5, dtype=torch.long), labels=torch.ones(2, 4, dtype=torch.long))
