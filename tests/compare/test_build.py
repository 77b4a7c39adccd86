"""attnlab.compare.build: one size for all three, validated, and the three built from attnlab.models."""

from __future__ import annotations

import pytest
import torch

from attnlab.compare.build import ARCHITECTURES, Size, build, example_inputs, positions
from attnlab.errors import AttnlabError
from attnlab.models import GPT, BertForMaskedLM, Transformer


def test_sizes_are_validated():
    with pytest.raises(AttnlabError, match="divisible"):
        Size(d_model=30, n_heads=4)
    with pytest.raises(AttnlabError, match="'n_layers' parameter of the comparison must be an int >= 1"):
        Size(n_layers=0)
    with pytest.raises(AttnlabError, match="'vocab_size' parameter of the comparison must be an int >= 1"):
        Size(vocab_size=True)  # a bool is not a count
    with pytest.raises(AttnlabError, match="seq_len must be >= 2"):
        Size(seq_len=1)
    with pytest.raises(AttnlabError, match="Unknown architecture"):
        build("rnn", Size())
    assert Size(d_model=48, n_heads=3).d_ff == 192  # 0: four times the width
    assert (Size(seq_len=11).source_len, Size(seq_len=11).target_len) == (5, 6)


def test_the_three_are_the_models_of_attnlab_models():
    size = Size(d_model=64, n_layers=3, n_heads=4, d_ff=100, vocab_size=77, seq_len=12)
    built = {arch: build(arch, size) for arch in ARCHITECTURES}
    assert isinstance(built["transformer"], Transformer) and isinstance(built["gpt"], GPT)
    assert isinstance(built["bert"], BertForMaskedLM)
    for arch, model in built.items():
        assert not model.training
        args, kwargs = example_inputs(arch, size, 2, torch.Generator().manual_seed(0))
        tokens = sum(t.numel() for t in (*args, *kwargs.values()))
        assert tokens == 2 * positions(arch, size) == 2 * 12, arch
    # The Transformer takes a padded source and answers one logit row per target position.
    ids = torch.randint(0, size.vocab_size, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    with torch.no_grad():
        out = built["transformer"](ids, attention_mask=mask, decoder_input_ids=ids[:, :4])
    assert out.logits.shape == (2, 4, size.vocab_size)
    with pytest.raises(AttnlabError, match="decoder_input_ids"):
        built["transformer"](ids)


def test_a_tiny_vocabulary_still_builds_a_transformer():
    """The special ids are clamped into the vocabulary, however small the comparison's is."""
    model = build("transformer", Size(d_model=8, n_layers=1, n_heads=2, vocab_size=2, seq_len=4))
    assert model.config.decoder_start_token_id == 1 and model.config.eos_token_id == 1
