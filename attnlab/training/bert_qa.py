"""Extractive question answering with BERT (Devlin et al. 2019, §4.2, SQuAD v1.1).

Input: ``[CLS] question [SEP] context window [SEP]``, segment 0 for the question,
1 for the context. The head scores every token as the answer's start (S . h_i) and
end (E . h_j); the answer is the span i <= j, inside the context, at most
``max_answer_len`` tokens long, with the highest S . h_i + E . h_j.

Long contexts (as in the paper's and Google's run_squad.py): the context's tokens are
cut into windows of ``max_len - len(question) - 3`` tokens, each starting
``doc_stride`` tokens after the previous one (so windows overlap when the stride is
smaller than a window), until the last window reaches the end. Training labels a
window with the answer's token positions when the whole answer lies inside it,
otherwise with position 0 ([CLS]: "not here"). Prediction takes the best valid span
over all windows of a question and maps it back to the characters of the context
through the tokenizer's offsets.

Metrics: exact match and token F1 (:func:`attnlab.evaluation.metrics.qa_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.data.qa import QAExample
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import qa_scores
from attnlab.models.bert_heads import BertForQuestionAnswering
from attnlab.training.bert_finetune import Feature, collate


@dataclass(frozen=True)
class Window:
    """One model input over part of a context; ``offsets[i]`` = characters of token i (None: not context)."""

    example: int
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int] | None, ...]
    start_position: int  # answer start/end token in input_ids, 0 when the answer is not (all) inside
    end_position: int


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """First token of each window: 0, stride, 2 stride, ... until a window reaches the end."""
    if window < 1 or stride < 1:
        raise AttnlabError(f"window and stride must be >= 1. Got {window} and {stride}.")
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + min(stride, window))
    return starts


def answer_tokens(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last context token overlapping the characters [start, end), or None."""
    inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
    return (inside[0], inside[-1]) if inside else None


def make_windows(
    tokenizer,
    examples: Sequence[QAExample],
    max_len: int,
    doc_stride: int,
    ids: dict[str, int],
    max_query_len: int = 64,
    source: str = "the data",
    *,
    labelled: bool = True,
) -> list[Window]:
    """Every window of every example (questions cut to ``max_query_len`` tokens).

    ``labelled=False`` (prediction): the examples need only ``question`` and ``context``,
    and every window gets the start / end positions 0.
    """
    questions = tokenizer.backend.encode_batch([e.question for e in examples], add_special_tokens=False)
    contexts = tokenizer.backend.encode_batch([e.context for e in examples], add_special_tokens=False)
    windows: list[Window] = []
    for number, (example, question, context) in enumerate(zip(examples, questions, contexts, strict=True)):
        q_ids = question.ids[:max_query_len]
        room = max_len - len(q_ids) - 3
        if room < 1:
            raise AttnlabError(
                f"--max-seq-len {max_len} leaves no room for the context after a {len(q_ids)}-token "
                f"question; raise --max-seq-len."
            )
        answer = None
        if labelled:
            answer = answer_tokens(context.offsets, example.answer_start, example.answer_end)
        if labelled and answer is None:
            raise AttnlabError(
                f"{source}, example {number + 1}: the answer {example.answer[:40]!r} has no token in the "
                f"tokenised context; give an answer made of words of the context."
            )
        head = [ids["cls"], *q_ids, ids["sep"]]
        for first in window_starts(len(context.ids), room, doc_stride):
            body = context.ids[first : first + room]
            input_ids = (*head, *body, ids["sep"])
            offsets = (None,) * len(head) + tuple(context.offsets[first : first + room]) + (None,)
            start = end = 0
            if answer is not None and first <= answer[0] and answer[1] < first + len(body):
                start, end = len(head) + answer[0] - first, len(head) + answer[1] - first
            windows.append(
                Window(number, input_ids, (0,) * len(head) + (1,) * (len(body) + 1), offsets, start, end)
            )
    return windows


def features(windows: Sequence[Window]) -> list[Feature]:
    """The fine-tuning loop's inputs: ids, segments, start and end positions."""
    return [
        {
            "input_ids": list(w.input_ids),
            "token_type_ids": list(w.token_type_ids),
            "start_positions": w.start_position,
            "end_positions": w.end_position,
        }
        for w in windows
    ]


def best_span(
    start_logits: Tensor, end_logits: Tensor, in_context: Tensor, max_answer_len: int, top_k: int = 20
) -> tuple[float, int, int] | None:
    """(score, start, end) of the best span of one window, or None if it has no context token.

    start_logits, end_logits, in_context: (T,). A span is valid when start <= end,
    end - start + 1 <= max_answer_len and both ends are context tokens; the search
    looks at the ``top_k`` best starts and ends (exact when top_k >= T).
    """
    positions = in_context.nonzero().flatten()
    if len(positions) == 0:
        return None
    k = min(top_k, len(positions))
    starts = positions[start_logits[positions].topk(k).indices].tolist()
    ends = positions[end_logits[positions].topk(k).indices].tolist()
    best = None
    for i in starts:
        for j in ends:
            if i <= j < i + max_answer_len:
                score = float(start_logits[i] + end_logits[j])
                if best is None or score > best[0]:
                    best = (score, i, j)
    return best


@torch.no_grad()
def predict_spans(
    model: BertForQuestionAnswering,
    n_examples: int,
    windows: Sequence[Window],
    max_answer_len: int = 30,
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[tuple[float, int, int] | None]:
    """(score, first character, one past the last character) in its context of each example's best
    valid span over all of its windows; None for an example with no context token."""
    device = next(model.parameters()).device
    best: list[tuple[float, int, int] | None] = [None] * n_examples
    for first in range(0, len(windows), batch_size):
        group = windows[first : first + batch_size]
        batch = collate(
            [{"input_ids": list(w.input_ids), "token_type_ids": list(w.token_type_ids)} for w in group],
            pad_id,
        )
        out = model(
            batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            token_type_ids=batch["token_type_ids"].to(device),
        )
        for row, window in enumerate(group):
            n = len(window.input_ids)
            in_context = torch.tensor([o is not None for o in window.offsets])
            span = best_span(
                out.start_logits[row, :n].float().cpu(),
                out.end_logits[row, :n].float().cpu(),
                in_context,
                max_answer_len,
            )
            if span is None:
                continue
            score, i, j = span
            current = best[window.example]
            if current is None or score > current[0]:
                best[window.example] = (score, window.offsets[i][0], window.offsets[j][1])
    return best


def predict(
    model: BertForQuestionAnswering,
    examples: Sequence[QAExample],
    windows: Sequence[Window],
    max_answer_len: int = 30,
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[str]:
    """The answer text of each example: the best valid span over all of its windows."""
    spans = predict_spans(model, len(examples), windows, max_answer_len, pad_id, batch_size)
    return [e.context[s[1] : s[2]] if s is not None else "" for e, s in zip(examples, spans, strict=True)]


def evaluate(
    model,
    tokenizer,
    examples: Sequence[QAExample],
    max_len: int,
    doc_stride: int,
    ids: dict[str, int],
    max_answer_len: int = 30,
) -> dict[str, float]:
    """Exact match and token F1 of the predicted answers."""
    windows = make_windows(tokenizer, examples, max_len, doc_stride, ids)
    predicted = predict(model, examples, windows, max_answer_len, ids["pad"])
    return qa_scores(predicted, [e.answer for e in examples])
