"""Extractive QA: windows over long contexts with a stride, answer positions, best valid span."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.qa import make_example
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import qa_scores
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForQuestionAnswering
from attnlab.training.bert_finetune import special_ids
from attnlab.training.bert_qa import best_span, make_windows, predict, window_starts

CORPUS = "ross : the king is dead . who says the night is long ? lennox : good father , alas\n" * 30


@pytest.fixture(scope="module")
def setup():
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=100)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, max_positions=64, n_layers=1, n_heads=2, d_model=16, d_ff=20
    )
    return tokenizer, config, special_ids(tokenizer, config)


def test_window_starts_cover_the_context():
    assert window_starts(5, 10, 4) == [0]
    assert window_starts(25, 10, 4) == [0, 4, 8, 12, 16]  # the last window (16..25) reaches the end
    assert window_starts(25, 10, 20) == [0, 10, 20]  # a stride over the window would leave gaps: capped
    for n, window, stride in [(100, 7, 3), (31, 8, 8), (9, 9, 1)]:
        starts = window_starts(n, window, stride)
        covered = {i for s in starts for i in range(s, min(n, s + window))}
        assert covered == set(range(n)) and starts[-1] + window >= n


def test_windows_hold_the_answer_positions(setup):
    tokenizer, _, ids = setup
    context = " ".join(["the king is dead ."] * 30) + " Lennox : good father , alas"
    example = make_example(context, "who says alas ?", "Lennox")
    windows = make_windows(tokenizer, [example], 24, 8, ids)
    assert len(windows) > 10 and all(len(w.input_ids) <= 24 for w in windows)
    holding = [w for w in windows if w.start_position > 0]
    assert holding  # at least one window holds the whole answer
    for window in windows:
        assert window.input_ids[0] == ids["cls"] and window.input_ids[-1] == ids["sep"]
        assert (
            window.token_type_ids.count(0)
            == len(tokenizer.encode("who says alas ?", add_special_tokens=False)) + 2
        )
        if window.start_position:
            start = window.offsets[window.start_position][0]
            end = window.offsets[window.end_position][1]
            assert context[start:end] == "Lennox"
        else:
            assert window.end_position == 0


def test_best_span_is_valid_inside_the_context():
    start = torch.tensor([9.0, 0.0, 1.0, 5.0, 0.0, 0.0, 8.0])
    end = torch.tensor([9.0, 7.0, 0.0, 0.0, 2.0, 6.0, 0.0])
    in_context = torch.tensor([False, True, True, True, True, True, False])
    # Position 0 and 6 are not context; end 1 precedes start 3; best valid: start 3, end 5 (5 + 6).
    assert best_span(start, end, in_context, max_answer_len=30) == (11.0, 3, 5)
    # At most 2 tokens: start 3 .. end 4 (5 + 2) beats start 2 .. end 2 (1 + 0).
    assert best_span(start, end, in_context, max_answer_len=2) == (7.0, 3, 4)
    assert best_span(start, end, torch.zeros(7, dtype=torch.bool), 30) is None


def test_contexts_over_512_tokens_are_answered_not_crashed(setup):
    tokenizer, config, ids = setup
    context = "Ross : " + "the king is dead . " * 200 + "Lennox : good father , alas"
    example = make_example(context, "who says alas ?", "Lennox")
    windows = make_windows(tokenizer, [example], 48, 24, ids)
    assert len(tokenizer.encode(context)) > 512 and len(windows) > 20
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config).eval()
    [answer] = predict(model, [example], windows, max_answer_len=5)
    assert answer and answer in context and len(tokenizer.encode(answer, add_special_tokens=False)) <= 5
    assert 0 <= qa_scores([answer], ["Lennox"])["f1"] <= 1


def test_answer_without_tokens_is_a_one_line_error(setup):
    tokenizer, _, ids = setup
    example = make_example("Ross \u200b spoke", "who?", "\u200b")  # a zero-width space: no token at all

    with pytest.raises(AttnlabError, match="example 1: the answer .* has no token"):
        make_windows(tokenizer, [example], 32, 16, ids, source="qa.jsonl")
