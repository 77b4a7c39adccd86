"""Greedy and beam search of the encoder-decoder: the same tokens as transformers'
``generate`` on the same Marian weights (padded, batched sources; several beam sizes,
length penalties and stopping rules), and the KV cache / projected memory against
decoding without them."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

from attnlab.errors import AttnlabError
from attnlab.inference.decoding import beam_search, greedy_search
from attnlab.models.config import TransformerConfig
from attnlab.models.transformer import Transformer

PAD, EOS, START = 3, 1, 2  # pad not 0: transformers pads beam outputs with EOS when pad_token_id is 0


def reversal_batch(generator: torch.Generator, n: int):
    """Toy translation: the target is the source reversed, then EOS. Sources of 1-8 tokens, padded."""
    lengths = torch.randint(1, 9, (n,), generator=generator)
    src = torch.full((n, 8), PAD)
    labels = torch.full((n, 9), -100)
    for row, length in enumerate(lengths.tolist()):
        tokens = torch.randint(4, 24, (length,), generator=generator)
        src[row, :length] = tokens
        labels[row, :length], labels[row, length] = tokens.flip(0), EOS
    return src, (src != PAD).long(), labels


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(transformers MarianMTModel, attnlab Transformer) with the same weights: a small model
    trained for a few seconds on reversal, uncertain enough that beams disagree and
    hypotheses end at different steps. Saved by attnlab, loaded by transformers."""
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=24, n_layers=2, n_heads=4, d_model=32, d_ff=64, max_positions=24,
                               dropout=0.0, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START)
    ours = Transformer(config)
    optimizer = torch.optim.Adam(ours.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~10x faster on a busy 2-core machine
    try:
        for _ in range(70):
            src, mask, labels = reversal_batch(generator, 64)
            loss = ours(src, mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    ours.eval()
    directory = tmp_path_factory.mktemp("reversal")
    ours.save_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.MarianMTModel.from_pretrained(directory).eval()
    return theirs, ours


def sources(seed: int = 0):
    src, mask, _ = reversal_batch(torch.Generator().manual_seed(100 + seed), 6)
    return src, mask


def hf_generate(model, ids, mask, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.generate(input_ids=ids, attention_mask=mask, do_sample=False, **settings)


@pytest.mark.parametrize(
    "num_beams, length_penalty, early_stopping",
    [(2, 1.0, False), (4, 1.0, False), (4, 0.6, False), (5, -0.5, False), (3, 1.0, True), (4, 2.0, "never")],
)
def test_beam_search_equals_transformers_generate(pair, num_beams, length_penalty, early_stopping):
    theirs, ours = pair
    ids, mask = sources()
    expected = hf_generate(theirs, ids, mask, num_beams=num_beams, max_new_tokens=14,
                           length_penalty=length_penalty, early_stopping=early_stopping)
    got = beam_search(ours, ids, mask, num_beams=num_beams, max_new_tokens=14,
                      length_penalty=length_penalty, early_stopping=early_stopping)
    assert got.tolist() == expected.tolist()


def test_the_test_is_not_trivial(pair):
    """Outputs end at different steps, and the length penalty changes some of them."""
    _, ours = pair
    ids, mask = sources()
    got = beam_search(ours, ids, mask, num_beams=4, max_new_tokens=14)
    lengths = {int((row != PAD).sum()) for row in got}
    assert len(lengths) >= 3
    shorter = beam_search(ours, ids, mask, num_beams=4, max_new_tokens=14, length_penalty=-1.0)
    assert shorter.tolist() != got[:, : shorter.shape[1]].tolist()


def test_greedy_search_equals_transformers_generate(pair):
    theirs, ours = pair
    ids, mask = sources(seed=1)
    expected = hf_generate(theirs, ids, mask, num_beams=1, max_new_tokens=14)
    assert greedy_search(ours, ids, mask, max_new_tokens=14).tolist() == expected.tolist()


@torch.no_grad()
def test_greedy_with_cache_equals_greedy_by_full_recomputation(pair):
    _, ours = pair
    ids, mask = sources(seed=2)
    got = greedy_search(ours, ids, mask, max_new_tokens=10)
    tokens = torch.full((6, 1), START)
    finished = torch.zeros(6, dtype=torch.bool)
    for _ in range(10):
        logits = ours(ids, mask, decoder_input_ids=tokens).logits[:, -1]
        next_ids = logits.argmax(-1).masked_fill(finished, PAD)
        tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
        finished |= next_ids == EOS
        if finished.all():
            break
    assert got.tolist() == tokens.tolist()


def test_beam_of_one_sentence_does_not_depend_on_the_batch(pair):
    _, ours = pair
    ids, mask = sources(seed=3)
    batched = beam_search(ours, ids, mask, num_beams=3, max_new_tokens=12)
    length = int(mask[1].sum())
    alone = beam_search(ours, ids[1:2, :length], None, num_beams=3, max_new_tokens=12)
    assert batched[1, : alone.shape[1]].tolist() == alone[0].tolist()


def test_bad_decoding_settings_are_refused():
    model = Transformer(TransformerConfig(vocab_size=20, n_layers=1, n_heads=2, d_model=8, d_ff=8,
                                          max_positions=16)).eval()
    ids = torch.tensor([[5, 6, 3]])
    with pytest.raises(AttnlabError, match="beam size must be an int >= 1"):
        beam_search(model, ids, num_beams=0)
    with pytest.raises(AttnlabError, match="max_new_tokens"):
        beam_search(model, ids, max_new_tokens=40)
    with pytest.raises(AttnlabError, match="early_stopping"):
        beam_search(model, ids, early_stopping="sometimes")
    assert greedy_search(model, ids, max_new_tokens=3).shape[1] <= 4
