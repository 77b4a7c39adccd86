"""Using a fine-tuned model on new text: a label, word tags, or an answer span per input.

The models are the ones ``attnlab finetune`` saves (or transformers' own of the same
classes); the task is read from ``config.json``'s ``architectures`` (:data:`TASKS`):
classify (BertForSequenceClassification, GPT2/LlamaForSequenceClassification): text ->
label and the probability of every label; tag (BertForTokenClassification): text -> a tag
per word; qa (BertForQuestionAnswering): question + context -> answer span and score.

An input is read exactly as fine-tuning read it, by the task modules' own functions:
a BERT classifier **cuts** a long text to its ``max_seq_len`` (keeping [SEP]); a GPT
classifier keeps the **last** ``max_positions`` tokens; a tagger splits a long sentence
into **chunks** of whole words and tags each word at its first sub-word; a QA model reads
a long context in **windows** ``doc_stride`` tokens apart and keeps the best valid span
over all of them. ``max_seq_len``, ``doc_stride``, ``max_answer_len`` and the pooling
come from the run's ``finetune_metrics.json`` (defaults: the model's positions, up to
512; 64; 30; [CLS]).

Words, for tagging, are the tokenizer's pre-tokenization of the text (BERT's: split at
whitespace and punctuation), with their character offsets; transformers' pipelines group
sub-words into the same words.

This module sits in ``training/`` beside those task modules because it calls them; the
layers below (``inference/``, ``interop/``) may not import upwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from attnlab.checks import check_int
from attnlab.data.inputs import Question
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models.base import PreTrainedModel
from attnlab.training.bert_finetune import METRICS_FILE

# Which task a saved architecture does; the value of ``Predictor.task``.
TASKS = {
    "BertForSequenceClassification": "classify",
    "GPT2ForSequenceClassification": "classify",
    "LlamaForSequenceClassification": "classify",
    "BertForTokenClassification": "tag",
    "BertForQuestionAnswering": "qa",
}
# Settings of finetune bert when its finetune_metrics.json is absent (a model trained elsewhere).
DEFAULT_DOC_STRIDE, DEFAULT_MAX_ANSWER_LEN, MAX_BERT_LEN = 64, 30, 512


@dataclass(frozen=True)
class Classification:
    """The most probable label, its probability, and softmax(logits) over every label."""

    text: str
    label: str
    probability: float
    probabilities: dict[str, float]
    truncated: bool  # the text was longer than the model reads; its cut part was not seen


@dataclass(frozen=True)
class TaggedWord:
    """A word of the text, ``text[start:end]``, and its predicted tag."""

    word: str
    tag: str
    start: int
    end: int


@dataclass(frozen=True)
class Tagging:
    """Every word of ``text``, in order, with its tag."""

    text: str
    words: tuple[TaggedWord, ...]


@dataclass(frozen=True)
class Answer:
    """``answer == context[start:end]``; ``score`` = start logit + end logit of the span (None,
    with an empty answer, for a context with no token the model reads, e.g. only control characters)."""

    question: str
    answer: str
    start: int
    end: int
    score: float | None


@dataclass(frozen=True)
class Predictor:
    """A fine-tuned model in eval mode with its tokenizer and the settings it was trained with."""

    task: str  # classify | tag | qa
    model: PreTrainedModel
    tokenizer: Tokenizer
    special_ids: dict[str, int] | None  # [CLS] / [SEP] / [PAD] of a BERT; None for a GPT
    max_len: int  # tokens per input, special tokens included
    pooling: str = "cls"  # BERT classify: "cls" or "mean" (attnlab_pooling in config.json)
    doc_stride: int = DEFAULT_DOC_STRIDE
    max_answer_len: int = DEFAULT_MAX_ANSWER_LEN


def model_task(path: str | Path) -> str:
    """The task of the fine-tuned model saved at ``path`` (read from config.json only), or a
    one-line error naming the command that makes one."""
    from attnlab.interop.hf import read_config

    directory = Path(path).expanduser()
    if not directory.exists():
        raise AttnlabError(f"No model at {directory}: the path does not exist; check it.")
    if not directory.is_dir():
        raise AttnlabError(f"{directory} is a file; pass the directory of a fine-tuned model.")
    architectures = read_config(directory).get("architectures") or []
    for name in architectures if isinstance(architectures, list) else []:
        if name in TASKS:
            return TASKS[name]
    held = "/".join(map(str, architectures)) if isinstance(architectures, list) else ""
    raise AttnlabError(
        f"{directory} holds a {held or 'model of unknown architecture'}, not a fine-tuned classifier, "
        f"tagger or QA model; make one with `attnlab finetune bert --task classify|tag|qa` "
        f"or `attnlab finetune gpt --task classify`."
    )


def load_predictor(path: str | Path, device: str | torch.device = "cpu", *,
                   dtype: torch.dtype = torch.float32) -> Predictor:
    """The fine-tuned model at ``path`` (see :func:`model_task`) on ``device`` in ``dtype`` (fp32, or bf16:
    faster where the CPU computes it natively, not exact), ready to predict."""
    from attnlab.interop.hf import read_config
    from attnlab.training.bert_classify import POOLING_KEY, POOLINGS
    from attnlab.training.bert_finetune import special_ids

    directory = Path(path).expanduser()
    task = model_task(directory)
    settings = _finetune_settings(directory)
    config = read_config(directory)
    if task == "classify" and "BertForSequenceClassification" not in config["architectures"]:
        from attnlab.models.gpt_classifier import GPTForSequenceClassification

        model = GPTForSequenceClassification.from_pretrained(directory)
        tokenizer = Tokenizer.from_dir(directory)
        return Predictor(task, model.to(device, dtype).eval(), tokenizer, None, model.config.max_positions)
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(directory)
    model = loaded.model
    ids = special_ids(loaded.tokenizer, model.config)
    pooling = config.get(POOLING_KEY, "cls")
    if pooling not in POOLINGS:
        raise AttnlabError(f"{directory / 'config.json'} has {POOLING_KEY}={pooling!r}; it must be one of "
                           f"{list(POOLINGS)}.")
    return Predictor(
        task,
        model.to(device, dtype).eval(),
        loaded.tokenizer,
        ids,
        min(settings.get("max_seq_len", MAX_BERT_LEN), model.config.max_positions),
        pooling=pooling,
        doc_stride=settings.get("doc_stride", DEFAULT_DOC_STRIDE),
        max_answer_len=settings.get("max_answer_len", DEFAULT_MAX_ANSWER_LEN),
    )


def _finetune_settings(directory: Path) -> dict[str, int]:
    """The positive int settings of finetune bert's summary ({} for a model saved another way;
    a value that is not one is ignored, so its default applies)."""
    try:
        settings = json.loads((directory / METRICS_FILE).read_text(encoding="utf-8")).get("config", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(settings, dict):
        return {}
    return {k: v for k, v in settings.items() if type(v) is int and v >= 1}


def check_inputs(inputs: Sequence[str] | Sequence[Question], task: str) -> None:
    """Refuse inputs of the wrong kind for ``task``, and empty texts, questions or contexts."""
    want = Question if task == "qa" else str
    for number, item in enumerate(inputs, start=1):
        if not isinstance(item, want):
            raise AttnlabError(
                f"Input {number} is a {type(item).__name__}; a {task} model takes {want.__name__} inputs."
            )
        parts = (item.question, item.context) if task == "qa" else (item,)
        if not all(part.strip() for part in parts):
            what = "question or context" if task == "qa" else "text"
            raise AttnlabError(f"Input {number} has an empty {what}; give some words.")


# --------------------------------------------------------------------------- the three tasks
def classify(predictor: Predictor, texts: Sequence[str], batch_size: int = 32) -> list[Classification]:
    """The label of each text and softmax(logits) over the model's labels."""
    model = predictor.model
    if predictor.special_ids is None:  # a GPT: the head reads the last token
        from attnlab.training.gpt_classify import class_logits, encode_texts

        rows, cut = encode_texts(predictor.tokenizer, texts, predictor.max_len)
        logits = class_logits(model, rows, batch_size)  # (N, C)
        names = model.label_names
    else:
        from attnlab.training.bert_classify import encode_texts, predict_logits

        ids = predictor.special_ids
        rows, cut = encode_texts(predictor.tokenizer, texts, predictor.max_len, ids)
        logits = predict_logits(model, rows, predictor.pooling, ids["pad"], batch_size)  # (N, L)
        names = model.config.labels
    probabilities = logits.softmax(dim=-1)  # (N, L)
    results = []
    for text, row, was_cut in zip(texts, probabilities.tolist(), cut, strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        every = dict(zip(names, row, strict=True))
        results.append(Classification(text, names[best], row[best], every, was_cut))
    return results


def split_words(tokenizer: Tokenizer, text: str) -> list[tuple[str, tuple[int, int]]]:
    """(word, (start, end)) of each word of ``text``: the tokenizer's pre-tokenization, or
    whitespace-separated words for a tokenizer without one."""
    pre = tokenizer.backend.pre_tokenizer
    if pre is None:
        return [(m.group(), m.span()) for m in re.finditer(r"\S+", text)]
    return pre.pre_tokenize_str(text)


def tag(predictor: Predictor, texts: Sequence[str], batch_size: int = 32) -> list[Tagging]:
    """The tag of every word of every text, predicted at the word's first sub-word."""
    from attnlab.training.bert_tagging import chunk_sentences, predict

    words = [split_words(predictor.tokenizer, text) for text in texts]
    sentences = [[word for word, _ in found] for found in words]
    ids = predictor.special_ids
    chunks = chunk_sentences(predictor.tokenizer, sentences, predictor.max_len, ids)
    tags = predict(predictor.model, chunks, [len(s) for s in sentences], ids["pad"], batch_size)
    return [
        Tagging(text, tuple(TaggedWord(w, t, s, e) for (w, (s, e)), t in zip(found, row, strict=True)))
        for text, found, row in zip(texts, words, tags, strict=True)
    ]


def answer(predictor: Predictor, questions: Sequence[Question], batch_size: int = 32) -> list[Answer]:
    """The best valid answer span of each question in its context (over all of its windows)."""
    from attnlab.training.bert_qa import make_windows, predict_spans

    ids = predictor.special_ids
    windows = make_windows(
        predictor.tokenizer, questions, predictor.max_len, predictor.doc_stride, ids, labelled=False
    )
    spans = predict_spans(
        predictor.model, len(questions), windows, predictor.max_answer_len, ids["pad"], batch_size
    )
    results = []
    for item, span in zip(questions, spans, strict=True):
        score, start, end = span if span is not None else (None, 0, 0)
        results.append(Answer(item.question, item.context[start:end], start, end, score))
    return results


def predict(
    predictor: Predictor,
    inputs: Sequence[str] | Sequence[Question],
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> list[Classification] | list[Tagging] | list[Answer]:
    """Run the predictor's task on ``inputs`` (texts, or :class:`Question` for QA), ``batch_size``
    inputs at a time, without gradients; a progress bar on stderr if ``progress``."""
    check_int("batch_size", batch_size)
    check_inputs(inputs, predictor.task)
    run = {"classify": classify, "tag": tag, "qa": answer}[predictor.task]
    results: list = []
    bar = tqdm(total=len(inputs), desc="predicting", unit="input", disable=not progress)
    with torch.no_grad():
        for first in range(0, len(inputs), batch_size):
            group = inputs[first : first + batch_size]
            results += run(predictor, group, batch_size)
            bar.update(len(group))
    bar.close()
    return results
